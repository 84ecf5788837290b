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
from fractions import Fraction
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fixed import FixedSource, RecordingSource

from mxmem.accounting.rounding import parts_to_target
from mxmem.cli import main
from mxmem.cli.common import Tool
from mxmem.cli.memgraph import HELP as MEMGRAPH_HELP
from mxmem.model import (
    KERNEL_OBJECTS,
    PAGE_TABLES,
    KernelMemory,
    Level,
    ObjType,
    PageFacts,
    PageUse,
    Perm,
    Platform,
    Rights,
    Snapshot,
    ThreadState,
)
from mxmem.sources import Source, open_source
from mxmem.sources.sim import PAGE_SIZE, Kernel, SimSource
from mxmem.sources.sim.kernel import SimProcess, SimVmar, SimVmo

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


def test_doc_world_golden(capsys: pytest.CaptureFixture[str], golden: Any) -> None:
    code, out, err = run(capsys, source=world_source("doc"))
    assert (code, err) == (0, "")
    golden("memgraph_doc.json", out)


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


# ================================================================================================
# memgraph --attribution=exact (was tests/test_memgraph_exact.py): the 2017 records + exact fields
#
# ``memgraph --attribution=exact`` (issue 6): the 2017 records plus the exact attribution.
#
# A tiny world built with the simulated kernel's API has every figure computed by hand
# (below); every built-in world is validated against the schema and checked to add up to
# its total to the byte; the figures that only a live host or a hand-made source produces
# (approximate notes, a residual, negative figures, a process missing from the task tree)
# are checked on snapshots whose page facts the test writes itself.
# ================================================================================================


P = PAGE_SIZE
HOSTILE_WORLD = Path(__file__).resolve().parent / "fixtures" / "treemap" / "hostile-names.toml"
HOSTILE = "</script><img src=x onerror=alert(1)>"
EXACT_FIELDS = ("attributed_bytes", "attributed")


def tiny_world() -> Kernel:
    """1 MiB of RAM, 64 KiB wired; root j:1024 holds b p:1300 and job apps j:1100 (a
    p:1200, c p:1400 with one thread 1410). ``lib`` 1500 (2 pages written) is a's, and
    a, b and c all map it at 0x1000000; ``buf`` 1600 (1 page written) is held by b only
    through its handle, never mapped.

    By hand (P = 4096; tests/test_exact.py explains the page-table counts):

    - pages: lib's 2 pages are used by a, b and c: 2P/3 = 2730⅔ each, shared; buf's page
      is b's alone (its handle makes b a user): 4096 private to b.
    - page tables: a fresh process has its top-level table, and its first mapping at
      0x1000000 adds 3: 4P = 16384 each.
    - kernel stacks: c's one thread, 8192.
    - kernel objects (HEAP_COST): process 1536 + aspace 512 + root VMAR 256 + one
      mapping 192 = 2496 each, + 64 a handle, + 512 a thread less its stack, + lib's VMO
      object 384 split 3 ways (128 each), + buf's 384 (b alone). a: 2496 + 64 + 128 =
      2688; b: 2496 + 64 + 128 + 384 = 3072; c: 2496 + 512 + 128 = 3136.
    - rounding: the three shared 2730⅔ have equal remainders; the two missing bytes go to
      the first names, "p1200/shared" and "p1300/shared": a and b 2731, c 2730.
    - a = 2731 + 16384 + 2688 = 21803; b = 4096 + 2731 + 16384 + 3072 = 26283;
      c = 2730 + 16384 + 8192 + 3136 = 30442; Σ = 78528. Jobs: apps = a + c = 52245,
      root = 78528.
    - heap: jobs 2 x 512 + processes 3 x 2304 + thread 8704 + 2 VMOs x 384 + 2 handles x
      64 + 3 mappings x 192 = 18112 in one 16-page (65536) chunk: "kernel heap free"
      65536 - 18112 = 47424, "kernel objects (no process)" (the two jobs) 18112 - (2688
      + 3072 + 8192 + 3136) = 1024.
    - free: 256 pages - 16 wired - 16 heap - 12 page tables - 3 VMO pages = 209 pages =
      856064. 78528 + 856064 + 65536 + 47424 + 1024 = 1048576: residual 0.
    """
    return _tiny()[0]


