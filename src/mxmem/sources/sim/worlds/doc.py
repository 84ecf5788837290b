"""The worlds of the seed document, Magenta's ``docs/memory.md`` (mid-2017).

* ``doc`` is the system of the doc's ``ps`` example: the same twelve processes, koids and
  names, with private memory chosen so that ``ps`` prints the doc's table byte for byte.
* ``doc-vmaps`` is that system a little later, with the shell (process 2470) whose
  address space is the doc's ``vmaps`` example.
* ``doc-vmos`` is another boot, two weeks on, whose crashlogger (process 1118) is the
  doc's ``vmos`` example.

Each world boots a :class:`Kernel` and drives it with ordinary kernel operations, the way
the kernel, launchpad and the dynamic linker did, so every figure the tools print follows
from the kernel's own accounting. Where the doc shows a koid or an address, the world pins
it (``koid=`` / ``addr=``); everything else takes the next koid and a pseudo-random
address, seeded by the process koid, as Magenta's ASLR would have placed it.

How 2017 Magenta loaded a program, and what it left behind:

* The kernel keeps the vDSO (``vdso/full``, 28k, with two kernel-made variants as
  clones) and hands the boot filesystem to userspace as one VMO (``bootfs``), every page
  committed.
* Opening a file gives a copy-on-write clone of its range of ``bootfs``; the loader
  clones that again for each process. Text is mapped r-x straight from that clone and
  owns no pages (``0B:res``): its pages stay the bootfs VMO's (§5 of the reference).
* The writable segment is a clone of the file at the segment's offset; relocation writes
  copy its pages in, and the RELRO part is then protected r-- (one VMO, two mappings).
* Launchpad maps the vDSO (r-- 24k + r-x 4k, shared by every process), gives the
  initial thread a stack, and starts the process; threads, their stacks and the heap
  follow from the process itself.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from mxmem.model import ObjType, Perm, Rights, ThreadState
from mxmem.sources.sim.kernel import (
    KERNEL,
    PAGE_SIZE,
    USER_ASPACE_BASE,
    USER_ASPACE_SIZE,
    Kernel,
    SimJob,
    SimMapping,
    SimProcess,
    SimVmar,
    SimVmo,
    pages_for,
)
from mxmem.sources.sim.worlds import World

__all__ = ["WORLDS", "build_doc", "build_doc_vmaps", "build_doc_vmos"]

K = 1024
M = K * K

R = Perm.READ
RW = Perm.READ | Perm.WRITE
RX = Perm.READ | Perm.EXECUTE

# The doc's vmos shows the vDSO handle as r-xmdt: the kernel never hands out WRITE on it.
VDSO_RIGHTS = Rights.DEFAULT_VMO & ~(Rights.WRITE | Rights.SET_PROPERTY)
VDSO_SIZE = 28 * K
VDSO_RODATA = 24 * K  # mapped r--; the last 4k is the code, mapped r-x

STACK = 256 * K
GUARD = PAGE_SIZE  # one unmapped page below each stack, inside its own VMAR
SEGMENT_GAP = PAGE_SIZE  # the linker leaves a page between text and the writable segment
TCB = PAGE_SIZE
CHUNK = 2 * M  # the heap grows by 2 MiB chunks
BOOTFS_OTHER_FILES = 6 * M

# The doc's kstats example: "total 2046.9M ... wired 72.6M".
MEMORY_BYTES = (2046 * K + 900) * K
WIRED_BYTES = (72 * K + 600) * K
ROOT_JOB = 1028  # j:1028 in the doc's ps
VDSO_KOID = 1031  # 1031:vmo in the doc's vmaps and vmos


# --------------------------------------------------------------------------- programs


@dataclass(frozen=True, slots=True, kw_only=True)
class Elf:
    """A program or library in bootfs, as its segments lay it out.

    The file holds text at offset 0 and the writable segment (RELRO, then data) right
    after it; ``data`` includes the ``.bss`` that fits in the segment's pages.
    """

    name: str  # the VMO name the loader gives it: the path for programs, the soname else
    text: int  # the r-x segment
    relro: int  # read-only after relocation (protected r--); 0 for none
    data: int  # the rw- part
    dirty: int | None = None  # bytes of the writable segment written; None: all of it
    bss: int = 0  # a separate zero-fill VMO, fully written (the June 14 loader)
    file_size: int = 0  # 0: exactly text + relro + data
    # Pages of the file the June 14 loader had copied into each process's clone: the doc's
    # vmos shows them as the clone's own alloc (4k for libbacktrace.so, 12k for ld.so.1)
    # without saying why; we put them at the end of the file, past the loaded segments.
    tail_pages: int = 0

    @property
    def size(self) -> int:
        return self.file_size or self.text + self.relro + self.data

    @property
    def writable(self) -> int:
        return self.relro + self.data

    @property
    def span(self) -> int:
        """The VMAR the loader reserves: text, a gap page, the writable segment, .bss."""
        return self.text + SEGMENT_GAP + self.writable + self.bss


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Era:
    """What changed in userspace between the doc's examples."""

    bootfs: Mapping[str, Elf]
    # June 14: writable segments are named "data:<module>" and .bss "bss:<module>";
    # before, the data clone kept the module's name (the doc's vmaps shows 'libmxio.so').
    segment_prefixes: bool
    # June 14: launchpad gives the initial thread only a page for the bootstrap message
    # ("stack: msg of 0x5a") and libc makes each thread one VMO (TCB, stack, unsafe
    # stack) named "<thread>:<pthread address>"; before, launchpad made a 256k
    # 'initial-stack' and each piece of a thread was its own unnamed VMO.
    thread_vmos: bool
    heap_name: str  # 'mmap-anonymous' (musl's mmap) / 'jemalloc-heap'
    heap_base: int  # bytes of allocator metadata mapped beside the first chunk


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


