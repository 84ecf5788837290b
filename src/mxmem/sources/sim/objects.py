"""The simulated kernel's objects: jobs, processes, threads, handles, VMOs, VMARs,
mappings and address spaces, and where address spaces lie.

Objects refer to each other directly. The memory rules they carry are the 2017 kernel's
(reference specification, §5): a VMO's committed pages are only those in its *own* page
list, and ``share_count`` counts distinct address spaces once a VMO has two or more
mappings. The operations that create and change them are the kernel's (``kernel.py``).
"""

from __future__ import annotations

from mxmem.model import ObjType, ProcessState, ThreadState
from mxmem.sources.sim.pmm import PAGE_SIZE, PageState, pages_for

__all__ = [
    "KERNEL",
    "KERNEL_ASPACE_BASE",
    "KERNEL_ASPACE_SIZE",
    "USER_ASPACE_BASE",
    "USER_ASPACE_SIZE",
    "KObject",
    "KernelRef",
    "Owner",
    "SimAspace",
    "SimHandle",
    "SimJob",
    "SimMapping",
    "SimProcess",
    "SimThread",
    "SimVmar",
    "SimVmo",
]

# The user address space of a Magenta process (x86-64): the doc's vmaps shows
# ________01000000-00007ffffffff000.
USER_ASPACE_BASE = 0x1000000
USER_ASPACE_SIZE = 0x7FFFFFFFF000 - USER_ASPACE_BASE
KERNEL_ASPACE_BASE = 0xFFFFFF8000000000
KERNEL_ASPACE_SIZE = 0x8000000000


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
            first, end = base >> shift, last >> shift
            if first == end:  # the common case, without building a range
                n = counts.get(first, 0) + sign
                if n:
                    counts[first] = n
                else:
                    del counts[first]
                continue
            for block in range(first, end + 1):
                n = counts.get(block, 0) + sign
                if n:
                    counts[block] = n
                else:
                    del counts[block]


class KernelRef:
    """Marker passed as ``owner`` for objects held by the kernel itself."""


KERNEL = KernelRef()
Owner = SimProcess | KernelRef | None