def _tiny() -> tuple[Kernel, SimProcess, SimProcess, SimProcess, SimVmo]:
    """The tiny world, and its processes a, b, c and its VMO lib."""
    k = Kernel(256 * P, wired_bytes=16 * P)
    apps = k.job_create(k.root_job, "apps", koid=1100)
    a = k.process_create(apps, "a", koid=1200)
    k.process_start(a)
    b = k.process_create(k.root_job, "b", koid=1300)
    k.process_start(b)
    c = k.process_create(apps, "c", koid=1400)
    k.process_start(c, k.thread_create(c, "main", koid=1410))
    lib = k.vmo_create(2 * P, "lib", owner=a, koid=1500)
    k.vmo_write(lib, 0, 2 * P)
    for p in (a, b, c):
        k.vmar_map(_root(p), lib, addr=0x1000000)
    buf = k.vmo_create(P, "buf", owner=b, koid=1600)
    k.vmo_write(buf, 0, P)
    return k, a, b, c, lib


def clone_world() -> Kernel:
    """The tiny world, and c (1400) holds a handle to a copy-on-write clone of all of lib,
    1700 (named "lib" like its parent), into which nothing was written.

    By hand: each of lib's 2 pages is reached by lib (users a, b, c) and by the clone
    (user c): the two-step rule gives each VMO P/2 = 2048 of each page, lib's 2048 split
    3 ways (682⅔ each), the clone's to c. Over the 2 pages: a and b 1365⅓ each through
    lib; c 1365⅓ through lib and 4096 through the clone. All of it is shared (a page has
    users a, b and c), b's buf page private as in the tiny world.

    Rounding: the three fractional shared parts (1365⅓, 1365⅓, 5461⅓) add up to 8192; the
    one byte short of their floors goes to the first name, "p1200/shared": a 1366, b 1365,
    c 5461. The VMO lists: a's lib alone, 1365⅓ rounds to 1365, one byte short of its
    shared 1366, so it takes the byte: [1500, 1366]. b: [1600, 4096], [1500, 1365]. c:
    [1700, 4096], [1500, 1365] (= 5461). In the treemap, c's two VMOs named lib are one
    "lib[2]" box of 5461.
    """
    k, _a, _b, c, lib = _tiny()
    k.vmo_clone(lib, 0, 2 * P, owner=c, koid=1700)
    return k


def _root(p: SimProcess) -> Any:
    assert p.aspace is not None and p.aspace.root is not None
    return p.aspace.root


def attributed(private: int, shared: int, kinds: dict[str, int]) -> dict[str, Any]:
    return {
        "private_bytes": private,
        "shared_bytes": shared,
        "kernel_bytes": sum(kinds.values()),
        "kernel_by_kind": kinds,
        "estimated_bytes": 0,
        "swap_bytes": 0,
    }


TINY_PROCESSES = {
    "p/1200": (21803, attributed(0, 2731, {"page tables": 16384, "kernel objects": 2688})),
    "p/1300": (26283, attributed(4096, 2731, {"page tables": 16384, "kernel objects": 3072})),
    "p/1400": (
        30442,
        attributed(0, 2730, {"page tables": 16384, "kernel stacks": 8192, "kernel objects": 3136}),
    ),
}
TINY_META = {
    "mode": "exact",
    "exact": True,
    "total_bytes": 1048576,
    "processes_bytes": 78528,
    "categories": {
        "free": 856064,
        "wired": 65536,
        "kernel heap free": 47424,
        "kernel objects (no process)": 1024,
    },
    "residual_bytes": 0,
    "notes": [],
}


def run_exact(
    capsys: pytest.CaptureFixture[str], source: Source, *args: str
) -> tuple[int, str, str]:
    code = main(["memgraph", *args], source=source)
    out, err = capsys.readouterr()
    return code, out, err


def exact_records(capsys: pytest.CaptureFixture[str], source: Source, *args: str) -> list[Any]:
    code, out, err = run_exact(capsys, source, "--attribution=exact", *args)
    assert (code, err) == (0, "")
    records: list[Any] = json.loads(out)
    return records