# --------------------------------------------------------------------------- processes


class ThreadSpec(NamedTuple):
    name: str
    state: ThreadState = ThreadState.BLOCKED
    stack: int = 4 * K  # stack bytes the thread has touched


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcSpec:
    """One process: what it runs and how much memory it has touched.

    With ``private`` set (the doc's PRIVATE column), the heap's touched pages make up
    whatever the program, its libraries, stacks and buffers leave; otherwise the heap has
    touched ``heap`` bytes. ``koids`` and ``addrs`` pin objects to the doc's values, keyed
    as in :class:`_Loader`.
    """

    koid: int
    name: str
    program: str
    libs: tuple[str, ...] = ()
    initial_state: ThreadState = ThreadState.BLOCKED
    threads: tuple[ThreadSpec, ...] = ()
    private: int | None = None
    heap: int = 0
    initial_stack: int = 4 * K
    # Device drivers' DMA buffers and drawing surfaces: fully committed, mapped rw-, and
    # kept by handle (name, bytes).
    buffers: tuple[tuple[str, int], ...] = ()
    # Device memory (registers, a framebuffer BAR): physical VMOs, no RAM (name, paddr, size).
    devices: tuple[tuple[str, int, int], ...] = ()
    koids: Mapping[str, int] = field(default_factory=dict)
    addrs: Mapping[str, int] = field(default_factory=dict)


class _System:
    """A booted kernel with the vDSO and bootfs, and the era of its userspace."""

    def __init__(self, era: Era) -> None:
        self.era = era
        self.kernel = k = Kernel(MEMORY_BYTES, wired_bytes=WIRED_BYTES, first_koid=ROOT_JOB)
        self.root_job = k.root_job
        # The vDSO: code the kernel wrote into a VMO at boot. The two variants
        # (vdso/test1, vdso/test2) are clones with some syscalls patched out, which makes
        # the doc's "2 children" of vdso/full.
        self.vdso = k.vmo_create(VDSO_SIZE, "vdso/full", owner=KERNEL, koid=VDSO_KOID)
        k.vmo_write(self.vdso, 0, VDSO_SIZE)
        for variant in ("vdso/test1", "vdso/test2"):
            clone = k.vmo_clone(self.vdso, 0, VDSO_SIZE, variant, owner=KERNEL)
            k.vmo_write(clone, VDSO_RODATA, PAGE_SIZE)
        # Bootfs: a header page, then every file at a page-aligned offset, then the files
        # no process here has loaded (other tools and drivers, fonts, firmware).
        self.files: dict[str, tuple[int, int]] = {}
        offset = PAGE_SIZE
        for elf in era.bootfs.values():
            self.files[elf.name] = (offset, elf.size)
            offset += pages_for(elf.size) * PAGE_SIZE
        offset += BOOTFS_OTHER_FILES
        self.bootfs = k.vmo_create(offset, "bootfs", owner=KERNEL)
        k.vmo_write(self.bootfs, 0, offset)

    def job(self, parent: SimJob, name: str, koid: int) -> SimJob:
        return self.kernel.job_create(parent, name, koid=koid)

    def spawn(self, job: SimJob, spec: ProcSpec) -> SimProcess:
        return _Loader(self, job, spec).run()


