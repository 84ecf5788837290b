"""Capture files: mxmem snapshot files (lossless round trip, same tool output as the live
source), memgraph JSON as a source, and one-line errors for every kind of bad input."""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fixed import FixedSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paths import FIXTURES
from profiles import examples
from strategies import json_paths

from mxmem.cli import main
from mxmem.cli.capture import TOOL as CAPTURE
from mxmem.errors import SourceError
from mxmem.model import Handle, Level, ObjType, Rights, Snapshot, TaskStats, ThreadState
from mxmem.sources import Source, open_source
from mxmem.sources.capture import NO_MAPPINGS_NOTE, CaptureSource, load_capture
from mxmem.sources.capture.snapshot_file import dumps, loads

WORLDS = ["doc", "doc-vmaps", "doc-vmos", "scale:300"]
LINUX = sys.platform.startswith("linux") and os.path.exists("/proc/self/smaps_rollup")


def run(
    argv: list[str], source: Source, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    code = main(argv, source=source)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def capture(argv: list[str], source: Source) -> tuple[int, str, str]:
    # Run directly: the CLI's tool table registers `capture` separately.
    out, err = io.StringIO(), io.StringIO()
    code = CAPTURE.run(argv, source, out, err)
    return code, out.getvalue(), err.getvalue()


def assert_same_snapshot(a: Snapshot, b: Snapshot) -> None:
    assert a == b
    # Mapping equality ignores order; the tools print in map order, so it must survive.
    assert list(a.jobs) == list(b.jobs)
    assert list(a.processes) == list(b.processes)
    assert list(a.vmos) == list(b.vmos)


# --- mxmem snapshot files: lossless ------------------------------------------------------


@pytest.mark.parametrize("world", WORLDS)
def test_snapshot_file_round_trip_is_exact(world: str) -> None:
    snapshot = open_source(f"sim:{world}").snapshot(Level.FULL)
    assert_same_snapshot(loads(dumps(snapshot), "f"), snapshot)


@pytest.mark.skipif(not LINUX, reason="needs Linux /proc with smaps_rollup")
def test_snapshot_file_round_trip_of_a_host_snapshot() -> None:
    snapshot = open_source("host").snapshot(Level.FULL)
    again = loads(dumps(snapshot), "f")
    assert_same_snapshot(again, snapshot)
    # The host has what the sim lacks: source figures, system-wide CPU counters.
    assert again.cpu_total is not None
    assert any(p.stats is not None for p in again.processes.values())


def test_round_trip_keeps_every_optional_field() -> None:
    # Fields no built-in world sets: unreadable, kernel threads, mapping stats, job extras,
    # CPU counters that are None, notes, a non-UTC timestamp.
    base = open_source("sim:doc").snapshot(Level.FULL)
    koids = list(base.processes)
    first, second = base.processes[koids[0]], base.processes[koids[1]]
    assert first.aspace is not None
    root = first.aspace.root
    stats = TaskStats(
        mapped_bytes=8192,
        private_bytes=4096,
        shared_bytes=4096,
        scaled_shared_bytes=1365,
        swap_pss_bytes=7,
    )
    mapping = first.aspace.mappings()[0]._replace(stats=stats)
    from dataclasses import replace

    aspace = replace(first.aspace, root=replace(root, children=(mapping, *root.children[1:])))
    job = base.jobs[first.job_koid]
    snapshot = replace(
        base,
        timestamp=datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=UTC).astimezone(),
        processes={
            **base.processes,
            first.koid: replace(first, aspace=aspace, stats=stats),
            second.koid: replace(second, unreadable="permission denied", kernel_thread=True),
        },
        jobs={**base.jobs, job.koid: replace(job, charge_bytes=12345, charged_pages_bytes=4096)},
        cpus=(replace(base.cpus[0], syscalls=None, page_faults=None), *base.cpus[1:]),
        cpu_total=replace(base.cpus[0], cpu_number=-1, context_switches=None),
        notes=("a note",),
        kernel_aspace_notes=("kernel address space: \u00e9\udcff",),
        has_mappings=False,
    )
    assert_same_snapshot(loads(dumps(snapshot), "f"), snapshot)