@cache
def cached_world_source(world: str) -> Source:
    return open_source(f"sim:{world}")


def without_exact(records: list[Any]) -> list[Any]:
    out = []
    for record in records:
        record = {k: v for k, v in record.items() if k not in EXACT_FIELDS}
        if record["type"] == "__META":
            del record["attribution"]
        out.append(record)
    return out


def check_adds_up(records: list[Any]) -> dict[str, Any]:
    """Every sum the exact fields promise, on the printed whole bytes."""
    meta: dict[str, Any] = records[-1]["attribution"]
    processes = {r["koid"]: r for r in records if r["type"] == "p"}
    for p in processes.values():
        parts = p["attributed"]
        assert parts["kernel_bytes"] == sum(parts["kernel_by_kind"].values())
        if "vmos" in parts:
            # Private + shared by VMO: to the byte, largest first then by koid, each once.
            vmos = parts["vmos"]
            assert sum(size for _, size in vmos) == parts["private_bytes"] + parts["shared_bytes"]
            assert vmos == sorted(vmos, key=lambda v: (-v[1], v[0]))
            assert len({koid for koid, _ in vmos}) == len(vmos)
            assert all(size > 0 for _, size in vmos)
        assert p["attributed_bytes"] == (
            parts["private_bytes"]
            + parts["shared_bytes"]
            + parts["kernel_bytes"]
            + parts["estimated_bytes"]
        )
    assert meta["processes_bytes"] == sum(p["attributed_bytes"] for p in processes.values())
    assert (
        meta["processes_bytes"] + sum(meta["categories"].values()) + meta["residual_bytes"]
        == meta["total_bytes"]
    )
    # A job's figure is its subtree's: its processes plus its child jobs.
    jobs = {r["id"]: r for r in records if r["type"] == "j"}
    for job_id, job in jobs.items():
        mine = sum(p["attributed_bytes"] for p in processes.values() if p["parent"] == job_id)
        mine += sum(j["attributed_bytes"] for j in jobs.values() if j["parent"] == job_id)
        assert job["attributed_bytes"] == mine, job_id
    root = next(j for j in jobs.values() if not j["parent"].startswith("j/"))
    assert root["attributed_bytes"] == meta["processes_bytes"]
    return meta


# --------------------------------------------------------------------------- the tiny world


def test_tiny_world_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    records = exact_records(capsys, SimSource(tiny_world()))
    VALIDATOR.validate(records)
    got = {r["id"]: (r["attributed_bytes"], r["attributed"]) for r in records if r["type"] == "p"}
    assert got == TINY_PROCESSES
    jobs = {r["id"]: r["attributed_bytes"] for r in records if r["type"] == "j"}
    assert jobs == {"j/1024": 78528, "j/1100": 52245}
    assert records[-1]["attribution"] == TINY_META
    # Largest first, as printed.
    assert list(records[-1]["attribution"]["categories"]) == list(TINY_META["categories"])
    check_adds_up(records)


# By hand (tiny_world): a's and c's shares of lib are 2730⅔, rounded alone to 2731; a's
# shared_bytes is 2731, so a's lib is 2731; c's shared_bytes is 2730 (the rounding of all
# the parts gave the two bytes to a and b), so c's lib, the share rounded up, gives the
# byte back: 2730. b: its buf page, private, and its lib 2731 (= its shared_bytes).
TINY_VMOS = {
    "p/1200": [[1500, 2731]],
    "p/1300": [[1600, 4096], [1500, 2731]],
    "p/1400": [[1500, 2730]],
}


