"""The Linux kernel's own figures, as Magenta's tools show a kernel: memory by use
(``kstats -m``, memgraph's ``kernel/*`` records), per-CPU counters (``kstats -c``), the
kernel address space (``k mx asd kernel``) and kernel-only memory objects (koid 0 rows
of ``k mx vmos hidden|all``).

Kernel memory
=============

:func:`kernel_memory` maps ``/proc/meminfo`` (and ``/proc/slabinfo``) onto
:class:`~mxmem.model.KernelMemory`. The parts are disjoint and ``other`` is what they
leave of the total, so they always sum to ``total`` (unless the kernel's counters
overlap more than documented below: then ``other`` is 0 and a note says by how much the
parts exceed the total).

==============  =======================================================================
field           Linux source (``/proc/meminfo`` unless said otherwise)
==============  =======================================================================
total           ``MemTotal``: the RAM the page allocator manages (firmware-reserved
                memory, the kernel image and ``struct page`` arrays are not in it).
free            ``MemFree``.
vmo             ``AnonPages + Cached + Buffers``: memory of user memory objects —
                anonymous pages mapped by processes, the page cache including
                shmem/tmpfs/memfd/SysV (``Cached`` includes ``Shmem`` and leaves
                ``SwapCached`` out) and block-device buffers. ``SwapCached`` is not
                added: its mapped pages are already in ``AnonPages``.
heap_total      ``Slab`` (= ``SReclaimable + SUnreclaim``, the kmalloc/kmem_cache heap)
                + vmalloc'd memory: ``VmallocUsed - KernelStack`` when
                ``VmallocUsed >= KernelStack`` (CONFIG_VMAP_STACK, the x86-64/arm64
                default, allocates kernel stacks with vmalloc and ``KernelStack``
                counts them too), else ``VmallocUsed``.
heap_free       ``/proc/slabinfo`` (root only): Σ (num_objs - active_objs) * objsize,
                the free objects inside allocated slabs, capped at ``Slab``; 0 with a
                note when slabinfo cannot be read. vmalloc has no free part.
wired           ``KernelStack + Percpu + Hugetlb``: kernel stacks, per-CPU areas and the
                hugetlb pool (reserved whether used or not; not in ``Cached``).
mmu             ``PageTables + SecPageTables`` (secondary: KVM/IOMMU page tables).
ipc             0: socket buffers come from slab and page fragments counted elsewhere,
                and Linux has no separate counter for them.
other           ``total`` minus all of the above: pages drivers allocate without a
                counter, unmapped swap-cache pages, balloon pages (when counted in
                ``MemTotal``), pages in flight. Never negative.
==============  =======================================================================

CPU counters
============

:func:`cpu_stats`: per CPU, ``busy`` = user + nice + system + irq + softirq + steal and
``idle`` = idle + iowait from the ``cpuN`` lines of ``/proc/stat``; from
``/proc/interrupts``: ``interrupts`` = the numbered (device) IRQ lines except timers,
``timer_interrupts`` = the local timer (x86 ``LOC``) and numbered timer IRQs,
``reschedule_ipis`` = ``RES``, ``generic_ipis`` = ``CAL + TLB`` (arm64/riscv: the other
``IPIn`` lines); from ``/proc/schedstat`` when the kernel has CONFIG_SCHEDSTATS:
``context_switches`` = pcount (tasks switched in) and ``yields`` = yld_count. Linux
keeps no per-CPU page-fault, system-call, preemption, exception or timer-callback
counts: those are ``None``. The whole-system row (``Snapshot.cpu_total``) adds
``ctxt`` of ``/proc/stat`` and ``pgfault`` of ``/proc/vmstat``.

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

from mxmem.model import ASPACE_NOTE, Aspace, CpuStats, KernelMemory, Mapping, Perm, Vmar, Vmo
from mxmem.sources.linux.procfs import parse_meminfo, parse_slab_free
from mxmem.sources.linux.reader import AccessDenied, ProcReader, Unreadable, Vanished
from mxmem.sources.linux.sysfiles import (
    Interrupts,
    IomemRange,
    KernelModule,
    SchedCpu,
    SystemStat,
    VmallocArea,
    caller_function,
    parse_interrupts,
    parse_iomem,
    parse_kallsyms_text,
    parse_modules,
    parse_schedstat,
    parse_system_stat,
    parse_vmallocinfo,
    parse_vmstat,
)

__all__ = [
    "KernelFigures",
    "KernelSpace",
    "KoidOf",
    "cpu_stats",
    "kernel_memory",
    "kernel_space",
    "kernel_vmos",
    "memory_notes",
    "read_cpus",
    "read_kernel_memory",
    "read_kernel_space",
]

KoidOf = Callable[[tuple[object, ...]], int]


# --- kernel memory -------------------------------------------------------------------------


def _vmalloc_heap(meminfo: dict[str, int]) -> int:
    used = meminfo.get("VmallocUsed", 0)
    stacks = meminfo.get("KernelStack", 0)
    # With CONFIG_VMAP_STACK the stacks are vmalloc'd and in both counters; without it
    # VmallocUsed is usually still larger (then stacks are counted twice nowhere, and
    # this undercounts the heap by them, which lands in "other": never double counted).
    return used - stacks if used >= stacks else used


def kernel_memory(meminfo: dict[str, int], slab_free: int = 0) -> KernelMemory:
    """The kernel memory figures of ``/proc/meminfo`` (bytes), as the module's table
    says; ``slab_free`` is :func:`~.procfs.parse_slab_free` of ``/proc/slabinfo``."""
    get = meminfo.get
    total = get("MemTotal", 0)
    free = get("MemFree", 0)
    slab = get("Slab", get("SReclaimable", 0) + get("SUnreclaim", 0))
    heap_total = slab + _vmalloc_heap(meminfo)
    heap_free = min(max(slab_free, 0), slab)
    vmo = get("AnonPages", 0) + get("Cached", 0) + get("Buffers", 0)
    wired = get("KernelStack", 0) + get("Percpu", 0) + get("Hugetlb", 0)
    mmu = get("PageTables", 0) + get("SecPageTables", 0)
    other = max(0, total - (free + vmo + heap_total + wired + mmu))
    return KernelMemory(
        total_bytes=total,
        free_bytes=free,
        wired_bytes=wired,
        heap_total_bytes=heap_total,
        heap_free_bytes=heap_free,
        vmo_bytes=vmo,
        mmu_bytes=mmu,
        ipc_bytes=0,
        other_bytes=other,
        available_bytes=get("MemAvailable"),
    )


def memory_notes(kmem: KernelMemory) -> list[str]:
    """What a reader of :func:`kernel_memory`'s figures must know: only that the parts
    exceed the total when they do (the counters overlapped more than documented)."""
    excess = kmem.parts_sum() - kmem.total_bytes
    if excess <= 0:
        return []
    return [
        f"the kernel's memory counters add up to {excess} bytes more than MemTotal"
        " (they overlap); kernel/other is shown as 0"
    ]


class KernelFigures(NamedTuple):
    memory: KernelMemory
    meminfo: dict[str, int]
    notes: tuple[str, ...]


def read_kernel_memory(reader: ProcReader, *, slab: bool) -> KernelFigures | None:
    """:func:`kernel_memory` of the host; ``slab`` reads ``/proc/slabinfo`` for the heap's
    free part (root only, ~0.5 ms). ``None`` without a readable ``/proc/meminfo``."""
    try:
        meminfo = parse_meminfo(reader.read(f"{reader.proc}/meminfo"))
    except (Unreadable, ValueError):
        return None
    notes: list[str] = []
    slab_free = 0
    if slab:
        try:
            slab_free = parse_slab_free(reader.read_all(f"{reader.proc}/slabinfo"))
        except (Unreadable, ValueError) as err:
            notes.append(
                "the kernel heap's free part (kfree, kernel/heap/free) is unknown and shown"
                f" as 0: /proc/slabinfo {_why(err)}"
            )
    kmem = kernel_memory(meminfo, slab_free)
    notes.extend(memory_notes(kmem))
    return KernelFigures(kmem, meminfo, tuple(notes))


def _why(err: Exception) -> str:
    """Why a system-wide file could not be used, to end "/proc/NAME ..." in a note."""
    if isinstance(err, AccessDenied):
        return "is readable by root only"
    if isinstance(err, Vanished):
        return "does not exist on this kernel"
    if isinstance(err, Unreadable):
        return f"cannot be read: {err.reason}"
    return "is not in a format mxmem knows"


# --- CPU counters --------------------------------------------------------------------------


def _ns(ticks: int, clock_ticks: int) -> int:
    return ticks * 1_000_000_000 // clock_ticks


def cpu_stats(
    stat: SystemStat,
    interrupts: Interrupts | None,
    schedstat: dict[int, SchedCpu],
    vmstat: dict[str, int],
    clock_ticks: int,
) -> tuple[tuple[CpuStats, ...], CpuStats]:
    """Per-CPU counters and the whole system's (``cpu_number`` -1), as the module
    docstring maps them."""
    column = {cpu: i for i, cpu in enumerate(interrupts.cpus)} if interrupts else {}

    def irq(counts: tuple[int, ...] | None, cpu: int) -> int | None:
        i = column.get(cpu)
        return None if counts is None or i is None else counts[i]

    cpus: list[CpuStats] = []
    for times in stat.cpus:
        sched = schedstat.get(times.cpu)
        cpus.append(
            CpuStats(
                cpu_number=times.cpu,
                busy_ns=_ns(times.busy, clock_ticks),
                idle_ns=_ns(times.idle, clock_ticks),
                context_switches=sched.switches if sched else None,
                yields=sched.yields if sched else None,
                preempts=None,
                irq_preempts=None,
                exceptions=None,
                page_faults=None,
                syscalls=None,
                interrupts=irq(interrupts.device if interrupts else None, times.cpu),
                timer_interrupts=irq(interrupts.timer if interrupts else None, times.cpu),
                timer_callbacks=None,
                reschedule_ipis=irq(interrupts.reschedule if interrupts else None, times.cpu),
                generic_ipis=irq(interrupts.generic if interrupts else None, times.cpu),
            )
        )
    total = CpuStats(
        cpu_number=-1,
        busy_ns=_ns(stat.total.busy, clock_ticks),
        idle_ns=_ns(stat.total.idle, clock_ticks),
        context_switches=stat.context_switches,
        yields=sum(s.yields for s in schedstat.values()) if schedstat else None,
        preempts=None,
        irq_preempts=None,
        exceptions=None,
        page_faults=vmstat.get("pgfault"),
        syscalls=None,
        interrupts=sum(interrupts.device) if interrupts else None,
        timer_interrupts=sum(interrupts.timer) if interrupts else None,
        timer_callbacks=None,
        reschedule_ipis=sum(interrupts.reschedule) if interrupts else None,
        generic_ipis=sum(interrupts.generic) if interrupts else None,
    )
    return tuple(cpus), total


def read_cpus(reader: ProcReader) -> tuple[tuple[CpuStats, ...], CpuStats | None]:
    """:func:`cpu_stats` of the host (four world-readable files, ~0.3 ms); ``((), None)``
    without a readable ``/proc/stat``. Files with one line per record are read to their
    end (a ``read`` of a seq_file returns about a page of records)."""
    proc = reader.proc
    try:
        stat = parse_system_stat(reader.read(f"{proc}/stat"))
    except (Unreadable, ValueError):
        return (), None
    interrupts: Interrupts | None = None
    with contextlib.suppress(Unreadable, ValueError):
        interrupts = parse_interrupts(reader.read_all(f"{proc}/interrupts"))
    schedstat: dict[int, SchedCpu] = {}
    with contextlib.suppress(Unreadable, ValueError):
        schedstat = parse_schedstat(reader.read_all(f"{proc}/schedstat"))  # CONFIG_SCHEDSTATS
    vmstat: dict[str, int] = {}
    with contextlib.suppress(Unreadable, ValueError):
        vmstat = parse_vmstat(reader.read_all(f"{proc}/vmstat"))
    return cpu_stats(stat, interrupts, schedstat, vmstat, reader.clock_ticks())


# --- kernel VMOs and the kernel address space ----------------------------------------------

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
        reason = _why(err)
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
