"""Page-level facts of the live Linux host, for exact attribution (issue 6).

``HostSource.snapshot(Level.PAGES)`` is the whole-system ``Level.FULL`` snapshot plus
the :class:`~mxmem.model.PageFacts` this module gathers. It only gathers facts; the rules
that turn them into bytes per process live in :mod:`mxmem.accounting.exact`.

With root (``/proc/kpagecount`` readable, PFNs visible in ``pagemap``): page-level truth
=======================================================================================

* **Which pages.** Every readable process's VMAs come from ``/proc/PID/maps`` and its
  pages from ``/proc/PID/pagemap`` (8 bytes per page), read with its other files on one
  thread per CPU (``status`` and ``maps`` instead of ``smaps_rollup`` and ``smaps``, see
  :mod:`.host`; the reads are page-table walks in the kernel, which release the GIL).
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

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from mxmem.model import (
    KERNEL_STACKS,
    PAGE_TABLES,
    PageFacts,
    PageKey,
    PageUse,
    Process,
    ProcessState,
    Vmo,
)
from mxmem.sources.linux.parallel import in_background
from mxmem.sources.linux.procfs import MemFigures, kb_fields, parse_meminfo, parse_status
from mxmem.sources.linux.reader import AccessDenied, Pagemap, ProcReader, Unreadable

__all__ = [
    "ANON",
    "DMABUF",
    "FILE",
    "HUGETLB",
    "PHYSICAL",
    "SHMEM",
    "SPECIAL",
    "host_page_facts",
    "stack_size",
]

# What the host source's VMO kinds mean for page reads (``kinds`` of host_page_facts).
ANON = "anon"  # private anonymous memory of one VMA
FILE = "file"  # a file's page cache (regular files, devices)
SHMEM = "shmem"  # memfd, tmpfs/shm files, SysV segments, MAP_SHARED anonymous memory
DMABUF = "dmabuf"  # exporter memory, not in any /proc/meminfo counter
SPECIAL = "special"  # [vdso], [vvar]...: the kernel's pages
HUGETLB = "hugetlb"  # hugetlbfs and MAP_HUGETLB: pages of the hugetlb pool
PHYSICAL = "physical"  # VM_PFNMAP/VM_IO: device memory

_MEMORY_OBJECTS = frozenset({SHMEM, DMABUF})
_NOT_READ = frozenset({SPECIAL, HUGETLB, PHYSICAL})

_PRESENT = np.uint64(1 << 63)
_PFN_MASK = np.uint64((1 << 55) - 1)
_FILE_SHIFT = np.uint64(61)
_ONE = np.uint64(1)
_KPF_SWAPCACHE = 14
_KPF_KSM = 21
_ENTRY = 8  # bytes per pagemap / kpagecount / kpageflags entry
# kpagecount is read in runs: a gap of up to this many entries is read through. An
# entry costs the kernel ~110 ns (a struct page looked up and copied out), a read
# ~2 us: read through, 512 entries cost 57 us where two reads cost 4 (measured here).
_RUN_GAP = 16
# At most this many bytes of one process's pagemap in memory at once (8 Mi pages).
_BATCH_BYTES = 64 << 20
_PSS_SHIFT = 12  # smaps' fixed point for Pss (fs/proc/task_mmu.c PSS_SHIFT)
_DEFAULT_STACK = 16 << 10  # THREAD_SIZE on x86-64 and arm64 without KASAN

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]


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
            if kinds.get(handle.koid) in _MEMORY_OBJECTS:
                holders.setdefault(handle.koid, set()).add(owner)
        if pid in duplicates or process.aspace is None:
            continue
        known = vmos_of.get(pid)
        if known is not None:
            for koid in set(known):
                kind = kinds.get(koid)
                if kind in _MEMORY_OBJECTS:
                    mappers.setdefault(koid, set()).add(pid)
                elif kind == HUGETLB:
                    hugetlb_mapped = True  # (no hugetlb pages: no Private_Hugetlb)
            continue
        for m in process.aspace.mappings():
            kind = kinds.get(m.vmo_koid)
            if kind in _MEMORY_OBJECTS:
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


# --- reading pagemap -------------------------------------------------------------------

# A VMA of at most this many pages is read whole: asking PAGEMAP_SCAN first would cost
# about what reading its entries does.
_PROBE_PAGES = 512
# Up to this many pages (256 MiB), PAGEMAP_SCAN is asked for a VMA's first present page
# and the VMA is read from there to its end; above, for its present ranges, which are
# read alone (a reservation of gigabytes with a few pages in it).
_SCAN_PAGES = 1 << 16
# Ranges of pagemap at most this many pages apart are read as one (a hole's entries cost
# about 5 ns each; a read, about 6 us).
_GAP_PAGES = 1024
_GAP = 0xFFFFFFFF  # the field of entries read through between ranges: dropped
# Without PAGEMAP_SCAN, a VMA larger than _SCAN_PAGES is read in pieces of this many
# pages (8 MiB of pagemap, 4 GiB of addresses) until its resident pages are found.
_PIECE_PAGES = 1 << 20


class PageAccess(NamedTuple):
    """Page-level reads are possible (root: kpagecount readable, PFNs shown)."""

    scan: bool  # the kernel has PAGEMAP_SCAN (Linux 6.7)


def page_access(reader: ProcReader) -> PageAccess | str:
    """Whether page-level reads are possible, or why not: ``/proc/kpagecount`` must be
    readable and ``pagemap`` must show PFNs (CAP_SYS_ADMIN), which this process's own
    ``pagemap`` tells (the entry of a page it has just written)."""
    why = _kpagecount_refused(reader)
    if why is not None:
        return why
    probe = bytearray(reader.page_size())  # written (zero-filled) here: present
    address = id(probe)  # CPython: the object's address, inside the written heap page
    page = reader.page_size()
    try:
        with reader.pagemap("self") as pagemap:
            entry = int.from_bytes(pagemap.read([address // page * _ENTRY], [_ENTRY]), "little")
            scan = pagemap.present(address // page * page, address // page * page + page)
    except Unreadable as err:
        return f"pagemap cannot be read ({err.reason})"
    if entry < 1 << 63 or not entry & ((1 << 55) - 1):
        return "pagemap shows no page frame numbers (they need CAP_SYS_ADMIN)"
    return PageAccess(scan=scan is not None)


def needs_smaps_for(size: int, page: int, access: PageAccess) -> bool:
    """Whether a VMA of ``size`` bytes is too large to be read whole without
    PAGEMAP_SCAN to say where its pages are (then the process's ``smaps`` says which
    VMAs have any)."""
    return not access.scan and size // page > _SCAN_PAGES


class Entries(NamedTuple):
    """The pages in RAM (present entries) of one process's pagemap, in the order read."""

    pfn: U64
    field: npt.NDArray[np.uint32]  # the index of its span (VMA) * 2 + bit 61
    spans: int  # how many spans were asked for


