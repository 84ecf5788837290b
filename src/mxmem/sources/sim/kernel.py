"""A simulated Magenta kernel (mid-2017): its objects and the operations that change memory.

This is a model, not canned output. Every page of physical memory is in exactly one state
(free, wired, heap, object, mmu, other), so the kernel memory figures always sum to the
total; VMOs own committed pages; copy-on-write clones see their parent's pages until they
write; mappings cost page tables; kernel objects cost kernel heap. The memory rules are the
2017 kernel's, as recorded in the reference specification (§5): a VMO's committed pages are
only those in its *own* page list, and ``share_count`` counts distinct address spaces once
a VMO has two or more mappings.

Objects refer to each other directly; koids are handed out by a counter, so a world built
by the same sequence of operations always gets the same koids. Operations raise
:class:`~mxmem.errors.KernelError` with Magenta's status names and leave the model
unchanged when they fail.
"""

from __future__ import annotations

import bisect
from enum import IntEnum

from mxmem.errors import KernelError
from mxmem.model import ObjType, Perm, ProcessState, Rights, ThreadState
from mxmem.sources.sim.cpu import Scheduler, shootdown_syscall, syscall

PAGE_SIZE = 4096

# The user address space of a Magenta process (x86-64): the doc's vmaps shows
# ________01000000-00007ffffffff000.
USER_ASPACE_BASE = 0x1000000
USER_ASPACE_SIZE = 0x7FFFFFFFF000 - USER_ASPACE_BASE
KERNEL_ASPACE_BASE = 0xFFFFFF8000000000
KERNEL_ASPACE_SIZE = 0x8000000000
PHYSMAP_SIZE = 0x1000000000  # 64 GiB, as in the doc's `k mx asd kernel`
KERNEL_IMAGE_BASE = 0xFFFFFFFF80100000  # x86-64 KERNEL_BASE + the 1 MiB load offset
# The image's segments (size, perms); size 0 takes the rest of the wired memory.
KERNEL_IMAGE_SEGMENTS = (
    (0x180000, Perm.READ | Perm.EXECUTE),  # code
    (0x80000, Perm.READ),  # rodata
    (0x10000, Perm.READ | Perm.WRITE),  # data
    (0x100000, Perm.READ | Perm.WRITE),  # bss
    (0, Perm.READ | Perm.WRITE),  # boot allocations
)

# What each kernel object costs in kernel heap, in bytes. Magenta allocates dispatchers
# and VM structures with new/malloc; thread kernel stacks (8 KiB) come from the heap too.
HEAP_COST: dict[str, int] = {
    "job": 512,
    "process": 1536,
    "thread": 512 + 8192,
    "vmo": 384,
    "vmar": 256,
    "mapping": 192,
    "aspace": 512,
    "handle": 64,
    "other": 192,  # channel endpoint, event, port, socket, timer, fifo...
}
# The heap grows from the PMM in chunks and keeps what it took (freed bytes become
# heap "free", as with Magenta's cmpctmalloc).
HEAP_CHUNK_PAGES = 16


class PageState(IntEnum):
    """The PMM page states of ``kernel/include/kernel/vm/page.h``; ALLOC is "other"."""

    FREE = 0
    WIRED = 1
    HEAP = 2
    OBJECT = 3
    MMU = 4
    ALLOC = 5


