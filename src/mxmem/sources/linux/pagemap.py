"""Reading the kernel's page tables: ``/proc/PID/pagemap`` (one 8-byte entry per page of
a process's address space) and the tables indexed by PFN (``/proc/kpagecount``,
``kpageflags``, ``kpagecgroup``). How they are read, and why so, is in
:mod:`.pagefacts`; :mod:`.pagetable` sorts and counts what is read here."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from mxmem.sources.linux.reader import AccessDenied, Pagemap, ProcReader, Unreadable

_PRESENT = np.uint64(1 << 63)
_PFN_MASK = np.uint64((1 << 55) - 1)
_FILE_SHIFT = np.uint64(61)
ONE = np.uint64(1)
ENTRY = 8  # bytes per pagemap / kpagecount / kpageflags entry
# kpagecount is read in runs: a gap of up to this many entries is read through. An
# entry costs the kernel ~110 ns (a struct page looked up and copied out), a read
# ~2 us: read through, 512 entries cost 57 us where two reads cost 4 (measured here).
_RUN_GAP = 16
# At most this many bytes of one process's pagemap in memory at once (8 Mi pages).
_BATCH_BYTES = 64 << 20

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

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
    why = kpagecount_refused(reader)
    if why is not None:
        return why
    probe = bytearray(reader.page_size())  # written (zero-filled) here: present
    address = id(probe)  # CPython: the object's address, inside the written heap page
    page = reader.page_size()
    try:
        with reader.pagemap("self") as pagemap:
            entry = int.from_bytes(pagemap.read([address // page * ENTRY], [ENTRY]), "little")
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
        field |= ((values >> _FILE_SHIFT) & ONE).astype(np.uint32)
        pfns.append(values & _PFN_MASK)
        fields.append(field)
    for i in huge:
        assert resident is not None and live is not None
        start, end = spans[i]
        counted = 0
        while start < end and counted < resident[i]:
            n = min((end - start) // page, _PIECE_PAGES)
            entries = np.frombuffer(pagemap.read([start // page * ENTRY], [n * ENTRY]), np.uint64)
            values = entries[entries >= _PRESENT]
            start += n * page
            if not values.size:
                continue
            counted += live(values & _PFN_MASK)
            pfns.append(values & _PFN_MASK)
            fields.append(((values >> _FILE_SHIFT) & ONE).astype(np.uint32) | np.uint32(2 * i))
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
        mapped = read_pfn_table(reader, f"{reader.proc}/kpagecount", distinct) > 0
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
    offsets = (start[first] * ENTRY).tolist()
    sizes = ((end[last] - start[first]) * ENTRY).tolist()
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
    cap = _BATCH_BYTES // ENTRY
    if sum(sizes) <= _BATCH_BYTES:
        yield offsets, sizes, owners, lengths
        return
    batch: Batch = ([], [], [], [])
    used = 0
    ranges = iter(zip(owners, lengths, strict=True))
    for offset, size in zip(offsets, sizes, strict=True):
        fresh = True  # the read starts anew in this batch
        left = size // ENTRY
        while left:
            owner, length = next(ranges)
            while length:
                n = min(length, cap - used)
                if fresh:
                    batch[0].append(offset)
                    batch[1].append(0)
                    fresh = False
                batch[1][-1] += n * ENTRY
                batch[2].append(owner)
                batch[3].append(n)
                offset += n * ENTRY
                used += n
                length -= n
                left -= n
                if used == cap:
                    yield batch
                    batch, used, fresh = ([], [], [], []), 0, True
    if batch[3]:
        yield batch


def read_pfn_table(reader: ProcReader, path: str, pfns: U64) -> U64:
    """Entries of ``/proc/kpagecount`` (or ``kpageflags``) for the sorted distinct
    ``pfns``, read in coalesced runs."""
    if not pfns.size:
        return np.zeros(0, dtype=np.uint64)
    breaks = np.flatnonzero(np.diff(pfns) > _RUN_GAP) + 1
    first = np.concatenate(([0], breaks))
    last = np.concatenate((breaks - 1, [pfns.size - 1]))
    run_start = pfns[first]
    run_len = pfns[last] - run_start + ONE
    buffer = reader.read_ranges(
        path, (run_start * np.uint64(ENTRY)).tolist(), (run_len * np.uint64(ENTRY)).tolist()
    )
    table = np.frombuffer(buffer, dtype=np.uint64)
    # Where each PFN's entry landed: its run's place in the buffer + its offset in the run.
    shift = np.concatenate(([0], np.cumsum(run_len)[:-1])).astype(np.uint64) - run_start
    at = pfns + np.repeat(shift, np.diff(np.append(first, pfns.size)))
    return table[at.astype(np.intp)]


def kpagecount_refused(reader: ProcReader) -> str | None:
    """Why ``/proc/kpagecount`` cannot be used, or None when it can (one entry read)."""
    try:
        reader.read_ranges(f"{reader.proc}/kpagecount", [0], [ENTRY])
    except AccessDenied:
        return "/proc/kpagecount is readable by root only"
    except Unreadable as err:
        return f"/proc/kpagecount cannot be read ({err.reason})"
    return None