def test_tiny_world_vmos_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    records = exact_records(capsys, SimSource(tiny_world()), "-vt")
    VALIDATOR.validate(records)
    check_adds_up(records)
    got = {r["id"]: r["attributed"]["vmos"] for r in records if r["type"] == "p"}
    assert got == TINY_VMOS
    # The rest of the exact fields are as without -v.
    for record in records:
        if record["type"] == "p":
            vmos = record["attributed"].pop("vmos")
            assert TINY_PROCESSES[record["id"]] == (
                record["attributed_bytes"],
                record["attributed"],
            )
            # Every VMO of the list is one of the process's own "vmos" entries.
            assert {k for k, _ in vmos} <= {v["koid"] for v in record["vmos"]}
    # Printed inside "attributed", on the record's first line.
    code, out, _ = run_exact(capsys, SimSource(tiny_world()), "-v", "--attribution=exact")
    assert code == 0
    line = next(x for x in out.splitlines() if '"id": "p/1300"' in x)
    assert line.endswith(
        '"estimated_bytes": 0, "swap_bytes": 0, "vmos": [[1600, 4096], [1500, 2731]]},'
    )


def test_the_vmo_list_only_with_v(capsys: pytest.CaptureFixture[str]) -> None:
    for args in ([], ["-t"], ["-tH"]):
        records = exact_records(capsys, SimSource(tiny_world()), *args)
        assert all("vmos" not in r["attributed"] for r in records if r["type"] == "p"), args


def test_clone_world_vmos_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    # Worked out in clone_world: the two-step rule's fractional splits, by VMO.
    records = exact_records(capsys, SimSource(clone_world()), "-v")
    VALIDATOR.validate(records)
    check_adds_up(records)
    got = {
        r["id"]: (
            r["attributed"]["private_bytes"],
            r["attributed"]["shared_bytes"],
            r["attributed"]["vmos"],
        )
        for r in records
        if r["type"] == "p"
    }
    assert got == {
        "p/1200": (0, 1366, [[1500, 1366]]),
        "p/1300": (4096, 1365, [[1600, 4096], [1500, 1365]]),
        "p/1400": (0, 5461, [[1700, 4096], [1500, 1365]]),
    }


def vmo_parts(shares: dict[int, Fraction], target: int) -> list[tuple[int, int]]:
    """A process's VMO shares as memgraph prints them: largest first, then by koid."""
    rounded = parts_to_target(shares, target, 0)
    return sorted(rounded.items(), key=lambda item: (-item[1], item[0]))


def test_vmo_parts_rounding_by_hand() -> None:
    third = Fraction(1, 3)
    shares = {7: 30 + third, 5: 20 + third, 9: 10 + third, 4: Fraction(8)}
    # Σ = 69: integer_parts gives the one byte short of the floors (68) to the largest
    # remainder, all ⅓, the tie to the lowest koid: 5.
    assert vmo_parts(shares, 69) == [(7, 30), (5, 21), (9, 10), (4, 8)]
    # A byte more than the shares' rounded sum: to the shares rounded down, largest
    # remainder first (a tie: the lower koid, 7 before 9).
    assert vmo_parts(shares, 70) == [(7, 31), (5, 21), (9, 10), (4, 8)]
    assert vmo_parts(shares, 71) == [(7, 31), (5, 21), (9, 11), (4, 8)]
    # A byte less: from the share rounded up.
    assert vmo_parts(shares, 68) == [(7, 30), (5, 20), (9, 10), (4, 8)]
    # More than the fractional shares can take a byte each (no rounding makes it): the
    # largest takes the rest; less, the largest gives first.
    assert vmo_parts(shares, 73) == [(7, 33), (5, 21), (9, 11), (4, 8)]
    assert vmo_parts(shares, 66) == [(7, 28), (5, 20), (9, 10), (4, 8)]
    # Remainders that differ: ⅔ rounds up before ⅓.
    assert vmo_parts({1: Fraction(1, 3), 2: Fraction(2, 3)}, 1) == [(2, 1)]
    assert vmo_parts({1: Fraction(1, 3), 2: Fraction(2, 3)}, 2) == [(1, 1), (2, 1)]
    assert vmo_parts({1: Fraction(1, 3), 2: Fraction(2, 3)}, 0) == []
    # Nothing to split: the bytes are memory reached through no VMO (koid 0).
    assert vmo_parts({}, 5) == [(0, 5)]
    assert vmo_parts({3: Fraction(-2)}, 0) == []


