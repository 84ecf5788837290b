"""The Linux kernel's address space (``k mx asd kernel``) and its own memory as
kernel-only memory objects (koid 0 rows of ``k mx vmos hidden|all``), for the host
source; the kernel's memory by use and CPU counters are :mod:`.kernel`'s.

Kernel address space (x86-64)
=============================

``as 'kernel'`` spans the upper half, ``[0xffff800000000000, 2**64)``. Its regions are
the documented 4-level layout (Documentation/arch/x86/x86_64/mm.rst), at their default
bases: with KASLR (CONFIG_RANDOMIZE_MEMORY) the kernel moves the direct map, vmalloc and
vmemmap bases at boot, and nothing in ``/proc`` tells where to:

* ``physmap`` — a mapping of the direct map, at 0xffff888000000000, of a physical object
  as large as RAM (the end of the highest ``System RAM`` range of ``/proc/iomem``, else
  ``MemTotal``);
* ``vmalloc`` (32 TiB at 0xffffc90000000000) — the areas of ``/proc/vmallocinfo`` (root
  only). Runs of consecutive areas of one caller are one mapping (103 thread stacks of
  ``kernel_clone`` in a row are one line, not 103); a caller's areas are one kernel-only
  VMO ``vmalloc:CALLER`` (``vmap:``, for areas that map pages allocated by someone else),
  whose committed pages are the areas' ``pages=N``; each ``ioremap`` area is its own
  physical object at ``phys=``. Lazily freed (``unpurged``) and ``vm_map_ram`` areas
  hold no pages of their own and are left out. When the kernel hashes the addresses
  (``kptr_restrict`` 0), the areas are packed from the region's start in the file's
  (address) order, each followed by its guard page, and a note says so;
* ``vmemmap`` (1 TiB at 0xffffea0000000000) and ``cpu_entry_area`` — empty regions;
* ``kernel_image`` (1 GiB at 0xffffffff80000000) — the kernel's code, rodata, data and
  bss: their physical ranges in ``/proc/iomem``, placed relative to ``_text`` of
  ``/proc/kallsyms`` (else at ``__START_KERNEL_map`` + the physical address), as
  mappings of one ``kernel image`` VMO;
* ``modules`` (0xffffffffc0000000 to 0xffffffffff000000) — one mapping per line of
  ``/proc/modules`` (when its addresses are shown), of a ``module:NAME`` VMO.

Other architectures get no kernel address space (a note says so), but the same kernel
VMOs.

Kernel VMOs
===========

Besides the objects the address space maps, the memory ``/proc/meminfo`` attributes to
the kernel itself is listed as kernel-only VMOs, size = committed = the meminfo figure:
``[slab reclaimable]``, ``[slab unreclaimable]``, ``[page tables]``, ``[secondary page
tables]`` (when not 0), ``[percpu]`` and ``[kernel stacks]`` (with CONFIG_VMAP_STACK the
stacks are also the ``vmalloc:kernel_clone`` areas: this list is not a sum). Without a
readable ``vmallocinfo`` one ``[vmalloc]`` VMO stands for ``VmallocUsed``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import NamedTuple

from mxmem.model import ASPACE_NOTE, Aspace, Mapping, Perm, Vmar, Vmo
from mxmem.sources.linux.kernel import unreadable_why
from mxmem.sources.linux.reader import ProcReader, Unreadable
from mxmem.sources.linux.sysfiles import (
    IomemRange,
    KernelModule,
    VmallocArea,
    caller_function,
    parse_iomem,
    parse_kallsyms_text,
    parse_modules,
    parse_vmallocinfo,
)

__all__ = ["KernelSpace", "KoidOf", "kernel_space", "kernel_vmos", "read_kernel_space"]

KoidOf = Callable[[tuple[object, ...]], int]


ASPACE_BASE = 0xFFFF800000000000
ASPACE_SIZE = 1 << 47
PHYSMAP_BASE = 0xFFFF888000000000
PHYSMAP_SPAN = 64 << 40
KERNEL_MAP_BASE = 0xFFFFFFFF80000000  # __START_KERNEL_map
# (name, base, size) of the regions that are VMARs, by default base (mm.rst, 4-level).
# The image region is KERNEL_IMAGE_SIZE: 1 GiB with CONFIG_RANDOMIZE_BASE (the default
# since 4.12); modules follow it up to MODULES_END.
_REGIONS: tuple[tuple[str, int, int], ...] = (
    ("vmalloc", 0xFFFFC90000000000, 32 << 40),
    ("vmemmap", 0xFFFFEA0000000000, 1 << 40),
    ("cpu_entry_area", 0xFFFFFE0000000000, 1 << 39),
    ("kernel_image", KERNEL_MAP_BASE, 1 << 30),
    ("modules", 0xFFFFFFFFC0000000, 0xFFFFFFFFFF000000 - 0xFFFFFFFFC0000000),
)
_IMAGE_SECTIONS = {
    "Kernel code": Perm.READ | Perm.EXECUTE,
    "Kernel rodata": Perm.READ,
    "Kernel data": Perm.READ | Perm.WRITE,
    "Kernel bss": Perm.READ | Perm.WRITE,
}
_RW = int(Perm.READ | Perm.WRITE)
_GIB = 1 << 30

# Kernel-only memory /proc/meminfo attributes to the kernel itself: (name, fields).
_MEMINFO_VMOS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("[slab reclaimable]", ("SReclaimable",)),
    ("[slab unreclaimable]", ("SUnreclaim",)),
    ("[page tables]", ("PageTables",)),
    ("[secondary page tables]", ("SecPageTables",)),
    ("[percpu]", ("Percpu",)),
    ("[kernel stacks]", ("KernelStack",)),
)


def _page_up(n: int, page: int) -> int:
    return -(-n // page) * page


def kernel_vmos(meminfo: dict[str, int], koid_of: KoidOf, *, vmalloc: bool) -> list[Vmo]:
    """The kernel-only VMOs of ``/proc/meminfo`` (module docstring); ``vmalloc`` adds the
    ``[vmalloc]`` stand-in for when ``/proc/vmallocinfo`` gave no areas."""
    out: list[Vmo] = []
    table = _MEMINFO_VMOS + ((("[vmalloc]", ("VmallocUsed",)),) if vmalloc else ())
    for name, fields in table:
        if not all(f in meminfo for f in fields):
            continue
        size = sum(meminfo[f] for f in fields)
        if size == 0 and name == "[secondary page tables]":
            continue  # no KVM guests or IOMMU tables: not worth a row
        out.append(
            Vmo(koid_of(("kernel", name)), name, size, size, kernel_only=True, num_mappings=0)
        )
    return out


class KernelSpace(NamedTuple):
    """The kernel address space (``None`` where the layout is unknown), every kernel VMO
    in listing order (the ones it maps first), and notes about the kernel address space
    (each starting with :data:`ASPACE_NOTE`; the snapshot's ``kernel_aspace_notes``)."""

    aspace: Aspace | None
    vmos: list[Vmo]
    notes: list[str]


class _Builder:
    """Accumulates kernel VMOs (in order) and the mappings of each region."""

    def __init__(self, koid_of: KoidOf) -> None:
        self.koid_of = koid_of
        self.vmos: dict[int, Vmo] = {}
        self.mappings: dict[str, list[Mapping]] = {}

    def vmo(
        self, key: tuple[object, ...], name: str, *, physical: bool = False, phys_base: int = 0
    ) -> int:
        """The koid of the VMO ``key`` names, created empty on first use."""
        koid = self.koid_of(("kernel", *key))
        if koid not in self.vmos:
            self.vmos[koid] = Vmo(
                koid, name, 0, 0, kernel_only=True, physical=physical, phys_base=phys_base
            )
        return koid

    def map(
        self, region: str, base: int, size: int, perms: int, koid: int, offset: int, committed: int
    ) -> None:
        """A mapping of ``size`` bytes at ``base`` in ``region`` ("" for the root VMAR) of
        the VMO at ``offset``, ``committed`` bytes of it in RAM (none for a physical VMO,
        which maps device or firmware ranges rather than pages of its own)."""
        vmo = self.vmos[koid]
        own = 0 if vmo.physical else committed
        self.vmos[koid] = vmo._replace(
            num_mappings=vmo.num_mappings + 1,
            size_bytes=max(vmo.size_bytes, offset + size),
            committed_bytes=vmo.committed_bytes + own,
        )
        self.mappings.setdefault(region, []).append(
            Mapping(base, size, perms, koid, offset, own, vmo.name)
        )


def _ram_span(iomem: Sequence[IomemRange], meminfo: dict[str, int]) -> int:
    ends = [r.end + 1 for r in iomem if r.depth == 0 and r.name == "System RAM" and r.end]
    if ends:
        return max(ends)
    return _page_up(meminfo.get("MemTotal", 0), 2 << 20)


def _image(
    b: _Builder, iomem: Sequence[IomemRange], text: int | None, page: int, region: tuple[int, int]
) -> None:
    sections = [r for r in iomem if r.name in _IMAGE_SECTIONS and r.end]
    code = next((r for r in sections if r.name == "Kernel code"), None)
    if code is None:
        return
    # _text maps the code's first byte; without it assume phys_base 0 (no relocation).
    start = text if text is not None else KERNEL_MAP_BASE + code.start
    koid = b.vmo(("image",), "kernel image")
    for r in sorted(sections, key=lambda r: r.start):
        base = (start + r.start - code.start) // page * page
        end = _page_up(start + r.end + 1 - code.start, page)
        if base < region[0] or end > region[0] + region[1] or end <= base:
            continue
        b.map(
            "kernel_image",
            base,
            end - base,
            int(_IMAGE_SECTIONS[r.name]),
            koid,
            base - start,
            end - base,
        )


def _modules(
    b: _Builder, modules: Sequence[KernelModule], page: int, region: tuple[int, int]
) -> None:
    for m in modules:
        if not region[0] <= m.address < region[0] + region[1]:
            continue
        koid = b.vmo(("module", m.name), f"module:{m.name}")
        size = _page_up(m.size, page)
        # Text and data together: the flags are the text's.
        b.map("modules", m.address, size, int(Perm.READ | Perm.EXECUTE), koid, 0, size)


def _vmalloc(
    b: _Builder,
    areas: Sequence[VmallocArea],
    regions: dict[str, tuple[int, int]],
    page: int,
    skip_modules: bool,
) -> int:
    """Map the areas; returns how many lie outside every region."""
    real = all(a.real_address for a in areas)
    cursor = regions["vmalloc"][0]
    outside = 0
    offsets: dict[int, int] = {}  # vmo koid -> bytes mapped so far
    i = 0
    while i < len(areas):
        first = areas[i]
        func = caller_function(first.caller) or "?"
        j = i + 1
        if first.kind != "ioremap":
            while (
                j < len(areas)
                and areas[j].kind == first.kind
                and caller_function(areas[j].caller) == caller_function(first.caller)
            ):
                j += 1
        run = areas[i:j]
        index, i = i, j
        span = run[-1].start + run[-1].size - first.start if real else sum(a.size for a in run)
        base = first.start if real else cursor
        cursor += span
        # Every area is followed by a guard page; the last one's is not mapped.
        size = span - page if span > page else span
        region = next(
            (name for name, (lo, n) in regions.items() if lo <= base and base + size <= lo + n),
            None,
        )
        if region is None or (skip_modules and region == "modules"):
            outside += region is None
            continue
        committed = sum(a.pages for a in run) * page
        if first.kind == "ioremap":
            koid = b.vmo(
                ("ioremap", first.phys or 0, index),
                f"ioremap:{func}",
                physical=True,
                phys_base=first.phys or 0,
            )
        else:
            koid = b.vmo((first.kind, func), f"{first.kind}:{func}")
        offset = offsets.get(koid, 0)
        offsets[koid] = offset + size
        b.map(region, base, size, _RW, koid, offset, committed)
    return outside


def kernel_space(
    *,
    machine: str,
    meminfo: dict[str, int],
    koid_of: KoidOf,
    page_size: int,
    vmalloc: Sequence[VmallocArea] | None,
    iomem: Sequence[IomemRange],
    text: int | None,
    modules: Sequence[KernelModule] | None,
    vmalloc_reason: str | None = None,
) -> KernelSpace:
    """The kernel address space and VMOs from parsed files (``vmalloc`` is ``None`` when
    ``/proc/vmallocinfo`` could not be read, for ``vmalloc_reason``)."""
    notes: list[str] = []
    areas = [a for a in vmalloc or () if a.kind not in ("unpurged", "vm_map_ram")]
    meminfo_vmos = kernel_vmos(meminfo, koid_of, vmalloc=not areas)
    if machine != "x86_64":
        notes.append(f"{ASPACE_NOTE}the layout is known for x86-64 only, not {machine}")
        return KernelSpace(None, meminfo_vmos, notes)
    b = _Builder(koid_of)
    span = min(_ram_span(iomem, meminfo), PHYSMAP_SPAN)
    physmap = b.vmo(("physmap",), "physmap", physical=True, phys_base=0)
    b.map("", PHYSMAP_BASE, span, _RW, physmap, 0, 0)
    regions = {name: (base, size) for name, base, size in _REGIONS}
    _image(b, iomem, text, page_size, regions["kernel_image"])
    listed_modules = [m for m in modules or () if m.address]
    _modules(b, listed_modules, page_size, regions["modules"])
    if vmalloc is None:
        notes.append(
            f"{ASPACE_NOTE}the vmalloc region is shown empty: /proc/vmallocinfo"
            f" {vmalloc_reason or 'cannot be read'}"
        )
    elif areas:
        real = all(a.real_address for a in areas)
        if real:
            _fit_vmalloc(regions, areas, meminfo)
        else:
            notes.append(
                f"{ASPACE_NOTE}the kernel hides vmalloc addresses (kptr_restrict 0 hashes"
                " them): areas are packed from the region's start in their order"
            )
    if vmalloc is None or not areas or not all(a.real_address for a in areas):
        notes.append(
            f"{ASPACE_NOTE}regions are at x86-64's documented default bases; KASLR may"
            " have moved the direct map, vmalloc and vmemmap"
        )
    if areas:
        outside = _vmalloc(b, areas, regions, page_size, bool(listed_modules))
        if outside:
            notes.append(f"{ASPACE_NOTE}{outside} vmalloc areas lie outside the known regions")
    root_children: list[Vmar | Mapping] = list(b.mappings.get("", ()))
    for name, (base, size) in regions.items():
        children = sorted(b.mappings.get(name, ()), key=lambda m: m.base)
        root_children.append(
            Vmar(
                koid=koid_of(("kernel-vmar", name)),
                name=name,
                base=base,
                size=size,
                children=tuple(children),
            )
        )
    root_children.sort(key=lambda c: c.base)
    root = Vmar(
        koid=koid_of(("kernel-vmar", "root")),
        name="root",
        base=ASPACE_BASE,
        size=ASPACE_SIZE,
        children=tuple(root_children),
    )
    aspace = Aspace(name="kernel", base=ASPACE_BASE, size=ASPACE_SIZE, root=root)
    return KernelSpace(aspace, [*b.vmos.values(), *meminfo_vmos], notes)


def _fit_vmalloc(
    regions: dict[str, tuple[int, int]], areas: Sequence[VmallocArea], meminfo: dict[str, int]
) -> None:
    """With real addresses, move the vmalloc region to where the areas are when KASLR put
    it elsewhere, dropping the default regions it would overlap."""
    fixed = ("kernel_image", "modules")
    loose = [
        a.start
        for a in areas
        if not any(regions[f][0] <= a.start < regions[f][0] + regions[f][1] for f in fixed)
    ]
    base, size = regions["vmalloc"]
    if not loose or all(base <= s < base + size for s in loose):
        return
    new_base = min(loose) // _GIB * _GIB
    new_size = meminfo.get("VmallocTotal", size) or size
    # Never past the fixed regions above it (nor the end of the address space).
    limit = min([regions[f][0] for f in fixed if regions[f][0] > new_base] + [1 << 64])
    new_size = min(new_size, limit - new_base)
    for name in [n for n in regions if n not in fixed and n != "vmalloc"]:
        lo, n = regions[name]
        if lo < new_base + new_size and new_base < lo + n:
            del regions[name]
    regions["vmalloc"] = (new_base, new_size)


def read_kernel_space(reader: ProcReader, meminfo: dict[str, int], koid_of: KoidOf) -> KernelSpace:
    """:func:`kernel_space` of the host: ``/proc/vmallocinfo`` (root only, ~6 ms),
    ``/proc/iomem``, the head of ``/proc/kallsyms`` and ``/proc/modules``."""
    proc = reader.proc
    vmalloc: list[VmallocArea] | None = None
    reason: str | None = None
    try:
        vmalloc = parse_vmallocinfo(reader.read_all(f"{proc}/vmallocinfo"))
    except (Unreadable, ValueError) as err:
        reason = unreadable_why(err)
    iomem: list[IomemRange] = []
    with contextlib.suppress(Unreadable, ValueError):
        iomem = parse_iomem(reader.read_all(f"{proc}/iomem"))
    text: int | None = None
    with contextlib.suppress(Unreadable, ValueError):
        # _text is among the first lines (after the per-CPU symbols at 0).
        text = parse_kallsyms_text(reader.read_head(f"{proc}/kallsyms", 1 << 18))
    modules: list[KernelModule] | None = None
    with contextlib.suppress(Unreadable, ValueError):
        modules = parse_modules(reader.read_all(f"{proc}/modules"))
    return kernel_space(
        machine=reader.machine(),
        meminfo=meminfo,
        koid_of=koid_of,
        page_size=reader.page_size(),
        vmalloc=vmalloc,
        iomem=iomem,
        text=text,
        modules=modules,
        vmalloc_reason=reason,
    )