def _fits(vmar: SimVmar, addr: int, size: int) -> bool:
    """Whether ``[addr, addr+size)`` is free in ``vmar`` (children are sorted by base)."""
    i = bisect.bisect_right(vmar.starts, addr)
    if i > 0 and vmar.children[i - 1].end > addr:
        return False
    return i == len(vmar.children) or vmar.children[i].base >= addr + size


def _mappings(vmar: SimVmar) -> Iterator[SimMapping]:
    for child in vmar.children:
        if isinstance(child, SimVmar):
            yield from _mappings(child)
        else:
            yield child


class _Loader:
    """Launchpad, then the process's own dynamic linker and libc, for one process.

    Pin keys (``ProcSpec.koids`` / ``ProcSpec.addrs``): a module's name for its
    per-process VMO and VMAR, ``file:<module>`` for the opened file's VMO,
    ``vmar:<module>`` and ``data:<module>`` for its VMAR and writable segment;
    ``vdso``, ``initial-stack``, ``heap``, ``heap-base``; ``thread:<name>`` for a
    thread, and ``tcb:<name>``, ``stack:<name>``, ``unsafe:<name>`` for its pieces
    (``thread-vmo:<name>`` for the June 14 single VMO).
    """

    def __init__(self, system: _System, job: SimJob, spec: ProcSpec) -> None:
        self.system = system
        self.era = system.era
        self.k = system.kernel
        self.job = job
        self.spec = spec
        self.rng = random.Random(spec.koid)
        self.heap: list[SimVmo] = []
        self.process = self.k.process_create(job, spec.name, koid=spec.koid)
        aspace = self.process.aspace
        assert aspace is not None and aspace.root is not None
        self.root = aspace.root

    # ----------------------------------------------------------------- helpers

    def koid(self, key: str) -> int | None:
        return self.spec.koids.get(key)

    def addr(self, key: str, size: int) -> int:
        """The pinned address for ``key``, or a free page-aligned one (ASLR)."""
        pinned = self.spec.addrs.get(key)
        if pinned is not None:
            return pinned
        pages = (USER_ASPACE_SIZE - size) // PAGE_SIZE
        while True:
            addr = USER_ASPACE_BASE + self.rng.randrange(pages) * PAGE_SIZE
            if _fits(self.root, addr, size):
                return addr

    def drop(self, vmo: SimVmo) -> None:
        """Close the process's handle: the mapping (or a clone) keeps the VMO alive."""
        self.k.handle_close(self.process, self.k.handle_of(self.process, vmo))

    def region(self, key: str, size: int) -> SimVmar:
        return self.k.vmar_allocate(
            self.root, size, addr=self.addr(key, size), koid=self.koid(f"vmar:{key}")
        )

    def stack(self, key: str, vmo: SimVmo, offset: int, touched: int) -> None:
        """A stack in its own region, above a guard page; stacks grow down, so the
        touched pages are the top ones."""
        vmar = self.k.vmar_allocate(self.root, GUARD + STACK, addr=self.addr(key, GUARD + STACK))
        self.k.vmar_map(vmar, vmo, vmo_offset=offset, size=STACK, perms=RW, addr=vmar.base + GUARD)
        if touched:
            self.k.vmo_write(vmo, offset + STACK - touched, touched)

    # ----------------------------------------------------------------- loading

    def open(self, name: str) -> SimVmo:
        """The process's own clone of a bootfs file, as the loader service sent it."""
        offset, size = self.system.files[name]
        elf = self.era.bootfs[name]
        file = self.k.vmo_clone(
            self.system.bootfs,
            offset,
            size,
            name,
            owner=self.process,
            koid=self.koid(f"file:{name}"),
        )
        module = self.k.vmo_clone(file, 0, size, name, owner=self.process, koid=self.koid(name))
        self.drop(file)  # the clone keeps its parent alive
        if elf.tail_pages:
            start = (pages_for(size) - elf.tail_pages) * PAGE_SIZE
            self.k.vmo_write(module, start, size - start)
        return module

    def load(self, module: SimVmo) -> None:
        """Map a module: text from the file clone, the writable segment from a clone of
        it (relocated, then its RELRO protected read-only), and .bss."""
        elf = self.era.bootfs[module.name]
        k = self.k
        vmar = self.region(module.name, elf.span)
        k.vmar_map(vmar, module, size=elf.text, perms=RX, addr=vmar.base)
        data_name = f"data:{module.name}" if self.era.segment_prefixes else module.name
        data = k.vmo_clone(
            module,
            elf.text,
            elf.writable,
            data_name,
            owner=self.process,
            koid=self.koid(f"data:{module.name}"),
        )
        k.vmo_write(data, 0, elf.writable if elf.dirty is None else elf.dirty)
        base = vmar.base + elf.text + SEGMENT_GAP
        k.vmar_map(vmar, data, size=elf.writable, perms=RW, addr=base)
        if elf.relro:
            k.vmar_protect(vmar, base, elf.relro, R)
        self.drop(data)
        if elf.bss:
            bss = k.vmo_create(elf.bss, f"bss:{module.name}", owner=self.process)
            k.vmo_write(bss, 0, elf.bss)
            k.vmar_map(vmar, bss, perms=RW, addr=base + elf.writable)
            self.drop(bss)
        self.drop(module)

    # ----------------------------------------------------------------- threads and heap

    def thread_memory(self, name: str, touched: int) -> None:
        """A thread's TCB and its two stacks (SafeStack: a safe and an unsafe one)."""
        k = self.k
        if self.era.thread_vmos:
            vmo = k.vmo_create(
                TCB + 2 * STACK, "", owner=self.process, koid=self.koid(f"thread-vmo:{name}")
            )
            tcb = self.addr(f"tcb:{name}", TCB)
            # libc names the VMO after the thread and its pthread structure in the TCB.
            k.vmo_set_name(vmo, f"{name}:{tcb + 0xB38:#x}")
            k.vmar_map(self.root, vmo, size=TCB, perms=RW, addr=tcb)
            k.vmo_write(vmo, 0, TCB)
            self.stack(f"stack:{name}", vmo, TCB, touched)
            self.stack(f"unsafe:{name}", vmo, TCB + STACK, 0)
            self.drop(vmo)
            return
        safe = k.vmo_create(STACK, "", owner=self.process, koid=self.koid(f"stack:{name}"))
        self.stack(f"stack:{name}", safe, 0, touched)
        self.drop(safe)
        unsafe = k.vmo_create(STACK, "", owner=self.process)
        self.stack(f"unsafe:{name}", unsafe, 0, PAGE_SIZE)
        self.drop(unsafe)

    def main_thread_memory(self) -> None:
        """libc's setup of the initial thread (its stack came from launchpad before June 14)."""
        if self.era.thread_vmos:
            self.thread_memory("initial-thread", self.spec.initial_stack)
            return
        k = self.k
        tcb = k.vmo_create(TCB, "", owner=self.process, koid=self.koid("tcb:initial-thread"))
        k.vmar_map(self.root, tcb, perms=RW, addr=self.addr("tcb:initial-thread", TCB))
        k.vmo_write(tcb, 0, TCB)
        self.drop(tcb)
        unsafe = k.vmo_create(STACK, "", owner=self.process)
        self.stack("unsafe:initial-thread", unsafe, 0, PAGE_SIZE)
        self.drop(unsafe)

    def ensure_heap(self) -> None:
        """The allocator's first chunk (and its metadata), on the first malloc."""
        if self.heap:
            return
        k = self.k
        chunk = k.vmo_create(CHUNK, self.era.heap_name, owner=self.process, koid=self.koid("heap"))
        k.vmar_map(self.root, chunk, perms=RW, addr=self.addr("heap", CHUNK))
        self.drop(chunk)
        self.heap.append(chunk)
        if self.era.heap_base:
            size = self.era.heap_base
            base = k.vmo_create(size, self.era.heap_name, owner=self.process)
            k.vmar_map(self.root, base, perms=RW, addr=self.addr("heap-base", size))
            k.vmo_write(base, 0, size)
            self.drop(base)

    def grow_heap(self, nbytes: int) -> None:
        """Touch ``nbytes`` of heap, mapping more chunks as the first fills."""
        self.ensure_heap()
        while nbytes > 0:
            chunk = self.heap[-1]
            used = chunk.committed_pages * PAGE_SIZE
            if used == CHUNK:
                chunk = self.k.vmo_create(CHUNK, self.era.heap_name, owner=self.process)
                self.k.vmar_map(self.root, chunk, perms=RW, addr=self.addr("heap-chunk", CHUNK))
                self.drop(chunk)
                self.heap.append(chunk)
                used = 0
            step = min(nbytes, CHUNK - used)
            self.k.vmo_write(chunk, used, step)
            nbytes -= step

    def private_bytes(self) -> int:
        """What the kernel will count as this process's PRIVATE: everything it maps but
        the vDSO is its alone."""
        return sum(
            m.committed_pages * PAGE_SIZE
            for m in _mappings(self.root)
            if m.vmo is not self.system.vdso
        )

    # ----------------------------------------------------------------- the launch

    def run(self) -> SimProcess:
        k, p, spec, era = self.k, self.process, self.spec, self.era
        vdso = self.system.vdso
        # Launchpad, in the parent: the vDSO first, then the program and its interpreter.
        vmar = self.region("vdso", VDSO_SIZE)
        k.vmar_map(vmar, vdso, size=VDSO_RODATA, perms=R, addr=vmar.base)
        k.vmar_map(
            vmar,
            vdso,
            vmo_offset=VDSO_RODATA,
            size=VDSO_SIZE - VDSO_RODATA,
            perms=RX,
            addr=vmar.base + VDSO_RODATA,
        )
        # The bootstrap channel and the loader-service channel.
        k.object_create(p, ObjType.CHANNEL)
        k.object_create(p, ObjType.CHANNEL)
        program = self.open(spec.program)
        self.load(self.open("ld.so.1"))
        if era.thread_vmos:
            # A bootstrap-message header and handle table of 78 bytes, argv[0] and its NUL.
            size = 0x4E + len(spec.name) + 1
            stack = k.vmo_create(
                PAGE_SIZE, f"stack: msg of {size:#x}", owner=p, koid=self.koid("initial-stack")
            )
            k.vmar_map(self.root, stack, perms=RW, addr=self.addr("initial-stack", PAGE_SIZE))
            k.vmo_write(stack, 0, PAGE_SIZE)
        else:
            stack = k.vmo_create(STACK, "initial-stack", owner=p, koid=self.koid("initial-stack"))
            k.vmar_map(self.root, stack, perms=RW, addr=self.addr("initial-stack", STACK))
            k.vmo_write(stack, STACK - spec.initial_stack, spec.initial_stack)
            self.drop(stack)
        thread = k.thread_create(p, "initial-thread", koid=self.koid("thread:initial-thread"))
        k.handle_grant(p, p, Rights.DUPLICATE | Rights.TRANSFER | Rights.READ | Rights.WRITE)
        k.handle_grant(p, self.root, Rights.DUPLICATE | Rights.READ | Rights.WRITE | Rights.MAP)
        k.handle_grant(p, self.job, Rights.DUPLICATE | Rights.TRANSFER | Rights.READ)
        k.handle_grant(p, vdso, VDSO_RIGHTS)
        k.process_start(p, thread)

        # The dynamic linker, in the process: the program, libc's thread setup, libraries.
        self.load(program)
        self.main_thread_memory()
        for lib in spec.libs:
            self.load(self.open(lib))
        for name, size in spec.buffers:
            buf = k.vmo_create(size, name, owner=p)
            k.vmo_write(buf, 0, size)
            k.vmar_map(self.root, buf, perms=RW, addr=self.addr(f"buffer:{name}", size))
        for name, paddr, size in spec.devices:
            dev = k.vmo_create_physical(paddr, size, name, owner=p)
            k.vmar_map(self.root, dev, perms=RW, addr=self.addr(f"device:{name}", size))
        if era.thread_vmos:
            self.ensure_heap()  # jemalloc sets up its heap during libc's startup
        for t in spec.threads:
            self.thread_memory(t.name, t.stack)
            self.ensure_heap()  # pthread_create mallocs the thread's bookkeeping
            extra = k.thread_create(p, t.name, koid=self.koid(f"thread:{t.name}"))
            k.thread_start(extra)
            if t.state is not ThreadState.RUNNING:
                k.thread_set_state(extra, t.state)
        self.ensure_heap()
        if spec.private is not None:
            rest = spec.private - self.private_bytes()
            if rest < 0 or rest % PAGE_SIZE:
                raise ValueError(f"{spec.name}: PRIVATE {spec.private} leaves {rest} for the heap")
            self.grow_heap(rest)
        else:
            self.grow_heap(spec.heap)
        if spec.initial_state is not ThreadState.RUNNING:
            k.thread_set_state(thread, spec.initial_state)
        return p