def test_tiny_world_keeps_the_2017_figures(capsys: pytest.CaptureFixture[str]) -> None:
    records = exact_records(capsys, SimSource(tiny_world()))
    b = next(r for r in records if r.get("id") == "p/1300")
    # The 2017 rule: buf is not mapped, so it is nobody's; lib's 2 pages scaled by 3.
    assert (b["private_bytes"], b["shared_bytes"], b["pss_bytes"]) == (0, 8192, 8192 // 3)
    code, plain, _ = run_exact(capsys, SimSource(tiny_world()))
    assert code == 0
    assert without_exact(records) == json.loads(plain)


def test_the_exact_fields_are_printed_in_memgraph_layout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_exact(capsys, SimSource(tiny_world()), "--attribution=exact")
    assert code == 0
    lines = out.splitlines()
    # "[", 9 kernel records, 2 jobs, 3 processes, __META, "]": one record per line.
    assert len(lines) == 1 + 9 + 2 + 3 + 1 + 1
    assert lines[-2] == (
        '  {"type": "__META", "timestamp": "2017-06-07T05:51:08.021Z", "attribution":'
        ' {"mode": "exact", "exact": true, "total_bytes": 1048576, "processes_bytes": 78528,'
        ' "categories": {"free": 856064, "wired": 65536, "kernel heap free": 47424,'
        ' "kernel objects (no process)": 1024}, "residual_bytes": 0, "notes": []}}'
    )
    assert lines[10] == (
        '  {"id": "j/1024", "type": "j", "koid": 1024, "parent": "kernel/vmo", "name": "root",'
        ' "attributed_bytes": 78528},'
    )


def test_exact_mode_asks_for_page_facts(capsys: pytest.CaptureFixture[str]) -> None:
    source = RecordingSource(tiny_world())
    exact_records(capsys, source)
    assert source.levels == [Level.PAGES]


# --------------------------------------------------------------------------- every world


@pytest.mark.slow
@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("flags", [[], ["-vtH"]], ids=["plain", "vtH"])
def test_every_world_validates_and_adds_up_to_the_byte(
    capsys: pytest.CaptureFixture[str], world: str, flags: list[str]
) -> None:
    records = exact_records(capsys, cached_world_source(world), *flags)
    VALIDATOR.validate(records)
    meta = check_adds_up(records)
    processes = [r for r in records if r["type"] == "p"]
    assert all(("vmos" in p["attributed"]) == bool(flags) for p in processes)
    if flags:
        # With -v every process's private + shared is in its VMO list, and the list's
        # VMOs are among its own entries (the simulated kernel's COW pages are counted
        # through VMOs the process maps or holds).
        assert any(p["attributed"]["vmos"] for p in processes)
        for p in processes:
            own = {v["koid"] for v in p.get("vmos", [])}
            assert {k for k, _ in p["attributed"]["vmos"]} <= own
    # The simulated kernel sees every page: nothing is left over, nothing approximate.
    assert (meta["residual_bytes"], meta["exact"], meta["notes"]) == (0, True, [])
    kernel = {r["id"]: r["size_bytes"] for r in records if r["type"] == "kernel"}
    assert meta["total_bytes"] == kernel["kernel/physmem"]
    assert meta["categories"]["free"] == kernel["kernel/free"]
    assert meta["categories"]["wired"] == kernel["kernel/wired"]
    assert all(v > 0 for v in meta["categories"].values())
    # Same records as without the option, plus the exact fields.
    code, plain, _ = run_exact(capsys, cached_world_source(world), *flags)
    assert code == 0
    assert without_exact(records) == json.loads(plain)


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    "args",
    [
        ["--attribution=exact"],
        ["--attribution", "exact"],
        ["--attr=exact"],
        ["-v", "--attribution=2017", "--attribution=exact"],
    ],
)
def test_exact_option_spellings(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, out, err = run_exact(capsys, SimSource(tiny_world()), *args)
    assert (code, err) == (0, "")
    assert json.loads(out)[-1]["attribution"] == TINY_META


def test_attribution_2017_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    _, plain, _ = run_exact(capsys, SimSource(tiny_world()))
    code, out, err = run_exact(capsys, SimSource(tiny_world()), "--attribution=2017")
    assert (code, err, out) == (0, "", plain)
    assert "attribut" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--attribution=best"], "memgraph: --attribution must be 2017 or exact, not 'best'\n"),
        (["--attribution="], "memgraph: --attribution must be 2017 or exact, not ''\n"),
        (
            ["--attribution"],
            "memgraph: option '--attribution' requires an argument\n" + MEMGRAPH_HELP,
        ),
        (
            ["--attribution=\x1b[2J"],
            "memgraph: --attribution must be 2017 or exact, not '\\x1b[2J'\n",
        ),
    ],
)
def test_bad_attribution_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    # A wrong value is one line, as in every tool; a missing one is getopt's error.
    code, out, err = run_exact(capsys, SimSource(tiny_world()), *args)
    assert (code, out, err) == (2, "", message)