# The tools and the arguments each is compared with; "{koid}" is each process of the world.
COMMANDS = [
    ["ps"],
    ["ps", "-T"],
    ["memgraph", "-vtH"],
    ["k", "mx", "ps"],
    ["k", "mx", "vmos", "hidden"],
    ["k", "mx", "asd", "kernel"],
    ["kstats", "-m", "-n", "1"],
]


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("world", WORLDS)
def test_every_tool_prints_the_same_on_the_capture(
    world: str, compress: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = open_source(f"sim:{world}")
    path = tmp_path / ("cap.gz" if compress else "cap.json")
    assert capture(["-o", str(path)], live) == (0, "", "")
    assert (path.read_bytes()[:2] == b"\x1f\x8b") is compress
    captured = open_source(f"capture:{path}")
    koids = list(live.snapshot(Level.TASKS).processes)
    commands = [*COMMANDS]
    for koid in koids[:5]:
        commands += [["vmaps", str(koid)], ["vmos", str(koid)]]
    for command in commands:
        expected = run(command, live, capsys)
        assert expected[0] == 0, command
        assert run(command, captured, capsys) == expected, command


def test_capture_to_stdout_and_format_told_by_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = open_source("sim:doc")
    code, out, err = capture(["-o", "-"], live)
    assert (code, err) == (0, "")
    assert out.startswith('{"format":"mxmem-snapshot","version":1,')
    assert out.endswith("}\n") and out.count("\n") == 1
    # Names say nothing: gzip data under .json, plain JSON under .gz.
    (tmp_path / "a.json").write_bytes(gzip.compress(out.encode()))
    (tmp_path / "b.gz").write_text(out)
    expected = live.snapshot()
    for name in ("a.json", "b.gz"):
        assert_same_snapshot(open_source(f"capture:{tmp_path / name}").snapshot(), expected)


def test_capture_usage() -> None:
    live = open_source("sim:doc")
    code, out, err = capture([], live)
    assert (code, out) == (2, "")
    assert err == "capture: -o FILE is required; see `mxmem capture --help`\n"
    code, out, err = capture(["--help"], live)
    assert (code, err) == (0, "") and out.startswith("Usage: capture -o FILE\n")


def test_capture_source_ignores_the_level() -> None:
    snapshot = open_source("sim:doc").snapshot(Level.FULL)
    source = CaptureSource(snapshot, "capture:x")
    assert source.snapshot(Level.KMEM) is snapshot
    assert source.snapshot(Level.TASKS, processes=[1]) is snapshot


@pytest.fixture(scope="module")
def host_snapshot() -> Snapshot:
    from mxmem.sources.linux.host import HostSource

    return HostSource().snapshot(Level.FULL)


HOST_COMMANDS = [
    ["ps"],
    ["ps", "-T"],
    ["memgraph", "-vtH"],
    ["k", "mx", "ps"],
    ["k", "mx", "vmos", "hidden"],
    ["vmaps", str(os.getpid())],
    ["vmos", str(os.getpid())],
]


@pytest.mark.skipif(not LINUX, reason="needs Linux /proc with smaps_rollup")
@pytest.mark.parametrize("compress", [False, True])
def test_every_tool_prints_the_same_on_a_host_capture(
    host_snapshot: Snapshot, compress: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = FixedSource(host_snapshot)
    path = tmp_path / ("host.gz" if compress else "host.json")
    assert capture(["-o", str(path)], live) == (0, "", "")
    captured = open_source(f"capture:{path}")
    assert_same_snapshot(captured.snapshot(Level.FULL), host_snapshot)
    for command in HOST_COMMANDS:
        expected = run(command, live, capsys)
        assert expected[0] == 0, (command, expected[2])
        assert expected[1], command  # the test's own process is there to print
        assert run(command, captured, capsys) == expected, command


@pytest.mark.skipif(not LINUX, reason="needs Linux /proc with smaps_rollup")
def test_host_memgraph_round_trip(
    host_snapshot: Snapshot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # memgraph -vt of the host, read back with --capture, prints the same records but for
    # the timestamp, which is the time of the second run.
    code, text, _err = run(["memgraph", "-vt"], FixedSource(host_snapshot), capsys)
    assert code == 0
    path = tmp_path / "host-memgraph.json"
    path.write_text(text)
    code, again, err = run(["memgraph", "-vt"], open_source(f"capture:{path}"), capsys)
    assert code == 0
    assert f"memgraph: note: {NO_MAPPINGS_NOTE}\n" in err
    records, again_records = json.loads(text), json.loads(again)
    assert len(records) > len(host_snapshot.processes)
    meta = [r for r in records if r["type"] == "__META"]
    again_meta = [r for r in again_records if r["type"] == "__META"]
    # The host's memgraph says it is Linux, and so does the capture read back from it.
    assert [set(r) for r in again_meta] == [set(r) for r in meta]
    assert [(set(r), r["platform"]) for r in meta] == [({"type", "timestamp", "platform"}, "linux")]
    lines, again_lines = text.splitlines(), again.splitlines()
    assert len(again_lines) == len(lines)
    for line, again_line in zip(lines, again_lines, strict=True):
        if '"__META"' not in line:
            assert again_line == line


# --- memgraph JSON as a source ------------------------------------------------------------


def memgraph_text(world: str, flags: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code, out, _err = run(["memgraph", *flags], open_source(f"sim:{world}"), capsys)
    assert code == 0
    return out


@pytest.mark.parametrize("flags", [["-vt"], ["-vtH"], []])
@pytest.mark.parametrize("world", WORLDS)
def test_memgraph_round_trip(
    world: str, flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = memgraph_text(world, flags, capsys)
    path = tmp_path / "m.json"
    path.write_text(text)
    code, again, err = run(["memgraph", *flags], open_source(f"capture:{path}"), capsys)
    assert code == 0
    assert err == f"memgraph: note: {NO_MAPPINGS_NOTE}\n"
    lines, again_lines = text.splitlines(), again.splitlines()
    assert len(again_lines) == len(lines)
    for line, again_line in zip(lines, again_lines, strict=True):
        if '"__META"' not in line:
            assert again_line == line


MEMGRAPH = [
    {"id": "kernel/physmem", "type": "kernel", "parent": "", "name": "physmem", "size_bytes": 1000},
    {
        "id": "kernel/free",
        "type": "kernel",
        "parent": "kernel/physmem",
        "name": "free",
        "size_bytes": 400,
    },
    {
        "id": "kernel/vmo",
        "type": "kernel",
        "parent": "kernel/physmem",
        "name": "vmo",
        "size_bytes": 300,
    },
    {
        "id": "kernel/heap",
        "type": "kernel",
        "parent": "kernel/physmem",
        "name": "heap",
        "size_bytes": 100,
    },
    {
        "id": "kernel/heap/allocated",
        "type": "kernel",
        "parent": "kernel/heap",
        "name": "heap/allocated",
        "size_bytes": 60,
    },
    {
        "id": "kernel/heap/free",
        "type": "kernel",
        "parent": "kernel/heap",
        "name": "heap/free",
        "size_bytes": 40,
    },
    {
        "id": "kernel/wired",
        "type": "kernel",
        "parent": "kernel/physmem",
        "name": "wired",
        "size_bytes": 50,
    },
    {
        "id": "kernel/mmu",
        "type": "kernel",
        "parent": "kernel/physmem",
        "name": "mmu",
        "size_bytes": 20,
    },
    {
        "id": "kernel/other",
        "type": "kernel",
        "parent": "kernel/physmem",
        "name": "other",
        "size_bytes": 130,
    },
    {"id": "j/1", "type": "j", "koid": 1, "parent": "kernel/vmo", "name": "root"},
    {
        "id": "p/5",
        "type": "p",
        "koid": 5,
        "parent": "j/1",
        "name": "init",
        "private_bytes": 8192,
        "shared_bytes": 12288,
        "pss_bytes": 12288,
        "handle_stats": {"vmo": 1, "channel": 2},
        "vmos": [
            {
                "koid": 9,
                "name": "data",
                "size_bytes": 16384,
                "parent_koid": 0,
                "num_children": 0,
                "num_mappings": 1,
                "share_count": 1,
                "committed_bytes": 8192,
            },
            {
                "koid": 9,
                "name": "data",
                "size_bytes": 16384,
                "parent_koid": 0,
                "num_children": 0,
                "num_mappings": 1,
                "share_count": 1,
                "committed_bytes": 8192,
            },
            {
                "koid": 0,
                "name": "vdso",
                "size_bytes": 4096,
                "parent_koid": 0,
                "num_children": 0,
                "num_mappings": 3,
                "share_count": 3,
                "committed_bytes": 4096,
            },
        ],
        "vmo_refs": [
            {"vmo_koid": 9, "via": ["HANDLE"], "handle_rights": ["READ", "MAP", "TRANSFER"]},
            {"vmo_koid": 9, "via": ["MAPPING"]},
            {"vmo_koid": 0, "via": ["MAPPING"]},
        ],
    },
    {"id": "t/6", "type": "t", "koid": 6, "parent": "p/5", "name": "main", "state": "BLOCKED"},
    {"id": "j/2", "type": "j", "koid": 2, "parent": "j/1", "name": "child"},
    {"type": "__META", "timestamp": "2017-06-07T05:51:08.021Z"},
]


def test_memgraph_records_become_a_snapshot() -> None:
    snap = load_capture(json.dumps(MEMGRAPH).encode(), "m.json")
    assert snap.level is Level.FULL
    assert snap.timestamp == datetime(2017, 6, 7, 5, 51, 8, 21000, tzinfo=UTC)
    kernel = snap.kernel
    assert kernel is not None
    assert (kernel.total_bytes, kernel.free_bytes, kernel.vmo_bytes) == (1000, 400, 300)
    assert (kernel.heap_total_bytes, kernel.heap_free_bytes, kernel.ipc_bytes) == (100, 40, 0)
    assert kernel.parts_sum() == kernel.total_bytes
    assert snap.root_job_koid == 1
    assert snap.jobs[1].child_koids == (2,) and snap.jobs[1].process_koids == (5,)
    assert snap.jobs[2].parent_koid == 1
    p = snap.processes[5]
    # scaled_shared = pss - private = 12288 - 8192.
    assert p.stats == TaskStats(
        mapped_bytes=0, private_bytes=8192, shared_bytes=12288, scaled_shared_bytes=4096
    )
    assert [(t.koid, t.name, t.state) for t in p.threads] == [(6, "main", ThreadState.BLOCKED)]
    # VMO 9 listed twice is one VMO; the kernel-only VMO gets the koid after the largest (9).
    assert sorted(snap.vmos) == [9, 10]
    assert snap.vmos[10].kernel_only and snap.vmos[10].user_koid == 0
    assert p.handles == (
        Handle(1, 9, ObjType.VMO, Rights.READ | Rights.MAP | Rights.TRANSFER),
        Handle(2, 0, ObjType.CHANNEL, 0),
        Handle(3, 0, ObjType.CHANNEL, 0),
    )
    assert p.aspace is not None
    assert [(m.vmo_koid, m.base, m.size) for m in p.aspace.mappings()] == [(9, 0, 0), (10, 0, 0)]
    assert snap.notes == (NO_MAPPINGS_NOTE,)


def test_vmaps_refuses_a_memgraph_capture_and_vmos_lists_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps(MEMGRAPH))
    source = open_source(f"capture:{path}")
    assert run(["vmaps", "5"], source, capsys) == (1, "", f"vmaps: {NO_MAPPINGS_NOTE}\n")
    code, out, err = run(["vmos", "5"], source, capsys)
    assert code == 0
    header = "rights  koid parent #chld #map #shr    size   alloc name\n"
    assert out == (
        header
        + "r--m-t     9      -     0    1    1     16k      8k data\n"
        + "     -     9      -     0    1    1     16k      8k data\n"
        + "     -     0      -     0    3    3      4k      4k vdso\n"
        + header
    )
    assert err == f"vmos: note: {NO_MAPPINGS_NOTE}\n"


# --- bad input ----------------------------------------------------------------------------


def snapshot_json() -> dict[str, object]:
    result: dict[str, object] = json.loads(dumps(open_source("sim:doc").snapshot(Level.FULL)))
    return result


def _memgraph_with(path: tuple[int | str, ...], value: object) -> bytes:
    """MEMGRAPH with the value at ``path`` (record index, then keys) replaced."""
    doc = copy.deepcopy(MEMGRAPH)
    at: Any = doc
    for key in path[:-1]:
        at = at[key]
    at[path[-1]] = value
    return json.dumps(doc).encode()


def bad_snapshot(edit: str) -> bytes:
    doc = snapshot_json()
    jobs = doc["jobs"]
    procs = doc["processes"]
    assert isinstance(jobs, list) and isinstance(procs, list)
    if edit == "type":
        procs[3]["k"] = "20"
    elif edit == "negative":
        procs[3]["k"] = -20
    elif edit == "huge":
        doc["vmos"][2][2] = 2**70  # type: ignore[index]
    elif edit == "duplicate":
        procs.append(procs[3])
    elif edit == "missing":
        procs[3]["j"] = 999999
    elif edit == "cycle":
        # Jobs 1 and 2 become each other's parents (and children), listed by nobody else.
        a, b = jobs[1][0], jobs[2][0]
        for job in jobs:
            job[4] = [c for c in job[4] if c not in (a, b)]
        jobs[1][1], jobs[2][1] = b, a
        jobs[1][4].append(b)
        jobs[2][4].append(a)
    elif edit == "version":
        doc["version"] = 2
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            lambda: bad_snapshot("type"),
            "f.json: $.processes[3].k: expected an integer, got a string",
        ),
        (lambda: bad_snapshot("negative"), "f.json: $.processes[3].k: -20 is out of range"),
        (lambda: bad_snapshot("huge"), "f.json: $.vmos[2][2]: 1180591620717411303424 is out of"),
        (lambda: bad_snapshot("duplicate"), "f.json: $.processes[12].k: duplicate process koid"),
        (lambda: bad_snapshot("missing"), "f.json: $.jobs["),
        (lambda: bad_snapshot("cycle"), "f.json: $.jobs[1][1]: job "),
        (lambda: bad_snapshot("version"), "f.json: $.version: unsupported version 2"),
        (lambda: bad_snapshot("type")[:500], "f.json: line 1 column "),
        (lambda: b"hello", "f.json: unknown capture format"),
        (lambda: b'{"format": "other", "version": 1}', "f.json: $.format: unknown capture format"),
        (lambda: b"\x1f\x8b\x08\x00garbage", "f.json: damaged gzip data"),
        (lambda: b"[" * 100000, "f.json: $: not valid JSON (RecursionError)"),
        (lambda: json.dumps(MEMGRAPH[:-1]).encode(), "f.json: $: no __META record"),
        (
            lambda: json.dumps([*MEMGRAPH[:11], MEMGRAPH[10], *MEMGRAPH[11:]]).encode(),
            'f.json: record 11 ("p/5"): duplicate id',
        ),
        (
            lambda: json.dumps(
                [*MEMGRAPH[:12], {**MEMGRAPH[12], "parent": "j/77"}, *MEMGRAPH[13:]]
            ).encode(),
            'f.json: record 12 ("j/2").parent: job 77 has no record',
        ),
        (
            lambda: json.dumps(
                [
                    *MEMGRAPH[:9],
                    {**MEMGRAPH[9], "parent": "j/2"},
                    *MEMGRAPH[10:],
                ]
            ).encode(),
            "f.json: $: 0 root jobs",
        ),
        (
            lambda: json.dumps(
                [*MEMGRAPH[:10], {**MEMGRAPH[10], "pss_bytes": -1}, *MEMGRAPH[11:]]
            ).encode(),
            'f.json: record 10 ("p/5").pss_bytes: -1 is out of range',
        ),
        # The reader's fast way for well-formed records and entries must leave every
        # defect to the checked way: in a VMO listed again (vmos[1] is koid 9 again), in a
        # kernel-only VMO (vmos[2]), in rights, in a thread record.
        (
            lambda: _memgraph_with((10, "vmos", 1, "committed_bytes"), 4096.0),
            'f.json: record 10 ("p/5").vmos[1].committed_bytes: expected an integer, got float',
        ),
        (
            lambda: _memgraph_with((10, "vmos", 1, "num_children"), True),
            'f.json: record 10 ("p/5").vmos[1].num_children: expected an integer, got true',
        ),
        (
            lambda: _memgraph_with((10, "vmos", 2, "size_bytes"), 2**64),
            'f.json: record 10 ("p/5").vmos[2].size_bytes: 18446744073709551616 is out of range',
        ),
        (
            lambda: _memgraph_with((10, "vmos", 1, "parent_koid"), -1),
            'f.json: record 10 ("p/5").vmos[1].parent_koid: -1 is out of range',
        ),
        (
            lambda: _memgraph_with((10, "vmo_refs", 0, "handle_rights"), [["READ"]]),
            'f.json: record 10 ("p/5").vmo_refs[0].handle_rights[0]: expected a string',
        ),
        (
            lambda: _memgraph_with((10, "vmo_refs", 0, "handle_rights"), ["READ", "NONE"]),
            'f.json: record 10 ("p/5").vmo_refs[0].handle_rights[1]: unknown right "NONE"',
        ),
        (
            lambda: _memgraph_with((10, "vmo_refs", 1, "vmo_koid"), True),
            'f.json: record 10 ("p/5").vmo_refs[1].vmo_koid: expected an integer, got true',
        ),
        (
            lambda: _memgraph_with((11, "koid"), True),
            'f.json: record 11 ("t/6").koid: expected an integer, got true',
        ),
        (
            lambda: _memgraph_with((11, "parent"), "p/\u0665"),
            'f.json: record 11 ("t/6").parent: parent "p/\\u0665" is not a p/<koid> id',
        ),
        (
            lambda: _memgraph_with((12, "charge_bytes"), -5),
            'f.json: record 12 ("j/2").charge_bytes: -5 is out of range',
        ),
    ],
)
def test_bad_input_is_one_line_source_error(
    data: object, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert callable(data)
    raw = data()
    with pytest.raises(SourceError) as info:
        load_capture(raw, "f.json")
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text
    # Through the CLI: exit 2 and that one line, no traceback.
    path = tmp_path / "f.json"
    path.write_bytes(raw)
    code = main(["ps"], source=_Lazy(f"capture:{path}"))
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err == f"mxmem: {text.replace('f.json', str(path), 1)}\n"


class _Lazy:
    """Opens the source when the tool asks for a snapshot, as the CLI's LazySource does."""

    def __init__(self, spec: str) -> None:
        self.name = spec

    def snapshot(self, level: Level = Level.FULL, processes: object = None) -> Snapshot:
        return open_source(self.name).snapshot(level)


def test_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nope\.gz: No such file or directory"):
        open_source(f"capture:{tmp_path / 'nope.gz'}")


# --- fuzzing: load either succeeds or raises SourceError ---------------------------------

_VALID_SNAPSHOT = dumps(open_source("sim:doc-vmos").snapshot(Level.FULL)).encode()
_VALID_MEMGRAPH = json.dumps(MEMGRAPH).encode()

_WEIRD = st.sampled_from(
    [None, True, -1, -(2**63), 2**64, 2**200, 1.5, "x", "", [], {}, [[]], {"a": 1}, "R", "M"]
)



def _mutate_json(document: object, data: st.DataObject) -> object:
    paths = json_paths(document)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        if not path:
            continue
        parent = document
        for key in path[:-1]:
            parent = parent[key]  # type: ignore[index]
        key = path[-1]
        action = data.draw(st.sampled_from(["replace", "drop", "duplicate"]))
        try:
            if action == "replace":
                parent[key] = copy.deepcopy(data.draw(_WEIRD))  # type: ignore[index]
            elif action == "drop":
                del parent[key]  # type: ignore[attr-defined]
            elif isinstance(parent, list):
                parent.append(parent[key])  # type: ignore[call-overload]
        except (KeyError, IndexError, TypeError):
            pass  # a path an earlier mutation removed
        paths = json_paths(document)
    return document


def _load_or_source_error(raw: bytes) -> None:
    try:
        load_capture(raw, "fuzz")
    except SourceError as err:
        assert "\n" not in str(err)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from([_VALID_SNAPSHOT, _VALID_MEMGRAPH]),
    data=st.data(),
)
def test_fuzz_json_mutations(which: bytes, data: st.DataObject) -> None:
    document = _mutate_json(json.loads(which), data)
    raw = json.dumps(document).encode()
    if data.draw(st.booleans()):
        raw = gzip.compress(raw)
    _load_or_source_error(raw)


@settings(max_examples=examples(150), deadline=None)
@given(
    which=st.sampled_from([_VALID_SNAPSHOT, _VALID_MEMGRAPH]),
    compress=st.booleans(),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4),
)
def test_fuzz_byte_damage(
    which: bytes, compress: bool, cut: float, flips: list[tuple[float, int]]
) -> None:
    raw = bytearray(gzip.compress(which) if compress else which)
    for where, byte in flips:
        raw[min(int(where * len(raw)), len(raw) - 1)] = byte
    _load_or_source_error(bytes(raw[: max(1, int(cut * len(raw)))]))


