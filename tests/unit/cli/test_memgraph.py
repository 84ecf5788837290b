"""``mxmem memgraph``: the 2017 record format, its schema, and getopt-style options.

The hand-built world's figures are worked out in comments; the built-in worlds are
checked against the schema, against ``ps`` and ``vmos`` (the same figures, another
tool), and the doc world against a whole-output golden.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from importlib.resources import files
from typing import Any

import jsonschema
import pytest
from fixed import FixedSource, RecordingSource

from mxmem.cli import main
from mxmem.cli.common import Tool
from mxmem.model import (
    KernelMemory,
    Level,
    ObjType,
    Perm,
    Platform,
    Rights,
    Snapshot,
    ThreadState,
)
from mxmem.sources import Source, open_source
from mxmem.sources.sim import PAGE_SIZE, Kernel, SimSource
from mxmem.sources.sim.kernel import SimProcess, SimVmar

SCHEMA_TEXT = (files("mxmem") / "schemas" / "memgraph.schema.json").read_text()
SCHEMA = json.loads(SCHEMA_TEXT)
VALIDATOR = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker())

WORLDS = ["doc", "doc-vmaps", "doc-vmos", "scale:300"]
FLAG_SETS = [[], ["-t"], ["-v"], ["-vt"], ["-vtH"]]

HELP = """\
Usage: memgraph [options]
  Prints system-wide task and memory info as JSON.
Options:
 -t|--threads  Include threads in the output
 -v|--vmos     Include VMOs in the output
 -S|--schema   Print the schema for the JSON output format
 -H|--handles  Include handle stats in the output
 --attribution=exact|2017
               exact: also attribute every byte of physical memory once, to
               the processes and to named kinds of unowned memory (2017: the
               default, the 2017 figures only)
 -h|--help     Display this message