def test_help_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_exact(capsys, SimSource(tiny_world()), "-h")
    assert code == 0
    assert " --attribution=exact|2017\n" in out


# --------------------------------------------------------------------------- what sources say


def test_a_source_without_page_facts_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    snapshot = SimSource(tiny_world()).snapshot(Level.FULL)
    assert snapshot.pages is None
    code, out, err = run_exact(capsys, FixedSource(snapshot), "--attribution=exact")
    assert (code, out) == (1, "")
    assert err == (
        "memgraph: --attribution=exact: the source fixed has no page-level facts"
        " to attribute\n"
    )


def with_facts(**facts: Any) -> Snapshot:
    """The tiny world's snapshot with page facts the test writes (as a live host or a
    capture would give them): b (1300) and c (1400) are in its task tree."""
    snapshot = SimSource(tiny_world()).snapshot(Level.PAGES)
    return dataclasses.replace(snapshot, pages=PageFacts(**facts))


def test_approximate_facts_and_a_residual_are_said(capsys: pytest.CaptureFixture[str]) -> None:
    # b: 10 private pages and an estimate of 5000; c: 1 page shared with b; 1000 bytes of
    # c in swap. 100000 bytes of the total are nowhere: the residual.
    snapshot = with_facts(
        total_bytes=1_000_000,
        page_size=P,
        pages={(PageUse(1600, (1300,)),): 10, (PageUse(1500, (1300, 1400)),): 1},
        process_estimated={1300: 5000},
        process_swap={1400: 1000},
        categories={"free": 1_000_000 - 100_000 - 10 * P - P - 5000},
        exact=False,
        notes=("no root: smaps_rollup figures", "pages moved between reads"),
    )
    code, out, err = run_exact(capsys, FixedSource(snapshot), "--attribution=exact")
    assert code == 0
    records = json.loads(out)
    VALIDATOR.validate(records)
    meta = check_adds_up(records)
    assert meta == {
        "mode": "exact",
        "exact": False,
        "total_bytes": 1_000_000,
        "processes_bytes": 10 * P + 5000 + P,
        "categories": {"free": 1_000_000 - 100_000 - 11 * P - 5000},
        "residual_bytes": 100_000,
        "notes": ["no root: smaps_rollup figures", "pages moved between reads"],
    }
    procs = {r["koid"]: r for r in records if r["type"] == "p"}
    assert procs[1300]["attributed"] == {
        "private_bytes": 10 * P,
        "shared_bytes": P // 2,
        "kernel_bytes": 0,
        "kernel_by_kind": {},
        "estimated_bytes": 5000,
        "swap_bytes": 0,
    }
    assert procs[1400]["attributed"]["shared_bytes"] == P // 2
    assert procs[1400]["attributed"]["swap_bytes"] == 1000
    assert procs[1400]["attributed_bytes"] == P // 2  # swap is not RAM
    assert procs[1200]["attributed_bytes"] == 0  # a process with no facts at all
    assert err.splitlines() == [
        "memgraph: note: approximate: not every figure of the exact attribution is page-level",
        "memgraph: note: no root: smaps_rollup figures",
        "memgraph: note: pages moved between reads",
        "memgraph: note: residual: 97.7k (100000 bytes) of physical memory not accounted for"
        " by the processes and named categories (likely causes: the notes above)",
    ]