def test_views_a_capture_cannot_serve_say_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # memgraph JSON has VMO references but no addresses; a Fuchsia capture only lists
    # the VMOs each process references: vmaps and `k mx asd <pid>` (and vmos on a
    # Fuchsia capture) refuse in one line with exit 1 instead of printing placeholders.
    from mxmem.cli import main

    memgraph = tmp_path / "mg.json"
    assert main(["--sim", "memgraph", "-vt"]) == 0
    memgraph.write_text(capsys.readouterr().out)
    fuchsia = FIXTURES / "fuchsia" / "test_snapshot.json"
    for capture, koid, tools in (
        (memgraph, "1043", (["vmaps"], ["k", "mx", "asd"])),
        (fuchsia, "32269", (["vmaps"], ["vmos"], ["k", "mx", "asd"])),
    ):
        for tool in tools:
            assert main([f"--capture={capture}", *tool, koid]) == 1
            out, err = capsys.readouterr()
            assert out == "" and err.count("\n") == 1 and "this capture has no address" in err


def test_loading_restores_the_collector_state(tmp_path: Path) -> None:
    # load_capture turns the cyclic GC off while it builds the snapshot (for speed) and
    # must hand it back as it found it, also when the file is bad.
    import gc

    from mxmem.errors import SourceError
    from mxmem.sources.capture import load_capture

    assert gc.isenabled()
    with pytest.raises(SourceError):
        load_capture(b"[1, 2", "bad.json")
    assert gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(SourceError):
            load_capture(b"[1, 2", "bad.json")
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- defect f: an output file that cannot be written -------------------------------------