def pages_for(nbytes: int) -> int:
    return -(-nbytes // PAGE_SIZE)


class Pmm:
    """The physical memory manager: counts of pages in each state."""

    def __init__(self, total_pages: int) -> None:
        self.total_pages = total_pages
        self.counts = [0] * len(PageState)
        self.counts[PageState.FREE] = total_pages

    @property
    def free_pages(self) -> int:
        return self.counts[PageState.FREE]

    def check(self, npages: int) -> None:
        if npages > self.counts[PageState.FREE]:
            raise KernelError(
                "ERR_NO_MEMORY", f"need {npages} pages, {self.counts[PageState.FREE]} free"
            )

    def alloc(self, state: PageState, npages: int) -> None:
        self.check(npages)
        self.counts[PageState.FREE] -= npages
        self.counts[state] += npages

    def release(self, state: PageState, npages: int) -> None:
        assert self.counts[state] >= npages, (state, npages, self.counts)
        self.counts[state] -= npages
        self.counts[PageState.FREE] += npages


# --------------------------------------------------------------------------- objects


class KObject:
    """A kernel object that handles can refer to."""

    type: ObjType = ObjType.OTHER
    cost_key = "other"

    def __init__(self, koid: int) -> None:
        self.koid = koid
        self.handle_count = 0
        self.alive = True


class SimJob(KObject):
    type = ObjType.JOB
    cost_key = "job"

    def __init__(self, koid: int, parent: SimJob | None, name: str) -> None:
        super().__init__(koid)
        self.parent = parent
        self.name = name
        self.jobs: list[SimJob] = []
        self.processes: list[SimProcess] = []


class SimThread(KObject):
    type = ObjType.THREAD
    cost_key = "thread"

    def __init__(self, koid: int, process: SimProcess, name: str) -> None:
        super().__init__(koid)
        self.process = process
        self.name = name
        self.state = ThreadState.NEW


class SimHandle:
    __slots__ = ("obj", "rights", "value")

    def __init__(self, value: int, obj: KObject, rights: int) -> None:
        self.value = value
        self.obj = obj
        self.rights = rights


class SimProcess(KObject):
    type = ObjType.PROCESS
    cost_key = "process"

    def __init__(self, koid: int, job: SimJob, name: str) -> None:
        super().__init__(koid)
        self.job = job
        self.name = name
        self.state = ProcessState.NEW
        self.threads: list[SimThread] = []
        self.handles: dict[int, SimHandle] = {}
        self.handle_serial = 0
        self.aspace: SimAspace | None = None


class SimVmo(KObject):
    """A VMO. ``pages`` is a bitmap of the page indices in the VMO's own page list."""

    type = ObjType.VMO
    cost_key = "vmo"

    def __init__(
        self,
        koid: int,
        size: int,
        name: str,
        *,
        kernel_only: bool = False,
        page_state: PageState = PageState.OBJECT,
        parent: SimVmo | None = None,
        parent_offset: int = 0,
        paddr: int | None = None,
    ) -> None:
        super().__init__(koid)
        self.size = size
        self.name = name
        self.kernel_only = kernel_only
        self.page_state = page_state
        self.parent = parent
        self.parent_offset = parent_offset
        self.paddr = paddr
        self.pages = 0
        self.children: list[SimVmo] = []
        self.mappings: list[SimMapping] = []
        self.kernel_refs = 0

    @property
    def physical(self) -> bool:
        return self.paddr is not None

    @property
    def committed_pages(self) -> int:
        return self.pages.bit_count()

    def pages_in_range(self, offset: int, length: int) -> int:
        """``AllocatedPagesInRange``: own committed pages in ``[offset, offset+length)``."""
        if length <= 0 or self.pages == 0:
            return 0
        first = offset // PAGE_SIZE
        last = pages_for(offset + length)
        return ((self.pages >> first) & ((1 << (last - first)) - 1)).bit_count()

    def refs(self) -> int:
        return self.handle_count + len(self.mappings) + len(self.children) + self.kernel_refs

    def share_count(self) -> int:
        """``VmObject::share_count()`` of the 2017 kernel.

        Fewer than two mappings: 1. Otherwise the number of distinct address spaces in
        the mapping list, tracking at most 64 exactly and extrapolating the rest as
        ``remaining_mappings * unique / visited``.
        """
        if len(self.mappings) < 2:
            return 1
        buckets = 64
        seen: set[int] = set()
        for visited, mapping in enumerate(self.mappings):
            key = id(mapping.aspace)
            if key not in seen:
                if len(seen) < buckets:
                    seen.add(key)
                else:
                    unique = len(seen)
                    return unique + (len(self.mappings) - visited) * unique // visited
        return len(seen)


class SimVmar(KObject):
    type = ObjType.VMAR
    cost_key = "vmar"

    def __init__(
        self, koid: int, aspace: SimAspace, parent: SimVmar | None, base: int, size: int, name: str
    ) -> None:
        super().__init__(koid)
        self.aspace = aspace
        self.parent = parent
        self.base = base
        self.size = size
        self.name = name
        # Children sorted by base address; ``starts`` mirrors their bases for bisect.
        self.children: list[SimVmar | SimMapping] = []
        self.starts: list[int] = []

    @property
    def end(self) -> int:
        return self.base + self.size


class SimMapping:
    __slots__ = ("alive", "aspace", "base", "perms", "size", "vmar", "vmo", "vmo_offset")

    def __init__(
        self, vmar: SimVmar, base: int, size: int, perms: int, vmo: SimVmo, vmo_offset: int
    ) -> None:
        self.vmar = vmar
        self.aspace = vmar.aspace
        self.base = base
        self.size = size
        self.perms = perms
        self.vmo = vmo
        self.vmo_offset = vmo_offset
        self.alive = True

    @property
    def end(self) -> int:
        return self.base + self.size

    @property
    def committed_pages(self) -> int:
        return self.vmo.pages_in_range(self.vmo_offset, self.size)


class SimAspace:
    """An address space. User address spaces account their page tables as MMU pages."""

    # x86-64 four-level paging: one page-table page per 2 MiB block touched by a mapping,
    # one directory page per 1 GiB, one PDPT page per 512 GiB, and the PML4 itself.
    LEVEL_SHIFTS = (21, 30, 39)

    def __init__(self, name: str, base: int, size: int, *, is_kernel: bool) -> None:
        self.name = name
        self.base = base
        self.size = size
        self.is_kernel = is_kernel
        self.root: SimVmar | None = None
        self.tables: list[dict[int, int]] = [{} for _ in self.LEVEL_SHIFTS]
        self.mmu_pages = 0

    def table_delta(self, base: int, size: int, sign: int) -> int:
        """MMU pages gained (sign=+1) or released (sign=-1) by mapping/unmapping a range."""
        if self.is_kernel or size <= 0:
            return 0
        delta = 0
        last = base + size - 1
        # A table page is gained where a block's count goes 0 -> 1, released at 1 -> 0.
        edge = 0 if sign > 0 else 1
        for counts, shift in zip(self.tables, self.LEVEL_SHIFTS, strict=True):
            first, end = base >> shift, last >> shift
            if first == end:  # the common case, without building a range
                delta += counts.get(first, 0) == edge
                continue
            for block in range(first, end + 1):
                delta += counts.get(block, 0) == edge
        return delta

    def apply_tables(self, base: int, size: int, sign: int) -> None:
        if self.is_kernel or size <= 0:
            return
        last = base + size - 1
        for counts, shift in zip(self.tables, self.LEVEL_SHIFTS, strict=True):
            for block in range(base >> shift, (last >> shift) + 1):
                n = counts.get(block, 0) + sign
                if n:
                    counts[block] = n
                else:
                    del counts[block]


class KernelRef:
    """Marker passed as ``owner`` for objects held by the kernel itself."""


KERNEL = KernelRef()
Owner = SimProcess | KernelRef | None


# --------------------------------------------------------------------------- the kernel


class Kernel:
    """The simulated kernel: boots with a physical memory size and a root job."""

    def __init__(
        self,
        memory_bytes: int = 2 << 30,
        *,
        wired_bytes: int = 72 << 20,
        other_bytes: int = 0,
        first_koid: int = 1024,
        cpus: int = 4,
    ) -> None:
        if memory_bytes <= 0 or memory_bytes % PAGE_SIZE:
            raise KernelError("ERR_INVALID_ARGS", "memory size must be a positive page multiple")
        self.pmm = Pmm(memory_bytes // PAGE_SIZE)
        self.next_koid = first_koid
        # Kernel-only VMOs have no user koid; give them ids of their own, far above koids.
        self.next_kernel_id = 1 << 48
        self.heap_allocated = 0
        self.heap_pages = 0
        # The global VMO list, in creation order. A dict used as an ordered set: removing
        # a VMO from a list of a million cost ~20 ms, so killing a process was quadratic.
        self.vmos: dict[SimVmo, None] = {}
        self.cpus = cpus
        # The CPU counters and the clock (sim/cpu.py); before the first operation.
        self.sched = Scheduler(cpus)

        self.pmm.alloc(PageState.ALLOC, pages_for(other_bytes))
        self.kernel_aspace = SimAspace(
            "kernel", KERNEL_ASPACE_BASE, KERNEL_ASPACE_SIZE, is_kernel=True
        )
        self.kernel_aspace.root = SimVmar(
            0, self.kernel_aspace, None, KERNEL_ASPACE_BASE, KERNEL_ASPACE_SIZE, "root"
        )
        self._boot_kernel_aspace(memory_bytes, wired_bytes)
        self.root_job = self.job_create(None, "root")

    # ----------------------------------------------------------------- bookkeeping

    def _check_koid(self, koid: int | None) -> None:
        if koid is not None and koid < self.next_koid:
            raise KernelError(
                "ERR_INVALID_ARGS", f"koid {koid} already passed (next is {self.next_koid})"
            )

    def _koid(self, koid: int | None) -> int:
        self._check_koid(koid)
        if koid is None:
            koid = self.next_koid
        self.next_koid = koid + 1
        return koid

    def _heap_need(self, nbytes: int) -> int:
        """PMM pages the heap must grow by to allocate ``nbytes`` more."""
        short = self.heap_allocated + nbytes - self.heap_pages * PAGE_SIZE
        if short <= 0:
            return 0
        chunk = HEAP_CHUNK_PAGES * PAGE_SIZE
        return -(-short // chunk) * HEAP_CHUNK_PAGES

    def _heap_alloc(self, nbytes: int) -> None:
        grow = self._heap_need(nbytes)
        if grow:
            self.pmm.alloc(PageState.HEAP, grow)
            self.heap_vmo.pages |= ((1 << grow) - 1) << self.heap_pages
            self.heap_pages += grow
            self.heap_vmo.size = self.heap_pages * PAGE_SIZE
        self.heap_allocated += nbytes

    def _heap_free(self, nbytes: int) -> None:
        self.heap_allocated -= nbytes
        assert self.heap_allocated >= 0

    def _reserve(self, *keys: str, extra_pages: int = 0, koid: int | None = None) -> None:
        """Fail now, before changing anything, unless the heap can pay for objects of
        ``keys``, ``extra_pages`` more pages fit and an explicit ``koid`` is not stale:
        operations are all-or-nothing."""
        self._check_koid(koid)
        nbytes = 0
        for key in keys:
            nbytes += HEAP_COST[key]
        self.pmm.check(self._heap_need(nbytes) + extra_pages)

    def _charge(self, key: str, extra_pages: int = 0, koid: int | None = None) -> None:
        """Allocate heap for one object, checking ``extra_pages`` more will fit too."""
        # _reserve + _heap_alloc, inlined: this runs for every object a world makes.
        self._check_koid(koid)
        cost = HEAP_COST[key]
        grow = self._heap_need(cost)
        self.pmm.check(grow + extra_pages)
        if grow:
            self._heap_alloc(cost)
        else:
            self.heap_allocated += cost

    def _check_owner(self, owner: Owner) -> None:
        if isinstance(owner, SimProcess) and owner.state is ProcessState.DEAD:
            raise KernelError("ERR_BAD_STATE", f"process {owner.koid} is dead")

    def _boot_kernel_aspace(self, memory_bytes: int, wired_bytes: int) -> None:
        """The kernel's own regions, where Magenta's x86-64 kernel had them: the physmap
        at the base (``k mx asd kernel`` in docs/memory.md shows it, 64 GiB, then device
        mappings from 0xffffff9000000000), the heap after the devices, and the kernel
        image at KERNEL_BASE + 1 MiB in a region of its own, one mapping per segment.

        These are boot structures, so they cost no heap; the image's pages are the wired
        figure, the physmap and the HPET are physical and cost nothing.
        """
        root = self.kernel_aspace.root
        assert root is not None
        physmap = self._new_vmo(0, "physmap", kernel_only=True, paddr=0)
        physmap.size = memory_bytes
        image = self._new_vmo(wired_bytes, "kernel image", kernel_only=True)
        image.page_state = PageState.WIRED
        self.pmm.alloc(PageState.WIRED, pages_for(wired_bytes))
        image.pages = (1 << pages_for(wired_bytes)) - 1
        self.heap_vmo = self._new_vmo(0, "kernel heap", kernel_only=True)
        self.heap_vmo.page_state = PageState.HEAP
        hpet = self._new_vmo(PAGE_SIZE, "hpet", kernel_only=True, paddr=0xFED00000)
        rw = int(Perm.READ | Perm.WRITE)
        devices = KERNEL_ASPACE_BASE + PHYSMAP_SIZE
        for vmo, base, span in (
            (physmap, KERNEL_ASPACE_BASE, PHYSMAP_SIZE),
            (hpet, devices, PAGE_SIZE),
            (self.heap_vmo, devices + PAGE_SIZE, 0x40000000),
        ):
            vmo.kernel_refs += 1
            self._insert(root, SimMapping(root, base, span, rw, vmo, 0))
        # The image region: code r-x, rodata r--, data and bss rw-, and the rest of the
        # wired memory (early-boot allocations: the page array, the ramdisk) rw-. A small
        # wired figure fills the first segments only.
        span = max(pages_for(wired_bytes), 1) * PAGE_SIZE
        end = KERNEL_ASPACE_BASE + KERNEL_ASPACE_SIZE
        region = SimVmar(
            0, self.kernel_aspace, root, min(KERNEL_IMAGE_BASE, end - span), span, "kernel_image"
        )
        self._insert(root, region)
        image.kernel_refs += 1
        offset = 0
        for size, perms in KERNEL_IMAGE_SEGMENTS:
            size = min(size or span, span - offset)
            if size <= 0:
                break
            self._insert(
                region, SimMapping(region, region.base + offset, size, int(perms), image, offset)
            )
            offset += size

    def _new_vmo(
        self,
        size: int,
        name: str,
        *,
        kernel_only: bool = False,
        koid: int | None = None,
        parent: SimVmo | None = None,
        parent_offset: int = 0,
        paddr: int | None = None,
    ) -> SimVmo:
        if kernel_only:
            ident = self.next_kernel_id
            self.next_kernel_id += 1
        else:
            ident = self._koid(koid)
        vmo = SimVmo(
            ident,
            size,
            name,
            kernel_only=kernel_only,
            parent=parent,
            parent_offset=parent_offset,
            paddr=paddr,
        )
        self.vmos[vmo] = None
        return vmo

    def _hold(self, obj: KObject, owner: Owner, rights: int) -> None:
        if isinstance(owner, SimProcess):
            self.handle_grant(owner, obj, rights)
        elif isinstance(owner, KernelRef) and isinstance(obj, SimVmo):
            obj.kernel_refs += 1

    # ----------------------------------------------------------------- tasks

    @syscall
    def job_create(self, parent: SimJob | None, name: str, *, koid: int | None = None) -> SimJob:
        self._charge("job", koid=koid)
        job = SimJob(self._koid(koid), parent, name)
        if parent is not None:
            parent.jobs.append(job)
        return job

    @syscall
    def process_create(self, job: SimJob, name: str, *, koid: int | None = None) -> SimProcess:
        """A new process (state NEW) with an empty address space and root VMAR."""
        self._reserve("process", "aspace", "vmar", extra_pages=1, koid=koid)
        for key in ("process", "aspace", "vmar"):
            self._heap_alloc(HEAP_COST[key])
        process = SimProcess(self._koid(koid), job, name)
        aspace = SimAspace(
            f"proc:{process.koid}", USER_ASPACE_BASE, USER_ASPACE_SIZE, is_kernel=False
        )
        aspace.root = SimVmar(
            self._koid(None), aspace, None, USER_ASPACE_BASE, USER_ASPACE_SIZE, "root"
        )
        self.pmm.alloc(PageState.MMU, 1)  # the top-level page table
        aspace.mmu_pages = 1
        process.aspace = aspace
        job.processes.append(process)
        return process

    @syscall
    def process_start(self, process: SimProcess, thread: SimThread | None = None) -> None:
        if process.state is not ProcessState.NEW:
            raise KernelError("ERR_BAD_STATE", f"process {process.koid} already started")
        process.state = ProcessState.RUNNING
        if thread is not None:
            self.thread_start(thread)

    @shootdown_syscall
    def process_kill(self, process: SimProcess) -> None:
        """Kill a process: its threads die, its handles close, its address space goes.

        The process stays in its job as DEAD (reporting zero memory) until destroyed.
        """
        if process.state is ProcessState.DEAD:
            return
        for thread in process.threads:
            self.sched.thread_state(thread.koid, thread.state, ThreadState.DEAD)
            thread.state = ThreadState.DEAD
        for value in list(process.handles):
            self.handle_close(process, value)
        aspace = process.aspace
        if aspace is not None and aspace.root is not None:
            self._destroy_vmar(aspace.root)
            self.pmm.release(PageState.MMU, aspace.mmu_pages)
            aspace.mmu_pages = 0
            self._heap_free(HEAP_COST["aspace"])
            process.aspace = None
        process.state = ProcessState.DEAD

    @syscall
    def thread_create(
        self, process: SimProcess, name: str, *, koid: int | None = None
    ) -> SimThread:
        if process.state is ProcessState.DEAD:
            raise KernelError("ERR_BAD_STATE", f"process {process.koid} is dead")
        self._charge("thread", koid=koid)
        thread = SimThread(self._koid(koid), process, name)
        process.threads.append(thread)
        return thread

    @syscall
    def thread_start(self, thread: SimThread) -> None:
        if thread.state is not ThreadState.NEW:
            raise KernelError("ERR_BAD_STATE", f"thread {thread.koid} already started")
        self.sched.thread_state(thread.koid, thread.state, ThreadState.RUNNING)
        thread.state = ThreadState.RUNNING

    @syscall
    def thread_set_state(self, thread: SimThread, state: ThreadState) -> None:
        """Move a thread to a state (blocked in a wait, suspended, in an exception...)."""
        if thread.state in (ThreadState.DEAD, ThreadState.NEW) and state is not ThreadState.DEAD:
            raise KernelError("ERR_BAD_STATE", f"thread {thread.koid} is {thread.state.name}")
        self.sched.thread_state(thread.koid, thread.state, state)
        thread.state = state

    # ----------------------------------------------------------------- other objects

    @syscall
    def object_create(
        self, owner: SimProcess, type: ObjType, *, koid: int | None = None
    ) -> KObject:
        """An event, port, socket, timer or fifo held by one handle in ``owner``."""
        self._check_owner(owner)
        self._reserve("other", "handle", koid=koid)
        self._heap_alloc(HEAP_COST["other"])
        obj = KObject(self._koid(koid))
        obj.type = type
        self.handle_grant(owner, obj, Rights.DUPLICATE | Rights.TRANSFER | Rights.READ)
        return obj

    @syscall
    def channel_create(self, a: SimProcess, b: SimProcess | None = None) -> tuple[KObject, KObject]:
        """A channel: one endpoint in ``a``, the other in ``b`` (default ``a``)."""
        self._check_owner(b)
        self._reserve("other", "handle", "other", "handle")
        return (self.object_create(a, ObjType.CHANNEL), self.object_create(b or a, ObjType.CHANNEL))

    # ----------------------------------------------------------------- handles

    @syscall
    def handle_grant(self, process: SimProcess, obj: KObject, rights: int) -> int:
        """Put a handle to ``obj`` in ``process``'s table (as receiving one would)."""
        if process.state is ProcessState.DEAD:
            raise KernelError("ERR_BAD_STATE", f"process {process.koid} is dead")
        if not obj.alive:
            raise KernelError("ERR_BAD_STATE", f"object {obj.koid} is gone")
        self._charge("handle")
        process.handle_serial += 1
        # Magenta handle values look random; this is a bijection on the serial number, so
        # values are unique within a process and deterministic.
        value = (((process.handle_serial * 0x9E3779B1) & 0x7FFFFFFF) << 1) | 1
        process.handles[value] = SimHandle(value, obj, int(rights))
        obj.handle_count += 1
        return value

    def _handle(self, process: SimProcess, value: int) -> SimHandle:
        handle = process.handles.get(value)
        if handle is None:
            raise KernelError("ERR_BAD_HANDLE", f"no handle {value:#x} in process {process.koid}")
        return handle

    def handle_of(self, process: SimProcess, obj: KObject) -> int:
        """The value of ``process``'s first handle to ``obj``."""
        for value, handle in process.handles.items():
            if handle.obj is obj:
                return value
        raise KernelError("ERR_NOT_FOUND", f"process {process.koid} has no handle to {obj.koid}")

    @syscall
    def handle_duplicate(self, process: SimProcess, value: int, rights: int | None = None) -> int:
        """Duplicate a handle, optionally with fewer rights (needs DUPLICATE)."""
        handle = self._handle(process, value)
        if not handle.rights & Rights.DUPLICATE:
            raise KernelError("ERR_ACCESS_DENIED", "handle lacks the DUPLICATE right")
        new_rights = handle.rights if rights is None else int(rights)
        if new_rights & ~handle.rights:
            raise KernelError("ERR_INVALID_ARGS", "a duplicate cannot gain rights")
        return self.handle_grant(process, handle.obj, new_rights)

    @syscall
    def handle_transfer(self, src: SimProcess, value: int, dst: SimProcess) -> int:
        """Move a handle to another process (as writing it to a channel does)."""
        handle = self._handle(src, value)
        if not handle.rights & Rights.TRANSFER:
            raise KernelError("ERR_ACCESS_DENIED", "handle lacks the TRANSFER right")
        if dst.state is ProcessState.DEAD:
            raise KernelError("ERR_BAD_STATE", f"process {dst.koid} is dead")
        new = self.handle_grant(dst, handle.obj, handle.rights)
        self.handle_close(src, value)
        return new

    @syscall
    def handle_close(self, process: SimProcess, value: int) -> None:
        handle = self._handle(process, value)
        del process.handles[value]
        self._heap_free(HEAP_COST["handle"])
        obj = handle.obj
        obj.handle_count -= 1
        if isinstance(obj, SimVmo):
            self._maybe_destroy_vmo(obj)
        elif type(obj) is KObject and obj.handle_count == 0:
            obj.alive = False
            self._heap_free(HEAP_COST["other"])

    # ----------------------------------------------------------------- VMOs

    @syscall
    def vmo_create(
        self,
        size: int,
        name: str = "",
        *,
        owner: Owner,
        koid: int | None = None,
        rights: int = Rights.DEFAULT_VMO,
    ) -> SimVmo:
        """A paged VMO with no committed pages, held by ``owner`` (a handle in a process,
        or the kernel)."""
        if size < 0:
            raise KernelError("ERR_INVALID_ARGS", "negative size")
        self._check_owner(owner)
        self._reserve("vmo", "handle", koid=None if owner is None else koid)
        self._heap_alloc(HEAP_COST["vmo"])
        vmo = self._new_vmo(size, name, koid=koid, kernel_only=owner is None)
        if owner is None:
            vmo.kernel_refs += 1
        self._hold(vmo, owner, rights)
        return vmo

    @syscall
    def vmo_create_physical(
        self,
        paddr: int,
        size: int,
        name: str = "",
        *,
        owner: Owner,
        koid: int | None = None,
        rights: int = Rights.DEFAULT_VMO,
    ) -> SimVmo:
        """A VMO over a raw physical range (a device): it uses no RAM."""
        if paddr % PAGE_SIZE or size <= 0:
            raise KernelError("ERR_INVALID_ARGS", "physical VMOs need an aligned base")
        self._check_owner(owner)
        self._reserve("vmo", "handle", koid=None if owner is None else koid)
        self._heap_alloc(HEAP_COST["vmo"])
        vmo = self._new_vmo(size, name, koid=koid, paddr=paddr, kernel_only=owner is None)
        if owner is None:
            vmo.kernel_refs += 1
        self._hold(vmo, owner, rights)
        return vmo

    @syscall
    def vmo_clone(
        self,
        vmo: SimVmo,
        offset: int,
        size: int,
        name: str | None = None,
        *,
        owner: Owner,
        koid: int | None = None,
        rights: int = Rights.DEFAULT_VMO,
    ) -> SimVmo:
        """A copy-on-write clone of ``[offset, offset+size)`` of ``vmo``.

        Its untouched pages stay the parent's (and are counted for the parent only, as in
        2017); a page written through the clone is copied into the clone.
        """
        self._check_alive(vmo)
        if vmo.physical:
            raise KernelError("ERR_NOT_SUPPORTED", "physical VMOs cannot be cloned")
        if offset % PAGE_SIZE or offset < 0 or size < 0:
            raise KernelError("ERR_INVALID_ARGS", "clone offset must be page aligned")
        self._check_owner(owner)
        self._reserve("vmo", "handle", koid=None if owner is None else koid)
        self._heap_alloc(HEAP_COST["vmo"])
        clone = self._new_vmo(
            size,
            vmo.name if name is None else name,
            koid=koid,
            kernel_only=owner is None,
            parent=vmo,
            parent_offset=offset,
        )
        vmo.children.append(clone)
        if owner is None:
            clone.kernel_refs += 1
        self._hold(clone, owner, rights)
        return clone

    def _check_alive(self, vmo: SimVmo) -> None:
        if not vmo.alive:
            raise KernelError("ERR_BAD_STATE", f"VMO {vmo.koid} is gone")

    def _page_range(self, vmo: SimVmo, offset: int, length: int) -> range:
        if offset < 0 or length < 0 or offset + length > vmo.size:
            raise KernelError(
                "ERR_OUT_OF_RANGE", f"[{offset:#x}, +{length:#x}) outside VMO of {vmo.size:#x}"
            )
        if length == 0:
            return range(0)  # an unaligned offset alone touches no page
        return range(offset // PAGE_SIZE, pages_for(offset + length))

    @syscall
    def vmo_write(self, vmo: SimVmo, offset: int, length: int) -> int:
        """Write ``length`` bytes at ``offset``: every touched page not yet in the VMO's
        own list is committed (for a clone, copied from its parent). Returns new pages."""
        self._check_alive(vmo)
        if vmo.physical:
            return 0
        pages = self._page_range(vmo, offset, length)
        if not pages:
            return 0
        span = ((1 << len(pages)) - 1) << pages.start
        new = span & ~vmo.pages
        count = new.bit_count()
        if count:
            self.pmm.alloc(vmo.page_state, count)
            self.sched.page_faults(count)
            vmo.pages |= new
        return count

    vmo_commit = vmo_write

    @syscall
    def vmo_decommit(self, vmo: SimVmo, offset: int, length: int) -> int:
        """Free the VMO's own pages in the range (a clone then sees its parent again)."""
        self._check_alive(vmo)
        pages = self._page_range(vmo, offset, length)
        if not pages:
            return 0
        span = ((1 << len(pages)) - 1) << pages.start
        gone = (vmo.pages & span).bit_count()
        vmo.pages &= ~span
        self.pmm.release(vmo.page_state, gone)
        return gone

    @syscall
    def vmo_set_size(self, vmo: SimVmo, size: int) -> None:
        """Resize; shrinking frees the pages past the new end."""
        self._check_alive(vmo)
        if size < 0:
            raise KernelError("ERR_INVALID_ARGS", "negative size")
        if vmo.physical or vmo.parent is not None:
            raise KernelError("ERR_NOT_SUPPORTED", "only plain paged VMOs can be resized")
        keep = pages_for(size)
        gone = (vmo.pages >> keep).bit_count()
        vmo.pages &= (1 << keep) - 1
        self.pmm.release(vmo.page_state, gone)
        vmo.size = size

    @syscall
    def vmo_set_name(self, vmo: SimVmo, name: str) -> None:
        self._check_alive(vmo)
        vmo.name = name

    @syscall
    def kernel_release(self, vmo: SimVmo) -> None:
        """Drop a reference the kernel held (``owner=KERNEL`` at creation)."""
        if vmo.kernel_refs <= 0:
            raise KernelError("ERR_BAD_STATE", f"kernel holds no reference to VMO {vmo.koid}")
        vmo.kernel_refs -= 1
        self._maybe_destroy_vmo(vmo)

    def _maybe_destroy_vmo(self, vmo: SimVmo) -> None:
        # An object lives while a handle, a mapping, a clone or the kernel refers to it.
        while vmo is not None and vmo.alive and vmo.refs() == 0:
            vmo.alive = False
            self.pmm.release(vmo.page_state, vmo.committed_pages)
            vmo.pages = 0
            self._heap_free(HEAP_COST["vmo"])
            del self.vmos[vmo]
            parent = vmo.parent
            if parent is None:
                return
            parent.children.remove(vmo)
            vmo = parent

    # ----------------------------------------------------------------- VMARs and mappings

    def _insert(self, vmar: SimVmar, child: SimVmar | SimMapping) -> None:
        i = bisect.bisect_left(vmar.starts, child.base)
        vmar.starts.insert(i, child.base)
        vmar.children.insert(i, child)
        if isinstance(child, SimMapping):
            child.vmo.mappings.append(child)

    def _remove(self, vmar: SimVmar, child: SimVmar | SimMapping) -> None:
        i = vmar.children.index(child)
        del vmar.children[i]
        del vmar.starts[i]

    def _place(self, vmar: SimVmar, addr: int | None, size: int) -> int:
        """Check ``[addr, addr+size)`` is free in ``vmar``, or find the lowest free gap."""
        if size <= 0 or size % PAGE_SIZE:
            raise KernelError("ERR_INVALID_ARGS", "size must be a positive page multiple")
        if not vmar.alive:
            raise KernelError("ERR_BAD_STATE", "VMAR destroyed")
        if addr is not None:
            if addr % PAGE_SIZE or addr < vmar.base or addr + size > vmar.end:
                raise KernelError("ERR_INVALID_ARGS", f"{addr:#x}+{size:#x} outside the VMAR")
            i = bisect.bisect_right(vmar.starts, addr)
            if i > 0 and vmar.children[i - 1].end > addr:
                raise KernelError("ERR_NO_MEMORY", f"{addr:#x} overlaps an existing region")
            if i < len(vmar.children) and vmar.children[i].base < addr + size:
                raise KernelError("ERR_NO_MEMORY", f"{addr:#x} overlaps an existing region")
            return addr
        cursor = vmar.base
        for child in vmar.children:
            if child.base - cursor >= size:
                return cursor
            cursor = max(cursor, child.end)
        if vmar.end - cursor >= size:
            return cursor
        raise KernelError("ERR_NO_MEMORY", "no room in the VMAR")

    @syscall
    def vmar_allocate(
        self,
        parent: SimVmar,
        size: int,
        *,
        addr: int | None = None,
        name: str = "useralloc",
        koid: int | None = None,
    ) -> SimVmar:
        """A sub-region of ``parent`` (at ``addr``, or the lowest free gap)."""
        base = self._place(parent, addr, size)
        self._charge("vmar", koid=koid)
        vmar = SimVmar(self._koid(koid), parent.aspace, parent, base, size, name)
        self._insert(parent, vmar)
        return vmar

    @shootdown_syscall
    def vmar_destroy(self, vmar: SimVmar) -> None:
        """Unmap everything in the region and remove it."""
        if vmar.parent is None:
            raise KernelError("ERR_ACCESS_DENIED", "the root VMAR goes with its process")
        if not vmar.alive:
            raise KernelError("ERR_BAD_STATE", "VMAR already destroyed")
        self._remove(vmar.parent, vmar)
        self._destroy_vmar(vmar)

    def _destroy_vmar(self, vmar: SimVmar) -> None:
        for child in list(vmar.children):
            if isinstance(child, SimVmar):
                self._destroy_vmar(child)
            else:
                self._drop_mapping(child)
        vmar.children.clear()
        vmar.starts.clear()
        vmar.alive = False
        self._heap_free(HEAP_COST["vmar"])

    @syscall
    def vmar_map(
        self,
        vmar: SimVmar,
        vmo: SimVmo,
        *,
        vmo_offset: int = 0,
        size: int | None = None,
        perms: int = Perm.READ | Perm.WRITE,
        addr: int | None = None,
    ) -> SimMapping:
        """Map ``[vmo_offset, vmo_offset+size)`` of ``vmo`` into ``vmar``."""
        self._check_alive(vmo)
        if size is None:
            size = pages_for(vmo.size - vmo_offset) * PAGE_SIZE
        if vmo_offset % PAGE_SIZE or vmo_offset < 0:
            raise KernelError("ERR_INVALID_ARGS", "VMO offset must be page aligned")
        base = self._place(vmar, addr, size)
        aspace = vmar.aspace
        tables = aspace.table_delta(base, size, +1)
        self._charge("mapping", extra_pages=tables)
        if tables:
            self.pmm.alloc(PageState.MMU, tables)
            aspace.mmu_pages += tables
        aspace.apply_tables(base, size, +1)
        mapping = SimMapping(vmar, base, size, int(perms), vmo, vmo_offset)
        self._insert(vmar, mapping)
        return mapping

    def _drop_mapping(self, mapping: SimMapping) -> None:
        mapping.alive = False
        aspace = mapping.aspace
        tables = aspace.table_delta(mapping.base, mapping.size, -1)
        aspace.apply_tables(mapping.base, mapping.size, -1)
        self.pmm.release(PageState.MMU, tables)
        aspace.mmu_pages -= tables
        self._heap_free(HEAP_COST["mapping"])
        vmo = mapping.vmo
        vmo.mappings.remove(mapping)
        self._maybe_destroy_vmo(vmo)

    def _split(self, mapping: SimMapping, at: int) -> SimMapping:
        """Split a mapping at ``at``; returns the upper part (a new mapping, listed last
        on the VMO as the kernel's split does)."""
        self._charge("mapping")
        upper = SimMapping(
            mapping.vmar,
            at,
            mapping.end - at,
            mapping.perms,
            mapping.vmo,
            mapping.vmo_offset + (at - mapping.base),
        )
        # Each half holds its own reference on the page tables it touches, so a table
        # both halves use survives unmapping either one. No table page is added or freed.
        aspace = mapping.aspace
        aspace.apply_tables(mapping.base, mapping.size, -1)
        mapping.size = at - mapping.base
        aspace.apply_tables(mapping.base, mapping.size, +1)
        aspace.apply_tables(upper.base, upper.size, +1)
        self._insert(mapping.vmar, upper)
        return upper

    def _mappings_in(self, vmar: SimVmar, addr: int, size: int) -> list[SimMapping]:
        """Mappings of ``vmar`` (not of sub-regions) inside ``[addr, addr+size)``, split at
        the range's edges."""
        if addr % PAGE_SIZE or size <= 0 or size % PAGE_SIZE:
            raise KernelError("ERR_INVALID_ARGS", "range must be page aligned")
        end = addr + size
        if addr < vmar.base or end > vmar.end:
            raise KernelError("ERR_INVALID_ARGS", "range outside the VMAR")
        for child in vmar.children:
            if isinstance(child, SimVmar) and child.base < end and addr < child.end:
                raise KernelError("ERR_INVALID_ARGS", "range covers a sub-region")
        self._reserve("mapping", "mapping")  # up to two splits
        out: list[SimMapping] = []
        for child in list(vmar.children):
            if not isinstance(child, SimMapping) or child.end <= addr or child.base >= end:
                continue
            if child.base < addr:
                child = self._split(child, addr)
            if child.end > end:
                self._split(child, end)
            out.append(child)
        return out

    @shootdown_syscall
    def vmar_unmap(self, vmar: SimVmar, addr: int, size: int) -> None:
        """Unmap a range (whole or partial mappings) of ``vmar``."""
        for mapping in self._mappings_in(vmar, addr, size):
            self._remove(vmar, mapping)
            self._drop_mapping(mapping)

    @shootdown_syscall
    def vmar_protect(self, vmar: SimVmar, addr: int, size: int, perms: int) -> None:
        """Change the permissions of a range (whole or partial mappings) of ``vmar``."""
        for mapping in self._mappings_in(vmar, addr, size):
            mapping.perms = int(perms)

    # ----------------------------------------------------------------- time

    @property
    def clock_ns(self) -> int:
        """Nanoseconds since boot; only :meth:`run` moves it (operations take no time)."""
        return self.sched.clock_ns

    def run(self, seconds: float) -> None:
        """Let ``seconds`` pass with the threads as they are (scheduler model: sim/cpu.py)."""
        self.sched.run(
            seconds,
            (
                t.state
                for p in self.walk_processes()
                if p.state is not ProcessState.DEAD
                for t in p.threads
            ),
        )

    # ----------------------------------------------------------------- figures

    def kmem(self) -> dict[str, int]:
        """``MX_INFO_KMEM_STATS``: page-state counts times the page size."""
        c = self.pmm.counts
        heap_total = c[PageState.HEAP] * PAGE_SIZE
        total = self.pmm.total_pages * PAGE_SIZE
        fields = {
            "total_bytes": total,
            "free_bytes": c[PageState.FREE] * PAGE_SIZE,
            "wired_bytes": c[PageState.WIRED] * PAGE_SIZE,
            "heap_total_bytes": heap_total,
            "heap_free_bytes": heap_total - self.heap_allocated,
            "vmo_bytes": c[PageState.OBJECT] * PAGE_SIZE,
            "mmu_bytes": c[PageState.MMU] * PAGE_SIZE,
        }
        # "other" is whatever is in no named state (Magenta: ALLOC and the rest).
        fields["other_bytes"] = total - sum(
            v for k, v in fields.items() if k not in ("total_bytes", "heap_free_bytes")
        )
        return fields

    def walk_processes(self) -> list[SimProcess]:
        """Every process, in walker order."""
        out: list[SimProcess] = []
        stack = [self.root_job]
        while stack:
            job = stack.pop()
            out.extend(job.processes)
            stack.extend(reversed(job.jobs))
        return out
