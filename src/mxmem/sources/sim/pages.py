"""Page-level facts of the simulated kernel, for exact attribution (issue 6).

The Snapshot carries no page-level data, so exact attribution on the simulated kernel is
computed from the :class:`~mxmem.sources.sim.kernel.Kernel` itself. This module only
gathers facts: for every committed OBJECT page, which VMOs can reach it (its owner and the
copy-on-write clones that still see it) and, for each of them, which processes map that
page of it or hold a handle to it. The arithmetic lives in ``mxmem.accounting.exact``;
sources may not import accounting, so :class:`SimPageFacts` is a plain NamedTuple that
satisfies that module's ``PageFacts`` protocol structurally.

A page at index ``i`` of VMO ``P`` is reachable from clone ``C`` at index
``i - C.parent_offset // PAGE_SIZE`` if that index lies inside ``C``'s size and ``C`` has no
page of its own there, recursively down the clone tree.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from mxmem.model import ProcessState
from mxmem.sources.sim.kernel import (
    PAGE_SIZE,
    Kernel,
    PageState,
    SimAspace,
    SimVmo,
    pages_for,
)

# One reaching VMO, as attribution sees it: the koids of the processes that map the page
# through it or hold a handle to it (sorted), and whether the kernel holds it.
Reacher = tuple[tuple[int, ...], bool]
# Every VMO that can reach one page, in a canonical order (so equal pages group together).
PageKey = tuple[Reacher, ...]


class SimPageFacts(NamedTuple):
    """What exact attribution needs, in bytes except ``pages``."""

    total_bytes: int
    page_size: int
    # How many OBJECT pages have each reach pattern.
    pages: dict[PageKey, int]
    # Page-table bytes of each live process's address space, by process koid.
    process_mmu_bytes: dict[int, int]
    # Memory no process can be blamed for, by kind (free, wired, kernel heap, ...).
    unowned_bytes: dict[str, int]


def _holders(kernel: Kernel) -> tuple[dict[int, set[int]], dict[int, int]]:
    """Handle holders by ``id(vmo)``, and the owning process koid by ``id(aspace)``."""
    holders: dict[int, set[int]] = {}
    aspace_owner: dict[int, int] = {}
    for process in kernel.walk_processes():
        if process.state is ProcessState.DEAD:
            continue
        if process.aspace is not None:
            aspace_owner[id(process.aspace)] = process.koid
        for handle in process.handles.values():
            if isinstance(handle.obj, SimVmo):
                holders.setdefault(id(handle.obj), set()).add(process.koid)
    return holders, aspace_owner


def _reacher(
    vmo: SimVmo,
    index: int,
    holders: dict[int, set[int]],
    aspace_owner: dict[int, int],
    kernel_aspace: SimAspace,
) -> Reacher:
    pids = set(holders.get(id(vmo), ()))
    kernel_held = vmo.kernel_only or vmo.kernel_refs > 0
    offset = index * PAGE_SIZE
    for m in vmo.mappings:
        # Only a mapping that covers this page makes its process a user of the page.
        if not m.vmo_offset <= offset < m.vmo_offset + m.size:
            continue
        if m.aspace is kernel_aspace:
            kernel_held = True
        elif id(m.aspace) in aspace_owner:
            pids.add(aspace_owner[id(m.aspace)])
    return tuple(sorted(pids)), kernel_held


def _reach(vmo: SimVmo, index: int, out: list[tuple[SimVmo, int]]) -> None:
    """Append ``(vmo, index)`` and every clone below ``vmo`` that sees its page ``index``."""
    out.append((vmo, index))
    for clone in vmo.children:
        j = index - clone.parent_offset // PAGE_SIZE
        if 0 <= j < pages_for(clone.size) and not (clone.pages >> j) & 1:
            _reach(clone, j, out)


def sim_page_facts(kernel: Kernel) -> SimPageFacts:
    """Gather the page-level facts of ``kernel`` (a pure read; the kernel is unchanged)."""
    holders, aspace_owner = _holders(kernel)
    pages: Counter[PageKey] = Counter()
    unowned: Counter[str] = Counter()
    for vmo in kernel.vmos:
        if vmo.pages == 0:
            continue
        if vmo.page_state is not PageState.OBJECT:
            # The kernel image (wired) and the heap VMO: kernel memory by kind, counted
            # from the VMOs so a drift from the PMM's counts breaks the invariant.
            kind = {PageState.WIRED: "wired", PageState.HEAP: "kernel heap"}.get(
                vmo.page_state, "other"
            )
            unowned[kind] += vmo.committed_pages * PAGE_SIZE
            continue
        bits, index = vmo.pages, 0
        while bits:
            if bits & 1:
                reach: list[tuple[SimVmo, int]] = []
                _reach(vmo, index, reach)
                key = tuple(
                    sorted(
                        _reacher(v, i, holders, aspace_owner, kernel.kernel_aspace)
                        for v, i in reach
                    )
                )
                pages[key] += 1
            bits >>= 1
            index += 1
    counts = kernel.pmm.counts
    mmu = {
        p.koid: p.aspace.mmu_pages * PAGE_SIZE
        for p in kernel.walk_processes()
        if p.state is not ProcessState.DEAD and p.aspace is not None and p.aspace.mmu_pages
    }
    unowned["free"] += counts[PageState.FREE] * PAGE_SIZE
    unowned["other"] += counts[PageState.ALLOC] * PAGE_SIZE
    # Page tables of no live process (none in this model, but said rather than assumed).
    unowned["mmu"] += counts[PageState.MMU] * PAGE_SIZE - sum(mmu.values())
    return SimPageFacts(
        total_bytes=kernel.pmm.total_pages * PAGE_SIZE,
        page_size=PAGE_SIZE,
        pages=dict(pages),
        process_mmu_bytes=mmu,
        unowned_bytes={k: v for k, v in unowned.items() if v},
    )