@pytest.mark.parametrize("tool", ["capture", "treemap"])
def test_an_unwritable_output_is_one_line_naming_the_path(
    tool: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Was Python's errno text with the temporary name ("x.json.tmp29876") for capture.
    live = open_source("sim:doc")
    cases = {
        "/nonexistent/x.json": "no directory /nonexistent",
        str(tmp_path): "it is a directory",
    }
    for path, why in cases.items():
        code, out, err = run([tool, "-o", path], live, capsys)
        assert (code, out) == (1, "")
        assert err == f"{tool}: cannot write {path}: {why}\n"
    # A directory that refuses the file (as root, a read-only file system would do).
    blocked = tmp_path / "blocked.json"
    blocked.mkdir()
    (blocked / "inner").write_text("")
    code, _, err = run([tool, "-o", str(blocked / "inner" / "x.json")], live, capsys)
    assert code == 1
    assert err.count("\n") == 1 and str(blocked / "inner" / "x.json") in err
    assert ".tmp" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked.json"]  # nothing left


# --- defect g: --capture=- reads a piped capture ------------------------------------------


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


FUCHSIA_CAPTURE = FIXTURES / "fuchsia" / "test_snapshot.json"


@pytest.mark.parametrize("fmt", ["mxmem", "memgraph", "fuchsia"])
@pytest.mark.parametrize("compress", [False, True])
def test_capture_dash_reads_standard_input(
    fmt: str,
    compress: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if fmt == "mxmem":
        code, text, _ = capture(["-o", "-"], open_source("sim:doc"))  # `capture -o -`
        assert code == 0
        data = text.encode()
    elif fmt == "memgraph":
        assert main(["--sim", "memgraph", "-vt"]) == 0
        data = capsys.readouterr().out.encode()
    else:
        data = FUCHSIA_CAPTURE.read_bytes()
    if compress:
        data = gzip.compress(data)
    path = tmp_path / "cap"
    path.write_bytes(data)
    assert main([f"--capture={path}", "ps"]) == 0
    expected = capsys.readouterr()
    _stdin(monkeypatch, data)
    assert main(["--capture=-", "ps"]) == 0
    piped = capsys.readouterr()
    assert piped.out == expected.out and piped.out
    assert piped.err == expected.err.replace(str(path), "standard input")


def test_capture_dash_with_nothing_piped_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, b"")
    assert main(["--capture=-", "ps"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "mxmem: standard input: empty (expected a capture: memgraph JSON, an mxmem snapshot"
        " or a Fuchsia capture)\n"
    )
