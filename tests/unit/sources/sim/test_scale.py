"""The scale world generator: ``scale:N[:SEED]`` (docs/worlds.md, "Scale worlds")."""

from __future__ import annotations

from collections import Counter as Tally

import pytest

from mxmem.accounting.magenta2017 import mapping_stats, task_memory
from mxmem.cli import main
from mxmem.errors import SourceError
from mxmem.model import ZERO_STATS, Level, Mapping, Perm, ProcessState, Snapshot, Vmar
from mxmem.sources import open_source
from mxmem.sources.sim import PAGE_SIZE, Kernel, SimSource
from mxmem.sources.sim.kernel import PageState
from mxmem.sources.sim.worlds import scale
from mxmem.sources.sim.worlds.sizing import Counter

K = 1024
M = K * K


def snap(kernel: Kernel) -> Snapshot:
    return SimSource(kernel).snapshot(Level.FULL)


@pytest.fixture(scope="module")
def world() -> Snapshot:
    return snap(scale.build(1000))


# --------------------------------------------------------------------------- specs


def test_same_seed_same_world_other_seed_other_world() -> None:
    first = snap(scale.build(200, seed=7))
    assert snap(scale.build(200, seed=7)) == first
    assert snap(scale.build(200, seed=8)) != first


def test_spec_and_default_seed() -> None:
    assert snap(scale.build_spec("scale:120:3")) == snap(scale.build(120, 3))
    assert snap(scale.build_spec("scale:120")) == snap(scale.build(120, 0))


@pytest.mark.parametrize(
    "spec", ["scale:", "scale:x", "scale:-5", "scale:1:2:3", "scale:1.5", "scale:10:s"]
)
def test_bad_specs(spec: str) -> None:
    with pytest.raises(KeyError, match="expected scale:N or scale:N:SEED"):
        scale.build_spec(spec)


def test_process_count_limits() -> None:
    with pytest.raises(KeyError, match="with 1 <= N <= 1000000"):
        scale.build_spec("scale:0")
    with pytest.raises(KeyError, match="with 1 <= N <= 1000000"):
        scale.build_spec("scale:1000001")
    with pytest.raises(ValueError, match="1 to 1000000 processes, not 0"):
        scale.build(0)


def test_bad_spec_is_one_line_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SourceError, match="bad scale world 'scale:abc'"):
        open_source("sim:scale:abc")
    assert main(["--sim=scale:abc", "ps"]) == 2
    assert capsys.readouterr().err == (
        "mxmem: bad scale world 'scale:abc': expected scale:N or scale:N:SEED\n"
    )