def test_vmo_list_koids_as_the_vmo_entries_print_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # b reaches 2 pages through no VMO (koid 0), 1 through a kernel VMO (which has no user
    # koid: it is printed as 0 in "vmos" entries, so here too, with the first), 1 through
    # buf and 3 through a VMO the snapshot does not have (its koid as the source gave it).
    snapshot = with_facts(total_bytes=10 * P, page_size=P)
    kernel_vmo = next(v.koid for v in snapshot.vmos.values() if v.kernel_only)
    assert kernel_vmo != 0
    snapshot = with_facts(
        total_bytes=10 * P,
        page_size=P,
        pages={
            (PageUse(0, (1300,)),): 2,
            (PageUse(kernel_vmo, (1300,)),): 1,
            (PageUse(1600, (1300,)),): 1,
            (PageUse(4242, (1300,)),): 3,
        },
        categories={"free": 3 * P},
    )
    code, out, _ = run_exact(capsys, FixedSource(snapshot), "-v", "--attribution=exact")
    assert code == 0
    records = json.loads(out)
    VALIDATOR.validate(records)
    check_adds_up(records)
    b = next(r for r in records if r.get("id") == "p/1300")
    assert b["attributed"]["vmos"] == [[0, 3 * P], [4242, 3 * P], [1600, P]]
    assert b["attributed"]["private_bytes"] == 7 * P


