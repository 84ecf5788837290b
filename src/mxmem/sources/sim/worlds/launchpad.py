"""The 2017 program loader, as a macro of the doc's worlds: ``spawn`` a process.

How 2017 Magenta loaded a program, and what it left behind:

* The kernel keeps the vDSO (``vdso/full``, 28k, with two kernel-made variants as
  clones) and hands the boot filesystem to userspace as one VMO (``bootfs``), every page
  committed (:func:`boot_ops`).
* Opening a file gives a copy-on-write clone of its range of ``bootfs``; the loader
  clones that again for each process. Text is mapped r-x straight from that clone and
  owns no pages (``0B:res``): its pages stay the bootfs VMO's (§5 of the reference).
* The writable segment is a clone of the file at the segment's offset; relocation writes
  copy its pages in, and the RELRO part is then protected r-- (one VMO, two mappings).
* Launchpad maps the vDSO (r-- 24k + r-x 4k, shared by every process), gives the
  initial thread a stack, and starts the process; threads, their stacks and the heap
  follow from the process itself.

A process is described by a :class:`ProcSpec` (data, in ``doc.py``); :class:`Launchpad`
turns one into the ops (``program.py``) that launchpad, the dynamic linker and libc made,
and runs them on the world's machine. Where the doc shows a koid or an address, the spec
pins it; everything else takes the next koid and a pseudo-random address, seeded by the
process koid, as Magenta's ASLR would have placed it.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from mxmem.model import ObjType, Perm, Rights, ThreadState
from mxmem.sources.sim.kernel import (
    PAGE_SIZE,
    USER_ASPACE_BASE,
    USER_ASPACE_SIZE,
    SimJob,
    SimMapping,
    SimProcess,
    SimVmar,
    SimVmo,
    pages_for,
)
from mxmem.sources.sim.worlds.opargs import BadOp, OpArgs
from mxmem.sources.sim.worlds.program import Machine

__all__ = ["Elf", "Era", "Launchpad", "ProcSpec", "ThreadSpec", "boot_ops"]

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


# --------------------------------------------------------------------------- what it loads


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


# --------------------------------------------------------------------------- boot


def _bootfs_layout(era: Era) -> tuple[dict[str, tuple[int, int]], int]:
    """Where each file lies in bootfs (offset, size), and bootfs's size: a header page,
    then every file at a page-aligned offset, then the files no process here has loaded
    (other tools and drivers, fonts, firmware)."""
    files: dict[str, tuple[int, int]] = {}
    offset = PAGE_SIZE
    for elf in era.bootfs.values():
        files[elf.name] = (offset, elf.size)
        offset += pages_for(elf.size) * PAGE_SIZE
    return files, offset + BOOTFS_OTHER_FILES


def boot_ops(era: Era, vdso_koid: int) -> list[dict[str, Any]]:
    """What the kernel makes at boot, as world-file ops: the vDSO (named ``vdso``) and its
    two variants, clones with some syscalls patched out (the doc's "2 children" of
    vdso/full), and ``bootfs``. Both are held by the kernel, every page committed."""
    ops: list[dict[str, Any]] = [
        {"op": "vmo", "as": "vdso", "owner": "kernel", "name": "vdso/full", "size": VDSO_SIZE,
         "koid": vdso_koid},
        {"op": "write", "vmo": "vdso"},
    ]
    for variant in ("vdso/test1", "vdso/test2"):
        ops += [
            {"op": "clone", "as": variant, "vmo": "vdso", "size": VDSO_SIZE, "name": variant,
             "owner": "kernel"},
            {"op": "write", "vmo": variant, "offset": VDSO_RODATA, "size": PAGE_SIZE},
        ]
    size = _bootfs_layout(era)[1]
    ops += [
        {"op": "vmo", "as": "bootfs", "owner": "kernel", "name": "bootfs", "size": size},
        {"op": "write", "vmo": "bootfs"},
    ]
    return ops


class Launchpad:
    """The ``spawn`` macro of one era's worlds: ``job`` (a name), ``spec`` (a
    :class:`ProcSpec`) and ``as``; the vDSO and bootfs are the ones :func:`boot_ops`
    named."""

    KEYS = ("job", "spec", "as")

    def __init__(self, era: Era) -> None:
        self.era = era
        self.files = _bootfs_layout(era)[0]

    def spawn(self, machine: Machine, args: OpArgs) -> SimProcess:
        job = args.job("job")
        spec = args.raw("spec")
        if not isinstance(spec, ProcSpec):
            raise BadOp(f"'spec' must be a ProcSpec, not {spec!r}")
        vdso, bootfs = args.names["vdso"], args.names["bootfs"]
        assert isinstance(vdso, SimVmo) and isinstance(bootfs, SimVmo)
        return _Loader(self, machine, job, spec, vdso, bootfs).run()


# --------------------------------------------------------------------------- the loader


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

    def __init__(
        self,
        launchpad: Launchpad,
        machine: Machine,
        job: SimJob,
        spec: ProcSpec,
        vdso: SimVmo,
        bootfs: SimVmo,
    ) -> None:
        self.launchpad = launchpad
        self.era = launchpad.era
        self.op = machine
        self.job = job
        self.spec = spec
        self.vdso = vdso
        self.bootfs = bootfs
        self.rng = random.Random(spec.koid)
        self.heap: list[SimVmo] = []
        self.process: SimProcess = machine("process", job, spec.name, spec.koid)
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
        self.op("close", (self.process, vmo))

    def region(self, key: str, size: int) -> SimVmar:
        addr = self.addr(key, size)
        koid = self.koid(f"vmar:{key}")
        vmar: SimVmar = self.op("vmar", self.root, size, addr, "useralloc", koid)
        return vmar

    def stack(self, key: str, vmo: SimVmo, offset: int, touched: int) -> None:
        """A stack in its own region, above a guard page; stacks grow down, so the
        touched pages are the top ones."""
        vmar = self.op("vmar", self.root, GUARD + STACK, self.addr(key, GUARD + STACK))
        self.op("map", vmar, vmo, offset, STACK, RW, vmar.base + GUARD)
        if touched:
            self.op("write", vmo, offset + STACK - touched, touched)

    # ----------------------------------------------------------------- loading

    def open(self, name: str) -> SimVmo:
        """The process's own clone of a bootfs file, as the loader service sent it."""
        offset, size = self.launchpad.files[name]
        elf = self.era.bootfs[name]
        p = self.process
        file = self.op("clone", self.bootfs, offset, size, name, p, self.koid(f"file:{name}"))
        module: SimVmo = self.op("clone", file, 0, size, name, p, self.koid(name))
        self.drop(file)  # the clone keeps its parent alive
        if elf.tail_pages:
            start = (pages_for(size) - elf.tail_pages) * PAGE_SIZE
            self.op("write", module, start, size - start)
        return module

    def load(self, module: SimVmo) -> None:
        """Map a module: text from the file clone, the writable segment from a clone of
        it (relocated, then its RELRO protected read-only), and .bss."""
        elf = self.era.bootfs[module.name]
        op, p = self.op, self.process
        vmar = self.region(module.name, elf.span)
        op("map", vmar, module, 0, elf.text, RX, vmar.base)
        data_name = f"data:{module.name}" if self.era.segment_prefixes else module.name
        data_koid = self.koid(f"data:{module.name}")
        data = op("clone", module, elf.text, elf.writable, data_name, p, data_koid)
        op("write", data, 0, elf.writable if elf.dirty is None else elf.dirty)
        base = vmar.base + elf.text + SEGMENT_GAP
        op("map", vmar, data, 0, elf.writable, RW, base)
        if elf.relro:
            op("protect", vmar, base, elf.relro, R)
        self.drop(data)
        if elf.bss:
            bss = op("vmo", elf.bss, f"bss:{module.name}", p)
            op("write", bss, 0, elf.bss)
            op("map", vmar, bss, 0, None, RW, base + elf.writable)
            self.drop(bss)
        self.drop(module)

    # ----------------------------------------------------------------- threads and heap

    def thread_memory(self, name: str, touched: int) -> None:
        """A thread's TCB and its two stacks (SafeStack: a safe and an unsafe one)."""
        op, p = self.op, self.process
        if self.era.thread_vmos:
            vmo = op("vmo", TCB + 2 * STACK, "", p, self.koid(f"thread-vmo:{name}"))
            tcb = self.addr(f"tcb:{name}", TCB)
            # libc names the VMO after the thread and its pthread structure in the TCB.
            op("rename", vmo, f"{name}:{tcb + 0xB38:#x}")
            op("map", self.root, vmo, 0, TCB, RW, tcb)
            op("write", vmo, 0, TCB)
            self.stack(f"stack:{name}", vmo, TCB, touched)
            self.stack(f"unsafe:{name}", vmo, TCB + STACK, 0)
            self.drop(vmo)
            return
        safe = op("vmo", STACK, "", p, self.koid(f"stack:{name}"))
        self.stack(f"stack:{name}", safe, 0, touched)
        self.drop(safe)
        unsafe = op("vmo", STACK, "", p)
        self.stack(f"unsafe:{name}", unsafe, 0, PAGE_SIZE)
        self.drop(unsafe)

    def main_thread_memory(self) -> None:
        """libc's setup of the initial thread (its stack came from launchpad before June 14)."""
        if self.era.thread_vmos:
            self.thread_memory("initial-thread", self.spec.initial_stack)
            return
        op, p = self.op, self.process
        tcb = op("vmo", TCB, "", p, self.koid("tcb:initial-thread"))
        op("map", self.root, tcb, 0, None, RW, self.addr("tcb:initial-thread", TCB))
        op("write", tcb, 0, TCB)
        self.drop(tcb)
        unsafe = op("vmo", STACK, "", p)
        self.stack("unsafe:initial-thread", unsafe, 0, PAGE_SIZE)
        self.drop(unsafe)

    def ensure_heap(self) -> None:
        """The allocator's first chunk (and its metadata), on the first malloc."""
        if self.heap:
            return
        op, p, name = self.op, self.process, self.era.heap_name
        chunk = op("vmo", CHUNK, name, p, self.koid("heap"))
        op("map", self.root, chunk, 0, None, RW, self.addr("heap", CHUNK))
        self.drop(chunk)
        self.heap.append(chunk)
        if self.era.heap_base:
            size = self.era.heap_base
            base = op("vmo", size, name, p)
            op("map", self.root, base, 0, None, RW, self.addr("heap-base", size))
            op("write", base, 0, size)
            self.drop(base)

    def grow_heap(self, nbytes: int) -> None:
        """Touch ``nbytes`` of heap, mapping more chunks as the first fills."""
        self.ensure_heap()
        op = self.op
        while nbytes > 0:
            chunk = self.heap[-1]
            used = chunk.committed_pages * PAGE_SIZE
            if used == CHUNK:
                chunk = op("vmo", CHUNK, self.era.heap_name, self.process)
                op("map", self.root, chunk, 0, None, RW, self.addr("heap-chunk", CHUNK))
                self.drop(chunk)
                self.heap.append(chunk)
                used = 0
            step = min(nbytes, CHUNK - used)
            op("write", chunk, used, step)
            nbytes -= step

    def private_bytes(self) -> int:
        """What the kernel will count as this process's PRIVATE: everything it maps but
        the vDSO is its alone."""
        return sum(
            m.committed_pages * PAGE_SIZE for m in _mappings(self.root) if m.vmo is not self.vdso
        )

    # ----------------------------------------------------------------- the launch

    def run(self) -> SimProcess:
        op, p, spec, era, vdso = self.op, self.process, self.spec, self.era, self.vdso
        # Launchpad, in the parent: the vDSO first, then the program and its interpreter.
        vmar = self.region("vdso", VDSO_SIZE)
        op("map", vmar, vdso, 0, VDSO_RODATA, R, vmar.base)
        op("map", vmar, vdso, VDSO_RODATA, VDSO_SIZE - VDSO_RODATA, RX, vmar.base + VDSO_RODATA)
        # The bootstrap channel and the loader-service channel.
        op("object", p, ObjType.CHANNEL)
        op("object", p, ObjType.CHANNEL)
        program = self.open(spec.program)
        self.load(self.open("ld.so.1"))
        if era.thread_vmos:
            # A bootstrap-message header and handle table of 78 bytes, argv[0] and its NUL.
            size = 0x4E + len(spec.name) + 1
            name = f"stack: msg of {size:#x}"
            stack = op("vmo", PAGE_SIZE, name, p, self.koid("initial-stack"))
            op("map", self.root, stack, 0, None, RW, self.addr("initial-stack", PAGE_SIZE))
            op("write", stack, 0, PAGE_SIZE)
        else:
            stack = op("vmo", STACK, "initial-stack", p, self.koid("initial-stack"))
            op("map", self.root, stack, 0, None, RW, self.addr("initial-stack", STACK))
            op("write", stack, STACK - spec.initial_stack, spec.initial_stack)
            self.drop(stack)
        thread = op("thread", p, "initial-thread", self.koid("thread:initial-thread"))
        op("grant", p, p, Rights.DUPLICATE | Rights.TRANSFER | Rights.READ | Rights.WRITE)
        op("grant", p, self.root, Rights.DUPLICATE | Rights.READ | Rights.WRITE | Rights.MAP)
        op("grant", p, self.job, Rights.DUPLICATE | Rights.TRANSFER | Rights.READ)
        op("grant", p, vdso, VDSO_RIGHTS)
        op("start", p, thread)

        # The dynamic linker, in the process: the program, libc's thread setup, libraries.
        self.load(program)
        self.main_thread_memory()
        for lib in spec.libs:
            self.load(self.open(lib))
        for name, size in spec.buffers:
            buf = op("vmo", size, name, p)
            op("write", buf, 0, size)
            op("map", self.root, buf, 0, None, RW, self.addr(f"buffer:{name}", size))
        for name, paddr, size in spec.devices:
            dev = op("physical", paddr, size, name, p)
            op("map", self.root, dev, 0, None, RW, self.addr(f"device:{name}", size))
        if era.thread_vmos:
            self.ensure_heap()  # jemalloc sets up its heap during libc's startup
        for t in spec.threads:
            self.thread_memory(t.name, t.stack)
            self.ensure_heap()  # pthread_create mallocs the thread's bookkeeping
            extra = op("thread", p, t.name, self.koid(f"thread:{t.name}"))
            op("start", None, extra)
            if t.state is not ThreadState.RUNNING:
                op("thread_state", extra, t.state)
        self.ensure_heap()
        if spec.private is not None:
            rest = spec.private - self.private_bytes()
            if rest < 0 or rest % PAGE_SIZE:
                raise ValueError(f"{spec.name}: PRIVATE {spec.private} leaves {rest} for the heap")
            self.grow_heap(rest)
        else:
            self.grow_heap(spec.heap)
        if spec.initial_state is not ThreadState.RUNNING:
            op("thread_state", thread, spec.initial_state)
        return p