def test_ps_over_a_scale_world(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sim=scale:50", "ps"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == lines[-1]
    assert lines[0].split() == ["TASK", "PSS", "PRIVATE", "SHARED", "NAME"]
    assert sum(1 for line in lines if line.lstrip().startswith("p:")) == 50
    assert lines[2].split()[-1] == "bin/devmgr"


# --------------------------------------------------------------------------- shape


def test_job_tree(world: Snapshot) -> None:
    assert len(world.processes) == 1000
    assert world.root_job_koid is not None
    root = world.jobs[world.root_job_koid]
    assert [world.processes[p].name for p in root.process_koids] == ["bin/devmgr"]
    system = [world.jobs[j].name for j in root.child_koids]
    assert system == ["magenta-drivers", "magenta-services", "fuchsia"]
    # Nested jobs hold 5 to 50 processes; only the last group made can be smaller.
    nested = [j for j in world.jobs.values() if j.koid != root.koid and j.name not in system]
    sizes = [len(j.process_koids) for j in nested]
    assert max(sizes) <= 50
    assert sum(1 for n in sizes if n < 5) <= 1
    depths = {e.obj.koid: e.depth for e in world.walk() if e.kind == "j"}
    assert max(depths.values()) <= 5
    assert sum(1 for e in world.walk() if e.kind == "p") == 1000


def test_dead_processes(world: Snapshot) -> None:
    states = Tally(p.state for p in world.processes.values())
    # 1000 // 1000 + 1 dead; the rest run.
    assert states == {ProcessState.RUNNING: 998, ProcessState.DEAD: 2}
    memory = task_memory(world)
    for p in world.processes.values():
        if p.state is ProcessState.DEAD:
            assert p.aspace is None and p.handles == ()
            stats = memory.processes[p.koid]
            assert stats is not None and stats.pss_bytes == 0


def test_about_ten_mappings_per_process(world: Snapshot) -> None:
    live = [p for p in world.processes.values() if p.aspace is not None]
    mappings = sum(len(p.aspace.mappings()) for p in live if p.aspace is not None)
    assert 10 <= mappings / len(world.processes) <= 11.5


def test_every_process_shares_the_vdso_and_libc(world: Snapshot) -> None:
    (vdso,) = [v for v in world.vmos.values() if v.name == "vdso/full"]
    (libc,) = [v for v in world.vmos.values() if v.name == "ld.so.1"]
    assert vdso.committed_bytes == 28 * K
    assert vdso.num_mappings == 2 * 998  # r-- and r-x in every live process
    # The 2017 share count tracks 64 address spaces exactly, then extrapolates:
    # the 65th is met at mapping 128, so 64 + (1996 - 128) * 64 // 128 = 998.
    assert vdso.share_count == 998
    memory = task_memory(world)
    for p in world.processes.values():
        if p.state is not ProcessState.RUNNING:
            continue
        assert p.aspace is not None
        koids = {m.vmo_koid for m in p.aspace.mappings()}
        assert {vdso.koid, libc.koid} <= koids
        stats = memory.processes[p.koid]
        assert stats is not None
        # At least the vDSO's 28k and a page of libc text are shared.
        assert stats.shared_bytes >= 28 * K + PAGE_SIZE
        assert stats.private_bytes < stats.pss_bytes < stats.private_bytes + stats.shared_bytes


def test_libraries_load_the_2017_way(world: Snapshot) -> None:
    (bootfs,) = [v for v in world.vmos.values() if v.name == "bootfs"]
    assert bootfs.committed_bytes == bootfs.size_bytes  # the ramdisk is all resident
    text_clones = [v for v in world.vmos.values() if v.parent_koid == bootfs.koid]
    assert text_clones
    for clone in text_clones:
        # Text pages stay bootfs's, so the process's r-x mapping shows 0B:res.
        assert clone.committed_bytes == 0
        assert clone.num_children == 1  # its data: clone
    data = [v for v in world.vmos.values() if v.name.startswith("data:")]
    assert all(v.parent_koid and v.committed_bytes > 0 for v in data)


def test_realistic_odds_and_ends(world: Snapshot) -> None:
    vmos = world.vmos
    mapped_twice_in_one = 0
    handle_only = 0
    stack_regions = 0
    for p in world.processes.values():
        if p.aspace is None or p.handles is None:
            continue
        per_vmo = Tally(m.vmo_koid for m in p.aspace.mappings())
        mapped_twice_in_one += sum(1 for n in per_vmo.values() if n == 2)
        handle_only += sum(
            1 for h in p.handles if h.koid in vmos and vmos[h.koid].num_mappings == 0
        )
        for child in p.aspace.root.children:
            if isinstance(child, Vmar) and child.size == 260 * K:
                (stack,) = child.children
                assert isinstance(stack, Mapping)
                # A guard page, then the 256k stack.
                assert (stack.base - child.base, stack.size) == (PAGE_SIZE, 256 * K)
                assert stack.perms == Perm.READ | Perm.WRITE
                stack_regions += 1
    assert mapped_twice_in_one > 100
    assert handle_only > 10
    assert stack_regions > 100
    assert any(v.physical for v in vmos.values())
    shm = [v for v in vmos.values() if v.name.startswith("shm:")]
    assert shm and all(v.share_count >= 2 for v in shm)
    assert any(v.kernel_only for v in vmos.values())  # the kernel's own


# --------------------------------------------------------------------------- memory


@pytest.mark.parametrize("n", [1, 2, 7, 60, 1000])
def test_memory_fits_and_adds_up(n: int) -> None:
    kernel = scale.build(n)
    kmem = SimSource(kernel).snapshot(Level.KMEM).kernel
    assert kmem is not None
    assert kmem.parts_sum() == kmem.total_bytes
    assert kmem.total_bytes % M == 0
    assert kmem.free_bytes >= 64 * M
    assert len(kernel.walk_processes()) == n


def test_the_counting_pass_is_exact_for_pages_and_bounds_tables() -> None:
    # 19 processes: no dead one, so no page is ever freed and the count is exact.
    counter = Counter()
    scale.Generator(counter, 19, 5).run()
    kernel = scale.build(19, 5)
    assert kernel.pmm.counts[PageState.OBJECT] == counter.vmo_pages
    assert counter.mmu_pages >= kernel.pmm.counts[PageState.MMU]
    assert scale.memory_for(19, 5) == kernel.pmm.total_pages * PAGE_SIZE


def test_one_process_is_devmgr_alone() -> None:
    s = snap(scale.build(1))
    assert [p.name for p in s.processes.values()] == ["bin/devmgr"]


def test_task_memory_matches_the_rule_summed_naively(world: Snapshot) -> None:
    """The accounting's fast path (shared-VMO table, per-job roll-up) changes nothing."""
    memory = task_memory(world)
    pss = dict.fromkeys(world.jobs, 0)
    private = dict.fromkeys(world.jobs, 0)
    for p in world.processes.values():
        if p.state is ProcessState.RUNNING:
            assert p.aspace is not None
            expected = mapping_stats(p.aspace.mappings(), world.vmos)
        else:
            expected = ZERO_STATS
        assert memory.processes[p.koid] == expected
        for job in world.ancestors(p.job_koid):
            pss[job] += expected.pss_bytes
            private[job] += expected.private_bytes
    assert {k: (t.pss_bytes, t.private_bytes, t.unknown) for k, t in memory.jobs.items()} == {
        k: (pss[k], private[k], 0) for k in world.jobs
    }
