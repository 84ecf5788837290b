"""Who uses each page: the pages read, grouped by their VMO and the set of processes
that map (or, for a memory object's own pages, hold) them, into the page patterns of
:class:`~mxmem.model.PageFacts` (the way is described in :mod:`.pagefacts`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from mxmem.model import PageKey, PageUse
from mxmem.sources.linux.categories import Tally
from mxmem.sources.linux.pagekinds import DMABUF, FILE, MEMORY_OBJECTS, NOT_READ, SHMEM
from mxmem.sources.linux.pagemap import I64, ONE, U64, read_pfn_table
from mxmem.sources.linux.pagetable import PageTable
from mxmem.sources.linux.reader import ProcReader, Unreadable

_KPF_SWAPCACHE = 14
_KPF_KSM = 21


class Grouped(NamedTuple):
    pages: dict[PageKey, int]
    tally: Tally
    mapped: dict[int, int]  # memory object koid -> distinct pages of it seen mapped
    notes: list[str]


def add_pages(pages: dict[PageKey, int], use: PageUse, count: int) -> None:
    key = (use,)
    pages[key] = pages.get(key, 0) + count


class _Pages(NamedTuple):
    """The distinct pages read, in PFN order, and their (PFN, process) pairs."""

    pfn: U64  # per page
    first: I64  # per page: its first pair
    users: I64  # per page: how many processes map it
    field: U64  # per page: the VMO field of its lowest-pid mapper
    proc: npt.NDArray[np.int32]  # per pair: the process


def group_pages(
    reader: ProcReader,
    table: PageTable,
    pids: Sequence[int],
    span_koids: Sequence[Sequence[int]],
    kinds: Mapping[int, str],
    holders: Mapping[int, set[int]],
    swap_cached: bool,
    page: int,
) -> Grouped:
    """Group the pages read into page patterns (the module docstring says how);
    ``span_koids`` gives the VMO of each span of each process read."""
    pages: dict[PageKey, int] = {}
    tally = Tally()
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
        return Grouped(pages, tally, {}, notes)
    # Each page's VMO: that of the span of its lowest-pid mapper (its lowest span).
    vmo_field = np.asarray(span_vmo, dtype=np.uint64)[(table.field >> ONE).astype(np.intp)]
    vmo_field = (vmo_field << ONE) | (table.field & ONE)
    found = _Pages(table.pfn, table.first, table.users, vmo_field, table.proc)
    field_kind = [kinds.get(koid, FILE) for koid in koids for _ in (0, 1)]
    # Spans read for their figures only ([vdso]: the kernel's pages; an object found to
    # be hugetlb or device memory): not memory of the processes.
    not_read = np.asarray([kind in NOT_READ for kind in field_kind], dtype=bool)
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
        if by_field[f] and field_kind[f] in MEMORY_OBJECTS
    }
    pid_of = np.asarray(pids, dtype=np.int64)

    # Pages of one process (and no descriptor holder): counted in bulk.
    alone = live & (found.users == 1) & ~held[ufield]
    combined = found.proc[found.first[alone]].astype(np.int64) * nfields + ufield[alone]
    per = np.bincount(combined)
    for c in np.flatnonzero(per).tolist():
        p, f = divmod(c, nfields)
        add_pages(pages, PageUse(koids[f >> 1], (pids[p],)), int(per[c]))

    shared = np.flatnonzero(live & ~alone)
    if shared.size:
        for use, count in _patterns(found, shared, len(pids)):
            add_pages(pages, _use(use, found, pid_of, koids, holders), count)

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
        anon_pages = found.pfn[live & ((found.field & ONE) == 0)]
        flags = read_pfn_table(reader, f"{reader.proc}/kpageflags", anon_pages)
        ksm = int(np.count_nonzero((flags >> np.uint64(_KPF_KSM)) & ONE))
        if ksm:
            notes.append(
                f"{ksm} KSM-merged page{'s' if ksm != 1 else ''}: split equally among the"
                " processes mapping them"
            )
        swapcache = (flags >> np.uint64(_KPF_SWAPCACHE)) & ONE
        tally.swapcache = int(np.count_nonzero(swapcache)) * page
    return Grouped(pages, tally, mapped, notes)


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
