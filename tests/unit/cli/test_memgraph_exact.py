"""``mxmem memgraph --attribution=exact`` (issue 6): the 2017 records plus the exact
attribution.

A tiny world built with the simulated kernel's API has every figure computed by hand
(tests/support/exact_worlds.py); every built-in world is validated against the schema and
checked to add up to its total to the byte; the figures that only a live host or a
hand-made source produces (approximate notes, a residual, negative figures, a process
missing from the task tree) are checked on snapshots whose page facts the test writes.
"""

from __future__ import annotations

import json
from fractions import Fraction
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from exact_worlds import HOSTILE, HOSTILE_WORLD, P, clone_world, tiny_world, with_facts
from fixed import FixedSource, RecordingSource

from mxmem.accounting.rounding import parts_to_target
from mxmem.cli import main
from mxmem.cli.memgraph import HELP as MEMGRAPH_HELP
from mxmem.model import (
    KERNEL_OBJECTS,
    PAGE_TABLES,
    Level,
    PageUse,
)
from mxmem.sources import Source, open_source
from mxmem.sources.sim import SimSource

SCHEMA = json.loads((files("mxmem") / "schemas" / "memgraph.schema.json").read_text())
VALIDATOR = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
WORLDS = ["doc", "doc-vmaps", "doc-vmos", "scale:300"]

EXACT_FIELDS = ("attributed_bytes", "attributed")


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
