"""Exact attribution on the simulated kernel (issue 6, first slice).

Each rule has a test on a small hand-built kernel with the expectation computed by hand;
a Hypothesis property checks the invariant (Σ processes + Σ categories = total, to the
byte) after any op sequence from ``tests/support/strategies.py``.

Hand-computation notes: P = 4096. A fresh process costs one MMU page (its PML4); a first
mapping at 0x1000000 adds a PT, a PD and a PDPT page (3 more), so a process with mappings
inside one 2 MiB block has 4 page-table pages.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from profiles import examples
from strategies import World, boots, op_lists

from mxmem.accounting.exact import (
    KERNEL_VMOS,
    UNREFERENCED,
    Attribution,
    ProcessShare,
    attribute,
)
from mxmem.accounting.figures import exact_figures
from mxmem.accounting.rounding import integer_parts, scaled_to_fit
from mxmem.model import (
    KERNEL_OBJECTS,
    KERNEL_STACKS,
    PAGE_TABLES,
    Job,
    Level,
    Platform,
    Process,
    ProcessState,
    Snapshot,
)
from mxmem.sources.sim.kernel import (
    KERNEL,
    PAGE_SIZE,
    Kernel,
    PageState,
    SimProcess,
    SimVmar,
    SimVmo,
)
from mxmem.sources.sim.pages import sim_page_facts

P = PAGE_SIZE
MEMORY = 4096 * P
WIRED = 64 * P


def exact(k: Kernel) -> Attribution:
    return attribute(sim_page_facts(k))


def new_kernel() -> Kernel:
    return Kernel(MEMORY, wired_bytes=WIRED)


def proc(k: Kernel, name: str) -> SimProcess:
    p = k.process_create(k.root_job, name)
    k.process_start(p)
    return p


def root(p: SimProcess) -> SimVmar:
    assert p.aspace is not None and p.aspace.root is not None
    return p.aspace.root


def vmo_bytes(a: Attribution, p: SimProcess) -> Fraction:
    share = a.processes[p.koid]
    return share.private + share.shared


def mmu_bytes(a: Attribution, p: SimProcess) -> Fraction:
    return a.processes[p.koid].kernel.get(PAGE_TABLES, Fraction(0))


def test_a_page_mapped_twice_by_one_process_counts_once() -> None:
    k = new_kernel()
    p = proc(k, "p")
    vmo = k.vmo_create(2 * P, "twice", owner=p)
    k.vmo_write(vmo, 0, 2 * P)
    k.vmar_map(root(p), vmo, addr=0x1000000)
    k.vmar_map(root(p), vmo, addr=0x1000000 + 2 * P)
    a = exact(k)
    # Two pages, each mapped twice (and held by a handle): 2 pages, not 4 (2017 says 4).
    assert vmo_bytes(a, p) == 2 * P
    assert mmu_bytes(a, p) == 4 * P
    assert a.accounted() == a.total_bytes


def test_a_handle_only_vmo_held_by_two_processes_splits_evenly() -> None:
    k = new_kernel()
    p1, p2 = proc(k, "p1"), proc(k, "p2")
    vmo = k.vmo_create(3 * P, "held", owner=p1)
    k.handle_grant(p2, vmo, 0)
    k.vmo_write(vmo, 0, 3 * P)
    a = exact(k)
    assert vmo_bytes(a, p1) == vmo_bytes(a, p2) == Fraction(3 * P, 2)
    # Unmapped: only the PML4 page each.
    assert mmu_bytes(a, p1) == mmu_bytes(a, p2) == P
    assert a.accounted() == a.total_bytes


def test_a_second_handle_in_the_same_process_does_not_change_the_split() -> None:
    k = new_kernel()
    p1, p2 = proc(k, "p1"), proc(k, "p2")
    vmo = k.vmo_create(P, "held", owner=p1)
    k.handle_grant(p1, vmo, 0)
    k.handle_grant(p2, vmo, 0)
    k.vmo_write(vmo, 0, P)
    a = exact(k)
    assert vmo_bytes(a, p1) == vmo_bytes(a, p2) == Fraction(P, 2)


def test_rfc0254_cow_page_splits_among_vmos_then_aspaces() -> None:
    # RFC-0254's example: a page shared by VMOs P and C, P mapped in p1, C mapped in p2
    # and p3: p1 gets 1/2 page, p2 and p3 1/4 each.
    k = new_kernel()
    p1, p2, p3 = proc(k, "p1"), proc(k, "p2"), proc(k, "p3")
    parent = k.vmo_create(P, "P", owner=KERNEL)
    k.vmo_write(parent, 0, P)
    clone = k.vmo_clone(parent, 0, P, "C", owner=KERNEL)
    k.vmar_map(root(p1), parent, addr=0x1000000)
    k.vmar_map(root(p2), clone, addr=0x1000000)
    k.vmar_map(root(p3), clone, addr=0x1000000)
    a = exact(k)
    assert vmo_bytes(a, p1) == Fraction(P, 2)
    assert vmo_bytes(a, p2) == vmo_bytes(a, p3) == Fraction(P, 4)
    assert a.accounted() == a.total_bytes


def test_a_page_the_clone_wrote_is_the_clones_alone() -> None:
    k = new_kernel()
    p1, p2 = proc(k, "p1"), proc(k, "p2")
    parent = k.vmo_create(2 * P, "P", owner=p1)
    k.vmo_write(parent, 0, 2 * P)
    clone = k.vmo_clone(parent, 0, 2 * P, "C", owner=p2)
    k.vmo_write(clone, P, P)  # the clone's page 1 is now its own copy
    a = exact(k)
    # Page 0 of P: shared by P (p1) and C (p2), half each. Page 1 of P: C has its own
    # page 1, so only P reaches it: p1. C's page 1: p2.
    assert vmo_bytes(a, p1) == Fraction(P, 2) + P
    assert vmo_bytes(a, p2) == Fraction(P, 2) + P


def test_a_clone_at_an_offset_reaches_only_the_pages_it_covers() -> None:
    k = new_kernel()
    p1, p2 = proc(k, "p1"), proc(k, "p2")
    parent = k.vmo_create(4 * P, "P", owner=p1)
    k.vmo_write(parent, 0, 4 * P)
    k.vmo_clone(parent, 2 * P, P, "C", owner=p2)  # sees P's page 2 only
    a = exact(k)
    assert vmo_bytes(a, p1) == 3 * P + Fraction(P, 2)
    assert vmo_bytes(a, p2) == Fraction(P, 2)


def test_a_mapping_counts_only_for_the_pages_it_covers() -> None:
    k = new_kernel()
    p1, p2 = proc(k, "p1"), proc(k, "p2")
    vmo = k.vmo_create(2 * P, "v", owner=KERNEL)
    k.vmo_write(vmo, 0, 2 * P)
    k.vmar_map(root(p1), vmo, size=P, addr=0x1000000)
    k.vmar_map(root(p2), vmo, vmo_offset=P, size=P, addr=0x1000000)
    a = exact(k)
    assert vmo_bytes(a, p1) == vmo_bytes(a, p2) == P


def test_unreferenced_and_kernel_vmo_pages_land_in_their_categories() -> None:
    k = new_kernel()
    held = k.vmo_create(3 * P, "kernel-held", owner=KERNEL)
    k.vmo_write(held, 0, 3 * P)
    orphan = k.vmo_create(2 * P, "nobody", owner=None)  # kernel-only, no user refs
    k.vmo_write(orphan, 0, 2 * P)
    a = exact(k)
    assert a.categories[KERNEL_VMOS] == 5 * P  # a kernel-only VMO is the kernel's too
    assert UNREFERENCED not in a.categories
    assert a.accounted() == a.total_bytes


def test_a_parent_kept_alive_only_by_a_clone_is_blamed_on_the_clones_users() -> None:
    k = new_kernel()
    p1, p2 = proc(k, "p1"), proc(k, "p2")
    parent = k.vmo_create(P, "P", owner=p1)
    k.vmo_write(parent, 0, P)
    k.vmo_clone(parent, 0, P, "C", owner=p2)
    k.handle_close(p1, k.handle_of(p1, parent))  # P lives on, for its clone only
    a = exact(k)
    assert vmo_bytes(a, p2) == P
    assert p1.koid not in a.processes or vmo_bytes(a, p1) == 0


def test_parent_pages_no_clone_can_reach_are_unreferenced() -> None:
    k = new_kernel()
    p1, p2 = proc(k, "p1"), proc(k, "p2")
    parent = k.vmo_create(4 * P, "P", owner=p1)
    k.vmo_write(parent, 0, 4 * P)
    k.vmo_clone(parent, 2 * P, P, "C", owner=p2)  # sees P's page 2 only
    k.handle_close(p1, k.handle_of(p1, parent))  # P lives on, for its clone only
    a = exact(k)
    # Page 2 is the clone's user's; pages 0, 1, 3 nobody can reach or be blamed for.
    assert vmo_bytes(a, p2) == P
    assert p1.koid not in a.processes or vmo_bytes(a, p1) == 0
    assert a.categories[UNREFERENCED] == 3 * P
    assert a.accounted() == a.total_bytes


def test_a_killed_process_is_blamed_for_nothing() -> None:
    k = new_kernel()
    p1, p2 = proc(k, "p1"), proc(k, "p2")
    vmo = k.vmo_create(2 * P, "v", owner=p1)
    k.vmo_write(vmo, 0, 2 * P)
    k.handle_grant(p2, vmo, 0)
    k.vmar_map(root(p2), vmo, addr=0x1000000)
    k.process_kill(p2)
    a = exact(k)
    assert p2.koid not in a.processes
    assert vmo_bytes(a, p1) == 2 * P
    assert a.accounted() == a.total_bytes


def test_page_tables_go_to_their_process_and_the_rest_is_named() -> None:
    k = new_kernel()
    p = proc(k, "p")
    vmo = k.vmo_create(P, "v", owner=p)
    k.vmar_map(root(p), vmo, addr=0x1000000)
    a = exact(k)
    assert mmu_bytes(a, p) == 4 * P
    assert vmo_bytes(a, p) == 0  # nothing committed
    assert "page tables (no process)" not in a.categories
    assert a.categories["wired"] == WIRED
    heap = k.pmm.counts[PageState.HEAP] * P
    named_heap = a.categories["kernel heap free"] + a.categories["kernel objects (no process)"]
    assert named_heap + a.processes[p.koid].kernel[KERNEL_OBJECTS] == heap
    assert a.categories["free"] == MEMORY - WIRED - heap - 4 * P
    assert a.accounted() == MEMORY


def test_kernel_objects_and_stacks_go_to_the_process_that_caused_them() -> None:
    k = new_kernel()
    p1, p2 = proc(k, "p1"), proc(k, "p2")
    k.thread_create(p1, "t1")
    k.thread_create(p1, "t2")
    vmo = k.vmo_create(P, "v", owner=p1)  # one handle in p1
    k.handle_grant(p2, vmo, 0)  # and one in p2
    k.vmar_map(root(p1), vmo, addr=0x1000000)  # one mapping in p1
    before = k.heap_allocated
    a = exact(k)
    s1, s2 = a.processes[p1.koid], a.processes[p2.koid]
    # Stacks: 8 KiB per thread. Objects: process 1536 + aspace 512 + root VMAR 256 +
    # mapping 192 + threads 2 x 512 + 1 handle x 64 + half the VMO (384 / 2).
    assert s1.kernel[KERNEL_STACKS] == 2 * 8192
    assert s1.kernel[KERNEL_OBJECTS] == 1536 + 512 + 256 + 192 + 2 * 512 + 64 + 192
    # p2: process, aspace, root VMAR, its handle and the other half of the VMO.
    assert KERNEL_STACKS not in s2.kernel
    assert s2.kernel[KERNEL_OBJECTS] == 1536 + 512 + 256 + 64 + 192
    assert k.heap_allocated == before  # a pure read
    # The root job and the boot objects: caused by no process.
    caused = s1.kernel[KERNEL_STACKS] + s1.kernel[KERNEL_OBJECTS] + s2.kernel[KERNEL_OBJECTS]
    assert a.categories["kernel objects (no process)"] == k.heap_allocated - caused
    assert a.accounted() == MEMORY


def test_display_rounding_keeps_the_exact_fraction() -> None:
    k = new_kernel()
    p1, p2, p3 = proc(k, "p1"), proc(k, "p2"), proc(k, "p3")
    vmo = k.vmo_create(P, "v", owner=p1)
    k.handle_grant(p2, vmo, 0)
    k.handle_grant(p3, vmo, 0)
    k.vmo_write(vmo, 0, P)
    a = exact(k)
    assert vmo_bytes(a, p1) == Fraction(P, 3)  # 1365.33... bytes
    # Plus its PML4 page and its kernel objects (process, aspace, root VMAR, a handle,
    # a third of the VMO object).
    assert round(a.processes[p1.koid].total) == 1365 + P + 1536 + 512 + 256 + 64 + 128
    assert a.accounted() == a.total_bytes


PROPERTY = settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[p for p in Phase if p is not Phase.explain],
)


@PROPERTY
@given(st.builds(World.build, boots, op_lists()))
def test_the_invariant_holds_to_the_byte_after_any_ops(world: World) -> None:
    k = world.kernel
    a = exact(k)
    assert a.total_bytes == k.pmm.total_pages * P
    assert a.accounted() == a.total_bytes
    assert all(v >= 0 for v in a.categories.values()), a.categories
    assert all(
        s.private >= 0 and s.shared >= 0 and all(v >= 0 for v in s.kernel.values())
        for s in a.processes.values()
    )
    # Only live processes are blamed, and every committed OBJECT page is somewhere.
    live = {p.koid for p in k.walk_processes() if p.state is not ProcessState.DEAD}
    assert set(a.processes) <= live
    object_bytes = sum(s.private + s.shared for s in a.processes.values()) + sum(
        a.categories.get(c, 0) for c in (KERNEL_VMOS, UNREFERENCED)
    )
    assert object_bytes == k.pmm.counts[PageState.OBJECT] * P
    # A page some process uses is wholly blamed on processes; only pages nobody uses land
    # in the VMO categories (catches a share leaking to a VMO without users).
    facts = sim_page_facts(k)
    nobody = sum(n * P for key, n in facts.pages.items() if not any(use.users for use in key))
    assert a.categories.get(KERNEL_VMOS, 0) + a.categories.get(UNREFERENCED, 0) == nobody


# --- clone families, built directly -------------------------------------------------
#
# Random op lists rarely reach copy-on-write sharing, so this property builds clone
# families on purpose: a written root VMO, clones of clones at random page offsets,
# random writes through any member, and three processes that map or hold random members.
# The expectation comes from an independent oracle that resolves each (VMO, index) upward
# to the page that backs it — where the code under test walks down from each page.


def _resolve(vmo: SimVmo, index: int) -> tuple[int, int] | None:
    """The (id of the VMO, index) whose own page backs ``index`` of ``vmo``, if any."""
    while True:
        if not 0 <= index < -(-vmo.size // P):
            return None  # beyond this member's size: a clone sees zeroes there
        if (vmo.pages >> index) & 1:
            return id(vmo), index
        parent = vmo.parent
        if parent is None:
            return None
        index += vmo.parent_offset // P
        vmo = parent


families = st.fixed_dictionaries(
    {
        "root_pages": st.integers(1, 6),
        "clones": st.lists(
            st.tuples(st.integers(0, 15), st.integers(0, 3), st.integers(1, 6)), max_size=5
        ),
        "writes": st.lists(st.tuples(st.integers(0, 15), st.integers(0, 7)), max_size=8),
        "uses": st.lists(
            st.tuples(st.integers(0, 2), st.integers(0, 15), st.booleans(), st.integers(0, 5)),
            max_size=8,
        ),
    }
)


@PROPERTY
@given(families)
def test_clone_families_split_by_the_two_step_rule(plan: dict[str, Any]) -> None:
    k = new_kernel()
    procs = [proc(k, f"p{i}") for i in range(3)]
    root_vmo = k.vmo_create(plan["root_pages"] * P, "root", owner=None)
    k.vmo_write(root_vmo, 0, plan["root_pages"] * P)
    family = [root_vmo]
    for parent_i, offset, size in plan["clones"]:
        parent = family[parent_i % len(family)]
        family.append(k.vmo_clone(parent, offset * P, size * P, owner=None))
    for member_i, index in plan["writes"]:
        vmo = family[member_i % len(family)]
        if index * P < vmo.size:
            k.vmo_write(vmo, index * P, P)
    # Who uses which index of which member: a mapping of one page, or a handle (all).
    users: dict[tuple[int, int], set[int]] = {}
    holders: dict[int, set[int]] = {}
    next_addr = {p.koid: 0x1000000 for p in procs}
    for proc_i, member_i, by_handle, index in plan["uses"]:
        p, vmo = procs[proc_i], family[member_i % len(family)]
        if by_handle:
            k.handle_grant(p, vmo, 0)
            holders.setdefault(id(vmo), set()).add(p.koid)
        elif index * P < vmo.size:
            k.vmar_map(root(p), vmo, addr=next_addr[p.koid], vmo_offset=index * P, size=P)
            next_addr[p.koid] += 2 * P
            users.setdefault((id(vmo), index), set()).add(p.koid)
    # Oracle: for every page, the members that resolve to it and their users.
    reach: dict[tuple[int, int], list[set[int]]] = {}
    for vmo in family:
        for index in range(-(-vmo.size // P)):
            backing = _resolve(vmo, index)
            if backing is None:
                continue
            who = users.get((id(vmo), index), set()) | holders.get(id(vmo), set())
            if who:
                reach.setdefault(backing, []).append(who)
    expected: dict[int, Fraction] = {p.koid: Fraction(0) for p in procs}
    for reachers in reach.values():
        for who in reachers:
            for pid in who:
                expected[pid] += Fraction(P, len(reachers) * len(who))
    a = exact(k)
    got = {p.koid: vmo_bytes(a, p) if p.koid in a.processes else 0 for p in procs}
    assert got == expected
    assert a.accounted() == a.total_bytes


# --- display rounding ---------------------------------------------------------------


def test_integer_parts_gives_the_lost_bytes_to_the_largest_remainders() -> None:
    # Thirds of 4096 three ways: 1365.33 each, 4096 in all; one extra byte, to the tie
    # broken by name.
    third = Fraction(P, 3)
    assert integer_parts([("b", third), ("a", third), ("c", third)]) == {
        "a": 1366,
        "b": 1365,
        "c": 1365,
    }
    # Whole values stay whole; 0.6 + 0.6 + 0.8 = 2: the two largest remainders go up.
    parts = [("x", Fraction(3, 5)), ("y", Fraction(3, 5)), ("z", Fraction(4, 5)), ("w", 7)]
    assert integer_parts(parts) == {"x": 1, "y": 0, "z": 1, "w": 7}


@given(
    st.lists(st.fractions(min_value=0, max_value=10**9, max_denominator=60), max_size=30),
    st.randoms(use_true_random=False),
)
def test_integer_parts_add_up_and_stay_within_a_byte(
    values: list[Fraction], random: Any
) -> None:
    # The shared rounding of every tool: the parts add up to the rounded total, each is
    # within a byte of its exact value (its floor or its ceiling), and ties are stable:
    # the result does not depend on the order the parts come in.
    parts = integer_parts(list(enumerate(values)))
    assert sum(parts.values()) == round(sum(values, Fraction(0)))
    assert all(abs(parts[i] - v) < 1 for i, v in enumerate(values))
    shuffled = list(enumerate(values))
    random.shuffle(shuffled)
    assert integer_parts(shuffled) == parts


def test_scaled_to_fit_halves_boxes_counted_twice() -> None:
    # Two 64 MiB boxes whose pages the kernel says count 64 MiB in all (shared after
    # fork): each becomes half; sizes under the limit stay as they are.
    assert scaled_to_fit({"a": 64 << 20, "b": 64 << 20}, 64 << 20) == {
        "a": 32 << 20,
        "b": 32 << 20,
    }
    assert scaled_to_fit({"a": 3, "b": 4}, 7) == {"a": 3, "b": 4}
    assert scaled_to_fit({"a": 1, "b": 1, "c": 1}, 2) == {"a": 1, "b": 1, "c": 0}
    assert scaled_to_fit({"a": 5}, -1) == {"a": 0}


@given(
    st.dictionaries(st.integers(0, 50), st.integers(0, 2**40), max_size=20),
    st.integers(0, 2**41),
)
def test_scaled_to_fit_never_exceeds_its_limit(sizes: dict[int, int], limit: int) -> None:
    # Under the limit nothing moves; over it, the parts add up to the limit exactly and
    # each is within a byte of its proportional share, never above its own size.
    fitted = scaled_to_fit(sizes, limit)
    total = sum(sizes.values())
    if total <= limit:
        assert fitted == sizes
        return
    assert sum(fitted.values()) == limit
    for key, size in sizes.items():
        assert abs(fitted[key] - Fraction(size * limit, total)) < 1
        assert 0 <= fitted[key] <= size


def tiny_snapshot() -> Snapshot:
    """A root job 1 with one process 2: enough of a task tree for the figures."""
    from datetime import UTC, datetime

    return Snapshot(
        source="test",
        platform=Platform.MAGENTA,
        level=Level.PAGES,
        timestamp=datetime(2017, 1, 1, tzinfo=UTC),
        kernel=None,
        root_job_koid=1,
        jobs={1: Job(koid=1, parent_koid=None, name="root", process_koids=(2,))},
        processes={2: Process(koid=2, job_koid=1, name="p")},
        vmos={},
    )


def test_private_nine_halves_category_eleven_halves_total_ten() -> None:
    # Issue 10: ps (render/exact.py) rounded private to 5, memgraph (render/memgraph.py)
    # to 4: the same ½ remainders, ties broken by two different key spellings. Now one
    # rounding, in accounting: ties go to processes before categories, so private is 5,
    # the category 5, and they add up to the total, 10.
    attribution = Attribution(
        total_bytes=10,
        processes={2: ProcessShare(private=Fraction(9, 2))},
        categories={"c": Fraction(11, 2)},
    )
    figs = exact_figures(tiny_snapshot(), attribution)
    process = figs.processes[2]
    assert process is not None
    assert (process.private, process.total) == (5, 5)
    assert figs.jobs[1].total == 5
    assert figs.system is not None
    assert figs.system.categories == (("c", 5),)
    assert (figs.system.processes_bytes, figs.system.residual_bytes) == (5, 0)