# --------------------------------------------------------------------------- doc (ps)

_T = ThreadSpec
BLOCKED = ThreadState.BLOCKED
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


def _doc_system(*, with_ps: bool) -> tuple[_System, SimJob]:
    """The doc's ps system, in creation (= koid) order; returns it and magenta-services."""
    system = _System(JUNE_6)
    root = system.root_job
    # Userboot (gone by now) handed bootfs to devmgr.
    devmgr = system.spawn(root, _DOC_DEVMGR)
    k = system.kernel
    k.handle_grant(devmgr, system.bootfs, Rights.READ | Rights.MAP | Rights.DUPLICATE)
    k.kernel_release(system.bootfs)
    drivers = system.job(root, "magenta-drivers", 1082)
    services = system.job(root, "magenta-services", 1103)
    # devmgr starts crashlogger, then the drivers and services as devices appear.
    system.spawn(services, _DOC_CRASHLOGGER)
    by_koid = {s.koid: (drivers, s) for s in _DOC_DRIVERS}
    by_koid.update({s.koid: (services, s) for s in _DOC_SERVICES})
    for koid in sorted(by_koid):
        job, spec = by_koid[koid]
        system.spawn(job, spec)
    if with_ps:
        system.spawn(services, _DOC_PS)
    return system, services