def test_a_negative_residual_is_printed_with_its_sign(capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = with_facts(total_bytes=10 * P, page_size=P, pages={(PageUse(1600, (1300,)),): 12})
    code, out, err = run_exact(capsys, FixedSource(snapshot), "--attribution=exact")
    assert code == 0
    meta = check_adds_up(json.loads(out))
    assert meta["residual_bytes"] == -2 * P
    assert err == (
        "memgraph: note: residual: -8k (-8192 bytes) of physical memory not accounted for by"
        " the processes and named categories\n"
    )


def test_negative_figures_and_unlisted_processes_stay_accounted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 9999 is not in the task tree (it exited between reads): its page becomes a named
    # category. A negative category is never printed: it counts as 0, so the residual
    # shows it.
    snapshot = with_facts(
        total_bytes=100 * P,
        page_size=P,
        pages={(PageUse(1600, (1300,)),): 3, (PageUse(77, (9999,)),): 1},
        process_kernel={1400: {PAGE_TABLES: P, KERNEL_OBJECTS: 100}},
        categories={"free": 96 * P, "page tables (no process)": -100},
    )
    code, out, err = run_exact(capsys, FixedSource(snapshot), "--attribution=exact")
    assert code == 0
    records = json.loads(out)
    VALIDATOR.validate(records)
    meta = check_adds_up(records)
    assert meta["categories"] == {"free": 96 * P, "processes not in the task tree": P}
    assert meta["processes_bytes"] == 3 * P + P + 100
    assert meta["residual_bytes"] == -(P + 100)
    assert meta["notes"] == [
        "1 process with attributed memory are not in the task tree (exited while it was"
        ' read): their memory is the "processes not in the task tree" category',
        'the category "page tables (no process)" was negative (-100 bytes): counted as 0,'
        " so it is part of the residual",
    ]
    assert [line.split(": ", 2)[2][:20] for line in err.splitlines()] == [
        "1 process with attri",
        'the category "page t',
        "residual: -4196B (-4",
    ]


# --------------------------------------------------------------------------- hostile names


def test_hostile_names_are_escaped_like_every_memgraph_string(
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = open_source(f"sim:{HOSTILE_WORLD}")
    code, out, err = run_exact(capsys, source, "-vt", "--attribution=exact")
    assert (code, err) == (0, "")
    assert out.isascii() and all(ch.isprintable() for ch in out.replace("\n", ""))
    assert "<" not in out and ">" not in out and "&" not in out
    records = json.loads(out)
    VALIDATOR.validate(records)
    evil = next(r for r in records if r.get("name") == HOSTILE)
    assert evil["attributed_bytes"] > 0
    check_adds_up(records)


def test_hostile_category_and_kind_names_and_notes_are_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    kind = "<kind>\u2028&"
    category = '</script>"\x1b[2J'
    note = "<img src=x onerror=alert(1)>"
    snapshot = with_facts(
        total_bytes=10 * P,
        page_size=P,
        pages={(PageUse(1600, (1300,)),): 1},
        process_kernel={1300: {kind: P}},
        categories={category: 8 * P},
        exact=False,
        notes=(note,),
    )
    code, out, _ = run_exact(capsys, FixedSource(snapshot), "--attribution=exact")
    assert code == 0
    assert out.isascii() and "<" not in out and ">" not in out and "&" not in out
    assert "\x1b" not in out
    records = json.loads(out)
    meta = records[-1]["attribution"]
    assert meta["categories"] == {category: 8 * P}
    assert meta["notes"] == [note]
    b = next(r for r in records if r.get("koid") == 1300)
    assert b["attributed"]["kernel_by_kind"] == {kind: P}


# --------------------------------------------------------------------------- the schema


def test_schema_rejects_what_exact_memgraph_never_writes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    records = exact_records(capsys, SimSource(tiny_world()))
    VALIDATOR.validate(records)

    def broken(change: Any) -> list[Any]:
        copy = json.loads(json.dumps(records))
        change(copy)
        return copy

    process = next(i for i, r in enumerate(records) if r["type"] == "p")
    job = next(i for i, r in enumerate(records) if r["type"] == "j")
    cases = [
        lambda d: d[process].pop("attributed"),
        lambda d: d[process].pop("attributed_bytes"),
        lambda d: d[process]["attributed"].pop("swap_bytes"),
        lambda d: d[process]["attributed"].update(extra=1),
        lambda d: d[process]["attributed"]["kernel_by_kind"].update(x=-1),
        lambda d: d[job].update(attributed_bytes=-1),
        lambda d: d[-1]["attribution"].update(mode="2017"),
        lambda d: d[-1]["attribution"].update(exact="yes"),
        lambda d: d[-1]["attribution"].pop("residual_bytes"),
        lambda d: d[-1]["attribution"]["categories"].update(free=0),
        lambda d: d[-1]["attribution"].update(notes=[1]),
        lambda d: d[-1]["attribution"].update(residual_bytes=1.5),
    ]
    for change in cases:
        assert not VALIDATOR.is_valid(broken(change))
    # A negative residual is valid: a live source's figures can add up to more.
    assert VALIDATOR.is_valid(broken(lambda d: d[-1]["attribution"].update(residual_bytes=-1)))


def test_schema_of_the_vmo_list(capsys: pytest.CaptureFixture[str]) -> None:
    records = exact_records(capsys, SimSource(tiny_world()), "-v")
    VALIDATOR.validate(records)
    b = next(i for i, r in enumerate(records) if r.get("id") == "p/1300")

    def with_vmos(value: Any) -> list[Any]:
        copy = json.loads(json.dumps(records))
        copy[b]["attributed"]["vmos"] = value
        return copy

    assert VALIDATOR.is_valid(with_vmos([]))
    assert VALIDATOR.is_valid(with_vmos([[0, 1], [1600, 6826]]))
    for bad in (
        {"1600": 4096},
        [[1600]],
        [[1600, 4096, 1]],
        [[1600, 0]],
        [[1600, -1]],
        [[-1, 4096]],
        [["1600", 4096]],
        [[1600, 4096.5]],
        [{"vmo_koid": 1600, "bytes": 4096}],
    ):
        assert not VALIDATOR.is_valid(with_vmos(bad)), bad


def test_exact_output_reads_back_as_a_capture(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Existing consumers of memgraph files still work on exact output, and read the same.
    outputs = []
    for args in (["-v"], ["-v", "--attribution=exact"]):
        code, out, _ = run_exact(capsys, SimSource(tiny_world()), *args)
        assert code == 0
        path = tmp_path / f"{len(args)}.json"
        path.write_text(out)
        assert main([f"--capture={path}", "ps"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert [line.split()[-1] for line in outputs[1].splitlines()[1:6]] == [
        "root", "b", "apps", "a", "c"
    ]  # fmt: skip
