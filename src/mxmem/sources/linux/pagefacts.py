"""Page-level facts of the live Linux host, for exact attribution (issue 6).

``HostSource.snapshot(Level.PAGES)`` is the whole-system ``Level.FULL`` snapshot plus
the :class:`~mxmem.model.PageFacts` this module gathers. It only gathers facts; the rules
that turn them into bytes per process live in :mod:`mxmem.accounting.exact`.

With root (``/proc/kpagecount`` readable, PFNs visible in ``pagemap``): page-level truth
=======================================================================================

* **Which pages.** Every readable process's VMAs come from ``/proc/PID/maps`` and its
  pages from ``/proc/PID/pagemap`` (8 bytes per page), read with its other files on one
  thread per CPU (``status`` and ``maps`` instead of ``smaps_rollup`` and ``smaps``, see
  :mod:`.pagereads`; the reads are page-table walks in the kernel, which release the GIL).
  A VMA of more than 512 pages is first asked about with ``PAGEMAP_SCAN`` (Linux 6.7:
  an ioctl on the pagemap file, whose walk skips what has no page tables and VM_PFNMAP
  VMAs): one without pages is not read, one with pages is read from its first present
  page on, and one of more than 256 MiB (a reservation of gigabytes) only where its
  present ranges are. Ranges less than 1024 pages apart are read in one ``preadv`` (a
  hole's entry costs ~5 ns, a read ~6 us), the entries between them dropped. Without
  ``PAGEMAP_SCAN`` (ENOTTY/EINVAL), VMAs are read whole, but a process with a VMA of more
  than 256 MiB reads its ``smaps``, and such a VMA is read in pieces of 4 GiB of
  addresses only until smaps' ``Rss`` of pages with a mapcount has been found (a heap or
  reservation fills from its start), and not at all if smaps found none. An entry is a
  page in RAM when bit 63 is set; bits 0-54 are its PFN; bit 61 says the page is a file
  or shared-anonymous (shmem) page rather than a private anonymous one. Swapped entries
  (bit 62) are not RAM: swap comes from ``SwapPss``. Left out of the facts: VM_PFNMAP/
  VM_IO mappings (device memory, not RAM the allocator manages), the ``[vdso]``/
  ``[vvar]`` pages (the kernel's; read for the mappings' figures only) and hugetlb
  mappings (their pages belong to the hugetlb pool, see below).
* **Zero page.** ``/proc/kpagecount`` is read for the PFNs found, and only those: the
  sorted distinct PFNs are coalesced into runs (gaps of up to 16 entries read
  through), one ``pread`` per run, on another thread while the pairs below are worked
  out. A PFN whose count is 0 is the shared zero page or the huge zero page (or a page
  freed since, or a VM_PFNMAP frame): not memory anyone uses, left out.
* **The figures of mappings** (:func:`page_table`). From the same entries and counts,
  each VMA's Rss (its pages with a count), private (count 1) and shared pages and its
  Pss (each page divided by its count in smaps' fixed point: ``(4096 << 12) // count``,
  the sum shifted right by 12), exactly as ``fs/proc/task_mmu.c`` ``smaps_account``
  computes them, but truncated once to a byte where smaps truncates to a KiB; a
  process's are their sums (as ``smaps_rollup``'s). Processes whose ``smaps`` was read
  keep its figures (SwapPss, hugetlb).
* **Who uses a page.** The distinct processes that map it: a page mapped twice by one
  process (a file mapped twice, a KSM page merged within one process) has that process
  once. The work is vectorised: every entry is one 64-bit key ``PFN << b | field``, the
  field numbering the VMAs of all processes in pid order (x 2, + bit 61), sorted once;
  pages used by one process are counted with ``bincount``, and pages used by several
  are grouped by their set of users through a 64-bit hash of the set, every group then
  checked member by member against its first page, so a hash collision cannot merge two
  patterns (``np.unique`` is avoided: numpy 2.4 answers it with a hash table, 70 times
  slower than a sort on 4 M PFNs). Processes sharing one address space (CLONE_VM) are
  read once, under the lower pid, as the FULL snapshot counts them.
* **Which VMO.** A file or shmem page (bit 61) is reached through the VMA's VMO, the same
  object for every mapper. An anonymous page is given the VMO of the lowest-pid mapper's
  (lowest) VMA: pages still shared copy-on-write after a fork count to the parent's region, and a
  child's copies to its own. KSM pages are anonymous pages mapped by several processes:
  split equally among them like any shared page (counted in a note, from ``kpageflags``
  ``KPF_KSM``, when KSM has merged pages).
* **Descriptors.** For a memory object (memfd, a file on tmpfs or ``/dev/shm``, a SysV
  segment, MAP_SHARED anonymous memory, a dma-buf) the processes holding a descriptor to it
  are users of every page of it, as are its mappers. Its resident pages that nobody maps —
  ``Vmo.committed_bytes`` (``cachestat(2)``; SysV: the segment's ``rss``; dma-buf: its
  size) minus the distinct pages seen mapped — are attributed to its descriptor holders,
  or to its mappers if nobody holds a descriptor. An object that no readable process holds
  or maps stays in ``shmem/tmpfs not held``.
* **Kernel memory a process causes.** Page tables: ``VmPTE`` of ``/proc/PID/status``
  (one figure per address space, so CLONE_VM sharers count it once). Kernel stacks:
  threads x the kernel stack size, which is ``THREAD_SIZE`` (16 KiB on x86-64 and arm64;
  32 KiB with KASAN). ``/proc`` does not print it, so it is derived: ``KernelStack`` of
  ``/proc/meminfo`` divided by the number of tasks, rounded to the nearest power of two
  (measured: 1344 kB over 85 tasks = 15.8 KiB, so 16 KiB; the idle tasks of the CPUs have
  stacks but no ``/proc`` entry, hence not exact). Kernel threads, zombies and processes
  that could not be read are given none: their stacks and page tables are in
  ``kernel stacks (not attributed)`` and ``page tables (not attributed)``.
* **Swap.** Each process's ``SwapPss`` (``PageFacts.process_swap``), not RAM.
* **Hugetlb.** Each process is given the ``Private_Hugetlb`` of its hugetlb mappings
  (as an estimated figure); the rest of the pool (``Hugetlb``: reserved whether used or
  not) is the category ``hugetlb pool``.

Memory no process is blamed for (``PageFacts.categories``, from ``/proc/meminfo`` read
right after the page reads; each clamped at 0, with a note when the pages read exceed the
kernel's counter):

===============================  ========================================================
category                         ``/proc/meminfo``
===============================  ========================================================
free                             MemFree
page cache not mapped            Cached - Shmem - file pages attributed
shmem/tmpfs not held             Shmem - shmem pages attributed (mapped or held)
anonymous memory not attributed  AnonPages - anonymous pages attributed (processes that
                                 could not be read, e.g. PID 1 in a container; pages
                                 that changed between the reads)
buffers                          Buffers
swap cache                       SwapCached - the mapped anonymous pages in it (they are
                                 in AnonPages too; ``kpageflags`` KPF_SWAPCACHE)
kernel slab (reclaimable)        SReclaimable
kernel slab (unreclaimable)      SUnreclaim
kernel stacks (not attributed)   KernelStack - the stacks attributed
page tables (not attributed)     PageTables - the page tables attributed
secondary page tables            SecPageTables (KVM, IOMMU)
per-cpu                          Percpu
vmalloc                          VmallocUsed - KernelStack (CONFIG_VMAP_STACK puts the
                                 stacks in both), or VmallocUsed when smaller
hugetlb pool                     Hugetlb - the Private_Hugetlb attributed
zswap pool                       Zswap
===============================  ========================================================

What is left (``Attribution.residual``) is memory the kernel allocated without a counter
in ``/proc/meminfo`` (drivers' ``alloc_pages``, e.g. virtio rings and network buffers),
free pages waiting on the per-CPU lists (not in ``MemFree``), dma-buf exporters' memory
nobody holds, balloon pages, and pages that changed between the reads. Memory reserved at
boot (firmware, the kernel image, the ``struct page`` arrays) is outside ``MemTotal``, so
not in it. Measured on the 2-CPU, 24 GiB development VM (Linux 6.18), idle: a residual of
41-47 MiB, equal within 1 MiB to what ``/proc/meminfo``'s own counters leave of
``MemTotal`` (read just before and after), i.e. the page-level reads account for every
page the counters do; with other work running, both move together (100-200 MiB).

Pages that changed between the reads are the one cause the scan can see: it reads
``/proc/meminfo`` before the pages, once they are read and after (:mod:`.categories`),
and when a counter the categories use moved by more than 32 MiB meanwhile (a process
allocating or freeing), :class:`~.host.HostSource` scans again, three scans at most; a
note line says what moved (a process freeing 768 MiB mid-scan gave residuals from -333.8
to +250 MiB before this).

Without root: approximate
=========================

When ``/proc/kpagecount`` cannot be read, or ``pagemap`` shows PFNs as 0 (no
CAP_SYS_ADMIN), each readable process gets its PSS from ``smaps_rollup`` (+
``Private_Hugetlb``) as an estimated figure, memory objects held by descriptors and mapped
by nobody are attributed to their holders page by page, and the categories are computed
as above with the processes' ``Pss_Anon``/``Pss_File``/``Pss_Shmem`` in place of the
pages attributed. ``PageFacts.exact`` is False and a note says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from mxmem.model import (
    KERNEL_STACKS,
    PAGE_TABLES,
    PageFacts,
    PageUse,
    Process,
    ProcessState,
    Vmo,
)
from mxmem.sources.linux.categories import (
    Tally,
    counter_moves,
    meminfo_categories,
    moved_note,
    read_meminfo,
    residual_note,
)
from mxmem.sources.linux.pagekinds import DMABUF, HUGETLB, MEMORY_OBJECTS
from mxmem.sources.linux.pagetable import PageTable
from mxmem.sources.linux.pageusers import Grouped, add_pages, group_pages
from mxmem.sources.linux.procfs import kb_fields, parse_status
from mxmem.sources.linux.reader import ProcReader, Unreadable

__all__ = ["PagesRead", "host_page_facts", "stack_size"]

_DEFAULT_STACK = 16 << 10  # THREAD_SIZE on x86-64 and arm64 without KASAN


def stack_size(kernel_stack_bytes: int, tasks: int) -> int:
    """THREAD_SIZE, from ``KernelStack`` and the number of tasks: the power of two
    nearest to their ratio (between 4 KiB and 64 KiB); 16 KiB without figures."""
    if kernel_stack_bytes <= 0 or tasks <= 0:
        return _DEFAULT_STACK
    ratio = kernel_stack_bytes / tasks
    return min((1 << k for k in range(12, 17)), key=lambda size: abs(size - ratio) / size)


# --- what the host scan hands over -----------------------------------------------------


class _Plan(NamedTuple):
    """The processes to read and who holds or maps each memory object."""

    pids: list[int]  # readable processes, ascending; a duplicate mm is read once
    holders: dict[int, set[int]]  # memory object koid -> pids holding a descriptor
    mappers: dict[int, set[int]]  # memory object koid -> pids mapping it
    hugetlb: dict[int, int]  # pid -> Private_Hugetlb of its hugetlb mappings
    hugetlb_mapped: bool


def _plan(
    processes: Mapping[int, Process],
    kinds: Mapping[int, str],
    duplicates: Mapping[int, int],
    vmos_of: Mapping[int, Sequence[int]],
) -> _Plan:
    """``vmos_of``: the VMOs of the mappings of processes without hugetlb pages (their
    figures are from their pages), which spares walking their address spaces."""
    pids: list[int] = []
    holders: dict[int, set[int]] = {}
    mappers: dict[int, set[int]] = {}
    hugetlb: dict[int, int] = {}
    hugetlb_mapped = False
    for pid in sorted(processes):
        process = processes[pid]
        if not _readable(process):
            continue
        owner = duplicates.get(pid, pid)  # a CLONE_VM sharer's everything goes to the lower pid
        if pid not in duplicates:
            pids.append(pid)
        for handle in process.handles or ():
            if kinds.get(handle.koid) in MEMORY_OBJECTS:
                holders.setdefault(handle.koid, set()).add(owner)
        if pid in duplicates or process.aspace is None:
            continue
        known = vmos_of.get(pid)
        if known is not None:
            for koid in set(known):
                kind = kinds.get(koid)
                if kind in MEMORY_OBJECTS:
                    mappers.setdefault(koid, set()).add(pid)
                elif kind == HUGETLB:
                    hugetlb_mapped = True  # (no hugetlb pages: no Private_Hugetlb)
            continue
        for m in process.aspace.mappings():
            kind = kinds.get(m.vmo_koid)
            if kind in MEMORY_OBJECTS:
                mappers.setdefault(m.vmo_koid, set()).add(pid)
            elif kind == HUGETLB:
                hugetlb_mapped = True
                if m.stats is not None and m.stats.private_bytes:
                    hugetlb[pid] = hugetlb.get(pid, 0) + m.stats.private_bytes
    return _Plan(pids, holders, mappers, hugetlb, hugetlb_mapped)


def _readable(process: Process) -> bool:
    return (
        not process.kernel_thread
        and process.state is ProcessState.RUNNING
        and process.unreadable is None
        and process.aspace is not None
    )


# --- kernel costs ------------------------------------------------------------------------


def _kernel_costs(
    reader: ProcReader,
    processes: Mapping[int, Process],
    pids: Sequence[int],
    duplicates: Mapping[int, int],
    kernel_stack: int,
    page_tables: Mapping[int, int],
) -> dict[int, dict[str, int]]:
    """Page tables and kernel stacks of the readable processes (CLONE_VM sharers' under
    the lower pid); ``page_tables``: the VmPTE of processes whose status was read with
    their pages (the others' status is read here)."""
    tasks = sum(len(p.threads) for p in processes.values() if p.state is not ProcessState.DEAD)
    stack = stack_size(kernel_stack, tasks)
    costs: dict[int, dict[str, int]] = {}
    for pid in pids:
        pte = page_tables.get(pid)
        if pte is None:
            try:
                pte = parse_status(reader.read(f"{reader.proc}/{pid}/status")).vm_pte
            except (Unreadable, ValueError):
                continue  # exited since the scan
        costs[pid] = {PAGE_TABLES: pte, KERNEL_STACKS: len(processes[pid].threads) * stack}
    for dup, rep in duplicates.items():
        if rep in costs and dup in processes:
            costs[rep][KERNEL_STACKS] += len(processes[dup].threads) * stack
    return costs


# --- the two paths ---------------------------------------------------------------------


class PagesRead(NamedTuple):
    """What the host scan read of the processes' pages (see :func:`.pagetable.page_table`)."""

    table: PageTable
    pids: list[int]  # the processes read, in the table's order (ascending)
    span_koids: list[list[int]]  # per process, per span: the VMO it maps
    page_tables: dict[int, int]  # pid -> VmPTE, from the status read with its pages
    vmos_of: dict[int, list[int]]  # pid -> the VMO of each VMA (figures from the pages)


def _exact(
    reader: ProcReader,
    read: PagesRead,
    vmos: Mapping[int, Vmo],
    kinds: Mapping[int, str],
    plan: _Plan,
    swap_cached: bool,
) -> Grouped:
    """Pages of every process read, grouped; and the objects nobody maps."""
    page = reader.page_size()
    grouped = group_pages(
        reader, read.table, read.pids, read.span_koids, kinds, plan.holders, swap_cached, page
    )
    unread = len(set(plan.pids) - set(read.pids))
    if unread:
        grouped.notes.append(
            f"the pagemap of {unread} process{'es' if unread != 1 else ''} could not be read:"
            " their memory is in the categories"
        )
    _unmapped_objects(grouped, vmos, kinds, plan.holders, plan.mappers, page)
    return grouped


def _unmapped_objects(
    grouped: Grouped,
    vmos: Mapping[int, Vmo],
    kinds: Mapping[int, str],
    holders: Mapping[int, set[int]],
    mappers: Mapping[int, set[int]],
    page: int,
) -> None:
    """The resident pages of memory objects that nobody maps, given to their descriptor
    holders (or, held by nobody, to their mappers)."""
    for koid in sorted(holders.keys() | mappers.keys()):
        vmo = vmos.get(koid)
        who = holders.get(koid) or mappers.get(koid)
        if vmo is None or not who:
            continue
        resident = vmo.committed_bytes
        if vmo.size_bytes:
            resident = min(resident, vmo.size_bytes)
        extra = resident // page - grouped.mapped.get(koid, 0)
        if extra <= 0:
            continue
        add_pages(grouped.pages, PageUse(koid, tuple(sorted(who))), extra)
        if kinds.get(koid) == DMABUF:
            grouped.tally.dmabuf += extra * page
        else:
            grouped.tally.shmem += extra * page


def _approximate(
    vmos: Mapping[int, Vmo],
    kinds: Mapping[int, str],
    plan: _Plan,
    rollups: Mapping[int, str],
    page: int,
) -> tuple[Grouped, dict[int, int]]:
    """Without page-level reads: each process's PSS, and the objects held by descriptors
    that no readable process maps, page by page."""
    grouped = Grouped({}, Tally(), {}, [])
    estimated: dict[int, int] = {}
    tally = grouped.tally
    for pid in plan.pids:
        fields = kb_fields(rollups.get(pid, "").split("\n")[1:])
        if "Pss" not in fields:
            continue
        hugetlb = fields.get("Private_Hugetlb", 0)
        estimated[pid] = fields["Pss"] + hugetlb
        tally.hugetlb += hugetlb
        if "Pss_Anon" not in fields:  # before Linux 5.8: no split; taken as anonymous
            tally.anon += fields["Pss"]
            continue
        tally.anon += fields["Pss_Anon"]
        tally.file += fields.get("Pss_File", 0)
        tally.shmem += fields.get("Pss_Shmem", 0)
    held_only = {k: v for k, v in plan.holders.items() if k not in plan.mappers}
    _unmapped_objects(grouped, vmos, kinds, held_only, {}, page)
    return grouped, estimated


# --- entry point -------------------------------------------------------------------------


def host_page_facts(
    reader: ProcReader,
    processes: Mapping[int, Process],
    vmos: Mapping[int, Vmo],
    kinds: Mapping[int, str],
    duplicates: Mapping[int, int],
    rollups: Mapping[int, str],
    read: PagesRead | None,
    refused: str | None = None,
    readings: Sequence[Mapping[str, int]] = (),
    earlier: Sequence[Mapping[str, int]] = (),
) -> tuple[PageFacts, dict[str, int]]:
    """The page facts of the host, from its whole-system snapshot's ``processes`` and
    ``vmos`` and the pages ``read`` (None: approximate, for the reason ``refused``);
    ``kinds`` maps VMO koids to the kinds above, ``duplicates`` a CLONE_VM sharer's pid
    to the lower pid it shares with, ``rollups`` pids to the text of their
    ``smaps_rollup`` (for the approximate path). ``readings``: ``/proc/meminfo`` read
    before and while the pages were read, ``earlier``: how the counters moved in the
    scans before this one (see :func:`.categories.counter_moves`). Returns the facts and
    how the counters moved during this scan (empty: they held still)."""
    page = reader.page_size()
    plan = _plan(processes, kinds, duplicates, read.vmos_of if read is not None else {})
    meminfo = read_meminfo(reader)
    why = refused
    estimated: dict[int, int] = {}
    attributed = plan.pids
    if read is not None:
        grouped = _exact(reader, read, vmos, kinds, plan, meminfo.get("SwapCached", 0) > 0)
        attributed = read.pids
        estimated = dict(plan.hugetlb)
        grouped.tally.hugetlb += sum(plan.hugetlb.values())
    else:
        why = why or "page-level reads were not made"
        grouped, estimated = _approximate(vmos, kinds, plan, rollups, page)
    # meminfo again, right after the page reads: the categories are differences with it.
    meminfo = read_meminfo(reader) or meminfo
    kernel = _kernel_costs(
        reader,
        processes,
        attributed,
        duplicates,
        meminfo.get("KernelStack", 0),
        read.page_tables if read is not None else {},
    )
    notes = list(grouped.notes)
    if why is not None:
        notes.insert(
            0,
            f"approximate: {why}; each process is given its PSS from smaps_rollup (a page"
            " shared with n mappings divided by n, not by distinct processes), plus the"
            " memory objects it holds by descriptor that no process maps; processes that"
            " cannot be read are in the categories",
        )
    elif plan.hugetlb_mapped:
        notes.append(
            "hugetlb mappings are not read page by page: each process is given its"
            " Private_Hugetlb, the rest of the pool is the category hugetlb pool"
        )
    categories = meminfo_categories(meminfo, grouped.tally, kernel, notes)
    moves = counter_moves([*readings, meminfo]) if readings and meminfo else {}
    moved = moved_note(moves, earlier)
    if moved is not None:
        notes.append(moved)
    notes.append(residual_note(meminfo))
    swap = {
        pid: p.stats.swap_pss_bytes
        for pid in attributed
        if (p := processes[pid]).stats is not None and p.stats.swap_pss_bytes
    }
    facts = PageFacts(
        total_bytes=meminfo.get("MemTotal", 0),
        page_size=page,
        pages=grouped.pages,
        process_kernel={pid: {k: v for k, v in c.items() if v} for pid, c in kernel.items()},
        process_estimated={pid: v for pid, v in estimated.items() if v},
        process_swap=swap,
        categories=categories,
        exact=why is None,
        notes=tuple(notes),
    )
    return facts, moves
