"""Page-level facts of the live Linux host, for exact attribution (issue 6).

``HostSource.snapshot(Level.PAGES)`` is the whole-system ``Level.FULL`` snapshot plus
the :class:`~mxmem.model.PageFacts` this module gathers. It only gathers facts; the rules
that turn them into bytes per process live in :mod:`mxmem.accounting.exact`.

With root (``/proc/kpagecount`` readable, PFNs visible in ``pagemap``): page-level truth
=======================================================================================

* **Which pages.** For every readable process, every VMA the FULL scan found resident
  (smaps ``Rss`` > 0), ``/proc/PID/pagemap`` is read for just that range: one ``preadv``
  per VMA, 8 bytes per page, processes on one thread per CPU (the reads are page-table
  walks in the kernel, which release the GIL). An entry is a page in RAM when bit 63 is
  set; bits 0-54 are its PFN; bit 61 says the page is a file or shared-anonymous (shmem)
  page rather than a private anonymous one. Swapped entries (bit 62) are not RAM: swap
  comes from ``SwapPss``. Left out: VM_PFNMAP/VM_IO mappings (device memory, not RAM the
  allocator manages), the ``[vdso]``/``[vvar]`` pages (the kernel's) and hugetlb mappings
  (their pages belong to the hugetlb pool, see below).
* **Zero page.** ``/proc/kpagecount`` is read for the PFNs found, and only those: the
  sorted distinct PFNs are coalesced into runs (gaps of up to 4 KiB of the file read
  through), one ``pread`` per run. A PFN whose count is 0 is the shared zero page or the
  huge zero page (or a page freed since): not memory anyone uses, left out.
* **Who uses a page.** The distinct processes that map it: a page mapped twice by one
  process (a file mapped twice, a KSM page merged within one process) has that process
  once. The work is vectorised: every (PFN, process, VMO) entry is one 64-bit key, sorted
  once; pages used by one process are counted with ``bincount``, and pages used by several
  are grouped by their set of users through a 64-bit hash of the set, every group then
  checked member by member against its first page, so a hash collision cannot merge two
  patterns (``np.unique`` is avoided: numpy 2.4 answers it with a hash table, 70 times
  slower than a sort on 4 M PFNs). Processes sharing one address space (CLONE_VM) are
  read once, under the lower pid, as the FULL snapshot counts them.
* **Which VMO.** A file or shmem page (bit 61) is reached through the VMA's VMO, the same
  object for every mapper. An anonymous page is given the VMO of the lowest-pid mapper's
  VMA: pages still shared copy-on-write after a fork count to the parent's region, and a
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

from collections.abc import Iterable, Mapping, Sequence
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
from mxmem.sources.linux.parallel import map_in_threads, useful_workers
from mxmem.sources.linux.procfs import kb_fields, parse_meminfo, parse_status
from mxmem.sources.linux.reader import AccessDenied, ProcReader, Unreadable, Vanished

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
# kpagecount is read in runs: a gap of up to this many entries is read through (4 KiB of
# the file costs less than another system call).
_RUN_GAP = 512
# At most this many bytes of one process's pagemap in memory at once (8 Mi pages).
_BATCH_BYTES = 64 << 20
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
) -> _Plan:
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
) -> dict[int, dict[str, int]]:
    """Page tables and kernel stacks of the readable processes (CLONE_VM sharers' under
    the lower pid)."""
    tasks = sum(len(p.threads) for p in processes.values() if p.state is not ProcessState.DEAD)
    stack = stack_size(kernel_stack, tasks)
    costs: dict[int, dict[str, int]] = {}
    for pid in pids:
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


class _Ranges(NamedTuple):
    offsets: list[int]  # byte offsets in pagemap
    sizes: list[int]  # bytes
    fields: list[int]  # each range's VMO index * 2 (bit 0 is the page's bit 61)


def _batches(ranges: _Ranges) -> Iterable[_Ranges]:
    """``ranges`` in pieces of at most _BATCH_BYTES (a huge VMA split as needed)."""
    if sum(ranges.sizes) <= _BATCH_BYTES:
        yield ranges
        return
    batch = _Ranges([], [], [])
    used = 0
    for offset, size, field in zip(ranges.offsets, ranges.sizes, ranges.fields, strict=True):
        while size:
            piece = min(size, _BATCH_BYTES - used)
            batch.offsets.append(offset)
            batch.sizes.append(piece)
            batch.fields.append(field)
            offset, size, used = offset + piece, size - piece, used + piece
            if used == _BATCH_BYTES:
                yield batch
                batch, used = _Ranges([], [], []), 0
    if batch.sizes:
        yield batch


class _PfnsHidden(Exception):
    """pagemap shows present pages with PFN 0: the caller lacks CAP_SYS_ADMIN."""


class _Keys:
    """Every page in RAM read, as (PFN, process, VMO field): one sortable 64-bit key
    ``PFN << (pbits + vbits) | process << vbits | field`` each while the PFNs leave room
    (they do unless the physical address space is very large), else three arrays."""

    def __init__(self, processes: int, fields: int) -> None:
        self.pbits = max(1, (processes - 1).bit_length())
        self.vbits = max(1, (fields - 1).bit_length())
        self.limit = 1 << (64 - self.pbits - self.vbits)  # PFNs must stay below it
        self.keys: list[U64] = []
        self.parts: list[tuple[U64, U64, U64]] | None = None  # after an overflow

    def add(self, proc: int, values: U64, fields: U64) -> None:
        pfn = values & _PFN_MASK
        top = int(pfn.max())
        if not top:
            raise _PfnsHidden
        if self.parts is None and top < self.limit:
            pfn <<= np.uint64(self.pbits + self.vbits)
            pfn |= np.uint64(proc << self.vbits)
            pfn |= fields
            self.keys.append(pfn)
            return
        if self.parts is None:
            self.parts = [self._split(key) for key in self.keys]
            self.keys = []
        self.parts.append((pfn, np.full(pfn.size, proc, dtype=np.uint64), fields))

    def _split(self, key: U64) -> tuple[U64, U64, U64]:
        vbits, pbits = np.uint64(self.vbits), np.uint64(self.pbits)
        field = key & np.uint64((1 << self.vbits) - 1)
        proc = (key >> vbits) & np.uint64((1 << self.pbits) - 1)
        return key >> (vbits + pbits), proc, field

    def pairs(self) -> tuple[U64, npt.NDArray[np.intp], U64, I64 | None, int]:
        """The distinct (PFN, process) pairs in order, with the VMO field of each (the
        lowest, for a page a process maps through two VMAs); the index of each pair's
        first entry (None when every pair is one entry); the number of entries."""
        if self.parts is None:
            key = np.concatenate(self.keys) if self.keys else np.zeros(0, dtype=np.uint64)
            self.keys = []
            key.sort()
            total = key.size
            pair = key >> np.uint64(self.vbits)
            repeated = pair[1:] == pair[:-1]  # a page mapped twice by one process
            at: I64 | None = None
            if repeated.any():
                first = np.ones(total, dtype=bool)
                np.logical_not(repeated, out=first[1:])
                at = np.flatnonzero(first).astype(np.int64)
                key, pair = key[first], pair[first]
            field = key & np.uint64((1 << self.vbits) - 1)
            pfn = pair >> np.uint64(self.pbits)
            proc = (pair & np.uint64((1 << self.pbits) - 1)).astype(np.intp)
            return pfn, proc, field, at, total
        pfns, procs, fields = (np.concatenate(p) for p in zip(*self.parts, strict=True))
        self.parts = []
        order = np.lexsort((fields, procs, pfns))
        pfns, procs, fields = pfns[order], procs[order], fields[order]
        first = np.ones(pfns.size, dtype=bool)
        first[1:] = (pfns[1:] != pfns[:-1]) | (procs[1:] != procs[:-1])
        at = np.flatnonzero(first).astype(np.int64)
        return pfns[at], procs[at].astype(np.intp), fields[at], at, int(pfns.size)


def _read_process(reader: ProcReader, pid: int, ranges: _Ranges) -> list[tuple[U64, U64]] | str:
    """The entries of the pages in RAM in ``ranges`` of ``pid``'s pagemap and their VMO
    fields, batch by batch; ``"gone"`` if the process has exited, ``"unreadable"`` if its
    pagemap cannot be read. Safe to run on several threads at once."""
    path = f"{reader.proc}/{pid}/pagemap"
    out: list[tuple[U64, U64]] = []
    for batch in _batches(ranges):
        try:
            buffer = reader.read_ranges(path, batch.offsets, batch.sizes)
        except Vanished:
            return "gone"
        except Unreadable:
            return "unreadable"
        entries = np.frombuffer(buffer, dtype=np.uint64)
        present = entries >= _PRESENT
        values = entries[present]
        if not values.size:
            continue
        lengths = np.asarray(batch.sizes, dtype=np.int64) // _ENTRY
        fields = np.repeat(np.asarray(batch.fields, dtype=np.uint64), lengths)[present]
        fields |= (values >> _FILE_SHIFT) & _ONE
        out.append((values, fields))
    return out


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
    proc: npt.NDArray[np.intp]  # per pair: the process


def _group(
    reader: ProcReader,
    pids: Sequence[int],
    koids: Sequence[int],
    kinds: Mapping[int, str],
    holders: Mapping[int, set[int]],
    keys: _Keys,
    swap_cached: bool,
    page: int,
) -> _Grouped:
    """Group the pages read into page patterns (the module docstring says how)."""
    pages: dict[PageKey, int] = {}
    tally = _Tally()
    notes: list[str] = []
    nfields = 2 * len(koids)
    pair_pfn, pair_proc, pair_field, at, total = keys.pairs()
    if not pair_pfn.size:
        return _Grouped(pages, tally, {}, notes)
    # One group of pairs per page, its users in pid order.
    npairs = pair_pfn.size
    starts = np.ones(npairs, dtype=bool)
    np.not_equal(pair_pfn[1:], pair_pfn[:-1], out=starts[1:])
    g = np.flatnonzero(starts)
    bounds = np.append(g, npairs)
    found = _Pages(pair_pfn[g], g, np.diff(bounds), pair_field[g], pair_proc)
    del pair_pfn, starts
    entries = np.diff(np.append(g if at is None else at[g], total))  # mappings of each page
    counts = _read_pfn_table(reader, f"{reader.proc}/kpagecount", found.pfn)
    live = counts > 0
    zero = int(entries[~live].sum())  # mappings of them, not distinct pages
    field_kind = [kinds.get(koid, FILE) for koid in koids for _ in (0, 1)]
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
    combined = pair_proc[g[alone]] * nfields + ufield[alone]
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
        rng = np.random.default_rng(0x6D786D656D)
        token = rng.integers(0, np.iinfo(np.uint64).max, processes, dtype=np.uint64)
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


def _exact(
    reader: ProcReader,
    processes: Mapping[int, Process],
    vmos: Mapping[int, Vmo],
    kinds: Mapping[int, str],
    plan: _Plan,
    swap_cached: bool,
) -> tuple[_Grouped, list[int]]:
    """Pages of every readable process from pagemap + kpagecount, and the pids whose
    pagemap was read (raises _PfnsHidden when PFNs read as 0)."""
    page = reader.page_size()
    koids: list[int] = []
    index: dict[int, int] = {}
    ranges: list[_Ranges] = []
    for pid in plan.pids:
        aspace = processes[pid].aspace
        assert aspace is not None  # _readable
        mine = _Ranges([], [], [])
        for m in aspace.mappings():
            if not m.committed_bytes or kinds.get(m.vmo_koid, FILE) in _NOT_READ:
                continue  # nothing resident when the scan read smaps, or not RAM to read
            vmo = index.get(m.vmo_koid)
            if vmo is None:
                vmo = index[m.vmo_koid] = len(koids)
                koids.append(m.vmo_koid)
            mine.offsets.append(m.base // page * _ENTRY)
            mine.sizes.append(m.size // page * _ENTRY)
            mine.fields.append(2 * vmo)
        ranges.append(mine)
    keys = _Keys(len(plan.pids), 2 * len(koids))
    read: list[int] = []
    unread = 0
    # The reads are page-table walks in the kernel (the GIL released): one thread per CPU.
    work = list(zip(plan.pids, ranges, strict=True))
    results = map_in_threads(lambda job: _read_process(reader, *job), work, useful_workers())
    for (pid, _), got in zip(work, results, strict=True):
        if isinstance(got, str):
            unread += got == "unreadable"  # "gone": exited since the scan
        else:
            for values, fields in got:
                keys.add(len(read), values, fields)
            read.append(pid)
    grouped = _group(reader, read, koids, kinds, plan.holders, keys, swap_cached, page)
    if unread:
        grouped.notes.append(
            f"the pagemap of {unread} process{'es' if unread != 1 else ''} could not be read:"
            " their memory is in the categories"
        )
    _unmapped_objects(grouped, vmos, kinds, plan.holders, plan.mappers, page)
    return grouped, read


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
) -> PageFacts:
    """The page facts of the host, from its whole-system FULL snapshot's ``processes``
    and ``vmos``; ``kinds`` maps VMO koids to the kinds above, ``duplicates`` a CLONE_VM
    sharer's pid to the lower pid it shares with, ``rollups`` pids to the text of their
    ``smaps_rollup`` (for the approximate path)."""
    page = reader.page_size()
    plan = _plan(processes, kinds, duplicates)
    meminfo = _meminfo(reader)
    why = _kpagecount_refused(reader)
    grouped: _Grouped | None = None
    estimated: dict[int, int] = {}
    attributed = plan.pids
    if why is None:
        try:
            grouped, attributed = _exact(
                reader, processes, vmos, kinds, plan, meminfo.get("SwapCached", 0) > 0
            )
        except _PfnsHidden:
            why = "pagemap shows no page frame numbers (they need CAP_SYS_ADMIN)"
        else:
            estimated = dict(plan.hugetlb)
            grouped.tally.hugetlb += sum(plan.hugetlb.values())
    if grouped is None:
        grouped, estimated = _approximate(vmos, kinds, plan, rollups, page)
    # meminfo again, right after the page reads: the categories are differences with it.
    meminfo = _meminfo(reader) or meminfo
    kernel = _kernel_costs(reader, processes, attributed, duplicates, meminfo.get("KernelStack", 0))
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
