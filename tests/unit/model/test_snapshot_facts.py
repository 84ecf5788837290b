"""The snapshot carries facts, not strings (issue 10, item 3): the platform it came from,
typed fields where notes and ``Job.extra`` tuples were flags, and one spelling of "no
parent" (``None``) for jobs and VMOs alike. Capture files keep their version-1 form, so
files of either age load."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from paths import FIXTURES
from runner import Mxmem, Result

from mxmem.model import ASPACE_NOTE, Level, Platform
from mxmem.render.kconsole import PS_HEADER, PS_KEY
from mxmem.render.kconsole_linux import LINUX_PS_HEADER, LINUX_PS_KEY
from mxmem.sources import open_source
from mxmem.sources.capture import NO_MAPPINGS_NOTE, load_capture
from mxmem.sources.capture.snapshot_file import dumps, loads

LINUX = sys.platform.startswith("linux") and os.path.exists("/proc/self/smaps_rollup")



def run(argv: list[str], mxmem: Mxmem) -> Result:
    return mxmem.run(*argv)


# A capture of a Linux host as mxmem wrote it before snapshots had a platform (hand-written,
# minimal): a cgroup v1 charge and a kpagecgroup figure as job extras, a VMO without a
# parent as parent koid 0, a note about the kernel address space among the notes.
OLD_HOST_FILE = {
    "format": "mxmem-snapshot",
    "version": 1,
    "source": "host",
    "level": "FULL",
    "timestamp": "2026-12-07T20:00:00+00:00",
    "kernel": None,
    "cpus": [],
    "cpu_total": None,
    "root_job": 1,
    "jobs": [
        [1, None, "root", [], [2], []],
        [2, 1, "app", [10], [], [["memory.usage_in_bytes", 65536], ["kpagecgroup", 8192]]],
    ],
    "processes": [
        {
            "k": 10,
            "j": 2,
            "n": "server",
            "s": "running",
            "h": [[0, 0, "device", 0], [3, 0, "socket", 0], [4, 5, "vmo", 0]],
            "st": [16384, 8192, 8192, 4096, 0],
        }
    ],
    "vmos": [
        [5, "memfd:buf", 8192, 8192, 0, 1, 0, 1, 0, 0],
        [6, "clone", 8192, 4096, 5, 0, 0, 1, 0, 0],
    ],
    "kernel_aspace": None,
    "notes": ["a general note", f"{ASPACE_NOTE}vmallocinfo needs root"],
}


def write(path: Path, document: object) -> str:
    path.write_text(json.dumps(document))
    return str(path)


FUCHSIA = FIXTURES / "fuchsia" / "test_snapshot.json"


def test_every_source_states_its_platform(
    tmp_path: Path, mxmem: Mxmem
) -> None:
    sim = open_source("sim:doc")
    assert sim.snapshot(Level.KMEM).platform is Platform.MAGENTA
    assert sim.snapshot(Level.FULL).platform is Platform.MAGENTA
    assert sim.snapshot(Level.FULL).has_mappings
    assert open_source(f"capture:{FUCHSIA}").snapshot().platform is Platform.FUCHSIA
    code, out, _ = run(["--sim", "memgraph", "-v"], mxmem)
    assert code == 0
    memgraph = tmp_path / "m.json"
    memgraph.write_text(out)
    snap = open_source(f"capture:{memgraph}").snapshot()
    assert snap.platform is Platform.MAGENTA
    # memgraph records no addresses: a fact of the snapshot, and still a printed note.
    assert not snap.has_mappings and NO_MAPPINGS_NOTE in snap.notes
    if LINUX:
        assert open_source("host").snapshot(Level.KMEM).platform is Platform.LINUX


def test_k_mx_ps_on_a_linux_capture_prints_linux_columns(
    tmp_path: Path, mxmem: Mxmem
) -> None:
    # The regression: the columns were chosen by the source's name ("host"), so a capture
    # of a Linux host replayed with --capture printed Magenta handle types.
    linux = replace(open_source("sim:doc").snapshot(Level.FULL), platform=Platform.LINUX)
    path = tmp_path / "linux.json"
    path.write_text(dumps(linux))
    code, out, _ = run(["--capture", str(path), "k", "mx", "ps"], mxmem)
    assert code == 0 and out.startswith(LINUX_PS_HEADER)
    assert run(["--capture", str(path), "k", "mx", "ps", "help"], mxmem)[1] == LINUX_PS_KEY
    # The same snapshot as Magenta's keeps Magenta's columns.
    path.write_text(dumps(replace(linux, platform=Platform.MAGENTA)))
    code, out, _ = run(["--capture", str(path), "k", "mx", "ps"], mxmem)
    assert code == 0 and out.startswith(PS_HEADER)
    assert run(["--capture", str(path), "k", "mx", "ps", "help"], mxmem)[1] == PS_KEY


@pytest.mark.skipif(not LINUX, reason="needs Linux /proc with smaps_rollup")
def test_k_mx_ps_on_a_capture_of_this_host_matches_the_host(
    tmp_path: Path, mxmem: Mxmem
) -> None:
    path = tmp_path / "host.json"
    assert run(["--host", "capture", "-o", str(path)], mxmem)[0] == 0
    code, out, _ = run(["--capture", str(path), "k", "mx", "ps"], mxmem)
    assert code == 0 and out.startswith(LINUX_PS_HEADER)


def test_an_old_capture_of_a_linux_host_loads_with_typed_facts(
    tmp_path: Path, mxmem: Mxmem
) -> None:
    path = write(tmp_path / "old.json", OLD_HOST_FILE)
    snap = open_source(f"capture:{path}").snapshot()
    # No "platform" key: a file written before it; its source names the host.
    assert snap.platform is Platform.LINUX
    job = snap.jobs[2]
    assert (job.charge_bytes, job.charged_pages_bytes) == (65536, 8192)
    assert snap.jobs[1].charge_bytes is None and snap.jobs[1].parent_koid is None
    assert (snap.vmos[5].parent_koid, snap.vmos[6].parent_koid) == (None, 5)
    assert snap.notes == ("a general note",)
    assert snap.kernel_aspace_notes == (f"{ASPACE_NOTE}vmallocinfo needs root",)
    assert snap.has_mappings
    code, out, _ = run(["--capture", path, "k", "mx", "ps"], mxmem)
    assert (code, out) == (
        0,
        LINUX_PS_HEADER
        + "     10   3:   1   1   0   0   0   0   0   1   0   0 [server]\n",
    )
    # The kernel address space note is printed where it was: by `k mx asd kernel` only.
    code, out, err = run(["--capture", path, "k", "mx", "asd", "kernel"], mxmem)
    assert code == 1 and err.endswith(f"k: note: {ASPACE_NOTE}vmallocinfo needs root\n")
    code, out, err = run(["--capture", path, "ps"], mxmem)
    assert code == 0 and err == "ps: note: a general note\n"


def test_job_charges_keep_ps_json(tmp_path: Path, mxmem: Mxmem) -> None:
    path = write(tmp_path / "old.json", OLD_HOST_FILE)
    code, out, _ = run(["--capture", path, "ps", "--json"], mxmem)
    assert code == 0
    rows = {row["koid"]: row for row in json.loads(out)}
    assert rows[2]["cgroup_charge_bytes"] == 65536 and "cgroup_charge_bytes" not in rows[1]
    code, out, _ = run(["--capture", path, "ps", "--attribution=exact", "--json"], mxmem)
    assert code == 0
    rows = {row["koid"]: row for row in json.loads(out)["rows"]}
    assert (rows[2]["cgroup_charge_bytes"], rows[2]["cgroup_pages_bytes"]) == (65536, 8192)
    assert "cgroup_charge_bytes" not in rows[1] and "cgroup_pages_bytes" not in rows[1]
    code, out, _ = run(["--capture", path, "memgraph"], mxmem)
    jobs = {r["koid"]: r for r in json.loads(out) if r["type"] == "j"}
    assert jobs[2]["charge_bytes"] == 65536 and "charge_bytes" not in jobs[1]


def test_files_are_written_in_version_1_terms() -> None:
    snap = loads(json.dumps(OLD_HOST_FILE), "old.json")
    document = json.loads(dumps(snap))
    assert document["version"] == 1 and document["platform"] == "linux"
    # Readers from before typed charges read them as the extras they knew.
    assert document["jobs"][1][5] == [["memory.current", 65536], ["kpagecgroup", 8192]]
    assert document["jobs"][0][5] == []
    # "No parent" is 0 in the file, as the format documents.
    assert [v[4] for v in document["vmos"]] == [0, 5]
    assert document["notes"] == OLD_HOST_FILE["notes"]
    assert "has_mappings" not in document
    assert loads(dumps(snap), "f") == snap


def test_a_saved_memgraph_capture_still_has_no_mappings(
    tmp_path: Path, mxmem: Mxmem
) -> None:
    code, out, _ = run(["--sim", "memgraph", "-v"], mxmem)
    assert code == 0
    snap = load_capture(out.encode(), "m.json")
    saved = json.loads(dumps(snap))
    assert saved["has_mappings"] is False and saved["platform"] == "magenta"
    assert loads(dumps(snap), "f") == snap
    # A file saved before the key: its note says it.
    del saved["has_mappings"], saved["platform"]
    again = loads(json.dumps(saved), "f")
    assert not again.has_mappings and again.platform is Platform.MAGENTA
    path = write(tmp_path / "saved.json", saved)
    process = next(iter(again.processes))
    assert run(["--capture", path, "vmaps", str(process)], mxmem) == (
        1,
        "",
        f"vmaps: {NO_MAPPINGS_NOTE}\n",
    )


@pytest.mark.parametrize("source", ["fuchsia:x", "sim:doc", "capture:m.json", "old"])
def test_old_files_infer_the_platform_from_their_source(source: str) -> None:
    document = {**OLD_HOST_FILE, "source": source}
    expected = Platform.FUCHSIA if source.startswith("fuchsia:") else Platform.MAGENTA
    assert loads(json.dumps(document), "f").platform is expected
    host_root = {**OLD_HOST_FILE, "source": "host:/srv/root"}
    assert loads(json.dumps(host_root), "f").platform is Platform.LINUX


def test_an_unknown_platform_is_one_line(tmp_path: Path) -> None:
    from mxmem.errors import SourceError

    document = {**OLD_HOST_FILE, "platform": "plan9"}
    with pytest.raises(SourceError, match=r"^f: \$\.platform: unknown Platform 'plan9'$"):
        loads(json.dumps(document), "f")


def test_vmos_have_one_spelling_of_no_parent() -> None:
    for spec in ("sim:doc-vmos", f"capture:{FUCHSIA}"):
        vmos = open_source(spec).snapshot(Level.FULL).vmos
        assert all(v.parent_koid != 0 for v in vmos.values())
        assert any(v.parent_koid is None for v in vmos.values())
        assert any(v.parent_koid is not None for v in vmos.values())
