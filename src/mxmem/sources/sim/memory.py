"""The simulated kernel's own memory accounting: the PMM, the kernel heap, koids.

Kernel objects cost kernel heap (``HEAP_COST``); the heap grows from the PMM in chunks
and keeps what it took. Every operation reserves what it needs before it changes
anything, so a failed operation leaves the kernel as it was. A VMO nothing refers to any
more gives its pages back here. :class:`KernelMemory` is the base of
:class:`~mxmem.sources.sim.kernel.Kernel`; the operations build on it in ``handles.py``,
``vmos.py``, ``vmars.py`` and ``tasks.py``.
"""

from __future__ import annotations

from mxmem.errors import KernelError
from mxmem.sources.sim.cpu import Scheduler
from mxmem.sources.sim.objects import SimAspace, SimJob, SimVmo
from mxmem.sources.sim.pmm import PAGE_SIZE, PageState, Pmm

__all__ = ["HEAP_CHUNK_PAGES", "HEAP_COST", "KernelMemory"]

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


class KernelMemory:
    """The kernel's state and its bookkeeping: koids, heap, reservations."""

    # Set by Kernel.__init__ (kernel.py).
    pmm: Pmm
    next_koid: int
    next_kernel_id: int
    heap_allocated: int
    heap_pages: int
    heap_vmo: SimVmo
    vmos: dict[SimVmo, None]
    cpus: int
    sched: Scheduler
    kernel_aspace: SimAspace
    root_job: SimJob

    def _check_koid(self, koid: int | None) -> None:
        if koid is not None and koid < self.next_koid:
            raise KernelError(
                "ERR_INVALID_ARGS", f"koid {koid} already passed (next is {self.next_koid})"
            )

    def _koid(self, koid: int | None) -> int:
        if koid is None:
            koid = self.next_koid
        else:
            self._check_koid(koid)
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
        if self.heap_allocated + nbytes > self.heap_pages * PAGE_SIZE:  # it must grow
            grow = self._heap_need(nbytes)
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
        if koid is not None:
            self._check_koid(koid)
        nbytes = 0
        for key in keys:
            nbytes += HEAP_COST[key]
        # With room in the heap and no pages wanted, there is nothing that could fail.
        if extra_pages or self.heap_allocated + nbytes > self.heap_pages * PAGE_SIZE:
            self.pmm.check(self._heap_need(nbytes) + extra_pages)

    def _charge(self, key: str, extra_pages: int = 0, koid: int | None = None) -> None:
        """Allocate heap for one object, checking ``extra_pages`` more will fit too."""
        # _reserve + _heap_alloc, inlined: this runs for every object a world makes.
        if koid is not None:
            self._check_koid(koid)
        cost = HEAP_COST[key]
        if not extra_pages and self.heap_allocated + cost <= self.heap_pages * PAGE_SIZE:
            self.heap_allocated += cost  # the heap has room: nothing to check or grow
            return
        grow = self._heap_need(cost)
        self.pmm.check(grow + extra_pages)
        if grow:
            self._heap_alloc(cost)
        else:
            self.heap_allocated += cost

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
