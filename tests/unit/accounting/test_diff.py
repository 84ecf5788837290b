"""``mxmem diff``: two captures of sim kernels that differ by known operations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mxmem.accounting.diff import Status, diff, match_tasks
from mxmem.cli import main
from mxmem.render.diff import signed_size
from mxmem.sources import open_source
from mxmem.sources.sim.kernel import Kernel, SimProcess
from mxmem.sources.sim.source import SimSource

P = 4096


def _process(k: Kernel, koid: int, name: str, vmo_name: str, pages: int) -> SimProcess:
    """A running process with one VMO of 16 pages, ``pages`` of them written, mapped."""
    job = k.root_job.jobs[0]
    p = k.process_create(job, name, koid=koid)
    k.process_start(p)
    vmo = k.vmo_create(16 * P, vmo_name, owner=p)
    k.vmo_write(vmo, 0, pages * P)
    assert p.aspace is not None and p.aspace.root is not None
    k.vmar_map(p.aspace.root, vmo)
    return p


def _kernel(new: bool) -> Kernel:
    # Explicit koids, created in ascending order, so both kernels agree on them.
    k = Kernel(256 << 20, wired_bytes=8 << 20)
    k.job_create(k.root_job, "apps", koid=2000)
    _process(k, 3000, "grower", "heap", 12 if new else 4)  # heap grows by 8 pages
    if not new:
        _process(k, 4000, "killed", "data", 2)  # gone in the new one
    _process(k, 5500 if new else 5000, "restarted", "stack", 1)  # new koid, same name
    _process(k, 6000, "renamer", "new-name" if new else "old-name", 3)  # VMO renamed
    if new:
        _process(k, 7000, "newcomer", "fresh", 5)
    return k


def _save(tmp_path: Path, name: str, k: Kernel) -> str:
    path = str(tmp_path / name)
    assert main(["capture", "-o", path], source=SimSource(k)) == 0
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[str, str, Kernel, Kernel]:
    old, new = _kernel(False), _kernel(True)
    return _save(tmp_path, "old.json", old), _save(tmp_path, "new.json.gz", new), old, new


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["diff", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_exact_deltas(
    pair: tuple[str, str, Kernel, Kernel], capsys: pytest.CaptureFixture[str]
) -> None:
    old_path, new_path, old_k, new_k = pair
    code, out, err = _run(capsys, old_path, new_path, "--json")
    assert (code, err) == (0, "")
    doc: dict[str, Any] = json.loads(out)
    procs = [
        (p["name"], p["status"], p["old_koid"], p["new_koid"], p["delta"]) for p in doc["processes"]
    ]

    def d(pss: int, private: int, shared: int) -> dict[str, int]:
        return {"pss_bytes": pss, "private_bytes": private, "shared_bytes": shared}

    # Sorted by PSS growth; renamer (unchanged figures, same koid) is left out.
    assert procs == [
        ("grower", "same", 3000, 3000, d(8 * P, 8 * P, 0)),
        ("newcomer", "new", None, 7000, d(5 * P, 5 * P, 0)),
        ("restarted", "renewed", 5000, 5500, d(0, 0, 0)),
        ("killed", "gone", 4000, None, d(-2 * P, -2 * P, 0)),
    ]
    assert doc["processes"][0]["old"] == d(4 * P, 4 * P, 0)
    assert doc["processes"][0]["new"] == d(12 * P, 12 * P, 0)
    assert doc["processes"][3]["new"] is None
    # Jobs: apps had 4+2+1+3 = 10 pages, has 12+1+3+5 = 21; root sums the same.
    jobs = [
        (j["name"], j["old"]["pss_bytes"], j["new"]["pss_bytes"], j["delta"]) for j in doc["jobs"]
    ]
    delta = {"pss_bytes": 11 * P, "private_bytes": 11 * P}
    assert jobs == [("apps", 10 * P, 21 * P, delta), ("root", 10 * P, 21 * P, delta)]
    names = [
        (n["name"], n["old_bytes"], n["new_bytes"], n["delta_bytes"]) for n in doc["vmo_names"]
    ]
    assert names == [
        ("heap", 4 * P, 12 * P, 8 * P),
        ("fresh", 0, 5 * P, 5 * P),
        ("new-name", 0, 3 * P, 3 * P),
        ("data", 2 * P, 0, -2 * P),
        ("old-name", 3 * P, 0, -3 * P),
    ]
    # Kernel fields: exactly the fields whose kmem figures differ, with their deltas.
    a, b = old_k.kmem(), new_k.kmem()
    expected = {f: b[f] - a[f] for f in a if a[f] != b[f]}
    assert {r["field"]: r["delta"] for r in doc["kernel"]} == expected
    # The object pages: 21 - 10 = 11 more committed pages.
    assert expected["vmo_bytes"] == 11 * P
    assert {r["field"]: (r["old"], r["new"]) for r in doc["kernel"]}["vmo_bytes"] == (
        a["vmo_bytes"],
        b["vmo_bytes"],
    )


def test_text_sections(
    pair: tuple[str, str, Kernel, Kernel], capsys: pytest.CaptureFixture[str]
) -> None:
    old_path, new_path, _, _ = pair
    code, out, err = _run(capsys, old_path, new_path)
    assert (code, err) == (0, "")
    procs = out.split("Processes:\n")[1].split("\n\n")[0]
    assert procs == (
        "      KOID  PSS   +/-  PRIVATE   +/-  SHARED  +/-        NAME\n"
        "      3000  48k  +32k      48k  +32k      0B    0        grower\n"
        "      7000  20k  +20k      20k  +20k      0B    0   new  newcomer\n"
        " 5000>5500   4k     0       4k     0      0B    0        restarted\n"
        "      4000   8k   -8k       8k   -8k      0B    0  gone  killed"
    )
    names = out.split("VMO names (committed bytes):\n")[1]
    assert names == (
        " OLD  NEW  DELTA  NAME\n"
        " 16k  48k   +32k  heap\n"
        "  0B  20k   +20k  fresh\n"
        "  0B  12k   +12k  new-name\n"
        "  8k   0B    -8k  data\n"
        " 12k   0B   -12k  old-name\n"
    )
    assert out.startswith(
        f"old: {old_path}\nnew: {new_path}\n\n"
        "Kernel memory:\n"
        "    OLD     NEW  DELTA  FIELD\n"
        " 247.9M  247.8M   -44k  free_bytes\n"
        "    40k     84k   +44k  vmo_bytes\n"
        "\n"
        "Jobs:\n"
        " KOID  PSS   +/-  PRIVATE   +/-    NAME\n"
        " 2000  84k  +44k      84k  +44k    apps\n"
        " 1024  84k  +44k      84k  +44k    root\n"
        "\n"
        "Processes:\n"
    )
    # --all adds the unchanged renamer.
    code, out, _ = _run(capsys, old_path, new_path, "--all")
    assert code == 0 and "      6000  12k     0      12k     0      0B    0        renamer\n" in out


def test_same_world_shows_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "doc.json")
    assert main(["--sim", "capture", "-o", path]) == 0
    capsys.readouterr()
    code, out, err = _run(capsys, path, "sim:doc")
    assert (code, err) == (0, "")
    for section in ("Kernel memory", "Jobs", "Processes", "VMO names (committed bytes)"):
        assert f"{section}:\n  (no changes)\n" in out
    code, out, _ = _run(capsys, "sim:doc", path, "--json")
    doc = json.loads(out)
    assert [doc[s] for s in ("kernel", "jobs", "processes", "vmo_names")] == [[], [], [], []]


def test_memgraph_against_snapshot_has_no_process_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = tmp_path / "graph.json"
    assert main(["--sim", "memgraph"]) == 0
    graph.write_text(capsys.readouterr().out)
    snap = str(tmp_path / "snap.json")
    assert main(["--sim", "capture", "-o", snap]) == 0
    capsys.readouterr()
    code, out, _ = _run(capsys, str(graph), snap, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["processes"] == [] and doc["jobs"] == [] and doc["kernel"] == []
    # Every process of the world was matched by koid (same name), none new or gone.
    result = diff(
        open_source(f"capture:{graph}").snapshot(), open_source(f"capture:{snap}").snapshot()
    )
    assert len(result.processes) == 12
    assert {r.status for r in result.processes} == {Status.SAME}


def test_match_pairs_by_name_in_koid_order() -> None:
    old = {1: "a", 2: "sh", 3: "sh", 4: "x"}
    new = {1: "a", 9: "sh", 7: "sh", 4: "y", 5: "sh"}
    assert match_tasks(old, new) == [(1, 1), (2, 5), (3, 7), (None, 9), (4, None), (None, 4)]


def test_signed_size() -> None:
    assert [signed_size(d) for d in (10752 * 1024, -4096, 0, 1)] == ["+10.5M", "-4k", "0", "+1B"]


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "only-one")
    assert (code, out) == (2, "")
    assert err == "diff: expected OLD and NEW, got 1 argument(s); see `mxmem diff --help`\n"
    missing = str(tmp_path / "missing.json")
    code, out, err = _run(capsys, missing, "sim:doc")
    assert (code, out, err) == (2, "", f"mxmem: {missing}: No such file or directory\n")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    code, out, err = _run(capsys, "sim:doc", str(bad))
    assert code == 2 and out == "" and err.startswith(f"mxmem: {bad}: ") and err.count("\n") == 1
