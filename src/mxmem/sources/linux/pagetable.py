"""The pages read from every process's pagemap, sorted and counted once: each distinct
page with its ``kpagecount``, its (page, process) pairs, and each span's figures as smaps
computes them (see :mod:`.pagefacts`)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from mxmem.sources.linux.pagemap import I64, ONE, U64, Entries, read_pfn_table
from mxmem.sources.linux.parallel import in_background
from mxmem.sources.linux.procfs import MemFigures
from mxmem.sources.linux.reader import ProcReader, Unreadable

_PSS_SHIFT = 12  # smaps' fixed point for Pss (fs/proc/task_mmu.c PSS_SHIFT)


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
        in_background(lambda: read_pfn_table(reader, path, pfn[:half])),
        in_background(lambda: read_pfn_table(reader, path, pfn[half:])),
    ]
    entries = np.diff(np.append(page_at, n))
    page_field = field_e[page_at]
    span_e = np.right_shift(field_e, ONE, out=field_e).view(np.int64)  # (in place)
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
    weight = np.uint64(page << _PSS_SHIFT) // np.maximum(count, ONE)
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


def cgroup_pages(reader: ProcReader, table: PageTable) -> dict[int, int]:
    """Bytes of the mapped pages read (each once), by the memory cgroup each page is
    charged to: the inode of the cgroup's directory, from ``/proc/kpagecgroup`` (0: not
    charged to any). A memcg charges a page to the cgroup that first touched it, so a
    job's figure can differ from its processes' attribution: pages its processes share
    with another job count here only for the job that paid for them. Empty when the
    file cannot be read (root only; CONFIG_MEMCG)."""
    live = table.pfn[table.mapcount > 0]
    try:
        inodes = np.sort(read_pfn_table(reader, f"{reader.proc}/kpagecgroup", live))
    except Unreadable:
        return {}
    if not inodes.size:
        return {}
    # Counts per distinct inode by a sort (np.unique hashes in numpy 2.4: far slower).
    starts = np.concatenate(([0], np.flatnonzero(np.diff(inodes)) + 1))
    counts = np.diff(np.append(starts, inodes.size))
    page = reader.page_size()
    return {int(i): int(c) * page for i, c in zip(inodes[starts], counts, strict=True)}
