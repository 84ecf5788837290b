"""Property tests: random op sequences against the simulated kernel and the 2017 rule.

Worlds come from ``tests/support/strategies.py``. The expected figures here are recomputed from
the kernel's own objects (page bitmaps, VMAR trees, handle tables) without going through
the snapshot, so the properties check the kernel's bookkeeping, the snapshot source and
the accounting against each other.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from profiles import examples
from strategies import (
    BOOTS,
    KOID_DELTAS,
    LENGTHS,
    SKIPPED,
    VMO_SIZES,
    Op,
    World,
    aspace_mappings,
    boots,
    live_aspaces,
    op_lists,
    state_digest,
    vmar_tree,
)

from mxmem.accounting.magenta2017 import task_memory
from mxmem.errors import KernelError
from mxmem.model import ZERO_STATS, Level, ProcessState, Rights, TaskStats, ThreadState
from mxmem.sources.sim.kernel import (
    HEAP_CHUNK_PAGES,
    HEAP_COST,
    KERNEL,
    PAGE_SIZE,
    Kernel,
    PageState,
    SimAspace,
    SimMapping,
    SimProcess,
    SimVmar,
    SimVmo,
    pages_for,
)
from mxmem.sources.sim.source import kernel_snapshot

P = PAGE_SIZE
# No explain phase: on a failure it re-ran ~1800 variants of the op list to mark the
# irrelevant ops, taking ~90 s of a ~100 s report (the shrink itself took ~7 s).
PROPERTY = settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[p for p in Phase if p is not Phase.explain],
)
worlds = st.builds(World.build, boots, op_lists())


def popcount(bits: int) -> int:
    return bin(bits).count("1")


def touched_mask(offset: int, length: int) -> int:
    """Bitmap of the pages overlapping ``[offset, offset+length)``."""
    if length <= 0:
        return 0
    first, last = offset // P, (offset + length - 1) // P
    return sum(1 << i for i in range(first, last + 1))


def committed_in_range(vmo: SimVmo, offset: int, size: int) -> int:
    """The VMO's own committed pages in ``[offset, offset+size)``, bit by bit."""
    return sum((vmo.pages >> i) & 1 for i in range(offset // P, -(-(offset + size) // P)))


def table_pages(aspace: SimAspace) -> int:
    """x86-64 page-table pages for the aspace's mappings: the PML4, plus one page per
    2 MiB / 1 GiB / 512 GiB block that any mapping touches."""
    blocks: set[tuple[int, int]] = set()
    for m in aspace_mappings(aspace):
        for shift in (21, 30, 39):
            blocks.update((shift, b) for b in range(m.base >> shift, ((m.end - 1) >> shift) + 1))
    return 1 + len(blocks)


def distinct_aspaces(vmo: SimVmo) -> int:
    """The share count §5 describes, for VMOs in at most 64 address spaces."""
    if len(vmo.mappings) < 2:
        return 1
    return len({id(m.aspace) for m in vmo.mappings})


def expected_heap(world: World) -> int:
    """Heap bytes the live objects cost: what the kernel's allocated figure must be."""
    c = HEAP_COST
    total = len(world.jobs) * c["job"] + len(world.processes) * c["process"]
    total += len(world.threads) * c["thread"]
    for p in world.processes:
        total += len(p.handles) * c["handle"]
        if p.aspace is not None:
            assert p.aspace.root is not None
            total += c["aspace"] + len(vmar_tree(p.aspace.root)) * c["vmar"]
            total += len(aspace_mappings(p.aspace)) * c["mapping"]
    total += sum(c["vmo"] for v in world.vmos if v.alive)
    total += sum(c["other"] for o in world.others if o.alive)
    return total


def rule_2017(process: SimProcess) -> TaskStats:
    """§5 computed from the kernel's objects: per mapping, own committed pages in range,
    private if the share count is 1, else shared with ``committed // share`` scaled."""
    if process.state is not ProcessState.RUNNING or process.aspace is None:
        return ZERO_STATS
    mapped = private = shared = scaled = 0
    for m in aspace_mappings(process.aspace):
        mapped += m.size
        committed = committed_in_range(m.vmo, m.vmo_offset, m.size) * P
        share = distinct_aspaces(m.vmo)
        if share == 1:
            private += committed
        else:
            shared += committed
            scaled += committed // share
    return TaskStats(
        mapped_bytes=mapped, private_bytes=private, shared_bytes=shared, scaled_shared_bytes=scaled
    )


# --------------------------------------------------------------------------- model checks


def check_structure(world: World) -> None:
    """The object graph is intact: VMAR trees, mapping lists, clone links, lifetimes,
    handle counts."""
    k = world.kernel
    found: dict[int, SimMapping] = {}
    for aspace in live_aspaces(world):
        root = aspace.root
        assert root is not None and root.parent is None
        assert (root.base, root.size) == (aspace.base, aspace.size)
        for vmar in vmar_tree(root):
            assert vmar.alive and vmar.aspace is aspace
            assert vmar.starts == [c.base for c in vmar.children]
            prev_end = vmar.base
            for c in vmar.children:
                assert c.base % P == 0 and c.size > 0 and c.size % P == 0, (vmar.koid, c.base)
                assert prev_end <= c.base and c.end <= vmar.end, "overlap or outside parent"
                prev_end = c.end
                if isinstance(c, SimVmar):
                    assert c.parent is vmar
                else:
                    assert c.alive and c.vmar is vmar and c.aspace is aspace
                    found[id(c)] = c
    listed: dict[int, SimMapping] = {}
    for v in k.vmos:
        assert v.alive
        for m in v.mappings:
            assert m.vmo is v
            listed[id(m)] = m
        assert len(v.mappings) == len({id(m) for m in v.mappings})
    assert listed.keys() == found.keys(), "VMO mapping lists differ from the aspace walk"

    live = {id(v) for v in k.vmos}
    assert len(live) == len(k.vmos)
    for v in [*k.vmos, *world.vmos]:
        assert v.alive == (id(v) in live)
        if v.alive:
            assert v.refs() > 0
            assert {id(c) for c in v.children} == {id(c) for c in k.vmos if c.parent is v}, (
                "num_children"
            )
            assert len(v.children) == len({id(c) for c in v.children})
            # No committed page past the end, and a physical VMO commits none.
            assert v.pages >> pages_for(v.size) == 0
            assert not (v.physical and v.pages)
        else:
            assert (v.pages, v.mappings, v.children, v.handle_count) == (0, [], [], 0)

    handles: dict[int, int] = {}
    for p in world.processes:
        for h in p.handles.values():
            handles[id(h.obj)] = handles.get(id(h.obj), 0) + 1
        if p.state is ProcessState.DEAD:
            assert p.aspace is None and not p.handles
            assert all(t.state is ThreadState.DEAD for t in p.threads)
        else:
            assert p.aspace is not None
    pools: list[Any] = [
        *world.jobs,
        *world.processes,
        *world.threads,
        *world.vmos,
        *world.vmars,
        *world.others,
    ]
    for obj in pools:
        assert obj.handle_count == handles.get(id(obj), 0), obj.koid
    for o in world.others:
        assert o.alive == (o.handle_count > 0)
    reachable = {id(v) for a in live_aspaces(world) for v in vmar_tree(a.root)}  # type: ignore[arg-type]
    for vmar in world.vmars:
        assert vmar.alive == (id(vmar) in reachable)


def check_kernel_stats(world: World) -> None:
    """kstats sum to the total and each figure matches the objects behind it."""
    k = world.kernel
    km = kernel_snapshot(k, Level.KMEM).kernel
    assert km is not None
    assert km.total_bytes == world.boot.memory_bytes
    assert km.parts_sum() == km.total_bytes
    assert sum(k.pmm.counts) == k.pmm.total_pages
    assert km.wired_bytes == pages_for(world.boot.wired_bytes) * P
    assert km.other_bytes == pages_for(world.boot.other_bytes) * P
    user_vmos = [v for v in world.vmos if v.alive]
    assert all(v.page_state is PageState.OBJECT for v in user_vmos)
    registry = {id(v) for v in world.vmos}
    boot_object_pages = sum(
        popcount(v.pages)
        for v in k.vmos
        if v.page_state is PageState.OBJECT and id(v) not in registry
    )
    assert km.vmo_bytes == (sum(popcount(v.pages) for v in user_vmos) + boot_object_pages) * P
    user_aspaces = [a for a in live_aspaces(world) if not a.is_kernel]
    for aspace in user_aspaces:
        assert aspace.mmu_pages == table_pages(aspace), aspace.name
    assert km.mmu_bytes == sum(table_pages(a) for a in user_aspaces) * P
    assert km.heap_free_bytes >= 0
    assert km.heap_total_bytes == k.heap_pages * P == popcount(k.heap_vmo.pages) * P
    assert k.heap_pages % HEAP_CHUNK_PAGES == 0
    assert km.heap_allocated_bytes == expected_heap(world)


def check_vmo_page_effect(world: World, before: dict[int, int]) -> None:
    """A write commits exactly the pages it touches; a decommit frees exactly those."""
    call = world.last_call
    if call is None or call[0] not in ("vmo_write", "vmo_decommit"):
        return
    target, offset, length = call[1]
    mask = 0 if target.physical else touched_mask(offset, length)
    for v in world.vmos:
        if v is not target:
            assert v.pages == before[id(v)]
        elif call[0] == "vmo_write":
            assert v.pages == before[id(v)] | mask, (offset, length)
        else:
            assert v.pages == before[id(v)] & ~mask, (offset, length)


# --------------------------------------------------------------------------- properties


@PROPERTY
@given(boot=boots, op_list=op_lists())
def test_a_failed_op_changes_nothing(boot: Any, op_list: list[Op]) -> None:
    world = World(boot)
    for op in op_list:
        before = state_digest(world)
        outcome = world.apply(op)
        if outcome is not None:
            assert state_digest(world) == before, f"{op} -> {outcome} changed the model"


@PROPERTY
@given(boot=boots, op_list=op_lists())
def test_every_op_keeps_the_model_consistent(boot: Any, op_list: list[Op]) -> None:
    world = World(boot)
    check_structure(world)
    check_kernel_stats(world)
    for op in op_list:
        pages = {id(v): v.pages for v in world.vmos}
        if world.apply(op) is None:
            check_vmo_page_effect(world, pages)
        check_structure(world)
        check_kernel_stats(world)


@PROPERTY
@given(worlds)
def test_job_totals_sum_descendant_processes(world: World) -> None:
    tm = task_memory(kernel_snapshot(world.kernel))

    def check(job: Any) -> tuple[int, int]:
        pss = private = 0
        for p in job.processes:
            stats = tm.processes[p.koid]
            assert stats is not None
            pss += stats.pss_bytes
            private += stats.private_bytes
        for child in job.jobs:
            child_pss, child_private = check(child)
            pss += child_pss
            private += child_private
        totals = tm.jobs[job.koid]
        assert (totals.pss_bytes, totals.private_bytes, totals.unknown) == (pss, private, 0)
        return pss, private

    check(world.kernel.root_job)


@PROPERTY
@given(worlds)
def test_private_le_pss_le_private_plus_shared(world: World) -> None:
    tm = task_memory(kernel_snapshot(world.kernel))
    for stats in tm.processes.values():
        assert stats is not None
        assert stats.private_bytes <= stats.pss_bytes
        assert stats.pss_bytes <= stats.private_bytes + stats.shared_bytes


@PROPERTY
@given(worlds)
def test_private_plus_shared_is_committed_in_mapped_ranges(world: World) -> None:
    tm = task_memory(kernel_snapshot(world.kernel))
    for p in world.processes:
        stats = tm.processes[p.koid]
        assert stats is not None
        if p.state is not ProcessState.RUNNING:
            continue
        assert p.aspace is not None
        mappings = aspace_mappings(p.aspace)
        committed = sum(committed_in_range(m.vmo, m.vmo_offset, m.size) for m in mappings)
        assert stats.private_bytes + stats.shared_bytes == committed * P
        assert stats.mapped_bytes == sum(m.size for m in mappings)
        # And the whole rule, recomputed from the kernel objects.
        assert stats == rule_2017(p)


@PROPERTY
@given(worlds)
def test_dead_and_new_processes_report_zero(world: World) -> None:
    tm = task_memory(kernel_snapshot(world.kernel))
    for p in world.processes:
        if p.state is not ProcessState.RUNNING:
            assert tm.processes[p.koid] == ZERO_STATS


@PROPERTY
@given(worlds)
def test_share_count_is_the_number_of_address_spaces(world: World) -> None:
    snapshot = kernel_snapshot(world.kernel)
    for v in world.kernel.vmos:
        row = snapshot.vmos[v.koid]
        assert row.share_count == distinct_aspaces(v)
        assert row.num_mappings == len(v.mappings)
        assert row.num_children == len([c for c in world.kernel.vmos if c.parent is v])
        assert row.committed_bytes == popcount(v.pages) * P


@PROPERTY
@given(worlds, st.data())
def test_figures_do_not_depend_on_snapshot_level(world: World, data: st.DataObject) -> None:
    full = task_memory(kernel_snapshot(world.kernel, Level.FULL))
    tasks = task_memory(kernel_snapshot(world.kernel, Level.TASKS))
    assert full == tasks
    chosen = data.draw(st.sets(st.sampled_from([p.koid for p in world.processes] or [0])))
    partial = task_memory(kernel_snapshot(world.kernel, Level.FULL, chosen))
    for koid, stats in partial.processes.items():
        assert stats == full.processes[koid]


@PROPERTY
@given(worlds)
def test_closing_the_last_handle_frees_exactly_its_pages(world: World) -> None:
    k = world.kernel

    def unreferenced_otherwise(v: SimVmo) -> bool:
        return not v.mappings and not v.children and v.kernel_refs == 0

    for vmo in world.vmos:
        if not (vmo.alive and unreferenced_otherwise(vmo)):
            continue
        holders = [(p, h) for p in world.processes for h, hh in p.handles.items() if hh.obj is vmo]
        assert len(holders) == vmo.handle_count > 0
        for p, h in holders[:-1]:
            k.handle_close(p, h)
        assert vmo.alive
        # The clone ancestors that only this VMO keeps alive go with it.
        freed, dying = popcount(vmo.pages), 1
        parent = vmo.parent
        while parent is not None and parent.handle_count + parent.kernel_refs == 0:
            if parent.mappings or len(parent.children) > 1:
                break
            freed += popcount(parent.pages)
            dying += 1
            parent = parent.parent
        before = k.kmem()
        k.handle_close(*holders[-1])
        after = k.kmem()
        assert not vmo.alive and vmo not in k.vmos
        assert before["vmo_bytes"] - after["vmo_bytes"] == freed * P
        assert before["free_bytes"] + freed * P == after["free_bytes"]
        heap_freed = HEAP_COST["handle"] + dying * HEAP_COST["vmo"]
        assert after["heap_free_bytes"] - before["heap_free_bytes"] == heap_freed


@PROPERTY
@given(worlds)
def test_killing_everything_returns_user_memory(world: World) -> None:
    k = world.kernel
    for p in world.processes:
        k.process_kill(p)
    for v in world.vmos:
        while v.kernel_refs:
            k.kernel_release(v)
    km = k.kmem()
    assert km["vmo_bytes"] == 0
    assert km["mmu_bytes"] == 0
    assert [v.name for v in k.vmos] == ["physmap", "kernel image", "kernel heap", "hpet"]
    assert not any(v.alive for v in world.vmos)
    assert not any(o.alive for o in world.others)
    # Jobs, processes and threads stay (as DEAD) until destroyed; nothing else is left.
    assert k.heap_allocated == (
        len(world.jobs) * HEAP_COST["job"]
        + len(world.processes) * HEAP_COST["process"]
        + len(world.threads) * HEAP_COST["thread"]
    )
    assert km["free_bytes"] == km["total_bytes"] - (
        km["wired_bytes"] + km["heap_total_bytes"] + km["other_bytes"]
    )
    tm = task_memory(kernel_snapshot(k))
    assert all(s == ZERO_STATS for s in tm.processes.values())
    assert all((t.pss_bytes, t.private_bytes) == (0, 0) for t in tm.jobs.values())


@PROPERTY
@given(boot=boots, op_list=op_lists())
def test_same_ops_give_same_koids_and_snapshot(boot: Any, op_list: list[Op]) -> None:
    a = World.build(boot, op_list)
    b = World.build(boot, op_list)

    def koids(w: World) -> list[list[int]]:
        pools: list[list[Any]] = [w.jobs, w.processes, w.threads, w.vmos, w.vmars, w.others]
        return [[o.koid for o in pool] for pool in pools]

    assert koids(a) == koids(b)
    assert state_digest(a) == state_digest(b)
    assert kernel_snapshot(a.kernel) == kernel_snapshot(b.kernel)


_offsets = st.builds(
    lambda page, sub: page * P + sub, st.integers(0, 9), st.sampled_from((0, 1, P - 1, P // 2))
)
_lengths = st.one_of(st.sampled_from((0, 1, P - 1, P, P + 1, 2 * P)), st.integers(0, 6 * P))


@PROPERTY
@given(
    pages=st.integers(0, 8),
    size_extra=st.sampled_from((0, 0, 1, P - 1)),
    committed=st.integers(0, 255),
    offset=_offsets,
    length=_lengths,
    decommit=st.booleans(),
    through_clone=st.booleans(),
)
def test_write_and_decommit_touch_exactly_their_pages(
    pages: int,
    size_extra: int,
    committed: int,
    offset: int,
    length: int,
    decommit: bool,
    through_clone: bool,
) -> None:
    """One VMO (or a clone of it) with some pages committed; one write or decommit of
    ``[offset, offset+length)``. Expected: exactly the pages overlapping the range are
    committed (or freed), none for a zero length, ERR_OUT_OF_RANGE past the end."""
    size = pages * P + size_extra
    k = Kernel()
    parent = k.vmo_create(size, "parent", owner=KERNEL)
    vmo = k.vmo_clone(parent, 0, size, owner=KERNEL) if through_clone else parent
    for i in range(pages_for(size)):
        if committed >> i & 1:
            k.vmo_write(vmo, i * P, P if (i + 1) * P <= size else size - i * P)
    parent_pages, before, free = parent.pages, vmo.pages, k.kmem()["free_bytes"]
    op = k.vmo_decommit if decommit else k.vmo_write
    if offset + length > size:
        with pytest.raises(KernelError) as err:
            op(vmo, offset, length)
        assert err.value.status == "ERR_OUT_OF_RANGE"
        assert (vmo.pages, k.kmem()["free_bytes"]) == (before, free)
        return
    mask = touched_mask(offset, length)
    changed = op(vmo, offset, length)
    if decommit:
        assert vmo.pages == before & ~mask
        assert changed == popcount(before & mask)
        assert k.kmem()["free_bytes"] == free + changed * P
    else:
        assert vmo.pages == before | mask
        assert changed == popcount(mask & ~before)
        assert k.kmem()["free_bytes"] == free - changed * P
    if through_clone:
        assert parent.pages == parent_pages == 0


def test_op_strategy_reaches_every_outcome() -> None:
    """Guard against a harness that silently skips: a fixed op list must succeed, fail
    (for lack of memory too) and skip, so the properties above see all three."""
    ops = [
        Op("vmo_write", (0, 0, 0, 0)),  # no VMO yet: skipped
        Op("process_create", (0, 0, 0)),
        Op("vmo_create", (0, VMO_SIZES.index(600 * P), 0)),  # owned by the process
        Op("vmo_write", (0, 0, 0, LENGTHS.index(600 * P))),  # on a 128-page machine
        Op("vmo_write", (0, 0, 0, LENGTHS.index(2 * P))),
        Op("process_create", (0, 0, KOID_DELTAS.index(-1))),  # a koid already handed out
    ]
    world = World(BOOTS[2])
    assert [world.apply(op) for op in ops] == [
        SKIPPED,
        None,
        None,
        "ERR_NO_MEMORY",
        None,
        "ERR_INVALID_ARGS",
    ]
    assert popcount(world.vmos[0].pages) == 2


# --------------------------------------------------------------------------- share_count > 64


@settings(max_examples=examples(40), deadline=None)
@given(
    n=st.integers(2, 100),
    twice=st.integers(0, 100),
    second_pass=st.booleans(),
)
def test_share_count_extrapolates_past_64_aspaces(n: int, twice: int, second_pass: bool) -> None:
    """``n`` processes map one 1-page VMO; the first ``d`` of them map it a second time,
    either right after their first mapping (list: p0 p0 p1 p1 ... pd ... pn-1) or in a
    second pass after everyone (list: p0 ... pn-1 p0 ... pd-1).

    By hand (§5): with ``L = n + d`` mappings, if more than 64 aspaces the 65th distinct
    aspace (p64) is first met after ``v`` mappings, and the count is
    ``64 + (L - v) * 64 // v``; pairs give ``v = 64 + min(d, 64)``, a second pass
    ``v = 64``.
    """
    d = min(twice, n)
    k = Kernel()
    job = k.job_create(k.root_job, "job")
    vmo = k.vmo_create(P, "shared", owner=KERNEL, rights=Rights.DEFAULT_VMO)
    k.vmo_write(vmo, 0, P)
    procs: list[SimProcess] = []
    for i in range(n):
        p = k.process_create(job, f"p{i}")
        k.process_start(p)
        procs.append(p)
        assert p.aspace is not None and p.aspace.root is not None
        k.vmar_map(p.aspace.root, vmo)
        if i < d and not second_pass:
            k.vmar_map(p.aspace.root, vmo)
    if second_pass:
        for p in procs[:d]:
            assert p.aspace is not None and p.aspace.root is not None
            k.vmar_map(p.aspace.root, vmo)

    total = n + d
    if n <= 64:
        expected = n
    else:
        v = 64 if second_pass else 64 + min(d, 64)
        expected = 64 + (total - v) * 64 // v
    snapshot = kernel_snapshot(k)
    assert snapshot.vmos[vmo.koid].share_count == expected
    assert snapshot.vmos[vmo.koid].num_mappings == total
    tm = task_memory(snapshot)
    for i, p in enumerate(procs):
        maps = 2 if i < d else 1
        stats = tm.processes[p.koid]
        assert stats is not None
        assert stats.shared_bytes == maps * P
        assert stats.private_bytes == 0
        assert stats.scaled_shared_bytes == maps * (P // expected)