def build_doc() -> Kernel:
    """The system of the doc's ``ps`` example."""
    return _doc_system(with_ps=True)[0].kernel


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


def build_doc_vmaps() -> Kernel:
    """The doc system later on: ps has exited; sh:console started a shell (2470), and
    from it the user runs ``vmaps 2470``."""
    system, services = _doc_system(with_ps=False)
    k = system.kernel
    sh = system.spawn(services, _VMAPS_SH)
    # A large allocation (the line editor's history) gets its own mapping past the
    # program, from the heap's big-allocation path.
    big = k.vmo_create(64 * K, "mmap-anonymous", owner=sh)
    aspace = sh.aspace
    assert aspace is not None and aspace.root is not None
    k.vmar_map(aspace.root, big, perms=RW, addr=0x00006C8E33A45000)
    k.vmo_write(big, 0, 8 * K)
    k.handle_close(sh, k.handle_of(sh, big))
    system.spawn(services, _VMAPS_TOOL)
    return k


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


def build_doc_vmos() -> Kernel:
    """The boot of the doc's ``vmos`` example: fourteen processes, each mapping the vDSO
    twice (vdso/full: 28 mappings, shared by 14), crashlogger among them as 1118."""
    system = _System(JUNE_14)
    root = system.root_job
    devmgr = system.spawn(root, _VMOS_DEVMGR)
    k = system.kernel
    k.handle_grant(devmgr, system.bootfs, Rights.READ | Rights.MAP | Rights.DUPLICATE)
    k.kernel_release(system.bootfs)
    drivers = system.job(root, "magenta-drivers", 1082)
    services = system.job(root, "magenta-services", 1103)
    system.spawn(services, _VMOS_CRASHLOGGER)
    by_koid = {s.koid: (drivers, s) for s in _VMOS_DRIVERS}
    by_koid.update({s.koid: (services, s) for s in _VMOS_SERVICES})
    for koid in sorted(by_koid):
        job, spec = by_koid[koid]
        system.spawn(job, spec)
    return k


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
