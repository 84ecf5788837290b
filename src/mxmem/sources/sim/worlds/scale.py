"""The scale world: ``scale:N[:SEED]``, a Magenta system with N processes.

The world is built only with kernel operations, like every world: :class:`Generator` is
its program, a stream of the ops of ``program.py``, the same for the same ``(N, SEED)``.
It looks like the 2017 system of the seed document, grown:

* the root job holds ``bin/devmgr`` (which also plays the loader service, holding the
  shared library VMOs) and three system jobs — ``magenta-drivers``, ``magenta-services``
  and ``fuchsia`` — under which the other processes sit in nested jobs of 5-50 processes;
* a kernel-held ``bootfs`` VMO holds every binary and library. Most libraries are loaded
  as in 2017: a per-process copy-on-write clone of the file's bootfs range, mapped ``r-x``
  (so its text is resident in bootfs and shows ``0B:res``), and a clone of that for
  ``.rodata``/``.data`` (``data:NAME``) whose written pages are the process's own. Some
  libraries (always ``ld.so.1``, the libc) have one *shared* text VMO with committed pages
  that every process linking them maps, so SHARED is not just the vDSO;
* the vDSO is mapped by every process (``r--`` then ``r-x``, like the doc's ``vmaps``);
* each process has an initial stack, a partly written ``jemalloc-heap``, one stack region
  (a VMAR with a guard page and a mapping) per extra thread, and some have anonymous
  mappings, VMOs held only by a handle, a VMO mapped twice, device (physical) VMOs or a
  shared-memory VMO mapped by a few processes of their job. A few processes are dead.

Addresses are random (ASLR) and every top-level region gets its own random place, so the
page-table cost per process is realistic too. The kernel's memory is sized from a first,
counting pass of the same ops through ``sizing.Counter``, so the world always fits.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeVar

from mxmem.model import Perm, Rights, ThreadState
from mxmem.sources.sim.kernel import (
    KERNEL,
    PAGE_SIZE,
    USER_ASPACE_BASE,
    USER_ASPACE_SIZE,
    Kernel,
    pages_for,
)
from mxmem.sources.sim.worlds.program import Machine
from mxmem.sources.sim.worlds.sizing import Counter

__all__ = ["MAX_PROCESSES", "Generator", "build", "build_spec", "memory_for"]

# A typo like scale:100000000 would otherwise run for hours; 1M processes is ~10M mappings.
MAX_PROCESSES = 1_000_000

KB = 1024
MB = 1024 * KB
WIRED_BYTES = 72 * MB  # the doc's kstats shows 72.6M wired
VDSO_SIZE = 28 * KB  # 24k .rodata + 4k .text, as the doc's vmaps shows
STACK_SIZE = 256 * KB
R = int(Perm.READ)
RW = int(Perm.READ | Perm.WRITE)
RX = int(Perm.READ | Perm.EXECUTE)
# What the vDSO handle of a process carries in the doc's vmos: r-xmdt.
VDSO_RIGHTS = int(Rights.READ | Rights.EXECUTE | Rights.MAP | Rights.DUPLICATE | Rights.TRANSFER)
SHM_RIGHTS = int(Rights.READ | Rights.WRITE | Rights.MAP | Rights.TRANSFER)

_USER_END = USER_ASPACE_BASE + USER_ASPACE_SIZE
T = TypeVar("T")


class Elf(NamedTuple):
    """A binary or library file in bootfs. Segments are page multiples; the file on disk
    ends ``tail`` bytes before the last page (VMO sizes are file sizes, as in the doc)."""

    name: str
    bootfs_offset: int
    text: int
    rodata: int  # 0: no separate read-only segment
    data: int
    bss: int  # 0: no .bss VMO
    tail: int
    shared: bool  # one shared, committed text VMO instead of per-process bootfs clones

    @property
    def file_size(self) -> int:
        return self.text + self.rodata + self.data - self.tail

    @property
    def span(self) -> int:
        # text, a one-page hole (the doc's libmxio.so region is 88k + 4k + 4k + 8k), the
        # read-only and writable segments, then .bss.
        return self.text + PAGE_SIZE + self.rodata + self.data + self.bss


# --------------------------------------------------------------------------- the catalogue

# (name, text KiB, rodata KiB, data KiB, bss KiB)
_LIBRARIES: tuple[tuple[str, int, int, int, int], ...] = (
    ("ld.so.1", 868, 0, 16, 0),  # libc and the dynamic linker in one, as in Magenta
    ("libmxio.so", 88, 4, 8, 0),
    ("liblaunchpad.so", 72, 0, 8, 0),
    ("libc++.so.2", 612, 44, 8, 4),
    ("libc++abi.so.1", 96, 8, 4, 0),
    ("libunwind.so.1", 52, 0, 4, 0),
    ("libbacktrace.so", 28, 0, 4, 0),
    ("libddk.so", 40, 0, 4, 4),
    ("libdriver.so", 64, 0, 8, 0),
    ("libfs-management.so", 36, 0, 4, 0),
    ("libhid.so", 20, 0, 4, 0),
    ("libmxcpp.so", 24, 0, 4, 0),
    ("libmagenta.so", 16, 0, 4, 0),
    ("libtrace-engine.so", 120, 8, 8, 16),
    ("libfidl.so", 48, 0, 4, 0),
    ("libasync.so", 44, 0, 4, 0),
    ("libz.so", 84, 12, 4, 0),
    ("libcrypto.so", 1480, 180, 24, 8),
    ("libssl.so", 332, 24, 12, 0),
    ("libicuuc.so", 1372, 96, 16, 4),
    ("libskia.so", 3640, 412, 32, 12),
    ("libflutter.so", 4096, 520, 64, 48),
    ("libdart.so", 3968, 348, 40, 32),
    ("libmagma.so", 264, 16, 8, 0),
    ("libvulkan.so", 612, 40, 12, 0),
)

# Per family: (job name, process-name patterns with the binary they run, libraries they
# tend to link, weight of the family among processes). ``{i}`` is a running number.
_FAMILIES: tuple[tuple[str, tuple[tuple[str, str], ...], tuple[str, ...], int], ...] = (
    (
        "magenta-drivers",
        (
            ("/boot/bin/acpisvc", "/boot/bin/acpisvc"),
            ("devhost:root", "/boot/bin/devhost"),
            ("devhost:misc", "/boot/bin/devhost"),
            ("devhost:platform", "/boot/bin/devhost"),
            ("devhost:pci#{i}:8086:{d:04x}", "/boot/bin/devhost"),
            ("devhost:pci#{i}:1234:{d:04x}", "/boot/bin/devhost"),
            ("devhost:usb#{i}", "/boot/bin/devhost"),
        ),
        ("libddk.so", "libdriver.so", "libmxio.so", "libhid.so", "libmagma.so"),
        3,
    ),
    (
        "magenta-services",
        (
            ("crashlogger", "/boot/bin/crashlogger"),
            ("netsvc", "/boot/bin/netsvc"),
            ("sh:console", "/boot/bin/sh"),
            ("sh:vc", "/boot/bin/sh"),
            ("/boot/bin/ps", "/boot/bin/ps"),
            ("virtual-console", "/boot/bin/virtual-console"),
            ("minfs:{i}", "/boot/bin/minfs"),
            ("blobstore:{i}", "/boot/bin/blobstore"),
            ("netstack", "/system/bin/netstack"),
        ),
        ("libmxio.so", "libfs-management.so", "liblaunchpad.so", "libbacktrace.so", "libz.so"),
        2,
    ),
    (
        "fuchsia",
        (
            ("application_manager", "/system/bin/application_manager"),
            ("device_runner", "/system/bin/device_runner"),
            ("user_runner", "/system/bin/user_runner"),
            ("story_manager:{i}", "/system/bin/story_manager"),
            ("ledger", "/system/bin/ledger"),
            ("mozart:{i}", "/system/bin/mozart"),
            ("flutter:story{i}", "/system/bin/flutter_runner"),
            ("dart:agent{i}", "/system/bin/dart_runner"),
            ("web_view:{i}", "/system/bin/web_runner"),
            ("media_service", "/system/bin/media_service"),
            ("netconnector", "/system/bin/netconnector"),
            ("context_engine", "/system/bin/context_engine"),
        ),
        (
            "libc++.so.2",
            "libc++abi.so.1",
            "libunwind.so.1",
            "libfidl.so",
            "libasync.so",
            "libtrace-engine.so",
            "libcrypto.so",
            "libssl.so",
            "libicuuc.so",
            "libskia.so",
            "libflutter.so",
            "libdart.so",
            "libvulkan.so",
            "libmxcpp.so",
            "libmagenta.so",
        ),
        5,
    ),
)
_DEVMGR = ("bin/devmgr", "/boot/bin/devmgr")
# A running process's initial thread has not exited (the process would have).
_MAIN_THREAD_STATES = (
    (ThreadState.BLOCKED,) * 80 + (ThreadState.RUNNING,) * 15 + (ThreadState.SUSPENDED,) * 5
)
# How many threads a process has beside the initial one (a uniform pick from this).
_EXTRA_THREADS = (0,) * 14 + (1, 1, 2, 4)
# Most threads wait; a few run, are suspended, sit in an exception or have exited. One
# entry per percent, so a uniform pick is a weighted draw.
_THREAD_STATES = (
    (ThreadState.BLOCKED,) * 70
    + (ThreadState.RUNNING,) * 15
    + (ThreadState.SUSPENDED,) * 8
    + (ThreadState.EXCEPTION,) * 2
    + (ThreadState.DEAD,) * 5
)


class Catalogue:
    """The files in bootfs and where they are; drawn once per world from its seed."""

    def __init__(self, rng: random.Random) -> None:
        self.files: dict[str, Elf] = {}
        offset = 0
        binaries = sorted(
            {b for _, progs, _, _ in _FAMILIES for _, b in progs} | {_DEVMGR[1]},
        )
        specs: list[tuple[str, int, int, int, int, bool]] = []
        for name, text, rodata, data, bss in _LIBRARIES:
            # ld.so.1 is always shared so every process has real SHARED bytes; the others
            # are shared or per-process clones by the draw.
            shared = name == "ld.so.1" or rng.random() < 0.4
            specs.append((name, text * KB, rodata * KB, data * KB, bss * KB, shared))
        for name in binaries:
            text = rng.choice((16, 24, 36, 48, 88, 128, 256, 512, 1024)) * KB
            rodata = rng.choice((0, 0, 0, 0, 8)) * KB
            data = rng.choice((4, 4, 8, 8, 16)) * KB
            bss = rng.choice((0, 0, 0, 0, 8)) * KB
            specs.append((name, text, rodata, data, bss, False))
        for name, text, rodata, data, bss, shared in specs:
            tail = rng.randrange(0, PAGE_SIZE, 8)
            elf = Elf(name, offset, text, rodata, data, bss, tail, shared)
            self.files[name] = elf
            offset += pages_for(elf.file_size) * PAGE_SIZE
        self.bootfs_size = offset
        self.libc = self.files["ld.so.1"]


# --------------------------------------------------------------------------- the generator

Ref = object  # what an op made: a kernel object when building, a token when counting
Interpreter = Machine | Counter  # runs an op and returns what it made


class _Proc:
    """A process being built: its reference and the regions taken in its address space."""

    __slots__ = ("ref", "regions")

    def __init__(self, ref: Ref) -> None:
        self.ref = ref
        self.regions: list[tuple[int, int]] = []

    def place(self, rand: Callable[[], float], size: int) -> int:
        """A random free page-aligned address for a region of ``size`` (ASLR)."""
        slots = (_USER_END - size - USER_ASPACE_BASE) // PAGE_SIZE
        while True:
            base = USER_ASPACE_BASE + int(rand() * slots) * PAGE_SIZE
            end = base + size
            for b, e in self.regions:
                if base < e and b < end:
                    break  # overlaps: draw again
            else:
                self.regions.append((base, end))
                return base


class Generator:
    """The world's program: it runs its ops on an interpreter (a :class:`Machine` to build
    the world, a :class:`Counter` to size it); the same seed gives the same ops."""

    def __init__(self, run: Interpreter, n: int, seed: int) -> None:
        self.emit = run
        self.n = n
        self.rng = random.Random(seed)
        # random() is ~15 times cheaper than randint()/choice(); the hot paths use it.
        self.rand = self.rng.random
        self.catalogue = Catalogue(self.rng)
        self.counters: dict[str, int] = {}
        self.paddr = 0xC0000000  # device MMIO ranges handed to drivers

    def between(self, lo: int, hi: int) -> int:
        """A random integer in ``[lo, hi]``."""
        return lo + int(self.rand() * (hi - lo + 1))

    def pick(self, items: Sequence[T]) -> T:
        return items[int(self.rand() * len(items))]

    def _number(self, key: str) -> int:
        self.counters[key] = self.counters.get(key, 0) + 1
        return self.counters[key]

    def thread(self, process: Ref, name: str, state: ThreadState) -> None:
        """A thread, started and then moved to ``state``."""
        s = self.emit
        thread = s("thread", process, name)
        s("start", None, thread)
        if state is not ThreadState.RUNNING:
            s("thread_state", thread, state)

    def share(self, src: Ref, vmo: Ref, dst: Ref, rights: int) -> None:
        """Duplicate ``src``'s handle to ``vmo`` with ``rights`` and move it to ``dst``."""
        dup = self.emit("duplicate", (src, vmo), rights)
        self.emit("transfer", dup, dst)

    def run(self) -> None:
        s, rng, rand, cat = self.emit, self.rng, self.rand, self.catalogue
        root = s.root_job
        # Boot: the kernel holds bootfs (fully resident: it is the ramdisk) and the vDSO.
        self.bootfs = s("vmo", cat.bootfs_size, "bootfs", KERNEL)
        s("write", self.bootfs, 0, cat.bootfs_size)
        self.vdso = s("vmo", VDSO_SIZE, "vdso/full", KERNEL)
        s("write", self.vdso, 0, VDSO_SIZE)
        devmgr = s("process", root, _DEVMGR[0])
        # devmgr is the loader service: it holds one text VMO per shared library, read
        # from bootfs into fresh pages, of which the touched part of .text is resident.
        self.shared: dict[str, Ref] = {}
        for elf in cat.files.values():
            if not elf.shared:
                continue
            vmo = s("vmo", elf.file_size, elf.name, devmgr)
            resident = max(PAGE_SIZE, elf.text * rng.randrange(40, 101) // 100 // PAGE_SIZE)
            s("write", vmo, 0, min(resident * PAGE_SIZE, elf.text))
            s("write", vmo, elf.text, elf.rodata + elf.data - elf.tail)
            self.shared[elf.name] = vmo
        self.populate(_Proc(devmgr), cat.files[_DEVMGR[1]], (), dead=False)

        jobs = [s("job", root, name) for name, _, _, _ in _FAMILIES]
        nested: list[list[tuple[Ref, int]]] = [[] for _ in _FAMILIES]
        direct = [False] * len(_FAMILIES)
        weights = [w for _, _, _, w in _FAMILIES]
        remaining = self.n - 1
        # About one process in a thousand is dead (killed, not yet destroyed); devmgr
        # (process 0) never is.
        dead_count = min(remaining, self.n // 1000 + (1 if self.n >= 20 else 0))
        dead_at = set(rng.sample(range(1, self.n), dead_count))
        index = 1
        while remaining > 0:
            size = min(remaining, rng.randint(5, 50))
            fam = rng.choices(range(len(_FAMILIES)), weights)[0]
            if not direct[fam]:
                # The first group of a family sits in the system job itself, as the
                # doc's drivers do.
                direct[fam] = True
                job = jobs[fam]
            else:
                # Half the jobs nest under an earlier job of the family, at most 5 deep.
                parent, pdepth = jobs[fam], 1
                if nested[fam] and rand() < 0.5:
                    parent, pdepth = self.pick(nested[fam])
                name = f"{_FAMILIES[fam][0].split('-')[-1]}-{self._number('job:' + str(fam))}"
                job = s("job", parent, name)
                if pdepth < 4:
                    nested[fam].append((job, pdepth + 1))
            self.group(job, fam, [i in dead_at for i in range(index, index + size)])
            index += size
            remaining -= size

    def group(self, job: Ref, fam: int, dead: list[bool]) -> None:
        s, rand = self.emit, self.rand
        _, programs, libs, _ = _FAMILIES[fam]
        procs: list[_Proc] = []
        for is_dead in dead:
            pattern, binary = self.pick(programs)
            name = pattern.format(i=self._number(pattern), d=self.between(0, 0xFFFF))
            # Most processes link only libc; the others one or two more libraries.
            count = self.pick((0, 0, 0, 0, 0, 0, 0, 1, 2, 2))
            extra = tuple(self.rng.sample(libs, count)) if count else ()
            proc = _Proc(s("process", job, name))
            self.populate(proc, self.catalogue.files[binary], extra, dead=is_dead)
            procs.append(proc)
        live = [p for p, d in zip(procs, dead, strict=True) if not d]
        # Shared memory: a buffer one process creates and hands to a few of its peers.
        if len(live) >= 2 and rand() < 0.35:
            owner, *peers = self.rng.sample(live, min(len(live), self.between(2, 5)))
            size = self.pick((64, 256, 1024, 4096)) * KB
            vmo = s("vmo", size, f"shm:{self._number('shm')}", owner.ref)
            s("write", vmo, 0, size * self.between(1, 4) // 4)
            s("map", owner.ref, vmo, 0, size, RW, owner.place(rand, size))
            for peer in peers:
                self.share(owner.ref, vmo, peer.ref, SHM_RIGHTS)
                perms = RW if rand() < 0.5 else R
                s("map", peer.ref, vmo, 0, size, perms, peer.place(rand, size))
        for proc, is_dead in zip(procs, dead, strict=True):
            if is_dead:
                s("kill", proc.ref)

    def populate(self, proc: _Proc, binary: Elf, extra: tuple[str, ...], *, dead: bool) -> None:
        """Threads, the vDSO, the binary and its libraries, stacks, heap and extras."""
        s, rand, p = self.emit, self.rand, proc.ref
        self.thread(p, "initial-thread", self.pick(_MAIN_THREAD_STATES))
        s("start", p)
        # The vDSO: .rodata then .text, one region; the process keeps its handle.
        addr = proc.place(rand, VDSO_SIZE)
        vmar = s("vmar", p, VDSO_SIZE, addr)
        s("map", vmar, self.vdso, 0, VDSO_SIZE - PAGE_SIZE, R, addr)
        text = VDSO_SIZE - PAGE_SIZE
        s("map", vmar, self.vdso, text, PAGE_SIZE, RX, addr + text)
        s("grant", p, self.vdso, VDSO_RIGHTS)
        for elf in (binary, self.catalogue.libc, *(self.catalogue.files[n] for n in extra)):
            self.load(proc, elf)
        # The initial thread's stack is mapped straight into the root VMAR.
        stack = s("vmo", STACK_SIZE, "initial-stack", p)
        touched = self.between(1, 4) * PAGE_SIZE
        s("write", stack, STACK_SIZE - touched, touched)
        s("map", p, stack, 0, STACK_SIZE, RW, proc.place(rand, STACK_SIZE))
        s("close", (p, stack))
        # The heap: mostly 2M, sometimes much more; written in a few runs of pages.
        heap_size = 2 * MB << self.pick(
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 4, 5, 7)
        )
        heap = s("vmo", heap_size, "jemalloc-heap", p)
        pages = heap_size // PAGE_SIZE
        at = 0
        for _ in range(self.between(1, 4)):
            if at >= pages:
                break
            run = self.between(1, max(1, (pages - at) // 16))
            s("write", heap, at * PAGE_SIZE, run * PAGE_SIZE)
            at += run + self.between(1, 64)
        s("map", p, heap, 0, heap_size, RW, proc.place(rand, heap_size))
        s("close", (p, heap))
        # Other threads, each with a stack region: a guard page, then the mapping.
        for _ in range(self.pick(_EXTRA_THREADS)):
            self.thread(p, f"thread-{self._number('thread')}", self.pick(_THREAD_STATES))
            addr = proc.place(rand, STACK_SIZE + PAGE_SIZE)
            region = s("vmar", p, STACK_SIZE + PAGE_SIZE, addr)
            tstack = s("vmo", STACK_SIZE, "", p)
            touched = self.between(1, 8) * PAGE_SIZE
            s("write", tstack, STACK_SIZE - touched, touched)
            s("map", region, tstack, 0, STACK_SIZE, RW, addr + PAGE_SIZE)
            s("close", (p, tstack))
        self.extras(proc)
        if not dead and rand() < 0.3:
            s("channel", p, p)

    def extras(self, proc: _Proc) -> None:
        s, rand, p = self.emit, self.rand, proc.ref
        roll = rand()
        if roll < 0.15:
            # An anonymous mapping (mmap), partly touched.
            size = self.pick((64, 128, 512, 1024, 8192)) * KB
            anon = s("vmo", size, "mmap-anonymous", p)
            s("write", anon, 0, PAGE_SIZE * self.between(1, size // PAGE_SIZE // 2))
            s("map", p, anon, 0, size, RW, proc.place(rand, size))
            s("close", (p, anon))
        elif roll < 0.22:
            # A VMO held only by a handle, never mapped: in vmos, not in ps or vmaps.
            size = self.pick((4, 16, 64, 256)) * KB
            held = s("vmo", size, self.pick(("vmo:bootdata", "log-buffer", "stack: msg")), p)
            s("write", held, 0, PAGE_SIZE * self.between(1, size // PAGE_SIZE))
        elif roll < 0.26:
            # One VMO mapped twice in the same process (read-write and read-only views):
            # the 2017 rule counts its pages twice.
            size = self.pick((16, 64, 256)) * KB
            ring = s("vmo", size, f"self-dump-thread:{self._number('ring'):#x}", p)
            s("write", ring, 0, size // 2)
            s("map", p, ring, 0, size, RW, proc.place(rand, size))
            s("map", p, ring, 0, size, R, proc.place(rand, size))
            s("close", (p, ring))
        elif roll < 0.30:
            # Device registers (drivers): a physical VMO, which uses no RAM.
            size = self.pick((4, 16, 64, 1024)) * KB
            self.paddr += 16 * MB
            mmio = s("physical", self.paddr, size, "pci-bar", p)
            s("map", p, mmio, 0, size, RW, proc.place(rand, size))

    def load(self, proc: _Proc, elf: Elf) -> None:
        """Map an ELF file the way the 2017 loader did (see the module docstring)."""
        s, p = self.emit, proc.ref
        base = proc.place(self.rand, elf.span)
        region = s("vmar", p, elf.span, base)
        if elf.shared:
            text: Ref = self.shared[elf.name]
        else:
            text = s("clone", self.bootfs, elf.bootfs_offset, elf.file_size, elf.name, p)
        s("map", region, text, 0, elf.text, RX, base)
        data = s("clone", text, elf.text, elf.rodata + elf.data, f"data:{elf.name}", p)
        addr = base + elf.text + PAGE_SIZE
        if elf.rodata:
            # RELRO: relocations touched every read-only page before it was protected.
            s("write", data, 0, elf.rodata)
            s("map", region, data, 0, elf.rodata, R, addr)
            addr += elf.rodata
        s("write", data, elf.rodata, PAGE_SIZE * self.between(1, elf.data // PAGE_SIZE))
        s("map", region, data, elf.rodata, elf.data, RW, addr)
        s("close", (p, data))
        if not elf.shared:
            s("close", (p, text))
        if elf.bss:
            bss = s("vmo", elf.bss, f"bss:{elf.name}", p)
            s("write", bss, 0, PAGE_SIZE * self.between(1, elf.bss // PAGE_SIZE))
            s("map", region, bss, 0, elf.bss, RW, addr + elf.data)
            s("close", (p, bss))


# --------------------------------------------------------------------------- entry points


def memory_for(n: int, seed: int = 0) -> int:
    """The physical memory ``scale:n:seed`` is built with: what it needs, counted by a
    dry run, plus 12.5% and 64 MiB free, rounded up to a MiB."""
    counter = Counter()
    Generator(counter, n, seed).run()
    used = WIRED_BYTES + counter.total_pages() * PAGE_SIZE
    return -(-(used + used // 8 + 64 * MB) // MB) * MB


def build(n: int, seed: int = 0) -> Kernel:
    """A kernel with ``n`` processes (see the module docstring); deterministic."""
    if not 1 <= n <= MAX_PROCESSES:
        raise ValueError(f"the scale world needs 1 to {MAX_PROCESSES} processes, not {n}")
    kernel = Kernel(memory_for(n, seed), wired_bytes=WIRED_BYTES)
    # The world is millions of long-lived objects: the cyclic GC would rescan them again
    # and again while they are made (measured: 10k processes, 11.9 s with it, 7.3 s without).
    enabled = gc.isenabled()
    gc.disable()
    try:
        Generator(Machine(kernel), n, seed).run()
    finally:
        if enabled:
            gc.enable()
    return kernel


def build_spec(spec: str) -> Kernel:
    """Build from ``scale:N`` or ``scale:N:SEED``; a malformed spec raises ``KeyError``
    with a one-line message (the world registry's contract)."""
    kind, *args = spec.split(":")
    usage = f"bad scale world {spec!r}: expected scale:N or scale:N:SEED"
    if kind != "scale" or not 1 <= len(args) <= 2 or not all(a.isdigit() for a in args):
        raise KeyError(usage)
    n = int(args[0])
    if not 1 <= n <= MAX_PROCESSES:
        raise KeyError(f"{usage}, with 1 <= N <= {MAX_PROCESSES}")
    return build(n, int(args[1]) if len(args) == 2 else 0)
