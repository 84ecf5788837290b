"""VMOs of the simulated kernel: creating, cloning, committing and freeing their pages.

A VMO owns the committed pages in its own page list. A copy-on-write clone sees its
parent's pages until it writes one, which copies it into the clone; until then the page
is counted for the parent only, as in 2017.
"""

from __future__ import annotations

from mxmem.errors import KernelError
from mxmem.model import Rights
from mxmem.sources.sim.cpu import syscall
from mxmem.sources.sim.handles import HandleOps
from mxmem.sources.sim.memory import HEAP_COST
from mxmem.sources.sim.objects import Owner, SimVmo
from mxmem.sources.sim.pmm import PAGE_SIZE, pages_for

__all__ = ["VmoOps"]


class VmoOps(HandleOps):
    """The VMO operations."""

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
        # _check_alive and _page_range, inlined for the common case: worlds write a lot.
        if not vmo.alive:
            self._check_alive(vmo)
        if vmo.paddr is not None:
            return 0
        end = offset + length
        if offset < 0 or length < 0 or end > vmo.size:
            self._page_range(vmo, offset, length)  # raises ERR_OUT_OF_RANGE
        if length == 0:
            return 0
        first = offset // PAGE_SIZE
        span = ((1 << (-(-end // PAGE_SIZE) - first)) - 1) << first
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
