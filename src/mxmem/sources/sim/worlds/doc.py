"""The worlds of the seed document, Magenta's ``docs/memory.md`` (mid-2017), as data.

* ``doc`` is the system of the doc's ``ps`` example: the same twelve processes, koids and
  names, with private memory chosen so that ``ps`` prints the doc's table byte for byte.
* ``doc-vmaps`` is that system a little later, with the shell (process 2470) whose
  address space is the doc's ``vmaps`` example.
* ``doc-vmos`` is another boot, two weeks on, whose crashlogger (process 1118) is the
  doc's ``vmos`` example.

Each world is a program in the world-file format (``docs/worlds.md``), run by the same
loader as a world file: the kernel's settings, its boot (the vDSO and bootfs), then
ops, among them ``spawn``, which loads a process the way launchpad, the dynamic linker
and libc did in 2017 (``launchpad.py``). What follows here is what the worlds are made
of: the files in bootfs, what changed between the doc's examples, and each process and
its pins (the koids and addresses the doc shows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mxmem.model import ThreadState
from mxmem.sources.sim.kernel import Kernel
from mxmem.sources.sim.worlds import World, worldfile
from mxmem.sources.sim.worlds.launchpad import Elf, Era, Launchpad, ProcSpec, ThreadSpec, boot_ops

__all__ = [
    "MEMORY_BYTES",
    "WIRED_BYTES",
    "WORLDS",
    "build_doc",
    "build_doc_vmaps",
    "build_doc_vmos",
]

K = 1024
M = K * K

# The doc's kstats example: "total 2046.9M ... wired 72.6M".
MEMORY_BYTES = (2046 * K + 900) * K
WIRED_BYTES = (72 * K + 600) * K
ROOT_JOB = 1028  # j:1028 in the doc's ps
VDSO_KOID = 1031  # 1031:vmo in the doc's vmaps and vmos


# --------------------------------------------------------------------------- bootfs


def _catalog(*elves: Elf) -> dict[str, Elf]:
    return {e.name: e for e in elves}


# Bootfs of the ps and vmaps examples (late May / June 6, 2017). Sizes of /boot/bin/sh and
# libmxio.so are the doc's vmaps figures; the rest are plausible for the era.
_BOOTFS_JUNE_6 = _catalog(
    Elf(name="bin/devmgr", text=156 * K, relro=8 * K, data=12 * K),
    Elf(name="/boot/bin/acpisvc", text=412 * K, relro=16 * K, data=24 * K),
    Elf(name="/boot/bin/devhost", text=28 * K, relro=4 * K, data=4 * K),
    Elf(name="/boot/bin/crashlogger", text=40 * K, relro=4 * K, data=4 * K),
    Elf(name="/boot/bin/netsvc", text=64 * K, relro=4 * K, data=8 * K),
    Elf(name="/boot/bin/sh", text=128 * K, relro=8 * K, data=8 * K),
    Elf(name="/boot/bin/ps", text=24 * K, relro=4 * K, data=4 * K),
    Elf(name="/boot/bin/vmaps", text=20 * K, relro=4 * K, data=4 * K),
    Elf(name="ld.so.1", text=560 * K, relro=8 * K, data=16 * K),
    Elf(name="libmxio.so", text=88 * K, relro=4 * K, data=8 * K),
    Elf(name="liblaunchpad.so", text=60 * K, relro=4 * K, data=4 * K),
    Elf(name="libdriver.so", text=48 * K, relro=4 * K, data=8 * K),
    Elf(name="libbacktrace.so", text=28 * K, relro=0, data=4 * K),
    Elf(name="kpci.so", text=20 * K, relro=4 * K, data=4 * K),
    Elf(name="console.so", text=16 * K, relro=4 * K, data=4 * K),
    Elf(name="platform-bus.so", text=24 * K, relro=4 * K, data=4 * K),
    Elf(name="bochs-vbe.so", text=12 * K, relro=4 * K, data=4 * K),
    Elf(name="vc.so", text=48 * K, relro=4 * K, data=8 * K),
    Elf(name="ahci.so", text=36 * K, relro=4 * K, data=4 * K),
)

# Bootfs of the vmos example (June 14, 2017): the loader now keeps .bss in its own VMO.
# ld.so.1 (883.2k, data 16k of which 12k written, bss 12k) and libbacktrace.so (33.6k,
# data 4k) are the doc's vmos figures.
_BOOTFS_JUNE_14 = _catalog(
    Elf(name="bin/devmgr", text=160 * K, relro=8 * K, data=12 * K, bss=8 * K),
    Elf(name="/boot/bin/acpisvc", text=416 * K, relro=16 * K, data=24 * K, bss=36 * K),
    Elf(name="/boot/bin/devhost", text=28 * K, relro=4 * K, data=4 * K),
    Elf(name="/boot/bin/crashlogger", text=44 * K, relro=4 * K, data=4 * K, bss=4 * K),
    Elf(name="/boot/bin/netsvc", text=68 * K, relro=4 * K, data=8 * K, bss=8 * K),
    Elf(name="/boot/bin/sh", text=132 * K, relro=8 * K, data=8 * K, bss=4 * K),
    Elf(name="/boot/bin/vmos", text=24 * K, relro=4 * K, data=4 * K),
    Elf(
        name="ld.so.1",
        text=780 * K,
        relro=0,
        data=16 * K,
        dirty=12 * K,
        bss=12 * K,
        file_size=883 * K + 200,  # prints as 883.2k
        tail_pages=3,
    ),
    Elf(name="libmxio.so", text=92 * K, relro=4 * K, data=8 * K, bss=4 * K),
    Elf(name="liblaunchpad.so", text=60 * K, relro=4 * K, data=4 * K),
    Elf(name="libdriver.so", text=52 * K, relro=4 * K, data=8 * K, bss=4 * K),
    Elf(
        name="libbacktrace.so",
        text=28 * K,
        relro=0,
        data=4 * K,
        file_size=33 * K + 608,  # prints as 33.6k
        tail_pages=1,
    ),
    Elf(name="kpci.so", text=20 * K, relro=4 * K, data=4 * K),
    Elf(name="console.so", text=16 * K, relro=4 * K, data=4 * K),
    Elf(name="platform-bus.so", text=24 * K, relro=4 * K, data=4 * K),
    Elf(name="bochs-vbe.so", text=12 * K, relro=4 * K, data=4 * K),
    Elf(name="vc.so", text=48 * K, relro=4 * K, data=8 * K, bss=4 * K),
    Elf(name="intel-ethernet.so", text=20 * K, relro=4 * K, data=4 * K),
    Elf(name="ahci.so", text=36 * K, relro=4 * K, data=4 * K),
    Elf(name="usb-xhci.so", text=56 * K, relro=4 * K, data=4 * K, bss=8 * K),
)



JUNE_6 = Era(
    bootfs=_BOOTFS_JUNE_6,
    segment_prefixes=False,
    thread_vmos=False,
    heap_name="mmap-anonymous",
    heap_base=8 * K,
)
JUNE_14 = Era(
    bootfs=_BOOTFS_JUNE_14,
    segment_prefixes=True,
    thread_vmos=True,
    heap_name="jemalloc-heap",
    heap_base=0,
)


# --------------------------------------------------------------------------- doc (ps)

_T = ThreadSpec
RUNNING = ThreadState.RUNNING

# Device libraries every devhost loads, then its drivers.
_DEVHOST = ("libdriver.so", "libmxio.so")

# The doc's ps, process by process (PRIVATE is the doc's column; SHARED is the vDSO).
_DOC_DEVMGR = ProcSpec(
    koid=1043,
    name="bin/devmgr",
    program="bin/devmgr",
    libs=("liblaunchpad.so", "libmxio.so"),
    threads=(_T("service-starter"),),
    private=1384 * K,
)
_DOC_DRIVERS = (
    ProcSpec(
        koid=1209,
        name="/boot/bin/acpisvc",
        program="/boot/bin/acpisvc",
        libs=("libmxio.so",),
        private=772 * K,
    ),
    ProcSpec(
        koid=1565,
        name="devhost:root",
        program="/boot/bin/devhost",
        libs=(*_DEVHOST, "kpci.so"),
        private=248 * K,
    ),
    ProcSpec(
        koid=1619,
        name="devhost:misc",
        program="/boot/bin/devhost",
        libs=(*_DEVHOST, "console.so"),
        private=652 * K,
    ),
    ProcSpec(
        koid=1688,
        name="devhost:platform",
        program="/boot/bin/devhost",
        libs=(*_DEVHOST, "platform-bus.so"),
        private=256 * K,
    ),
    # QEMU's VGA (1234:1111): its BAR is device memory; the virtual console, bound on top
    # of it in the same devhost, draws into a 1024x768x32 surface in RAM.
    ProcSpec(
        koid=1867,
        name="devhost:pci#1:1234:1111",
        program="/boot/bin/devhost",
        libs=(*_DEVHOST, "bochs-vbe.so", "vc.so"),
        threads=(_T("vc-input"),),
        devices=(("bochs-vbe-fb", 0xFD000000, 16 * M),),
        buffers=(("vc-surface", 1024 * 768 * 4),),
        private=3876 * K,
    ),
    # ICH9 AHCI (8086:2922): a 4 MiB DMA area per port. Its PRIVATE prints "24.4M"; the
    # job roll-ups above it print the doc's strings only for 24939k..24952k (page
    # multiples), so we use 24944k.
    ProcSpec(
        koid=1916,
        name="devhost:pci#3:8086:2922",
        program="/boot/bin/devhost",
        libs=(*_DEVHOST, "ahci.so"),
        threads=(_T("ahci-worker"), _T("ahci-watchdog"), _T("ahci-irq")),
        buffers=tuple((f"ahci-port{n}", 4 * M) for n in range(6)),
        private=24944 * K,
    ),
)
_DOC_CRASHLOGGER = ProcSpec(
    koid=1104,
    name="crashlogger",
    program="/boot/bin/crashlogger",
    libs=("libbacktrace.so", "libmxio.so"),
    private=296 * K,
)
_DOC_SERVICES = (
    ProcSpec(
        koid=1290,
        name="netsvc",
        program="/boot/bin/netsvc",
        libs=("libmxio.so",),
        threads=(_T("debuglog"),),
        private=240 * K,
    ),
    ProcSpec(
        koid=2115,
        name="sh:console",
        program="/boot/bin/sh",
        libs=("liblaunchpad.so", "libmxio.so"),
        private=360 * K,
    ),
    ProcSpec(
        koid=2334,
        name="sh:vc",
        program="/boot/bin/sh",
        libs=("liblaunchpad.so", "libmxio.so"),
        private=264 * K,
    ),
)
_DOC_PS = ProcSpec(
    koid=2441,
    name="/boot/bin/ps",
    program="/boot/bin/ps",
    libs=("libmxio.so",),
    initial_state=RUNNING,  # it is the one taking the snapshot
    private=304 * K,
)




# --------------------------------------------------------------------------- doc-vmaps

# Process 2470 of the doc's vmaps example. Pinned: every koid and address the doc shows,
# and addresses for the rest so that each "..." of the doc holds something.
_VMAPS_SH = ProcSpec(
    koid=2470,
    name="sh",
    program="/boot/bin/sh",
    libs=("liblaunchpad.so", "libmxio.so"),
    threads=(_T("pthread_t:0x246812b9e040", stack=16 * K),),
    heap=76 * K,
    initial_stack=4 * K,
    koids={
        "/boot/bin/sh": 2476,
        "initial-stack": 2513,
        "vmar:/boot/bin/sh": 2516,  # so its data clone is 2517
        "file:libmxio.so": 2534,  # so the library is 2535, its VMAR 2536, its data 2537
        "stack:pthread_t:0x246812b9e040": 2538,
        "heap": 2542,
    },
    addrs={
        "liblaunchpad.so": 0x000000B2C7E1D000,
        "libmxio.so": 0x00000187BC867000,
        "unsafe:initial-thread": 0x00001D9B6E2F4000,
        "heap": 0x0000246812B91000,
        "unsafe:pthread_t:0x246812b9e040": 0x00002C41F0A67000,
        "stack:pthread_t:0x246812b9e040": 0x0000358923D92000,
        "tcb:initial-thread": 0x00003C0E5D7A9000,
        "initial-stack": 0x0000400CBBA84000,
        "ld.so.1": 0x0000438F2B16C000,
        "vdso": 0x000047E1AB874000,
        "heap-base": 0x00005236A9C0F000,
        "/boot/bin/sh": 0x000059F5C7068000,
    },
)
_VMAPS_TOOL = ProcSpec(
    koid=2551,
    name="/boot/bin/vmaps",
    program="/boot/bin/vmaps",
    libs=("libmxio.so",),
    initial_state=RUNNING,
    heap=48 * K,
)




# --------------------------------------------------------------------------- doc-vmos

# Process 1118 of the doc's vmos example: crashlogger, whose self-dump thread's VMO
# (1381) holds its TCB and two stacks, three mappings. Addresses put the doc's rows in
# the doc's order: the heap lowest, then the self-dump TCB, libbacktrace.so, ...,
# and ld.so.1 highest.
_VMOS_CRASHLOGGER = ProcSpec(
    koid=1118,
    name="crashlogger",
    program="/boot/bin/crashlogger",
    libs=("libbacktrace.so", "libmxio.so"),
    threads=(_T("self-dump-thread"),),
    heap=68 * K,
    koids={
        "file:ld.so.1": 1146,
        "ld.so.1": 1153,
        "data:ld.so.1": 1158,  # its .bss follows as 1159
        "initial-stack": 1170,
        "file:libbacktrace.so": 1232,  # the library is 1233, its VMAR 1234
        "data:libbacktrace.so": 1237,
        "heap": 1298,
        "thread-vmo:self-dump-thread": 1381,
    },
    addrs={
        "heap": 0x00000B1D6E8F3000,
        "tcb:self-dump-thread": 0x000012AFE79C8000,
        "libbacktrace.so": 0x00001F6A3C251000,
        "stack:self-dump-thread": 0x0000287D11C0E000,
        "libmxio.so": 0x00002F90C4A1B000,
        "vdso": 0x00003A1E7F5C6000,
        "initial-stack": 0x000041D03B8E2000,
        "tcb:initial-thread": 0x00004B6C2E917000,
        "stack:initial-thread": 0x000052E8A4D30000,
        "unsafe:initial-thread": 0x00005C07F9B45000,
        "unsafe:self-dump-thread": 0x00006391D2E7A000,
        "/boot/bin/crashlogger": 0x00006F4B5A128000,
        "ld.so.1": 0x00007D4A1E6B0000,
    },
)
_VMOS_DEVMGR = ProcSpec(
    koid=1043,
    name="bin/devmgr",
    program="bin/devmgr",
    libs=("liblaunchpad.so", "libmxio.so"),
    threads=(_T("service-starter"),),
    heap=1240 * K,
)
_VMOS_DRIVERS = (
    ProcSpec(
        koid=1402,
        name="/boot/bin/acpisvc",
        program="/boot/bin/acpisvc",
        libs=("libmxio.so",),
        heap=640 * K,
    ),
    ProcSpec(
        koid=1538,
        name="devhost:root",
        program="/boot/bin/devhost",
        libs=(*_DEVHOST, "kpci.so"),
        heap=132 * K,
    ),
    ProcSpec(
        koid=1601,
        name="devhost:misc",
        program="/boot/bin/devhost",
        libs=(*_DEVHOST, "console.so"),
        heap=516 * K,
    ),
    ProcSpec(
        koid=1669,
        name="devhost:platform",
        program="/boot/bin/devhost",
        libs=(*_DEVHOST, "platform-bus.so"),
        heap=140 * K,
    ),
    ProcSpec(
        koid=1733,
        name="devhost:pci#1:1234:1111",
        program="/boot/bin/devhost",
        libs=(*_DEVHOST, "bochs-vbe.so", "vc.so"),
        threads=(_T("vc-input"),),
        devices=(("bochs-vbe-fb", 0xFD000000, 16 * M),),
        buffers=(("vc-surface", 1024 * 768 * 4),),
        heap=668 * K,
    ),
    ProcSpec(
        koid=1808,
        name="devhost:pci#2:8086:100e",
        program="/boot/bin/devhost",
        libs=(*_DEVHOST, "intel-ethernet.so"),
        threads=(_T("eth-irq"),),
        devices=(("intel-eth-mmio", 0xFEBC0000, 128 * K),),
        buffers=(("eth-rings", 256 * K),),
        heap=96 * K,
    ),
    ProcSpec(
        koid=1872,
        name="devhost:pci#3:8086:2922",
        program="/boot/bin/devhost",
        libs=(*_DEVHOST, "ahci.so"),
        threads=(_T("ahci-worker"), _T("ahci-watchdog"), _T("ahci-irq")),
        buffers=tuple((f"ahci-port{n}", 4 * M) for n in range(6)),
        heap=240 * K,
    ),
    ProcSpec(
        koid=1950,
        name="devhost:pci#4:1b36:000d",
        program="/boot/bin/devhost",
        libs=(*_DEVHOST, "usb-xhci.so"),
        threads=(_T("xhci-irq"),),
        buffers=(("xhci-rings", 64 * K),),
        heap=112 * K,
    ),
)
_VMOS_SERVICES = (
    ProcSpec(
        koid=1467,
        name="netsvc",
        program="/boot/bin/netsvc",
        libs=("libmxio.so",),
        threads=(_T("debuglog"),),
        heap=120 * K,
    ),
    ProcSpec(
        koid=2087,
        name="sh:console",
        program="/boot/bin/sh",
        libs=("liblaunchpad.so", "libmxio.so"),
        heap=236 * K,
    ),
    ProcSpec(
        koid=2210,
        name="sh:vc",
        program="/boot/bin/sh",
        libs=("liblaunchpad.so", "libmxio.so"),
        heap=144 * K,
    ),
    ProcSpec(
        koid=2397,
        name="/boot/bin/vmos",
        program="/boot/bin/vmos",
        libs=("libmxio.so",),
        initial_state=RUNNING,
        heap=52 * K,
    ),
)




# --------------------------------------------------------------------------- the worlds

Op = dict[str, Any]


def _spawn(job: str, spec: ProcSpec, name: str | None = None) -> Op:
    op: Op = {"op": "spawn", "job": job, "spec": spec}
    if name is not None:
        op["as"] = name
    return op


def _system_start(devmgr: ProcSpec) -> list[Op]:
    """devmgr first, then the system jobs it starts everything else in."""
    return [
        _spawn("root", devmgr, "devmgr"),
        # Userboot (gone by now) handed bootfs to devmgr.
        {"op": "grant", "process": "devmgr", "object": "bootfs",
         "rights": ["read", "map", "duplicate"]},
        {"op": "release", "vmo": "bootfs"},
        {"op": "job", "as": "drivers", "name": "magenta-drivers", "koid": 1082},
        {"op": "job", "as": "services", "name": "magenta-services", "koid": 1103},
    ]


def _in_koid_order(*jobs: tuple[str, Sequence[ProcSpec]]) -> list[Op]:
    """devmgr starts drivers and services as devices appear: in koid order, across jobs."""
    specs = sorted(((spec.koid, job, spec) for job, group in jobs for spec in group))
    return [_spawn(job, spec) for _, job, spec in specs]


# The doc's ps system, in creation (= koid) order.
_DOC_SYSTEM = [
    *_system_start(_DOC_DEVMGR),
    _spawn("services", _DOC_CRASHLOGGER),
    *_in_koid_order(("drivers", _DOC_DRIVERS), ("services", _DOC_SERVICES)),
]
_DOC = [*_DOC_SYSTEM, _spawn("services", _DOC_PS)]
# Later on: ps has exited; sh:console started a shell (2470), and from it the user runs
# ``vmaps 2470``.
_DOC_VMAPS = [
    *_DOC_SYSTEM,
    _spawn("services", _VMAPS_SH, "sh"),
    # A large allocation (the line editor's history) gets its own mapping past the
    # program, from the heap's big-allocation path.
    {"op": "vmo", "as": "history", "owner": "sh", "name": "mmap-anonymous", "size": 64 * K},
    {"op": "map", "vmar": "sh", "vmo": "history", "perms": "rw-", "addr": 0x6C8E33A45000},
    {"op": "write", "vmo": "history", "size": 8 * K},
    {"op": "close", "process": "sh", "object": "history"},
    _spawn("services", _VMAPS_TOOL),
]
# Fourteen processes, each mapping the vDSO twice (vdso/full: 28 mappings, shared by
# 14), crashlogger among them as 1118.
_DOC_VMOS = [
    *_system_start(_VMOS_DEVMGR),
    _spawn("services", _VMOS_CRASHLOGGER),
    *_in_koid_order(("drivers", _VMOS_DRIVERS), ("services", _VMOS_SERVICES)),
]


def _build(name: str, era: Era, ops: Sequence[Op]) -> Kernel:
    """Boot the doc's machine (its kstats example: "total 2046.9M ... wired 72.6M") and
    run the world's ops, with ``spawn`` loading processes as ``era`` did."""
    world: Mapping[str, object] = {
        "kernel": {"memory": MEMORY_BYTES, "wired": WIRED_BYTES, "first_koid": ROOT_JOB},
        "ops": [*boot_ops(era, VDSO_KOID), *ops],
    }
    macros = {"spawn": (Launchpad(era).spawn, Launchpad.KEYS)}
    return worldfile.run(world, f"world {name}", macros=macros)


def build_doc() -> Kernel:
    """The system of the doc's ``ps`` example."""
    return _build("doc", JUNE_6, _DOC)


def build_doc_vmaps() -> Kernel:
    """The doc system later on, with the shell of the doc's ``vmaps`` example."""
    return _build("doc-vmaps", JUNE_6, _DOC_VMAPS)


def build_doc_vmos() -> Kernel:
    """The boot of the doc's ``vmos`` example."""
    return _build("doc-vmos", JUNE_14, _DOC_VMOS)


WORLDS: list[World] = [
    World(
        "doc",
        "the system of docs/memory.md's ps example: devmgr, 6 driver hosts, 5 services",
        build_doc,
    ),
    World(
        "doc-vmaps",
        "the doc system later, with the shell 2470 of the doc's vmaps example",
        build_doc_vmaps,
    ),
    World(
        "doc-vmos",
        "a 14-process boot whose crashlogger 1118 is the doc's vmos example",
        build_doc_vmos,
    ),
]
