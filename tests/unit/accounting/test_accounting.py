"""Named unit tests of the 2017 PRIVATE / SHARED / PSS rule (reference §5), each with a
hand-computed result. Worlds are built on the real simulated kernel and go through the
real snapshot source and ``task_memory``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from mxmem.accounting.magenta2017 import mapping_stats, task_memory
from mxmem.model import (
    ZERO_STATS,
    Aspace,
    Job,
    Level,
    Mapping,
    Perm,
    Platform,
    Process,
    ProcessState,
    Rights,
    Snapshot,
    TaskStats,
    Vmar,
    Vmo,
)
from mxmem.sources.sim.kernel import (
    KERNEL,
    PAGE_SIZE,
    Kernel,
    SimJob,
    SimProcess,
    SimVmar,
    SimVmo,
)
from mxmem.sources.sim.source import kernel_snapshot

P = PAGE_SIZE


def running(k: Kernel, job: SimJob | None = None, name: str = "p") -> SimProcess:
    p = k.process_create(job or k.root_job, name)
    k.process_start(p)
    return p


def root(p: SimProcess) -> SimVmar:
    assert p.aspace is not None and p.aspace.root is not None
    return p.aspace.root


def stats(k: Kernel, p: SimProcess) -> TaskStats:
    figures = task_memory(kernel_snapshot(k)).processes[p.koid]
    assert figures is not None
    return figures


def figures(mapped: int, private: int, shared: int, scaled: int) -> TaskStats:
    return TaskStats(
        mapped_bytes=mapped, private_bytes=private, shared_bytes=shared, scaled_shared_bytes=scaled
    )


def committed_vmo(k: Kernel, pages: int, name: str = "v") -> SimVmo:
    vmo = k.vmo_create(pages * P, name, owner=KERNEL)
    k.vmo_write(vmo, 0, pages * P)
    return vmo


def test_two_processes_share_a_page() -> None:
    k = Kernel()
    job = k.job_create(k.root_job, "j")
    a, b = running(k, job, "a"), running(k, job, "b")
    vmo = k.vmo_create(P, owner=a)
    k.vmo_write(vmo, 0, P)
    k.vmar_map(root(a), vmo)
    k.vmar_map(root(b), vmo)
    tm = task_memory(kernel_snapshot(k))
    # share count 2: each process has 4096 shared bytes and 4096 // 2 of them in PSS.
    assert tm.processes[a.koid] == tm.processes[b.koid] == figures(P, 0, P, 2048)
    assert (tm.jobs[job.koid].pss_bytes, tm.jobs[job.koid].private_bytes) == (4096, 0)


def test_per_mapping_integer_division() -> None:
    # The doc's figure: a process's PSS gets 24k/12 + 4k/12 = 2048 + 341 = 2389 from two
    # VMOs shared by twelve processes (ps shows 1384k + 28k/12 as 1386.3k).
    k = Kernel()
    big = k.vmo_create(6 * P, "24k", owner=KERNEL)
    small = k.vmo_create(P, "4k", owner=KERNEL)
    k.vmo_write(big, 0, 6 * P)
    k.vmo_write(small, 0, P)
    procs = [running(k, name=f"p{i}") for i in range(12)]
    for p in procs:
        k.vmar_map(root(p), big)
        k.vmar_map(root(p), small)
    tm = task_memory(kernel_snapshot(k))
    for p in procs:
        assert tm.processes[p.koid] == figures(7 * P, 0, 7 * P, 2389)


def test_per_mapping_division_truncates_each_mapping() -> None:
    # The doc's vmos row for vdso/full: 28k, #map 28, #shr 14. Fourteen processes each
    # map it as 24k r-- and 4k r-x. Per mapping: 24576 // 14 + 4096 // 14 = 1755 + 292
    # = 2047 — one byte less than 28672 // 14 = 2048 for the whole VMO.
    k = Kernel()
    vdso = k.vmo_create(7 * P, "vdso/full", owner=KERNEL)
    k.vmo_write(vdso, 0, 7 * P)
    procs = [running(k, name=f"p{i}") for i in range(14)]
    for p in procs:
        k.vmar_map(root(p), vdso, size=6 * P, perms=Perm.READ)
        k.vmar_map(root(p), vdso, vmo_offset=6 * P, size=P, perms=Perm.READ | Perm.EXECUTE)
    snapshot = kernel_snapshot(k)
    row = snapshot.vmos[vdso.koid]
    assert (row.num_mappings, row.share_count, row.committed_bytes) == (28, 14, 28 * 1024)
    tm = task_memory(snapshot)
    for p in procs:
        assert tm.processes[p.koid] == figures(7 * P, 0, 7 * P, 2047)


def test_unmapped_vmo_not_counted() -> None:
    k = Kernel()
    p = running(k)
    vmo = k.vmo_create(4 * P, owner=p)
    k.vmo_write(vmo, 0, 4 * P)
    snapshot = kernel_snapshot(k)
    assert task_memory(snapshot).processes[p.koid] == ZERO_STATS
    assert (snapshot.vmos[vmo.koid].num_mappings, snapshot.vmos[vmo.koid].share_count) == (0, 1)
    assert snapshot.kernel is not None and snapshot.kernel.vmo_bytes == 4 * P  # RAM is used


def test_clone_clean_pages_belong_to_parent() -> None:
    k = Kernel()
    a, b = running(k, name="a"), running(k, name="b")
    parent = k.vmo_create(4 * P, "parent", owner=a)
    k.vmo_write(parent, 0, 4 * P)
    clone = k.vmo_clone(parent, 0, 4 * P, owner=b)
    k.vmar_map(root(a), parent)
    k.vmar_map(root(b), clone)
    # The clone's own page list is empty: its mapper sees 0 committed. The parent has
    # one mapping, so share count 1 and all four pages are a's private memory.
    assert stats(k, b) == figures(4 * P, 0, 0, 0)
    assert stats(k, a) == figures(4 * P, 4 * P, 0, 0)
    snapshot = kernel_snapshot(k)
    assert snapshot.vmos[clone.koid].parent_koid == parent.koid
    assert snapshot.vmos[parent.koid].num_children == 1


def test_clone_written_page_is_private() -> None:
    k = Kernel()
    a, b = running(k, name="a"), running(k, name="b")
    parent = k.vmo_create(4 * P, "parent", owner=a)
    k.vmo_write(parent, 0, 4 * P)
    clone = k.vmo_clone(parent, 0, 4 * P, owner=b)
    k.vmar_map(root(a), parent)
    k.vmar_map(root(b), clone)
    k.vmo_write(clone, P, 10)  # copies page 1 into the clone
    assert stats(k, b) == figures(4 * P, P, 0, 0)
    assert stats(k, a) == figures(4 * P, 4 * P, 0, 0)
    assert k.kmem()["vmo_bytes"] == 5 * P


def test_multiply_mapped_page_counted_twice() -> None:
    # The rule's blind spot: one aspace, two mappings of the same page: share count 1,
    # and the page is private twice over although it uses 4096 bytes of RAM.
    k = Kernel()
    p = running(k)
    vmo = k.vmo_create(P, owner=p)
    k.vmo_write(vmo, 0, P)
    k.vmar_map(root(p), vmo)
    k.vmar_map(root(p), vmo)
    assert stats(k, p) == figures(2 * P, 2 * P, 0, 0)
    assert kernel_snapshot(k).vmos[vmo.koid].share_count == 1
    assert k.kmem()["vmo_bytes"] == P


def test_physical_vmo_uses_no_ram() -> None:
    k = Kernel()
    p = running(k)
    dev = k.vmo_create_physical(0xFE000000, 16 * P, "framebuffer", owner=p)
    k.vmo_write(dev, 0, 16 * P)
    k.vmar_map(root(p), dev)
    assert stats(k, p) == figures(16 * P, 0, 0, 0)
    assert k.kmem()["vmo_bytes"] == 0


def test_dead_process_reports_zero() -> None:
    # a and b share a page; killing b zeroes b and makes the page a's alone.
    k = Kernel()
    job = k.job_create(k.root_job, "j")
    a, b = running(k, job, "a"), running(k, job, "b")
    shared = k.vmo_create(P, owner=a)
    own = k.vmo_create(2 * P, owner=b)
    k.vmo_write(shared, 0, P)
    k.vmo_write(own, 0, 2 * P)
    k.vmar_map(root(a), shared)
    k.vmar_map(root(b), shared)
    k.vmar_map(root(b), own)
    assert stats(k, b) == figures(3 * P, 2 * P, P, 2048)
    k.process_kill(b)
    tm = task_memory(kernel_snapshot(k))
    assert tm.processes[b.koid] == ZERO_STATS
    assert tm.processes[a.koid] == figures(P, P, 0, 0)
    assert (tm.jobs[job.koid].pss_bytes, tm.jobs[job.koid].private_bytes) == (P, P)


def test_new_process_reports_zero() -> None:
    # GetStats answers BAD_STATE unless the process is RUNNING; ps prints zeros.
    k = Kernel()
    p = k.process_create(k.root_job, "not started")
    vmo = k.vmo_create(P, owner=p)
    k.vmo_write(vmo, 0, P)
    k.vmar_map(root(p), vmo)
    assert stats(k, p) == ZERO_STATS
    k.process_start(p)
    assert stats(k, p) == figures(P, P, 0, 0)


def test_single_mapping_share_count_is_one() -> None:
    # A handle is not a mapping: b holding the VMO does not make a's page shared.
    k = Kernel()
    a, b = running(k, name="a"), running(k, name="b")
    vmo = k.vmo_create(P, owner=a)
    k.vmo_write(vmo, 0, P)
    k.handle_grant(b, vmo, Rights.READ | Rights.MAP)
    k.vmar_map(root(a), vmo)
    assert kernel_snapshot(k).vmos[vmo.koid].share_count == 1
    assert stats(k, a) == figures(P, P, 0, 0)
    k.vmar_map(root(b), vmo)
    assert kernel_snapshot(k).vmos[vmo.koid].share_count == 2
    assert stats(k, a) == figures(P, 0, P, 2048)


def test_share_count_counts_aspaces_not_mappings() -> None:
    # a maps the 2-page VMO twice, b once: 3 mappings, 2 aspaces, share count 2.
    k = Kernel()
    a, b = running(k, name="a"), running(k, name="b")
    vmo = k.vmo_create(2 * P, owner=a)
    k.vmo_write(vmo, 0, 2 * P)
    k.vmar_map(root(a), vmo)
    k.vmar_map(root(a), vmo)
    k.vmar_map(root(b), vmo)
    assert kernel_snapshot(k).vmos[vmo.koid].share_count == 2
    assert stats(k, a) == figures(4 * P, 0, 4 * P, 2 * 4096)
    assert stats(k, b) == figures(2 * P, 0, 2 * P, 4096)


def test_kernel_aspace_counts_as_one_aspace() -> None:
    k = Kernel()
    p = running(k)
    vmo = k.vmo_create(P, "shared with the kernel", owner=KERNEL)
    k.vmo_write(vmo, 0, P)
    assert k.kernel_aspace.root is not None
    k.vmar_map(k.kernel_aspace.root, vmo)
    k.vmar_map(root(p), vmo)
    assert kernel_snapshot(k).vmos[vmo.koid].share_count == 2
    assert stats(k, p) == figures(P, 0, P, 2048)


def test_partial_mapping_counts_committed_pages_in_range_only() -> None:
    # Pages 0 and 3 of a 4-page VMO are committed.
    k = Kernel()
    p = running(k)
    vmo = k.vmo_create(4 * P, owner=p)
    k.vmo_write(vmo, 0, P)
    k.vmo_write(vmo, 3 * P, P)
    k.vmar_map(root(p), vmo, vmo_offset=P, size=2 * P)  # pages 1-2: nothing committed
    assert stats(k, p) == figures(2 * P, 0, 0, 0)
    k.vmar_map(root(p), vmo, vmo_offset=2 * P, size=2 * P)  # pages 2-3: page 3
    assert stats(k, p) == figures(4 * P, P, 0, 0)


def test_job_totals_sum_descendants() -> None:
    # root > A > B; p1 in A, p2 in B, p3 (nothing mapped) in root.
    # X (2 pages) p1 only; Y (1 page) p1 and p2; Z (3 pages) p2 only.
    # p1: private 8192, scaled 2048 -> PSS 10240; p2: private 12288, scaled 2048 -> 14336.
    k = Kernel()
    job_a = k.job_create(k.root_job, "A")
    job_b = k.job_create(job_a, "B")
    p1, p2, p3 = running(k, job_a, "p1"), running(k, job_b, "p2"), running(k, name="p3")
    x, y, z = committed_vmo(k, 2, "X"), committed_vmo(k, 1, "Y"), committed_vmo(k, 3, "Z")
    for p, vmo in ((p1, x), (p1, y), (p2, y), (p2, z)):
        k.vmar_map(root(p), vmo)
    tm = task_memory(kernel_snapshot(k))
    assert tm.processes[p1.koid] == figures(3 * P, 2 * P, P, 2048)
    assert tm.processes[p2.koid] == figures(4 * P, 3 * P, P, 2048)
    assert tm.processes[p3.koid] == ZERO_STATS
    totals = {koid: (t.pss_bytes, t.private_bytes) for koid, t in tm.jobs.items()}
    assert totals == {
        job_b.koid: (14336, 12288),
        job_a.koid: (24576, 20480),
        k.root_job.koid: (24576, 20480),
    }


def _share_count_of(n: int, order: list[int]) -> tuple[int, TaskStats]:
    """Processes 0..n-1 map one committed 1-page VMO in ``order``; the VMO's share count
    and process 0's figures."""
    k = Kernel()
    vmo = k.vmo_create(P, "shared", owner=KERNEL)
    k.vmo_write(vmo, 0, P)
    procs = [running(k, name=f"p{i}") for i in range(n)]
    for i in order:
        k.vmar_map(root(procs[i]), vmo)
    return kernel_snapshot(k).vmos[vmo.koid].share_count, stats(k, procs[0])


