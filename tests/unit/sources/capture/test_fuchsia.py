"""Fuchsia memory_monitor captures and Fuchsia's Summary attribution (spec §11.2, §11.3).

The real capture (tests/fixtures/fuchsia/test_snapshot.json, see its README) checks the
loader at scale; small hand-made captures pin every rule with figures computed by hand.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fixed import FixedSource
from hypothesis import given, settings
from hypothesis import strategies as st
from paths import FIXTURES
from profiles import examples

from mxmem.accounting.figures import figures, rule_for
from mxmem.accounting.fuchsia import Sizes, snapshot_summary, summary_sizes
from mxmem.cli import main
from mxmem.errors import SourceError
from mxmem.model import Snapshot, Vmo
from mxmem.sources.capture.fuchsia import ROOT_JOB_KOID, load

FUCHSIA_FIXTURES = FIXTURES / "fuchsia"
REAL = FUCHSIA_FIXTURES / "test_snapshot.json"
K = 1024


def capture(
    processes: list[tuple[int, str, list[int]]],
    vmos: list[tuple[int, str, int, int]],
    *,
    kernel_vmo: int | None = None,
) -> dict[str, Any]:
    """A capture dict; ``vmos`` rows are (koid, name, parent_koid, committed), allocated
    = committed + 4096 so that size and committed can be told apart."""
    names = sorted({name for _, name, _, _ in vmos})
    committed = sum(c for *_, c in vmos)
    return {
        "Time": 5_000_000_000,
        "Kernel": {
            "total": 1 << 30,
            "free": 100 * K,
            "wired": 10 * K,
            "total_heap": 20 * K,
            "free_heap": 5 * K,
            "vmo": committed if kernel_vmo is None else kernel_vmo,
            "mmu": 3 * K,
            "ipc": 2 * K,
            "other": 1 * K,
        },
        "Processes": [["koid", "name", "vmos"], *[[k, n, v] for k, n, v in processes]],
        "VmoNames": names,
        "Vmos": [
            ["koid", "name", "parent_koid", "committed_bytes", "allocated_bytes"],
            *[[k, names.index(n), p, c, c + 4096] for k, n, p, c in vmos],
        ],
    }


# --------------------------------------------------------------------------- the loader


@pytest.fixture(scope="module")
def real() -> Snapshot:
    return load(REAL)


def test_real_capture_loads(real: Snapshot) -> None:
    raw = json.loads(REAL.read_bytes())
    assert len(real.processes) == 90
    assert len(real.vmos) == 6253
    assert real.kernel is not None
    assert real.kernel.total_bytes == 8588750848
    assert real.kernel.free_bytes == 7670870016
    assert real.kernel.heap_total_bytes == 18223104
    assert real.kernel.heap_free_bytes == 1268640
    assert real.kernel.vmo_bytes == 784666624
    assert real.kernel.ipc_bytes == 114688
    # Time 95724504776 ns after boot.
    assert real.timestamp.isoformat() == "1970-01-01T00:01:35.724504+00:00"
    root = real.jobs[ROOT_JOB_KOID]
    assert root.name == "root" and root.parent_koid is None
    assert list(root.process_koids) == [row[0] for row in raw["Processes"][1:]]
    first = real.processes[32269]
    assert first.name == "remote-diagnostics-bridge.cm"
    assert first.vmo_koids == tuple(raw["Processes"][1][2])
    assert first.handles is None and first.aspace is None
    # [36098, 0, 0, 12288, 262144]: name index 0 is "scudo:primary"; size = allocated.
    assert real.vmos[36098] == Vmo(
        koid=36098, name="scudo:primary", size_bytes=262144, committed_bytes=12288
    )


def test_real_capture_clones_count_children(real: Snapshot) -> None:
    children: dict[int, int] = {}
    for vmo in real.vmos.values():
        if vmo.parent_koid:
            children[vmo.parent_koid] = children.get(vmo.parent_koid, 0) + 1
    assert children  # 2400 of the VMOs are clones
    assert all(real.vmos[k].num_children == n for k, n in children.items())


def test_wrapped_capture_is_the_same_snapshot() -> None:
    data = json.loads(REAL.read_bytes())
    bare = load(data, name="x")
    wrapped = load({"Capture": data, "Buckets": [{"name": "B", "event_code": 1}]}, name="x")
    assert wrapped == bare


def test_bytes_and_path_sources(tmp_path: Path) -> None:
    data = capture([(10, "p", [1])], [(1, "v", 0, 4096)])
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    assert load(path).processes == load(json.dumps(data).encode()).processes == load(data).processes
    assert load(path).source == f"fuchsia:{path}"


def test_columns_are_found_by_header() -> None:
    # Reordered columns and an extra (newer) populated_bytes column load the same.
    data = capture([(10, "p", [1, 2])], [(1, "a", 0, 4096), (2, "b", 1, 8192)])
    moved = copy.deepcopy(data)
    moved["Processes"] = [[r[2], r[0], r[1]] for r in data["Processes"]]
    moved["Vmos"] = [[r[4], r[3], "populated_bytes", r[2], r[1], r[0]] for r in data["Vmos"][:1]]
    moved["Vmos"] += [[r[4], r[3], 0, r[2], r[1], r[0]] for r in data["Vmos"][1:]]
    assert load(moved) == load(data)


def _mutated(path: list[Any], value: Any) -> dict[str, Any]:
    data = capture(
        [(10, "p", [1, 2]), (11, "q", [2])],
        [(1, "a", 0, 4096), (2, "b", 1, 8192)],
    )
    target: Any = data
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["Time"], -1, "$.Time: -1 is out of range [0, 2**64)"),
        (["Time"], "now", "$.Time: expected an integer, got a string"),
        (["Kernel", "wired"], _DELETE, "$.Kernel: missing key 'wired'"),
        (["Kernel", "free"], True, "$.Kernel.free: expected an integer, got true"),
        (["Vmos", 2, 3], -5, "$.Vmos[2][3]: -5 is out of range [0, 2**64)"),
        (["Vmos", 2, 1], 7, "$.Vmos[2][1]: name index 7 is not below 2 VmoNames"),
        (["Vmos", 2, 0], 1, "$.Vmos[2][0]: duplicate VMO koid 1"),
        (["Vmos", 1, 2], 2, "$.Vmos[1]: VMO 1 is its own ancestor (a parent cycle)"),
        (["Vmos", 0, 3], "committed", "$.Vmos[0]: the header has no column 'committed_bytes'"),
        (["Vmos", 1], [1, 0, 0], "$.Vmos[1]: expected 5 values as in the header, got 3"),
        (["Processes", 2, 0], 10, "$.Processes[2][0]: duplicate process koid 10"),
        (["Processes", 1, 2, 1], 99, "$.Processes[1][2][1]: VMO 99 is not in Vmos"),
        (["Processes", 1, 1], None, "$.Processes[1][1]: expected a string, got null"),
        (["Processes"], {}, "$.Processes: expected an array, got an object"),
        (["VmoNames", 0], 3, "$.VmoNames[0]: expected a string, got 3"),
    ],
)
def test_errors_name_the_json_path(path: list[Any], value: Any, message: str) -> None:
    with pytest.raises(SourceError) as info:
        load(_mutated(path, value), name="cap.json")
    assert str(info.value) == f"cap.json: {message}"
    assert "\n" not in str(info.value)


def test_wrapped_errors_name_the_capture_path() -> None:
    data = {"Capture": _mutated(["Vmos", 2, 3], -5)}
    with pytest.raises(SourceError, match=r"^c: \$\.Capture\.Vmos\[2\]\[3\]: "):
        load(data, name="c")


def test_not_json_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"^<capture>: not JSON: "):
        load(b"{")
    with pytest.raises(SourceError, match=r"nope\.json: cannot read: "):
        load(tmp_path / "nope.json")


# --------------------------------------------------------------------------- Summary rule


def _vmos(*rows: tuple[int, int, int]) -> dict[int, Vmo]:
    """(koid, parent_koid, committed) rows."""
    return {
        k: Vmo(koid=k, name=f"v{k}", size_bytes=c, committed_bytes=c, parent_koid=p)
        for k, p, c in rows
    }


def test_summary_two_processes_share_one_vmo() -> None:
    # summary_unittest: p1{v1,v2}, p2{v2,v3}; v1 1K, v2 2K, v3 3K.
    # p1: private v1 = 1K; scaled 1K + 2K/2 = 2K; total 3K. p2: 3K, 3K + 1K, 5K.
    vmos = _vmos((1, 0, 1 * K), (2, 0, 2 * K), (3, 0, 3 * K))
    sizes = summary_sizes({1: [1, 2], 2: [2, 3]}, vmos)
    assert sizes == {1: Sizes(1 * K, 2 * K, 3 * K), 2: Sizes(3 * K, 4 * K, 5 * K)}


def test_summary_shared_directly_or_via_a_child() -> None:
    # ffx digest.rs: VMO1 (500 B) held by P1 and P3 directly and by P2 through its
    # child VMO2 (0 B): share 3, 500 // 3 = 166 each, nothing private.
    vmos = _vmos((1, 0, 500), (2, 1, 0))
    sizes = summary_sizes({1: [1], 2: [2], 3: [1]}, vmos)
    assert sizes == {1: Sizes(0, 166, 500), 2: Sizes(0, 166, 500), 3: Sizes(0, 166, 500)}


def test_summary_missing_parent_ends_the_chain() -> None:
    # v2's parent 9 is not in the capture: p1 holds only v2 (100 B), privately.
    vmos = _vmos((2, 9, 100))
    assert summary_sizes({1: [2]}, vmos) == {1: Sizes(100, 100, 100)}


def test_summary_ancestor_counted_once_per_process() -> None:
    # Two clones of v1 in one process: v1 is in the set once, share 1.
    vmos = _vmos((1, 0, 300), (2, 1, 10), (3, 1, 20))
    assert summary_sizes({1: [2, 3]}, vmos) == {1: Sizes(330, 330, 330)}


@st.composite
def _worlds(draw: st.DrawFn) -> tuple[dict[int, list[int]], dict[int, Vmo]]:
    n = draw(st.integers(1, 12))
    rows = []
    for k in range(1, n + 1):
        # Parents have smaller koids (acyclic), or are missing (koid 100+).
        parent = draw(st.sampled_from([0, 100 + k, *range(1, k)]))
        rows.append((k, parent, draw(st.integers(0, 10_000))))
    vmos = _vmos(*rows)
    processes = draw(
        st.dictionaries(
            st.integers(1000, 1010), st.lists(st.integers(1, n), max_size=6), max_size=6
        )
    )
    return processes, vmos


@given(_worlds())
@settings(max_examples=examples(200), deadline=None)
def test_summary_invariants(world: tuple[dict[int, list[int]], dict[int, Vmo]]) -> None:
    processes, vmos = world
    sizes = summary_sizes(processes, vmos)
    referenced: set[int] = set()
    for koids in processes.values():
        for koid in koids:
            while koid in vmos and koid not in referenced:
                referenced.add(koid)
                koid = vmos[koid].parent_koid
    for s in sizes.values():
        assert 0 <= s.private_bytes <= s.scaled_bytes <= s.total_bytes
    assert sum(s.scaled_bytes for s in sizes.values()) <= sum(
        vmos[k].committed_bytes for k in referenced
    )
    # Loading the same world as a capture gives ps the same figures.
    data = capture(
        [(p, f"p{p}", sorted(set(v))) for p, v in processes.items()],
        [(k, v.name, v.parent_koid, v.committed_bytes) for k, v in vmos.items()],
    )
    snap = load(data)
    assert rule_for(snap, "2017") == ("fuchsia" if processes else "2017")
    figs = figures(snap, "fuchsia")
    for koid, s in sizes.items():
        mine = figs.processes[koid]
        assert mine is not None
        assert (mine.private, mine.total, mine.private + mine.shared) == s


def test_the_loader_holds_facts_and_accounting_applies_the_summary_rule(real: Snapshot) -> None:
    # Item 2 of issue 10: the loader no longer restates the rule as process stats.
    assert all(p.stats is None for p in real.processes.values())
    assert rule_for(real, "2017") == "fuchsia"
    summary = snapshot_summary(real)
    figs = figures(real, rule_for(real, "2017"))
    for koid in real.processes:
        mine = figs.processes[koid]
        assert mine is not None
        got = Sizes(mine.private, mine.total, mine.private + mine.shared)
        assert got == summary[koid]
    # The vDSO is referenced by all 90 processes: nobody holds it privately.
    assert sum(s.total_bytes for s in summary.values()) > sum(
        s.scaled_bytes for s in summary.values()
    )


# --------------------------------------------------------------------------- ps on a capture


def test_ps_prints_fuchsia_figures(capsys: pytest.CaptureFixture[str]) -> None:
    # p1{v1,v2}, p2{v2,v3}: p1 PSS 2K PRIVATE 1K SHARED 2K; p2 4K 3K 2K; root sums
    # PSS 6K and PRIVATE 4K (SHARED is not summed for jobs).
    data = capture(
        [(21, "p1", [1, 2]), (22, "p2", [2, 3])],
        [(1, "v1", 0, 1 * K), (2, "v2", 0, 2 * K), (3, "v3", 0, 3 * K)],
    )
    assert main(["ps"], source=FixedSource(load(data))) == 0
    assert capsys.readouterr().out.splitlines() == [
        "TASK       PSS PRIVATE  SHARED NAME",
        "j:0         6k      4k         root",
        "  p:21      2k      1k      2k p1",
        "  p:22      4k      3k      2k p2",
        "TASK       PSS PRIVATE  SHARED NAME",
    ]
