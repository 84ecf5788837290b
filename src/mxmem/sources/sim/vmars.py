"""Address spaces of the simulated kernel: VMARs, mappings, and their page tables.

A VMAR's children (sub-regions and mappings) are kept sorted by base address. Mapping a
range costs page-table pages (``SimAspace.table_delta``), which unmapping gives back;
unmapping or protecting part of a mapping splits it, as the kernel does.
"""

from __future__ import annotations

import bisect

from mxmem.errors import KernelError
from mxmem.model import Perm
from mxmem.sources.sim.cpu import shootdown_syscall, syscall
from mxmem.sources.sim.memory import HEAP_COST
from mxmem.sources.sim.objects import SimMapping, SimVmar, SimVmo
from mxmem.sources.sim.pmm import PAGE_SIZE, PageState, pages_for
from mxmem.sources.sim.vmos import VmoOps

__all__ = ["AddressSpaceOps"]


class AddressSpaceOps(VmoOps):
    """The VMAR and mapping operations."""

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
        if not vmo.alive:
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
