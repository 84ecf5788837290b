"""Page-level facts of the simulated kernel, for exact attribution (issue 6).

A snapshot taken at ``Level.PAGES`` carries them (``Snapshot.pages``). This module only
gathers facts: for every committed OBJECT page, which VMOs can reach it (its owner and the
copy-on-write clones that still see it) and, for each of them, which processes map that
page of it or hold a handle to it. The arithmetic lives in ``mxmem.accounting.exact``;
it returns the model's :class:`~mxmem.model.PageFacts`, which any source can fill.

A page at index ``i`` of VMO ``P`` is reachable from clone ``C`` at index
``i - C.parent_offset // PAGE_SIZE`` if that index lies inside ``C``'s size and ``C`` has no
page of its own there, recursively down the clone tree.
"""

from __future__ import annotations

import itertools
from collections import Counter

from mxmem.model import (
    KERNEL_OBJECTS,
    KERNEL_STACKS,
    PAGE_TABLES,
    PageFacts,
    PageKey,
    PageUse,
    ProcessState,
)
from mxmem.sources.sim.kernel import (
    HEAP_COST,
    PAGE_SIZE,
    Kernel,
    KObject,
    PageState,
    SimAspace,
    SimMapping,
    SimVmar,
    SimVmo,
    pages_for,
)

# Thread kernel stacks come from the heap with the thread object (HEAP_COST["thread"]).
STACK_BYTES = 8192


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


def _use(
    vmo: SimVmo,
    index: int,
    holders: dict[int, set[int]],
    aspace_owner: dict[int, int],
    kernel_aspace: SimAspace,
) -> PageUse:
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
    return PageUse(vmo.koid, tuple(sorted(pids)), kernel_held)


# A run of a VMO's page indices [start, end) and the uses that reach each page in it.
Run = tuple[int, int, tuple[PageUse, ...]]


def _free_spans(bits: int, start: int, end: int) -> list[tuple[int, int]]:
    """The spans of [start, end) where ``bits`` has no page: where a clone still sees
    its parent's page."""
    spans: list[tuple[int, int]] = []
    mask = (bits >> start) & ((1 << (end - start)) - 1)
    at = start
    while mask:
        low = (mask & -mask).bit_length() - 1
        if start + low > at:
            spans.append((at, start + low))
        at = start + low + 1
        mask &= mask - 1
    if at < end:
        spans.append((at, end))
    return spans