def test_share_count_extrapolates_past_64_aspaces() -> None:
    # 74 processes; the first 64 map twice in a row, then 10 map once: 138 mappings.
    # The 65th aspace is met after 128 mappings, so 64 + (138 - 128) * 64 // 128 = 69
    # (there are really 74). p0's two mappings: 2 * (4096 // 69) = 2 * 59.
    order = [i for i in range(64) for _ in range(2)] + list(range(64, 74))
    share, p0 = _share_count_of(74, order)
    assert share == 69
    assert p0 == figures(2 * P, 0, 2 * P, 118)


def test_share_count_extrapolation_can_overestimate() -> None:
    # 70 processes map once, then the first 5 again: 75 mappings, the 65th aspace met
    # after 64: 64 + (75 - 64) * 64 // 64 = 75 (there are really 70).
    share, p0 = _share_count_of(70, list(range(70)) + list(range(5)))
    assert share == 75
    assert p0 == figures(2 * P, 0, 2 * P, 2 * (4096 // 75))


def test_share_count_exact_up_to_64_aspaces() -> None:
    share, p0 = _share_count_of(64, [i for i in range(64) for _ in range(2)])
    assert share == 64
    assert p0 == figures(2 * P, 0, 2 * P, 2 * 64)


# --------------------------------------------------------------------------- model level

_TS = datetime(2017, 6, 7, tzinfo=UTC)


def _snapshot(processes: list[Process], vmos: dict[int, Vmo]) -> Snapshot:
    return Snapshot(
        source="test",
        platform=Platform.MAGENTA,
        level=Level.FULL,
        timestamp=_TS,
        kernel=None,
        root_job_koid=1,
        jobs={
            1: Job(
                koid=1,
                parent_koid=None,
                name="root",
                process_koids=tuple(p.koid for p in processes),
            )
        },
        processes={p.koid: p for p in processes},
        vmos=vmos,
    )


def _aspace(*mappings: Mapping) -> Aspace:
    top = 0x7FFFFFFFF000
    return Aspace(
        name="a",
        base=0x1000000,
        size=top,
        root=Vmar(koid=3, name="root", base=0x1000000, size=top, children=mappings),
    )


def test_vmo_missing_from_snapshot_counts_as_unshared() -> None:
    m = Mapping(0x1000000, 2 * P, 3, 99, 0, 2 * P, "gone")
    assert mapping_stats([m], {}) == figures(2 * P, 2 * P, 0, 0)
    shared = {99: Vmo(koid=99, name="v", size_bytes=2 * P, committed_bytes=2 * P, share_count=3)}
    assert mapping_stats([m], shared) == figures(2 * P, 0, 2 * P, 8192 // 3)


def test_unreadable_process_is_unknown_not_zero() -> None:
    m = Mapping(0x1000000, P, 3, 7, 0, P, "v")
    readable = Process(koid=10, job_koid=1, name="ok", aspace=_aspace(m))
    hidden = Process(koid=11, job_koid=1, name="denied", unreadable="access denied")
    tm = task_memory(_snapshot([readable, hidden], {}))
    assert tm.processes == {10: figures(P, P, 0, 0), 11: None}
    assert (tm.jobs[1].pss_bytes, tm.jobs[1].private_bytes, tm.jobs[1].unknown) == (P, P, 1)


def test_source_figures_win_over_mappings() -> None:
    own = figures(10 * P, 3 * P, 2 * P, P)
    m = Mapping(0x1000000, P, 3, 7, 0, P, "v")
    p = Process(koid=10, job_koid=1, name="p", aspace=_aspace(m), stats=own)
    dead = Process(koid=12, job_koid=1, name="d", state=ProcessState.DEAD, stats=own)
    tm = task_memory(_snapshot([p, dead], {}))
    assert tm.processes == {10: own, 12: ZERO_STATS}
    assert tm.jobs[1].pss_bytes == 4 * P
