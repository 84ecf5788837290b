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


def _reach(vmo: SimVmo, index: int, out: list[tuple[SimVmo, int]]) -> None:
    """Append ``(vmo, index)`` and every clone below ``vmo`` that sees its page ``index``."""
    out.append((vmo, index))
    for clone in vmo.children:
        j = index - clone.parent_offset // PAGE_SIZE
        if 0 <= j < pages_for(clone.size) and not (clone.pages >> j) & 1:
            _reach(clone, j, out)


def _aspace_objects(vmar: SimVmar) -> int:
    """Heap bytes of a VMAR tree: the VMARs and the mappings in it."""
    cost = HEAP_COST["vmar"]
    for child in vmar.children:
        if isinstance(child, SimMapping):
            cost += HEAP_COST["mapping"]
        else:
            cost += _aspace_objects(child)
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
            objects += HEAP_COST["aspace"] + _aspace_objects(p.aspace.root)
            mmu = p.aspace.mmu_pages * PAGE_SIZE
            _collect_mapped(p.aspace.root, p.koid, shared_users)
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


def _collect_mapped(
    vmar: SimVmar, pid: int, shared_users: dict[int, tuple[KObject, set[int]]]
) -> None:
    for child in vmar.children:
        if isinstance(child, SimMapping):
            shared_users.setdefault(id(child.vmo), (child.vmo, set()))[1].add(pid)
        else:
            _collect_mapped(child, pid, shared_users)


def sim_page_facts(kernel: Kernel) -> PageFacts:
    """Gather the page-level facts of ``kernel`` (a pure read; the kernel is unchanged)."""
    holders, aspace_owner = _holders(kernel)
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
        bits, index = vmo.pages, 0
        while bits:
            if bits & 1:
                reach: list[tuple[SimVmo, int]] = []
                _reach(vmo, index, reach)
                key = tuple(
                    sorted(
                        _use(v, i, holders, aspace_owner, kernel.kernel_aspace) for v, i in reach
                    )
                )
                pages[key] += 1
            bits >>= 1
            index += 1
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