class _Reach:
    """Which uses reach each page index of a VMO, computed a run at a time.

    A page's pattern changes only at mapping edges and at the edges of what a clone
    sees (its range, minus the pages it has copied), so each VMO's index space is cut
    into runs with one pattern each, bottom-up over the clone tree (memoised), and a
    run's committed pages are counted with one popcount. The cost follows the number of
    edges, not pages times clones (a library VMO with 4,000 clones has a handful of
    runs, where a page-by-page walk visited every clone for each of its pages).
    """

    def __init__(
        self, holders: dict[int, set[int]], aspace_owner: dict[int, int], kernel: SimAspace
    ) -> None:
        self.holders = holders
        self.aspace_owner = aspace_owner
        self.kernel_aspace = kernel
        self.memo: dict[int, list[Run]] = {}

    def runs(self, vmo: SimVmo) -> list[Run]:
        done = self.memo.get(id(vmo))
        if done is not None:
            return done
        n = pages_for(vmo.size)
        contribs: list[Run] = []
        edges = {0, n}
        for m in vmo.mappings:
            edges.add(min(m.vmo_offset // PAGE_SIZE, n))
            edges.add(min(pages_for(m.vmo_offset + m.size), n))
        cuts = sorted(edges)
        for a, b in itertools.pairwise(cuts):
            use = _use(vmo, a, self.holders, self.aspace_owner, self.kernel_aspace)
            # A use with no process and no kernel changes no page's attribution.
            if use.users or use.kernel:
                contribs.append((a, b, (use,)))
        for child in vmo.children:
            shift = child.parent_offset // PAGE_SIZE
            for a, b, uses in self.runs(child):
                for x, y in _free_spans(child.pages, a, b):
                    lo, hi = max(x + shift, 0), min(y + shift, n)
                    if lo < hi:
                        contribs.append((lo, hi, uses))
        out = _sweep(contribs)
        self.memo[id(vmo)] = out
        return out


def _sweep(contribs: list[Run]) -> list[Run]:
    """Overlay ranged contributions into runs carrying every use active in them."""
    if not contribs:
        return []
    events: dict[int, list[int]] = {}
    for i, (a, b, _) in enumerate(contribs):
        events.setdefault(a, []).append(i)
        events.setdefault(b, []).append(~i)
    active: set[int] = set()
    out: list[Run] = []
    positions = sorted(events)
    for pos, nxt in itertools.pairwise(positions):
        for e in events[pos]:
            if e >= 0:
                active.add(e)
            else:
                active.discard(~e)
        if active:
            uses = tuple(sorted(u for i in active for u in contribs[i][2]))
            out.append((pos, nxt, uses))
    return out


def _aspace_objects(
    vmar: SimVmar, pid: int, shared_users: dict[int, tuple[KObject, set[int]]]
) -> int:
    """Heap bytes of a VMAR tree (the VMARs and the mappings in it); records ``pid`` as
    a user of each VMO mapped there, in the same walk."""
    cost = HEAP_COST["vmar"]
    for child in vmar.children:
        if isinstance(child, SimMapping):
            cost += HEAP_COST["mapping"]
            shared_users.setdefault(id(child.vmo), (child.vmo, set()))[1].add(pid)
        else:
            cost += _aspace_objects(child, pid, shared_users)
    return cost


def _kernel_costs(kernel: Kernel) -> dict[int, dict[str, int]]:
    """Kernel memory each live process causes: its page tables, its threads' kernel
    stacks, and the heap bytes of its kernel objects — the process, its address space,
    VMARs, mappings, threads and handle table entries, plus an equal share of each VMO it
    maps or holds and each other object it holds a handle to."""
    costs: dict[int, dict[str, int]] = {}
    shared_users: dict[int, tuple[KObject, set[int]]] = {}
    for p in kernel.walk_processes():
        if p.state is ProcessState.DEAD:
            continue
        objects = HEAP_COST["process"] + len(p.handles) * HEAP_COST["handle"]
        objects += len(p.threads) * (HEAP_COST["thread"] - STACK_BYTES)
        mmu = 0
        if p.aspace is not None and p.aspace.root is not None:
            objects += HEAP_COST["aspace"] + _aspace_objects(p.aspace.root, p.koid, shared_users)
            mmu = p.aspace.mmu_pages * PAGE_SIZE
        for handle in p.handles.values():
            obj = handle.obj
            if isinstance(obj, SimVmo) or type(obj) is KObject:
                shared_users.setdefault(id(obj), (obj, set()))[1].add(p.koid)
        costs[p.koid] = {
            PAGE_TABLES: mmu,
            KERNEL_STACKS: len(p.threads) * STACK_BYTES,
            KERNEL_OBJECTS: objects,
        }
    # Shared objects: an equal share each, in whole bytes, the remainder to the lowest
    # koids (so the shares add up to the object's cost exactly).
    for obj, users in shared_users.values():
        cost = HEAP_COST["vmo" if isinstance(obj, SimVmo) else "other"]
        each, extra = divmod(cost, len(users))
        for i, pid in enumerate(sorted(users)):
            costs[pid][KERNEL_OBJECTS] += each + (i < extra)
    return costs


def sim_page_facts(kernel: Kernel) -> PageFacts:
    """Gather the page-level facts of ``kernel`` (a pure read; the kernel is unchanged)."""
    holders, aspace_owner = _holders(kernel)
    reach = _Reach(holders, aspace_owner, kernel.kernel_aspace)
    pages: Counter[PageKey] = Counter()
    unowned: Counter[str] = Counter()
    for vmo in kernel.vmos:
        if vmo.pages == 0:
            continue
        if vmo.page_state is not PageState.OBJECT:
            # The kernel image (wired) and the heap VMO: counted from the VMOs, so a
            # drift from the PMM's counts breaks the invariant.
            kind = {PageState.WIRED: "wired", PageState.HEAP: "heap"}.get(vmo.page_state, "other")
            unowned[kind] += vmo.committed_pages * PAGE_SIZE
            continue
        counted = 0
        for first, end, uses in reach.runs(vmo):
            n = ((vmo.pages >> first) & ((1 << (end - first)) - 1)).bit_count()
            if n:
                pages[uses] += n
                counted += n
        if counted < vmo.committed_pages:
            # Pages nobody maps or holds, through this VMO or any clone: unreferenced.
            pages[(PageUse(vmo.koid, (), False),)] += vmo.committed_pages - counted
    counts = kernel.pmm.counts
    costs = _kernel_costs(kernel)
    heap = unowned.pop("heap", 0)
    attributed_heap = sum(c[KERNEL_STACKS] + c[KERNEL_OBJECTS] for c in costs.values())
    unowned["kernel heap free"] += heap - kernel.heap_allocated
    # Jobs, dead processes' objects, kernel-held VMOs: no live process caused them.
    unowned["kernel objects (no process)"] += kernel.heap_allocated - attributed_heap
    unowned["free"] += counts[PageState.FREE] * PAGE_SIZE
    unowned["other"] += counts[PageState.ALLOC] * PAGE_SIZE
    # Page tables of no live process (none in this model, but said rather than assumed).
    unowned["page tables (no process)"] += counts[PageState.MMU] * PAGE_SIZE - sum(
        c[PAGE_TABLES] for c in costs.values()
    )
    return PageFacts(
        total_bytes=kernel.pmm.total_pages * PAGE_SIZE,
        page_size=PAGE_SIZE,
        pages=dict(pages),
        process_kernel={pid: {k: v for k, v in c.items() if v} for pid, c in costs.items()},
        categories={k: v for k, v in unowned.items() if v},
    )