def read_entries(
    pagemap: Pagemap,
    spans: Sequence[tuple[int, int]],
    page: int,
    scan: bool,
    resident: Sequence[int] | None = None,
    live: Callable[[U64], int] | None = None,
) -> Entries:
    """The present entries of ``spans`` (address ranges, ascending: the process's VMAs)
    of an open pagemap.

    With ``scan`` (PAGEMAP_SCAN), a VMA is read from its first present page on, or only
    its present ranges when it is very large; one without pages is not read. Without,
    a VMA larger than _SCAN_PAGES whose ``resident`` page count (smaps' Rss) is known
    is read piece by piece until that many pages with a mapcount (``live`` counts
    them among PFNs) are found: a heap or arena grows from its start, and a
    reservation of gigabytes is not read to its end for a few pages.

    Ranges less than _GAP_PAGES apart are read as one (the entries between them, of no
    VMA or of one not asked for, are dropped): a read costs more than that many
    entries of a hole. Raises :class:`Vanished` or :class:`Unreadable`. Safe to run on
    several threads at once, each with its own pagemap."""
    # The ranges to read: the spans themselves, but for those PAGEMAP_SCAN is asked
    # about (or, without it, the huge ones read apart).
    bounds = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    whole = np.ones(len(spans), dtype=bool)
    found_at: list[int] = []
    found_end: list[int] = []
    found_of: list[int] = []
    huge: list[int] = []
    lengths = (bounds[:, 1] - bounds[:, 0]) // page
    for i in np.flatnonzero(lengths > _PROBE_PAGES).tolist():
        start, end = spans[i]
        pages = (end - start) // page
        if scan:
            found = pagemap.present(start, end, limit=1 if pages <= _SCAN_PAGES else 0)
            if found is None:
                continue  # (read whole)
            if found and pages <= _SCAN_PAGES:
                found = [(found[0][0], end)]
            for a, b in found:
                found_at.append(a)
                found_end.append(b)
                found_of.append(i)
        elif pages > _SCAN_PAGES and resident is not None and live is not None:
            huge.append(i)
        else:
            continue
        whole[i] = False
    index = np.flatnonzero(whole)
    lo, hi = bounds[index, 0], bounds[index, 1]
    if found_at:
        lo = np.concatenate((lo, found_at))
        hi = np.concatenate((hi, found_end))
        index = np.concatenate((index, found_of))
        order = np.argsort(lo, kind="stable")
        lo, hi, index = lo[order], hi[order], index[order]
    offsets, sizes, fields_of, lengths_of = _plan_reads(lo // page, hi // page, 2 * index)
    pfns: list[U64] = []
    fields: list[npt.NDArray[np.uint32]] = []
    for batch in _batches(offsets, sizes, fields_of, lengths_of):
        entries = np.frombuffer(pagemap.read(batch[0], batch[1]), dtype=np.uint64)
        present = entries >= _PRESENT
        field = np.repeat(np.asarray(batch[2], dtype=np.uint32), batch[3])
        if _GAP in batch[2]:
            present &= field != _GAP
        values = entries[present]
        if not values.size:
            continue
        field = field[present]
        field |= ((values >> _FILE_SHIFT) & _ONE).astype(np.uint32)
        pfns.append(values & _PFN_MASK)
        fields.append(field)
    for i in huge:
        assert resident is not None and live is not None
        start, end = spans[i]
        counted = 0
        while start < end and counted < resident[i]:
            n = min((end - start) // page, _PIECE_PAGES)
            entries = np.frombuffer(pagemap.read([start // page * _ENTRY], [n * _ENTRY]), np.uint64)
            values = entries[entries >= _PRESENT]
            start += n * page
            if not values.size:
                continue
            counted += live(values & _PFN_MASK)
            pfns.append(values & _PFN_MASK)
            fields.append(((values >> _FILE_SHIFT) & _ONE).astype(np.uint32) | np.uint32(2 * i))
    if len(pfns) == 1:
        return Entries(pfns[0], fields[0], len(spans))
    if not pfns:
        return Entries(np.zeros(0, np.uint64), np.zeros(0, np.uint32), len(spans))
    return Entries(np.concatenate(pfns), np.concatenate(fields), len(spans))


def live_pages(reader: ProcReader) -> Callable[[U64], int]:
    """A counter of the entries (PFNs) whose kpagecount is not 0: pages smaps' Rss
    counts."""

    def count(pfns: U64) -> int:
        distinct = np.sort(pfns)
        distinct = distinct[np.concatenate(([True], distinct[1:] != distinct[:-1]))]
        mapped = _read_pfn_table(reader, f"{reader.proc}/kpagecount", distinct) > 0
        return int(np.count_nonzero(mapped[np.searchsorted(distinct, pfns)]))

    return count


Batch = tuple[list[int], list[int], list[int], list[int]]


def _plan_reads(start: I64, end: I64, owners: I64) -> Batch:
    """The reads of page ranges (ascending, not overlapping): ranges less than
    _GAP_PAGES apart are read as one, the entries between them given the field _GAP.
    Returns the pagemap offsets and sizes of the reads, and the field and the number of
    entries of each piece of them, in order."""
    if not start.size:
        return [], [], [], []
    gap = start[1:] - end[:-1]  # pages between a range and the one before
    joined = gap <= _GAP_PAGES  # (>= 0: in address order)
    first = np.flatnonzero(np.concatenate(([True], ~joined)))  # ranges that start a read
    last = np.append(first[1:] - 1, start.size - 1)
    offsets = (start[first] * _ENTRY).tolist()
    sizes = ((end[last] - start[first]) * _ENTRY).tolist()
    # The pieces: each range, after the hole before it when it is read through.
    hole = np.concatenate(([False], joined & (gap > 0)))
    at = np.arange(start.size) + np.cumsum(hole)  # each range's place among the pieces
    pieces = start.size + int(np.count_nonzero(hole))
    field = np.full(pieces, _GAP, dtype=np.int64)
    length = np.empty(pieces, dtype=np.int64)
    field[at] = owners
    length[at] = end - start
    length[at[hole] - 1] = gap[hole[1:]]
    return offsets, sizes, field.tolist(), length.tolist()


def _batches(
    offsets: list[int], sizes: list[int], owners: list[int], lengths: list[int]
) -> Iterable[Batch]:
    """The reads in batches of at most _BATCH_BYTES of entries (a large read split as
    needed), each as its offsets and sizes, and its ranges' fields and lengths."""
    cap = _BATCH_BYTES // _ENTRY
    if sum(sizes) <= _BATCH_BYTES:
        yield offsets, sizes, owners, lengths
        return
    batch: Batch = ([], [], [], [])
    used = 0
    ranges = iter(zip(owners, lengths, strict=True))
    for offset, size in zip(offsets, sizes, strict=True):
        fresh = True  # the read starts anew in this batch
        left = size // _ENTRY
        while left:
            owner, length = next(ranges)
            while length:
                n = min(length, cap - used)
                if fresh:
                    batch[0].append(offset)
                    batch[1].append(0)
                    fresh = False
                batch[1][-1] += n * _ENTRY
                batch[2].append(owner)
                batch[3].append(n)
                offset += n * _ENTRY
                used += n
                length -= n
                left -= n
                if used == cap:
                    yield batch
                    batch, used, fresh = ([], [], [], []), 0, True
    if batch[3]:
        yield batch


class PfnsHidden(Exception):
    """pagemap shows present pages with PFN 0: the caller lacks CAP_SYS_ADMIN."""


class _Sorted(NamedTuple):
    newpage: npt.NDArray[np.bool_]  # per entry: the first of its page
    page_at: I64  # per page: its first entry
    pfn: U64  # per page
    field: U64  # per entry


def _sort_entries(parts: Sequence[Entries], limit: int | None = None) -> _Sorted:
    """Every entry of every process sorted by (PFN, field), the fields numbered across
    processes (process k's spans after those of processes 0..k-1, so the order is PFN,
    then process, then span). One sortable 64-bit key ``PFN << fbits | field`` each
    while the PFNs leave room (they do unless the physical address space is very large:
    ``limit``, for a test, forces the other way), else a lexsort of the two arrays."""
    base: list[int] = []  # where each part's fields start
    offset = 0
    for part in parts:
        base.append(offset)
        offset += 2 * part.spans
    total = sum(p.pfn.size for p in parts)
    fbits = max(1, (2 * sum(p.spans for p in parts) - 1).bit_length())
    top = max((int(p.pfn.max()) for p in parts if p.pfn.size), default=0)
    if limit is None:
        limit = 1 << (64 - fbits)
    newpage = np.ones(total, dtype=bool)
    if top < limit:
        key = np.empty(total, dtype=np.uint64)
        at = 0
        shift = np.uint64(fbits)
        for part, first in zip(parts, base, strict=True):
            piece = key[at : at + part.pfn.size]
            np.left_shift(part.pfn, shift, out=piece)
            piece |= part.field.astype(np.uint64) + np.uint64(first)
            at += part.pfn.size
        key.sort()
        # A new page where the key's PFN bits change (one temporary array, no more).
        change = key[1:] ^ key[:-1]
        np.not_equal(np.right_shift(change, shift, out=change), 0, out=newpage[1:])
        del change
        page_at = np.flatnonzero(newpage)
        pfn = key[page_at] >> shift
        field = np.bitwise_and(key, np.uint64((1 << fbits) - 1), out=key)  # (in place)
        return _Sorted(newpage, page_at, pfn, field)
    pfn_e = np.concatenate([p.pfn for p in parts])
    field = np.concatenate(
        [p.field.astype(np.uint64) + np.uint64(o) for p, o in zip(parts, base, strict=True)]
    )
    order = np.lexsort((field, pfn_e))
    pfn_e, field = pfn_e[order], field[order]
    np.not_equal(pfn_e[1:], pfn_e[:-1], out=newpage[1:])
    page_at = np.flatnonzero(newpage)
    return _Sorted(newpage, page_at, pfn_e[page_at], field)


#: A span's figures from its pages: (Rss, Pss, private) in bytes (Pss truncated to a
#: byte; shared = Rss - private).
PageFigures = tuple[int, int, int]


class PageTable(NamedTuple):
    """The pages read from every process's pagemap, each once, with its kpagecount."""

    pfn: U64  # per page, ascending
    mapcount: U64  # per page: kpagecount (how many times it is mapped; 0: not memory)
    entries: I64  # per page: how many entries of the processes read map it
    first: I64  # per page: its first (page, process) pair
    users: I64  # per page: how many of the processes read map it
    field: U64  # per page: the field (span * 2 + bit 61) of its lowest-pid mapper's lowest span
    proc: npt.NDArray[np.int32]  # per pair: the process (its index in the reads)
    figures: list[list[PageFigures]]  # per process, per span: its pages' figures
    process_figures: list[MemFigures]  # per process: the sums (as smaps_rollup's)


def page_table(reader: ProcReader, parts: Sequence[Entries], limit: int | None = None) -> PageTable:
    """Sort the entries read (``parts``: one per process, in ascending pid order), read
    the kpagecount of each distinct page, and work out each span's figures as smaps
    would show them (raises PfnsHidden when every PFN reads as 0)."""
    page = reader.page_size()
    newpage, page_at, pfn, field_e = _sort_entries(parts, limit)
    n = field_e.size
    starts = np.cumsum([0] + [p.spans for p in parts], dtype=np.int64)
    nspans = int(starts[-1])
    if n and not int(pfn[-1]):
        raise PfnsHidden
    # The kpagecount entries are read (the kernel's work, without the GIL) while the
    # (page, process) pairs are worked out here: half of them on each of two threads.
    path = f"{reader.proc}/kpagecount"
    half = pfn.size // 2
    counted = [
        in_background(lambda: _read_pfn_table(reader, path, pfn[:half])),
        in_background(lambda: _read_pfn_table(reader, path, pfn[half:])),
    ]
    entries = np.diff(np.append(page_at, n))
    page_field = field_e[page_at]
    span_e = np.right_shift(field_e, _ONE, out=field_e).view(np.int64)  # (in place)
    del field_e
    # The pairs: a page mapped twice by one process has it once. Spans are numbered in
    # process order, so a process's entries of a page are adjacent.
    proc_of_span = np.repeat(np.arange(len(parts), dtype=np.int32), np.diff(starts))
    proc_e = proc_of_span[span_e]
    pair = newpage
    pair[1:] |= proc_e[1:] != proc_e[:-1]
    repeats = np.flatnonzero(~pair)  # entries of a page its process mapped already: few
    del pair
    if repeats.size:
        pair_proc = np.delete(proc_e, repeats)
        first = page_at - np.searchsorted(repeats, page_at)
    else:
        pair_proc, first = proc_e, page_at
    del proc_e, repeats
    users = np.diff(np.append(first, pair_proc.size))
    count = np.concatenate([wait() for wait in counted])
    # The figures of each span, as smaps computes them (fs/proc/task_mmu.c
    # smaps_account): Rss counts the pages with a mapcount (not the zero page, not
    # VM_PFNMAP frames); a page mapped once is private, else shared; Pss adds each page
    # divided by its mapcount in fixed point (12 bits of fraction, truncated per page),
    # here truncated to bytes once (smaps truncates the sum to KiB).
    # Per page, then repeated to its entries: whether it counts, whether it is private,
    # its Pss in fixed point.
    live = count > 0
    weight = np.uint64(page << _PSS_SHIFT) // np.maximum(count, _ONE)
    weight[~live] = 0
    rss = np.bincount(span_e, minlength=nspans)
    dead = np.repeat(~live, entries)
    if dead.any():
        rss -= np.bincount(span_e[dead], minlength=nspans)
    del dead
    private = np.bincount(span_e[np.repeat(count == 1, entries)], minlength=nspans)
    if n < 1 << (53 - 2 * _PSS_SHIFT):
        # Every sum stays below 2**53: exact in float64.
        pss = np.bincount(span_e, weights=np.repeat(weight, entries), minlength=nspans)
        pss = pss.astype(np.int64)
    else:  # in two halves of 12 bits, each exact
        high = np.repeat(weight >> np.uint64(_PSS_SHIFT), entries)
        pss = np.bincount(span_e, weights=high, minlength=nspans).astype(np.int64)
        del high
        low = np.repeat(weight & np.uint64((1 << _PSS_SHIFT) - 1), entries)
        pss <<= _PSS_SHIFT
        pss += np.bincount(span_e, weights=low, minlength=nspans).astype(np.int64)
    del span_e
    figures = _figures(rss, pss, private, starts, page)
    # A process's: the sums over its spans (its Pss truncated once, as smaps_rollup's).
    rss_p, pss_p, private_p = (_sums(a, starts).tolist() for a in (rss, pss, private))
    process_figures = [
        # pagemap cannot tell clean pages from dirty ones: counted as clean (only the
        # sums are used)
        MemFigures(
            rss=r * page, pss=s >> _PSS_SHIFT, private_clean=p * page, shared_clean=(r - p) * page
        )
        for r, s, p in zip(rss_p, pss_p, private_p, strict=True)
    ]
    return PageTable(
        pfn,
        count,
        entries,
        first.astype(np.int64),
        users,
        page_field,
        pair_proc,
        figures,
        process_figures,
    )


def _sums(values: I64, starts: I64) -> I64:
    """The sums of ``values[starts[k]:starts[k + 1]]``, for each k."""
    return np.diff(np.concatenate(([0], np.cumsum(values)))[starts])


def _figures(rss: I64, pss: I64, private: I64, starts: I64, page: int) -> list[list[PageFigures]]:
    """The figures of each span (pages; Pss in smaps' fixed point), per process (its
    spans from ``starts[k]`` to ``starts[k + 1]``)."""
    columns = ((rss * page).tolist(), (pss >> _PSS_SHIFT).tolist(), (private * page).tolist())
    every = list(zip(*columns, strict=True))
    return [every[lo:hi] for lo, hi in itertools.pairwise(starts.tolist())]


def _read_pfn_table(reader: ProcReader, path: str, pfns: U64) -> U64:
    """Entries of ``/proc/kpagecount`` (or ``kpageflags``) for the sorted distinct
    ``pfns``, read in coalesced runs."""
    if not pfns.size:
        return np.zeros(0, dtype=np.uint64)
    breaks = np.flatnonzero(np.diff(pfns) > _RUN_GAP) + 1
    first = np.concatenate(([0], breaks))
    last = np.concatenate((breaks - 1, [pfns.size - 1]))
    run_start = pfns[first]
    run_len = pfns[last] - run_start + _ONE
    buffer = reader.read_ranges(
        path, (run_start * np.uint64(_ENTRY)).tolist(), (run_len * np.uint64(_ENTRY)).tolist()
    )
    table = np.frombuffer(buffer, dtype=np.uint64)
    # Where each PFN's entry landed: its run's place in the buffer + its offset in the run.
    shift = np.concatenate(([0], np.cumsum(run_len)[:-1])).astype(np.uint64) - run_start
    at = pfns + np.repeat(shift, np.diff(np.append(first, pfns.size)))
    return table[at.astype(np.intp)]


def cgroup_pages(reader: ProcReader, table: PageTable) -> dict[int, int]:
    """Bytes of the mapped pages read (each once), by the memory cgroup each page is
    charged to: the inode of the cgroup's directory, from ``/proc/kpagecgroup`` (0: not
    charged to any). A memcg charges a page to the cgroup that first touched it, so a
    job's figure can differ from its processes' attribution: pages its processes share
    with another job count here only for the job that paid for them. Empty when the
    file cannot be read (root only; CONFIG_MEMCG)."""
    live = table.pfn[table.mapcount > 0]
    try:
        inodes = np.sort(_read_pfn_table(reader, f"{reader.proc}/kpagecgroup", live))
    except Unreadable:
        return {}
    if not inodes.size:
        return {}
    # Counts per distinct inode by a sort (np.unique hashes in numpy 2.4: far slower).
    starts = np.concatenate(([0], np.flatnonzero(np.diff(inodes)) + 1))
    counts = np.diff(np.append(starts, inodes.size))
    page = reader.page_size()
    return {int(i): int(c) * page for i, c in zip(inodes[starts], counts, strict=True)}


# --- grouping pages by their users -------------------------------------------------------


class _Tally:
    """What the memory attributed adds up to (bytes), by the meminfo counter it is in."""

    def __init__(self) -> None:
        self.anon = 0
        self.file = 0
        self.shmem = 0
        self.dmabuf = 0
        self.swapcache = 0  # anonymous memory attributed that is in the swap cache too
        self.hugetlb = 0


class _Grouped(NamedTuple):
    pages: dict[PageKey, int]
    tally: _Tally
    mapped: dict[int, int]  # memory object koid -> distinct pages of it seen mapped
    notes: list[str]


def _add(pages: dict[PageKey, int], use: PageUse, count: int) -> None:
    key = (use,)
    pages[key] = pages.get(key, 0) + count


class _Pages(NamedTuple):
    """The distinct pages read, in PFN order, and their (PFN, process) pairs."""

    pfn: U64  # per page
    first: I64  # per page: its first pair
    users: I64  # per page: how many processes map it
    field: U64  # per page: the VMO field of its lowest-pid mapper
    proc: npt.NDArray[np.int32]  # per pair: the process


def _group(
    reader: ProcReader,
    table: PageTable,
    pids: Sequence[int],
    span_koids: Sequence[Sequence[int]],
    kinds: Mapping[int, str],
    holders: Mapping[int, set[int]],
    swap_cached: bool,
    page: int,
) -> _Grouped:
    """Group the pages read into page patterns (the module docstring says how);
    ``span_koids`` gives the VMO of each span of each process read."""
    pages: dict[PageKey, int] = {}
    tally = _Tally()
    notes: list[str] = []
    # The VMOs reached, numbered: field = VMO index * 2 + bit 61.
    koids: list[int] = []
    index: dict[int, int] = {}
    span_vmo: list[int] = []
    for mine in span_koids:
        for koid in mine:
            vmo = index.get(koid)
            if vmo is None:
                vmo = index[koid] = len(koids)
                koids.append(koid)
            span_vmo.append(vmo)
    nfields = 2 * len(koids)
    if not table.pfn.size:
        return _Grouped(pages, tally, {}, notes)
    # Each page's VMO: that of the span of its lowest-pid mapper (its lowest span).
    vmo_field = np.asarray(span_vmo, dtype=np.uint64)[(table.field >> _ONE).astype(np.intp)]
    vmo_field = (vmo_field << _ONE) | (table.field & _ONE)
    found = _Pages(table.pfn, table.first, table.users, vmo_field, table.proc)
    field_kind = [kinds.get(koid, FILE) for koid in koids for _ in (0, 1)]
    # Spans read for their figures only ([vdso]: the kernel's pages; an object found to
    # be hugetlb or device memory): not memory of the processes.
    not_read = np.asarray([kind in _NOT_READ for kind in field_kind], dtype=bool)
    counts, entries = table.mapcount, table.entries
    live = counts > 0
    if not_read.any():
        ours = ~not_read[vmo_field.astype(np.intp)]
        live &= ours
        zero = int(entries[(counts == 0) & ours].sum())
    else:
        zero = int(entries[~live].sum())  # mappings of them, not distinct pages
    held = np.zeros(nfields, dtype=bool)
    for i, koid in enumerate(koids):
        held[2 * i + 1] = koid in holders  # an object's own pages (bit 61), not COW copies
    ufield = found.field.astype(np.intp)
    by_field = np.bincount(ufield[live], minlength=nfields)
    for f in np.flatnonzero(by_field).tolist():
        n = int(by_field[f]) * page
        kind = field_kind[f]
        if not f & 1:
            tally.anon += n
        elif kind == SHMEM:
            tally.shmem += n
        elif kind == DMABUF:
            tally.dmabuf += n
        else:
            tally.file += n
    mapped = {
        koids[f >> 1]: int(by_field[f])
        for f in range(1, nfields, 2)
        if by_field[f] and field_kind[f] in _MEMORY_OBJECTS
    }
    pid_of = np.asarray(pids, dtype=np.int64)

    # Pages of one process (and no descriptor holder): counted in bulk.
    alone = live & (found.users == 1) & ~held[ufield]
    combined = found.proc[found.first[alone]].astype(np.int64) * nfields + ufield[alone]
    per = np.bincount(combined)
    for c in np.flatnonzero(per).tolist():
        p, f = divmod(c, nfields)
        _add(pages, PageUse(koids[f >> 1], (pids[p],)), int(per[c]))

    shared = np.flatnonzero(live & ~alone)
    if shared.size:
        for use, count in _patterns(found, shared, len(pids)):
            _add(pages, _use(use, found, pid_of, koids, holders), count)

    if zero:
        notes.append(
            f"{zero} mapping{'s' if zero != 1 else ''} of pages with a page count of 0 (the"
            " shared zero page, or pages freed since) left out"
        )
    unseen = int(np.count_nonzero(live & (counts > entries.astype(np.uint64))))
    if unseen:
        notes.append(
            f"{unseen} page{'s are' if unseen != 1 else ' is'} mapped more often than the"
            " processes read map them (also by processes that could not be read, or"
            " mapped since): shared among the readers only"
        )
    if swap_cached or _ksm_merged(reader):
        anon_pages = found.pfn[live & ((found.field & _ONE) == 0)]
        flags = _read_pfn_table(reader, f"{reader.proc}/kpageflags", anon_pages)
        ksm = int(np.count_nonzero((flags >> np.uint64(_KPF_KSM)) & _ONE))
        if ksm:
            notes.append(
                f"{ksm} KSM-merged page{'s' if ksm != 1 else ''}: split equally among the"
                " processes mapping them"
            )
        swapcache = (flags >> np.uint64(_KPF_SWAPCACHE)) & _ONE
        tally.swapcache = int(np.count_nonzero(swapcache)) * page
    return _Grouped(pages, tally, mapped, notes)


def _patterns(
    found: _Pages, shared: I64, processes: int, token: U64 | None = None
) -> list[tuple[int, int]]:
    """(a representative page, how many pages) per distinct (VMO field, set of users)
    among the pages ``shared``. Pages are grouped by a 64-bit hash of their pattern (a
    sum of random 64-bit tokens of their users, mixed with the field and the count), and
    each page is then compared with its group's first page, user by user, so a hash
    collision cannot merge two patterns: a page that differs is a pattern of its own."""
    if token is None:  # (a test passes its own, to force collisions)
        token = _splitmix64(np.arange(processes, dtype=np.uint64) + np.uint64(0x6D786D656D))
    set_hash = np.add.reduceat(token[found.proc], found.first)[shared]
    set_hash ^= found.field[shared] * np.uint64(0x9E3779B97F4A7C15)
    set_hash ^= found.users[shared].astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
    order = np.argsort(set_hash, kind="stable")
    sorted_hash = set_hash[order]
    new = np.ones(order.size, dtype=bool)
    np.not_equal(sorted_hash[1:], sorted_hash[:-1], out=new[1:])
    group_sorted = np.cumsum(new) - 1
    group = np.empty(order.size, dtype=np.int64)
    group[order] = group_sorted
    head = shared[order[new]]  # each group's first page (stable sort: the lowest PFN)
    rep = head[group]
    good = (found.users[shared] == found.users[rep]) & (found.field[shared] == found.field[rep])
    # User by user: pair k of a page against pair k of its representative.
    delta = np.zeros(found.first.size, dtype=np.int64)
    delta[shared[good]] = found.first[rep[good]] - found.first[shared[good]]
    npairs = found.proc.size
    other = np.arange(npairs, dtype=np.int64) + np.repeat(delta, found.users)
    differ = np.flatnonzero(found.proc[other] != found.proc)
    if differ.size:
        wrong = np.zeros(found.first.size, dtype=bool)
        wrong[np.searchsorted(found.first, differ, side="right") - 1] = True
        good &= ~wrong[shared]
    sizes = np.bincount(group[good], minlength=head.size)
    out = [(int(head[k]), int(sizes[k])) for k in np.flatnonzero(sizes).tolist()]
    out.extend((page, 1) for page in shared[~good].tolist())  # collisions: one by one
    return out


def _splitmix64(x: U64) -> U64:
    """SplitMix64's output function: well-mixed 64-bit values of distinct inputs (tokens
    without importing numpy.random, ~10 ms)."""
    with np.errstate(over="ignore"):
        x = x * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _use(
    page: int,
    found: _Pages,
    pid_of: I64,
    koids: Sequence[int],
    holders: Mapping[int, set[int]],
) -> PageUse:
    """The PageUse of one page: its mappers plus, for an object's own page, the holders."""
    start = int(found.first[page])
    mappers = pid_of[found.proc[start : start + int(found.users[page])]].tolist()
    f = int(found.field[page])
    koid = koids[f >> 1]
    who = set(mappers)
    if f & 1:
        who |= holders.get(koid, set())
    return PageUse(koid, tuple(sorted(who)))


def _ksm_merged(reader: ProcReader) -> bool:
    try:
        return int(reader.read(f"{reader.sys}/kernel/mm/ksm/pages_shared")) > 0
    except (Unreadable, ValueError):
        return False


# --- the two paths ---------------------------------------------------------------------


class PagesRead(NamedTuple):
    """What the host scan read of the processes' pages (see :func:`page_table`)."""

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
) -> _Grouped:
    """Pages of every process read, grouped; and the objects nobody maps."""
    page = reader.page_size()
    grouped = _group(
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
    grouped: _Grouped,
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
        _add(grouped.pages, PageUse(koid, tuple(sorted(who))), extra)
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
) -> tuple[_Grouped, dict[int, int]]:
    """Without page-level reads: each process's PSS, and the objects held by descriptors
    that no readable process maps, page by page."""
    grouped = _Grouped({}, _Tally(), {}, [])
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


# --- categories ----------------------------------------------------------------------------


def _categories(
    meminfo: Mapping[str, int],
    tally: _Tally,
    kernel: Mapping[int, Mapping[str, int]],
    notes: list[str],
) -> dict[str, int]:
    """Memory no process is blamed for, by kind (the module docstring's table)."""
    get = meminfo.get
    stacks = sum(c.get(KERNEL_STACKS, 0) for c in kernel.values())
    tables = sum(c.get(PAGE_TABLES, 0) for c in kernel.values())
    vmalloc = get("VmallocUsed", 0)
    if vmalloc >= get("KernelStack", 0):
        vmalloc -= get("KernelStack", 0)
    # (counter, what of it is attributed to processes)
    parts = {
        "free": (get("MemFree", 0), 0),
        "page cache not mapped": (get("Cached", 0) - get("Shmem", 0), tally.file),
        "shmem/tmpfs not held": (get("Shmem", 0), tally.shmem),
        "anonymous memory not attributed": (get("AnonPages", 0), tally.anon),
        "buffers": (get("Buffers", 0), 0),
        "swap cache": (get("SwapCached", 0), tally.swapcache),
        "kernel slab (reclaimable)": (get("SReclaimable", 0), 0),
        "kernel slab (unreclaimable)": (get("SUnreclaim", 0), 0),
        "kernel stacks (not attributed)": (get("KernelStack", 0), stacks),
        "page tables (not attributed)": (get("PageTables", 0), tables),
        "secondary page tables": (get("SecPageTables", 0), 0),
        "per-cpu": (get("Percpu", 0), 0),
        "vmalloc": (vmalloc, 0),
        "hugetlb pool": (get("Hugetlb", 0), tally.hugetlb),
        "zswap pool": (get("Zswap", 0), 0),
    }
    out: dict[str, int] = {}
    over: list[str] = []
    for name, (counter, attributed) in parts.items():
        value = counter - attributed
        if value < 0:
            over.append(f"{name} ({-value} bytes)")
        elif value:
            out[name] = value
    if over:
        notes.append(
            "what was attributed exceeds /proc/meminfo's counter for "
            + ", ".join(over)
            + ": the system changed between the reads; shown as 0"
        )
    return out


def _residual_note(meminfo: Mapping[str, int]) -> str:
    balloon = meminfo.get("Balloon", 0)
    extra = f", balloon pages ({balloon} bytes)" if balloon else ""
    return (
        "the residual is memory the kernel allocated without"
        " a /proc/meminfo counter (drivers' alloc_pages: virtio and network rings, DMA"
        " buffers), free pages on the per-CPU lists (not in MemFree), dma-buf memory"
        f" nobody holds{extra}, and pages that changed between the reads (pagemap,"
        " kpagecount and meminfo are read at different moments);"
        " memory reserved at boot (firmware, kernel image, struct page arrays) is outside"
        " MemTotal"
    )


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
) -> PageFacts:
    """The page facts of the host, from its whole-system snapshot's ``processes`` and
    ``vmos`` and the pages ``read`` (None: approximate, for the reason ``refused``);
    ``kinds`` maps VMO koids to the kinds above, ``duplicates`` a CLONE_VM sharer's pid
    to the lower pid it shares with, ``rollups`` pids to the text of their
    ``smaps_rollup`` (for the approximate path)."""
    page = reader.page_size()
    plan = _plan(processes, kinds, duplicates, read.vmos_of if read is not None else {})
    meminfo = _meminfo(reader)
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
    meminfo = _meminfo(reader) or meminfo
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
    categories = _categories(meminfo, grouped.tally, kernel, notes)
    notes.append(_residual_note(meminfo))
    swap = {
        pid: p.stats.swap_pss_bytes
        for pid in attributed
        if (p := processes[pid]).stats is not None and p.stats.swap_pss_bytes
    }
    return PageFacts(
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


def _meminfo(reader: ProcReader) -> dict[str, int]:
    try:
        return parse_meminfo(reader.read(f"{reader.proc}/meminfo"))
    except (Unreadable, ValueError):
        return {}


def _kpagecount_refused(reader: ProcReader) -> str | None:
    """Why ``/proc/kpagecount`` cannot be used, or None when it can (one entry read)."""
    try:
        reader.read_ranges(f"{reader.proc}/kpagecount", [0], [_ENTRY])
    except AccessDenied:
        return "/proc/kpagecount is readable by root only"
    except Unreadable as err:
        return f"/proc/kpagecount cannot be read ({err.reason})"
    return None
