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

The kernel is built in layers, one module each: physical pages (``pmm.py``), the objects
(``objects.py``), the kernel's memory accounting (``memory.py``), then the operations on
handles (``handles.py``), VMOs (``vmos.py``), address spaces (``vmars.py``) and tasks
(``tasks.py``). This module boots it (the kernel's own address space), keeps its clock
and reports its memory figures.
"""

from __future__ import annotations

from mxmem.errors import KernelError
from mxmem.model import Perm, ProcessState
from mxmem.sources.sim.cpu import Scheduler
from mxmem.sources.sim.memory import HEAP_CHUNK_PAGES, HEAP_COST
from mxmem.sources.sim.objects import (
    KERNEL,
    KERNEL_ASPACE_BASE,
    KERNEL_ASPACE_SIZE,
    USER_ASPACE_BASE,
    USER_ASPACE_SIZE,
    KernelRef,
    KObject,
    Owner,
    SimAspace,
    SimHandle,
    SimJob,
    SimMapping,
    SimProcess,
    SimThread,
    SimVmar,
    SimVmo,
)
from mxmem.sources.sim.pmm import PAGE_SIZE, PageState, Pmm, pages_for
from mxmem.sources.sim.tasks import TaskOps

# The kernel's parts live beside it; their names stay importable from here.
__all__ = [
    "HEAP_CHUNK_PAGES",
    "HEAP_COST",
    "KERNEL",
    "KERNEL_ASPACE_BASE",
    "KERNEL_ASPACE_SIZE",
    "KERNEL_IMAGE_BASE",
    "KERNEL_IMAGE_SEGMENTS",
    "PAGE_SIZE",
    "PHYSMAP_SIZE",
    "USER_ASPACE_BASE",
    "USER_ASPACE_SIZE",
    "KObject",
    "Kernel",
    "KernelRef",
    "Owner",
    "PageState",
    "Pmm",
    "SimAspace",
    "SimHandle",
    "SimJob",
    "SimMapping",
    "SimProcess",
    "SimThread",
    "SimVmar",
    "SimVmo",
    "pages_for",
]

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


class Kernel(TaskOps):
    """The simulated kernel: boots with a physical memory size and a root job.

    Its operations come from its bases, one module each: tasks (``tasks.py``), address
    spaces (``vmars.py``), VMOs (``vmos.py``), handles (``handles.py``), on the kernel's
    memory accounting (``memory.py``).
    """

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