"""

ALL_RIGHTS = (
    '["READ", "WRITE", "EXECUTE", "MAP", "DUPLICATE", "TRANSFER", "GET_PROPERTY", "SET_PROPERTY"]'
)


def root_vmar(p: SimProcess) -> SimVmar:
    assert p.aspace is not None and p.aspace.root is not None
    return p.aspace.root


def app_world() -> Kernel:
    """root j:1024 holds app p:2000 and job svc j:1100 (other p:2100, gone p:2200).

    app's handles, in order: ``libc.so`` 2010 (2 pages written, all rights), a duplicate
    of it with READ|MAP, its clone ``data:libc.so`` 2011 (1 page written), and two
    channel endpoints; the physical ``framebuffer`` 2012's handle is closed. app maps, in
    address order: libc.so, the clone, the framebuffer. other maps libc.so too, so its
    share count is 2. gone has exited: no handles, no address space, a DEAD thread.

    app: private = clone 4096 + framebuffer 0 = 4096; shared = libc 8192, scaled
    8192 // 2 = 4096, so PSS = 8192. other: private 0, shared 8192, PSS 4096. gone: 0s.
    """
    k = Kernel(64 << 20, wired_bytes=1 << 20)
    svc = k.job_create(k.root_job, "svc", koid=1100)
    app = k.process_create(k.root_job, "app", koid=2000)  # its root VMAR is 2001
    main_thread = k.thread_create(app, "main", koid=2005)
    k.process_start(app, main_thread)
    lib = k.vmo_create(2 * PAGE_SIZE, "libc.so", owner=app, koid=2010)
    k.vmo_write(lib, 0, 2 * PAGE_SIZE)
    k.handle_duplicate(app, k.handle_of(app, lib), Rights.READ | Rights.MAP)
    data = k.vmo_clone(lib, 0, PAGE_SIZE, "data:libc.so", owner=app, koid=2011)
    k.vmo_write(data, 0, 1)
    fb = k.vmo_create_physical(0xFE000000, 4 * PAGE_SIZE, "framebuffer", owner=app, koid=2012)
    k.vmar_map(root_vmar(app), lib, perms=Perm.READ | Perm.EXECUTE, addr=0x10000000)
    k.vmar_map(root_vmar(app), data, addr=0x10002000)
    k.vmar_map(root_vmar(app), fb, addr=0x20000000)
    k.handle_close(app, k.handle_of(app, fb))
    k.channel_create(app)
    other = k.process_create(svc, "other", koid=2100)
    k.process_start(other)
    k.vmar_map(root_vmar(other), lib, perms=Perm.READ | Perm.EXECUTE, addr=0x10000000)
    gone = k.process_create(svc, "gone", koid=2200)
    gone_thread = k.thread_create(gone, "t", koid=2205)
    k.process_start(gone, gone_thread)
    k.process_kill(gone)
    return k


LIBC = (
    '{"koid": 2010, "name": "libc.so", "size_bytes": 8192, "parent_koid": 0,'
    ' "num_children": 1, "num_mappings": 2, "share_count": 2, "committed_bytes": 8192}'
)
DATA = (
    '{"koid": 2011, "name": "data:libc.so", "size_bytes": 4096, "parent_koid": 2010,'
    ' "num_children": 0, "num_mappings": 1, "share_count": 1, "committed_bytes": 4096}'
)
FB = (
    '{"koid": 2012, "name": "framebuffer", "size_bytes": 16384, "parent_koid": 0,'
    ' "num_children": 0, "num_mappings": 1, "share_count": 1, "committed_bytes": 0}'
)
APP = (
    '  {"id": "p/2000", "type": "p", "koid": 2000, "parent": "j/1024", "name": "app",'
    ' "private_bytes": 4096, "shared_bytes": 8192, "pss_bytes": 8192'
)
OTHER = (
    '  {"id": "p/2100", "type": "p", "koid": 2100, "parent": "j/1100", "name": "other",'
    ' "private_bytes": 0, "shared_bytes": 8192, "pss_bytes": 4096'
)
GONE = (
    '  {"id": "p/2200", "type": "p", "koid": 2200, "parent": "j/1100", "name": "gone",'
    ' "private_bytes": 0, "shared_bytes": 0, "pss_bytes": 0'
)
ROOT = '  {"id": "j/1024", "type": "j", "koid": 1024, "parent": "kernel/vmo", "name": "root"},'
SVC = '  {"id": "j/1100", "type": "j", "koid": 1100, "parent": "j/1024", "name": "svc"},'
META = '  {"type": "__META", "timestamp": "2017-06-07T05:51:08.021Z"}'


class NoSource:
    """A source that must not be opened."""

    @property
    def name(self) -> str:
        return "none"

    def snapshot(
        self, level: Level = Level.FULL, processes: Collection[int] | None = None
    ) -> Snapshot:
        raise AssertionError("the source was opened")


@cache
def world_source(world: str) -> Source:
    # Built once per test session: nothing here changes a kernel.
    return open_source(f"sim:{world}")


def run(
    capsys: pytest.CaptureFixture[str], *args: str, source: Source | None = None
) -> tuple[int, str, str]:
    code = main(["memgraph", *args], source=source or SimSource(app_world()))
    out, err = capsys.readouterr()
    return code, out, err


def memgraph(capsys: pytest.CaptureFixture[str], world: str, *args: str) -> list[Any]:
    code, out, err = run(capsys, *args, source=world_source(world))
    assert (code, err) == (0, "")
    records: list[Any] = json.loads(out)
    return records


def kernel_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if '"type": "kernel"' in line]


def check_timestamp(records: list[Any]) -> None:
    # FormatChecker checks date-time only when rfc3339-validator is installed; this
    # checks it whatever is installed.
    stamp = records[-1]["timestamp"]
    parsed = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    assert stamp == parsed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z"


# --------------------------------------------------------------------------- records


def test_records_with_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "-vtH")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "["
    assert len(kernel_lines(out)) == 9 and lines[1:10] == kernel_lines(out)
    assert lines[10:] == [
        ROOT,
        APP + ",",
        # Handles: 3 VMO handles and 2 channel endpoints (the framebuffer's was closed).
        '   "handle_stats": {"vmo": 3, "channel": 2},',
        '   "vmos": [',
        # First the VMO handles in handle-table order, then the mappings in address
        # order: libc.so appears three times, the clone twice.
        f"      {LIBC},",
        f"      {LIBC},",
        f"      {DATA},",
        f"      {LIBC},",
        f"      {DATA},",
        f"      {FB}",
        "   ],",
        '   "vmo_refs": [',
        f'      {{"vmo_koid": 2010, "via": ["HANDLE"], "handle_rights": {ALL_RIGHTS}}},',
        '      {"vmo_koid": 2010, "via": ["HANDLE"], "handle_rights": ["READ", "MAP"]},',
        f'      {{"vmo_koid": 2011, "via": ["HANDLE"], "handle_rights": {ALL_RIGHTS}}},',
        '      {"vmo_koid": 2010, "via": ["MAPPING"]},',
        '      {"vmo_koid": 2011, "via": ["MAPPING"]},',
        '      {"vmo_koid": 2012, "via": ["MAPPING"]}',
        "   ]},",
        '  {"id": "t/2005", "type": "t", "koid": 2005, "parent": "p/2000", "name": "main",'
        ' "state": "RUNNING"},',
        SVC,
        OTHER + ",",
        '   "handle_stats": {},',
        '   "vmos": [',
        f"      {LIBC}",
        "   ],",
        '   "vmo_refs": [',
        '      {"vmo_koid": 2010, "via": ["MAPPING"]}',
        "   ]},",
        # gone exited: zeros, no handles, and no VMOs, so no vmos/vmo_refs at all.
        GONE + ",",
        '   "handle_stats": {}},',
        '  {"id": "t/2205", "type": "t", "koid": 2205, "parent": "p/2200", "name": "t",'
        ' "state": "DEAD"},',
        META,
        "]",
    ]
    VALIDATOR.validate(json.loads(out))


def test_plain_records(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert (code, err) == (0, "")
    assert out.splitlines()[10:] == [ROOT, APP + "},", SVC, OTHER + "},", GONE + "},", META, "]"]


@pytest.mark.parametrize(
    "args",
    [["-vt"], ["-tv"], ["-v", "-t"], ["--vmos", "--threads"], ["--vm", "--thr"], ["-t", "--vmos"]],
)
def test_option_spellings(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    expected = run(capsys, "-v", "-t")
    assert run(capsys, *args) == expected
    assert expected[1].count('"type": "t"') == 2 and expected[1].count('"vmos": [') == 2


def test_json_option_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    # Every mxmem tool takes --json; memgraph's output is JSON already.
    assert run(capsys, "--json") == run(capsys)


def test_plain_memgraph_asks_only_for_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    for args, level in [([], Level.TASKS), (["-t"], Level.TASKS), (["-v"], Level.FULL)]:
        source = RecordingSource(app_world())
        assert run(capsys, *args, source=source)[0] == 0
        assert source.levels == [level]
    source = RecordingSource(app_world())
    run(capsys, "-H", source=source)
    assert source.levels == [Level.FULL]


def snapshot_at(level: Level = Level.FULL) -> Snapshot:
    return SimSource(app_world()).snapshot(level)


FIGURES = KernelMemory(
    total_bytes=1048576,
    free_bytes=524288,
    wired_bytes=131072,
    heap_total_bytes=65536,
    heap_free_bytes=4096,
    vmo_bytes=262144,
    mmu_bytes=16384,
    other_bytes=49152,  # 524288 + 131072 + 65536 + 262144 + 16384 + 49152 = 1048576
)


def kernel_only(kernel: KernelMemory | None, moment: datetime) -> Snapshot:
    return Snapshot(
        source="fixed",
        platform=Platform.MAGENTA,
        level=Level.KMEM,
        timestamp=moment,
        kernel=kernel,
        root_job_koid=None,
    )


def test_kernel_records(capsys: pytest.CaptureFixture[str]) -> None:
    moment = datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)
    code, out, err = run(capsys, source=FixedSource(kernel_only(FIGURES, moment)))
    assert (code, err) == (0, "")
    k = '  {"id": "kernel/%s", "type": "kernel", "parent": "%s", "name": "%s", "size_bytes": %d},'
    assert out.splitlines() == [
        "[",
        k % ("physmem", "", "physmem", 1048576),
        k % ("free", "kernel/physmem", "free", 524288),
        k % ("vmo", "kernel/physmem", "vmo", 262144),
        k % ("heap", "kernel/physmem", "heap", 65536),
        k % ("heap/allocated", "kernel/heap", "heap/allocated", 61440),  # 65536 - 4096
        k % ("heap/free", "kernel/heap", "heap/free", 4096),
        k % ("wired", "kernel/physmem", "wired", 131072),
        k % ("mmu", "kernel/physmem", "mmu", 16384),
        k % ("other", "kernel/physmem", "other", 49152),
        # Milliseconds are truncated, not rounded.
        '  {"type": "__META", "timestamp": "2024-02-29T23:59:59.999Z"}',
        "]",
    ]
    VALIDATOR.validate(json.loads(out))


def test_ipc_record_comes_before_other(capsys: pytest.CaptureFixture[str]) -> None:
    figures = dataclasses.replace(FIGURES, ipc_bytes=8192, other_bytes=40960)
    moment = datetime(2017, 6, 7, 5, 51, 8, 21000, tzinfo=UTC)
    code, out, err = run(capsys, source=FixedSource(kernel_only(figures, moment)))
    assert (code, err) == (0, "")
    records = json.loads(out)
    assert [r.get("id") for r in records[6:]] == [
        "kernel/wired",
        "kernel/mmu",
        "kernel/ipc",
        "kernel/other",
        None,  # __META
    ]
    assert records[8] == {
        "id": "kernel/ipc",
        "type": "kernel",
        "parent": "kernel/physmem",
        "name": "ipc",
        "size_bytes": 8192,
    }
    children = [r["size_bytes"] for r in records if r.get("parent") == "kernel/physmem"]
    assert sum(children) == 1048576
    VALIDATOR.validate(records)


@pytest.mark.parametrize(
    ("moment", "stamp"),
    [
        (
            datetime(2017, 6, 7, 7, 51, 8, 21999, tzinfo=timezone(timedelta(hours=2))),
            "05:51:08.021",
        ),
        (datetime(2017, 6, 7, 5, 51, 8, 0), "05:51:08.000"),  # naive: taken as UTC
    ],
)
def test_timestamp_is_utc_milliseconds(
    capsys: pytest.CaptureFixture[str], moment: datetime, stamp: str
) -> None:
    _, out, _ = run(capsys, source=FixedSource(kernel_only(FIGURES, moment)))
    assert json.loads(out)[-1] == {"type": "__META", "timestamp": f"2017-06-07T{stamp}Z"}


def test_no_kernel_figures(capsys: pytest.CaptureFixture[str]) -> None:
    snap = dataclasses.replace(snapshot_at(Level.TASKS), kernel=None)
    code, out, err = run(capsys, source=FixedSource(snap))
    assert code == 0
    # No kernel/vmo record to hang the tree from: the root job is the top.
    assert out.splitlines()[1] == (
        '  {"id": "j/1024", "type": "j", "koid": 1024, "parent": "", "name": "root"},'
    )
    assert kernel_lines(out) == []
    assert (
        err
        == "memgraph: note: the source has no kernel memory figures; there are no kernel records\n"
    )
    VALIDATOR.validate(json.loads(out))


def test_unknown_figures_leave_out_the_size_fields(capsys: pytest.CaptureFixture[str]) -> None:
    snap = snapshot_at(Level.TASKS)
    other = dataclasses.replace(snap.processes[2100], unreadable="permission denied")
    snap = dataclasses.replace(
        snap, processes={**snap.processes, 2100: other}, notes=("simulated\x1b[0m",)
    )
    code, out, err = run(capsys, source=FixedSource(snap))
    assert code == 0
    assert (
        '  {"id": "p/2100", "type": "p", "koid": 2100, "parent": "j/1100", "name": "other"},'
        in out.splitlines()
    )
    assert err == (
        "memgraph: note: simulated\\x1b[0m\n"
        "memgraph: note: the sizes of 1 process are unknown; their records have no size fields\n"
    )
    VALIDATOR.validate(json.loads(out))


def test_unresolvable_vmos_are_left_out_and_counted(capsys: pytest.CaptureFixture[str]) -> None:
    snap = snapshot_at()
    vmos = {koid: vmo for koid, vmo in snap.vmos.items() if koid != 2011}
    code, out, err = run(capsys, "-v", source=FixedSource(dataclasses.replace(snap, vmos=vmos)))
    assert code == 0
    app = json.loads(out)[10]
    # The clone's handle and mapping are gone; the other four references remain.
    assert [r["vmo_koid"] for r in app["vmo_refs"]] == [2010, 2010, 2010, 2012]
    assert [v["koid"] for v in app["vmos"]] == [2010, 2010, 2010, 2012]
    assert err == "memgraph: note: 2 VMO references could not be resolved and are not listed\n"


def test_hostile_names_round_trip(capsys: pytest.CaptureFixture[str]) -> None:
    evil = 'a"b\\c</script><b>&x\x00\x1b[2J\x07\n\x7f\x9b\u2028\u202e\udc80\ud800\U0001f600名'
    k = Kernel(16 << 20, wired_bytes=1 << 20)
    job = k.job_create(k.root_job, evil, koid=1100)
    p = k.process_create(job, evil, koid=1200)
    t = k.thread_create(p, evil, koid=1205)
    k.process_start(p, t)
    vmo = k.vmo_create(PAGE_SIZE, evil, owner=p, koid=1210)
    k.vmar_map(root_vmar(p), vmo)
    code, out, err = run(capsys, "-vtH", source=SimSource(k))
    assert (code, err) == (0, "")
    records = json.loads(out)
    named = [r for r in records if r.get("name") == evil]
    assert [r["id"] for r in named] == ["j/1100", "p/1200", "t/1205"]
    assert [v["name"] for v in named[1]["vmos"]] == [evil, evil]
    # One record per line still; nothing a terminal or an HTML page could act on.
    # "[", 9 kernel records, 2 jobs, the process in 10 lines (its own, handle_stats,
    # "vmos": [, 2 entries, ], "vmo_refs": [, 2 entries, ]}), the thread, __META, "]".
    assert len(out.splitlines()) == 1 + 9 + 2 + 10 + 1 + 1 + 1
    assert out.isascii() and all(ch.isprintable() for ch in out.replace("\n", ""))
    assert "<" not in out and ">" not in out and "&" not in out
    VALIDATOR.validate(records)


# --------------------------------------------------------------------------- worlds


@pytest.mark.slow
@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: "".join(f) or "plain")
def test_every_world_validates(
    capsys: pytest.CaptureFixture[str], world: str, flags: list[str]
) -> None:
    records = memgraph(capsys, world, *flags)
    VALIDATOR.validate(records)
    check_timestamp(records)
    letters = "".join(flags)
    assert any(r["type"] == "t" for r in records) == ("t" in letters)
    processes = [r for r in records if r["type"] == "p"]
    assert any("vmos" in p for p in processes) == ("v" in letters)
    assert all(("handle_stats" in p) == ("H" in letters) for p in processes)


@pytest.mark.parametrize("world", WORLDS)
def test_kernel_children_sum_to_physmem(capsys: pytest.CaptureFixture[str], world: str) -> None:
    records = memgraph(capsys, world)
    sizes = {r["id"]: r["size_bytes"] for r in records if r["type"] == "kernel"}
    children = [r["size_bytes"] for r in records if r.get("parent") == "kernel/physmem"]
    assert sum(children) == sizes["kernel/physmem"]
    assert sizes["kernel/heap/allocated"] + sizes["kernel/heap/free"] == sizes["kernel/heap"]
    assert records[0]["id"] == "kernel/physmem" and records[0]["parent"] == ""


@pytest.mark.parametrize("world", WORLDS)
def test_tree_is_the_walk_and_every_parent_exists(
    capsys: pytest.CaptureFixture[str], world: str
) -> None:
    records = memgraph(capsys, world, "-t")
    seen: set[str] = set()
    for r in records[:-1]:
        assert r["parent"] == "" or r["parent"] in seen, r["id"]
        seen.add(r["id"])
        if r["type"] != "kernel":
            assert r["id"] == f"{r['type']}/{r['koid']}"
    snap = world_source(world).snapshot(Level.TASKS)
    walked = [f"{e.kind}/{e.obj.koid}" for e in snap.walk(threads=True)]
    assert [r["id"] for r in records if r["type"] in ("j", "p", "t")] == walked
    root = next(r for r in records if r["type"] == "j")
    assert root["parent"] == "kernel/vmo"
    states = {r["state"] for r in records if r["type"] == "t"}
    assert states <= {s.name for s in ThreadState}


@pytest.mark.parametrize("world", WORLDS)
def test_process_figures_equal_ps(capsys: pytest.CaptureFixture[str], world: str) -> None:
    records = memgraph(capsys, world)
    assert main(["ps", "--json"], source=world_source(world)) == 0
    ps_rows = json.loads(capsys.readouterr().out)
    fields = ("private_bytes", "shared_bytes", "pss_bytes")
    assert {r["koid"]: tuple(r[f] for f in fields) for r in records if r["type"] == "p"} == {
        r["koid"]: tuple(r[f] for f in fields) for r in ps_rows if r["type"] == "p"
    }


def vmos_tool(capsys: pytest.CaptureFixture[str], world: str, koid: int) -> list[Any]:
    assert main(["vmos", str(koid), "--json"], source=world_source(world)) == 0
    rows: list[Any] = json.loads(capsys.readouterr().out)
    return rows


@pytest.mark.parametrize("world", ["doc-vmos", "doc-vmaps"])
def test_vmos_entries_equal_the_vmos_tool(capsys: pytest.CaptureFixture[str], world: str) -> None:
    records = memgraph(capsys, world, "-v")
    processes = [r for r in records if r["type"] == "p"]
    assert processes
    for process in processes:
        rows = vmos_tool(capsys, world, process["koid"])
        vmos = [
            {
                "koid": row["koid"],
                "name": row["name"],
                "size_bytes": row["size_bytes"],
                "parent_koid": row["parent_koid"] or 0,  # vmos: null when not a clone
                "num_children": row["num_children"],
                "num_mappings": row["num_mappings"],
                "share_count": row["share_count"],
                # vmos: null for a physical VMO, which has no committed pages.
                "committed_bytes": 0 if row["physical"] else row["committed_bytes"],
            }
            for row in rows
        ]
        refs = [
            {"vmo_koid": row["koid"], "via": [row["via"]]}
            | ({"handle_rights": row["rights"]} if row["via"] == "HANDLE" else {})
            for row in rows
        ]
        assert process.get("vmos", []) == vmos, process["id"]
        assert process.get("vmo_refs", []) == refs, process["id"]


def test_handle_stats_count_every_handle(capsys: pytest.CaptureFixture[str]) -> None:
    records = memgraph(capsys, "doc-vmos", "-H")
    snap = world_source("doc-vmos").snapshot(Level.FULL)
    for r in records:
        if r["type"] == "p":
            handles = snap.processes[r["koid"]].handles
            assert handles is not None
            assert sum(r["handle_stats"].values()) == len(handles)
            assert r["handle_stats"].get("vmo", 0) == sum(h.type is ObjType.VMO for h in handles)


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("args", [["-h"], ["--help"], ["--he"], ["-th"], ["extra", "-h"]])
def test_help(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    assert run(capsys, *args, source=NoSource()) == (0, HELP, "")


@pytest.mark.parametrize("args", [["-S"], ["--schema"], ["--sc"], ["-vS"]])
def test_schema_option_prints_the_shipped_schema(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, err = run(capsys, *args, source=NoSource())
    assert (code, out, err) == (0, SCHEMA_TEXT, "")
    jsonschema.Draft4Validator.check_schema(json.loads(out))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--x"], "memgraph: unrecognized option '--x'"),
        (["--x=1"], "memgraph: unrecognized option '--x=1'"),
        (["-x"], "memgraph: invalid option -- 'x'"),
        (["-vx"], "memgraph: invalid option -- 'x'"),
        (["-T"], "memgraph: invalid option -- 'T'"),
        (["--h"], "memgraph: option '--h' is ambiguous; possibilities: '--handles' '--help'"),
        (["--threads=yes"], "memgraph: option '--threads' doesn't allow an argument"),
        (["--thr=1"], "memgraph: option '--threads' doesn't allow an argument"),
        (["-x", "-h"], "memgraph: invalid option -- 'x'"),
        (["--\x1b[2J"], "memgraph: unrecognized option '--\\x1b[2J'"),
    ],
)
def test_unknown_option_prints_usage(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert run(capsys, *args, source=NoSource()) == (2, "", f"{message}\n{HELP}")


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["foo"], ["foo"]),
        (["foo", "-v", "bar"], ["foo", "bar"]),  # getopt moves non-options past the options
        (["-"], ["-"]),
        (["-t", "--", "-v", "x"], ["-v", "x"]),
        (["a\x1bb"], ["a\\x1bb"]),
    ],
)
def test_extra_arguments(
    capsys: pytest.CaptureFixture[str], args: list[str], extra: list[str]
) -> None:
    expected = "unrecognized extra arguments:\n" + "".join(f"{a}\n" for a in extra)
    assert run(capsys, *args, source=NoSource()) == (2, "", expected)


def test_registered_tool() -> None:
    from mxmem.cli import TOOLS

    assert isinstance(TOOLS["memgraph"], Tool)


# --------------------------------------------------------------------------- schema


def valid_document() -> list[Any]:
    return [
        {"id": "kernel/physmem", "type": "kernel", "parent": "", "name": "physmem",
         "size_bytes": 4096},
        {"id": "j/1", "type": "j", "koid": 1, "parent": "kernel/vmo", "name": "root"},
        {"id": "p/2", "type": "p", "koid": 2, "parent": "j/1", "name": "p",
         "private_bytes": 0, "shared_bytes": 0, "pss_bytes": 0,
         "handle_stats": {"vmo": 1},
         "vmos": [{"koid": 3, "name": "", "size_bytes": 0, "parent_koid": 0, "num_children": 0,
                   "num_mappings": 0, "share_count": 1, "committed_bytes": 0}],
         "vmo_refs": [{"vmo_koid": 3, "via": ["HANDLE"], "handle_rights": ["READ"]}]},
        {"id": "t/4", "type": "t", "koid": 4, "parent": "p/2", "name": "t", "state": "NEW"},
        {"type": "__META", "timestamp": "2017-06-07T05:51:08.021Z"},
    ]  # fmt: skip


def test_schema_accepts_the_valid_document() -> None:
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    VALIDATOR.validate(valid_document())


def _set(path: tuple[int | str, ...], value: Any) -> list[Any]:
    doc = valid_document()
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ((0, "size_bytes"), -1),
        ((0, "size_bytes"), 1.5),
        ((0, "id"), "kernel/swap"),
        ((0, "extra"), 1),
        ((1, "parent"), "j/x"),
        ((1, "koid"), -1),
        ((2, "pss_bytes"), _DELETE),  # sizes come all together or not at all
        ((2, "vmo_refs"), _DELETE),  # vmos and vmo_refs come together
        ((2, "vmos"), []),
        ((2, "handle_stats", "vmo"), 0),
        ((2, "handle_stats", "widget"), 1),
        ((2, "vmos", 0, "share_count"), 0),
        ((2, "vmos", 0, "committed_bytes"), _DELETE),
        ((2, "vmo_refs", 0, "handle_rights"), _DELETE),  # a HANDLE ref has rights
        ((2, "vmo_refs", 0, "via"), ["MAPPING"]),  # ...and a MAPPING ref has none
        ((2, "vmo_refs", 0, "via"), ["HANDLE", "MAPPING"]),
        ((2, "vmo_refs", 0, "handle_rights"), ["READ", "READ"]),
        ((2, "vmo_refs", 0, "handle_rights"), ["FLY"]),
        ((3, "state"), "blocked"),
        ((3, "parent"), "j/1"),
        ((4, "timestamp"), "2017-06-07 05:51:08Z"),
        ((4, "type"), "__OTHER"),
    ],
)
def test_schema_rejects_what_memgraph_never_writes(path: tuple[int | str, ...], value: Any) -> None:
    assert not VALIDATOR.is_valid(_set(path, value))


def test_schema_enums_match_the_model() -> None:
    defs = SCHEMA["definitions"]
    assert defs["thread"]["properties"]["state"]["enum"] == [s.name for s in ThreadState]
    pattern = next(iter(defs["process"]["properties"]["handle_stats"]["patternProperties"]))
    assert sorted(pattern[2:-2].split("|")) == sorted(t.value for t in ObjType)
    rights = defs["vmo_ref"]["properties"]["handle_rights"]["items"]["enum"]
    assert sorted(rights) == sorted(str(r.name) for r in Rights)  # the single rights
