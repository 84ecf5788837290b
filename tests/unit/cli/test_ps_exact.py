"""``mxmem ps --attribution=exact``: the job tree with every page counted once (issue 6).

The first world is built here and every figure is computed by hand in the comments
(P = 4096). Kernel costs come from the simulated kernel's ``HEAP_COST`` table: a process
object 1536 bytes, its address space 512, a VMAR 256, a mapping 192, a handle 64, a
thread 512 + its 8192-byte kernel stack, a VMO 384 split equally among the processes
that map or hold it. A fresh process has one page-table page (its PML4); mappings inside
one 2 MiB block at 0x1000000 add a PDPT, a PD and a PT page: 4 pages.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from fixed import FixedSource
from paths import FIXTURES
from ps_checks import VALIDATOR, check_adds_up

from mxmem.accounting.figures import SystemFigures, figures
from mxmem.cli import main
from mxmem.cli.ps import HELP
from mxmem.model import Level, PageFacts, PageUse, Perm
from mxmem.render.exact import APPROXIMATE, figures_notes
from mxmem.sources import Source, open_source
from mxmem.sources.sim import PAGE_SIZE, Kernel, SimSource
from mxmem.sources.sim.worlds.doc import MEMORY_BYTES

P = PAGE_SIZE
BASE = 0x1000000
LINUX = sys.platform.startswith("linux") and os.path.exists("/proc/self/pagemap")
ROOT = LINUX and os.geteuid() == 0

Capsys = pytest.CaptureFixture[str]


def world() -> Kernel:
    """root j:1024 holds alpha p:1200 (one thread) and services j:1100 (beta p:1300,
    gamma p:1400, no threads).

    ``libc.so`` (4 pages, alpha's handle) is mapped at 0x1000000 in all three: 4P/3 =
    5461.33 bytes each. alpha also maps ``heap`` (2 of 8 pages written) at 0x1004000;
    beta holds ``buf`` (1 page) by handle only, never mapped.
    """
    k = Kernel(64 << 20, wired_bytes=1 << 20)
    services = k.job_create(k.root_job, "services", koid=1100)
    alpha = k.process_create(k.root_job, "alpha", koid=1200)
    main_thread = k.thread_create(alpha, "main", koid=1210)
    beta = k.process_create(services, "beta", koid=1300)
    gamma = k.process_create(services, "gamma", koid=1400)
    k.process_start(alpha, main_thread)
    k.process_start(beta)
    k.process_start(gamma)
    lib = k.vmo_create(4 * P, "libc.so", owner=alpha, koid=1500)
    k.vmo_write(lib, 0, 4 * P)
    for p in (alpha, beta, gamma):
        assert p.aspace is not None and p.aspace.root is not None
        k.vmar_map(p.aspace.root, lib, perms=Perm.READ | Perm.EXECUTE, addr=BASE)
    heap = k.vmo_create(8 * P, "heap", owner=alpha, koid=1501)
    k.vmo_write(heap, 0, 2 * P)
    assert alpha.aspace is not None and alpha.aspace.root is not None
    k.vmar_map(alpha.aspace.root, heap, addr=BASE + 4 * P)
    buf = k.vmo_create(P, "buf", owner=beta, koid=1502)
    k.vmo_write(buf, 0, P)
    return k


# By hand (the shared libc.so pages: 16384/3 each; integer_parts gives the one byte the
# three floors lack to the first name in order, alpha):
#   alpha  private 2P = 8192 (heap); shared 5462; kernel = page tables 4P 16384 + stack
#          8192 + objects (process 1536 + aspace 512 + VMAR 256 + 2 mappings 384 +
#          2 handles 128 + thread 512 + libc 384/3 = 128 + heap 384) 3840 = 28416;
#          ATTRIB 42070 = 41k + 86 -> "41.1k"; KERNEL 28416 = 27k + 768 -> "27.8k"
#   beta   private P = 4096 (buf, held only); shared 5461; kernel = 16384 + (1536 + 512
#          + 256 + 192 + 64 + 128 + buf 384 = 3072) = 19456 = "19k"; ATTRIB 29013 -> "28.3k"
#   gamma  shared 5461; kernel 16384 + (1536 + 512 + 256 + 192 + 128 = 2624) = 19008
#          -> "18.6k"; ATTRIB 24469 = 23k + 917 -> "23.9k"
#   services = beta + gamma: ATTRIB 53482 -> "52.2k", PRIVATE 4k, SHARED 10922 ->
#          "10.7k", KERNEL 38464 -> "37.6k"
#   root   = all: ATTRIB 95552 -> "93.3k", 12k, 16k, KERNEL 66880 -> "65.3k"
# Summary: 16384 pages = "64M"; wired 256 pages = "1M"; the heap took one 16-page chunk
# (65536) of which jobs 2 x 512 + process objects 3840 + 3072 + 2624 + 1 stack 8192 =
# 18752 are used: heap free 46784 -> "45.7k", the jobs' 1024 "kernel objects (no
# process)" -> "1k"; free = 16384 - 256 wired - 16 heap - 7 VMO - 12 page-table pages
# = 16093 pages = 65916928 -> "62.9M".
EXACT_HEADER = "TASK        ATTRIB PRIVATE  SHARED  KERNEL NAME"
EXACT_TABLE = [
    EXACT_HEADER,
    "j:1024       93.3k     12k     16k   65.3k root",
    "  p:1200     41.1k      8k   5462B   27.8k alpha",
    "  j:1100     52.2k      4k   10.7k   37.6k services",
    "    p:1300   28.3k      4k   5461B     19k beta",
    "    p:1400   23.9k      0B   5461B   18.6k gamma",
    EXACT_HEADER,
    "",
]
SUMMARY = [
    "MEMORY (whole system)        ATTRIB",
    "free                          62.9M",
    "wired                            1M",
    "kernel heap free              45.7k",
    "kernel objects (no process)      1k",
    "processes                     93.3k",
    "total                           64M",
]


def run_exact(capsys: Capsys, *args: str, source: Source | None = None) -> tuple[int, str, str]:
    code = main(["ps", "--attribution=exact", *args], source=source or SimSource(world()))
    out, err = capsys.readouterr()
    return code, out, err


def ps_json(capsys: Capsys, *args: str, source: Source | None = None) -> dict[str, Any]:
    code, out, _ = run_exact(capsys, "--json", *args, source=source)
    assert code == 0
    doc: dict[str, Any] = json.loads(out)
    VALIDATOR.validate(doc)
    return doc


# --- a hand-built world ------------------------------------------------------------------


def test_exact_table_and_summary_by_hand(capsys: Capsys) -> None:
    code, out, err = run_exact(capsys)
    assert (code, err) == (0, "")
    assert out.splitlines() == EXACT_TABLE + SUMMARY


def test_exact_asks_the_source_for_pages() -> None:
    source = FixedSource(SimSource(world()).snapshot(Level.PAGES))
    assert main(["ps", "--attribution=exact"], source=source) == 0
    assert source.levels == [Level.PAGES]


def test_exact_json_by_hand(capsys: Capsys) -> None:
    doc = ps_json(capsys)
    check_adds_up(doc)
    got = [
        (
            r["type"],
            r["koid"],
            r["attributed_bytes"],
            r["private_bytes"],
            r["shared_bytes"],
            r["kernel_bytes"],
        )
        for r in doc["rows"]
    ]
    assert got == [
        ("j", 1024, 95552, 12288, 16384, 66880),
        ("p", 1200, 42070, 8192, 5462, 28416),
        ("j", 1100, 53482, 4096, 10922, 38464),
        ("p", 1300, 29013, 4096, 5461, 19456),
        ("p", 1400, 24469, 0, 5461, 19008),
    ]
    assert all(r["estimated_bytes"] == r["swap_bytes"] == 0 for r in doc["rows"])
    assert (doc["attribution"], doc["exact"], doc["notes"], doc["job_koid"]) == (
        "exact",
        True,
        [],
        1024,
    )
    assert doc["summary"] == {
        "scope": "system",
        "total_bytes": 64 << 20,
        "processes_bytes": 95552,
        "categories": [
            {"name": "free", "bytes": 16093 * P},
            {"name": "wired", "bytes": 1 << 20},
            {"name": "kernel heap free", "bytes": 46784},
            {"name": "kernel objects (no process)", "bytes": 1024},
        ],
        "residual_bytes": 0,
        "swap_bytes": 0,
    }


def test_threads_add_the_state_column_and_blank_thread_cells(capsys: Capsys) -> None:
    code, out, err = run_exact(capsys, "-T")
    assert (code, err) == (0, "")
    # t:1210 at depth 2 needs 2*2 + 2 + 4 = 10 columns, as beta's p:1300 at depth 2.
    header = "TASK        ATTRIB PRIVATE  SHARED  KERNEL   STATE NAME"
    assert out.splitlines()[:8] == [
        header,
        "j:1024       93.3k     12k     16k   65.3k         root",
        "  p:1200     41.1k      8k   5462B   27.8k         alpha",
        "    t:1210                                 running main",
        "  j:1100     52.2k      4k   10.7k   37.6k         services",
        "    p:1300   28.3k      4k   5461B     19k         beta",
        "    p:1400   23.9k      0B   5461B   18.6k         gamma",
        header,
    ]
    assert out.splitlines()[8:] == ["", *SUMMARY]


def test_jobs_only(capsys: Capsys) -> None:
    code, out, _ = run_exact(capsys, "-J")
    assert code == 0
    assert out.splitlines()[:4] == [
        "TASK      ATTRIB PRIVATE  SHARED  KERNEL NAME",
        "j:1024     93.3k     12k     16k   65.3k root",
        "  j:1100   52.2k      4k   10.7k   37.6k services",
        "TASK      ATTRIB PRIVATE  SHARED  KERNEL NAME",
    ]


def test_one_job_with_a_summary_of_the_whole_system(capsys: Capsys) -> None:
    code, out, _ = run_exact(capsys, "--job=1100")
    assert code == 0
    lines = out.splitlines()
    assert lines[:5] == [
        "TASK      ATTRIB PRIVATE  SHARED  KERNEL NAME",
        "j:1100     52.2k      4k   10.7k   37.6k services",
        "  p:1300   28.3k      4k   5461B     19k beta",
        "  p:1400   23.9k      0B   5461B   18.6k gamma",
        "TASK      ATTRIB PRIVATE  SHARED  KERNEL NAME",
    ]
    # The summary still covers everything (alpha included: processes 93.3k) and says so.
    assert lines[6] == "MEMORY (whole system, not only job 1100)  ATTRIB"
    assert lines[-2:] == [
        "processes                                  93.3k",
        "total                                        64M",
    ]
    doc = ps_json(capsys, "--job=1100")
    assert doc["job_koid"] == 1100
    assert [r["koid"] for r in doc["rows"]] == [1100, 1300, 1400]
    assert doc["summary"]["processes_bytes"] == 95552


def test_missing_job_is_an_error_exact(capsys: Capsys) -> None:
    code, out, err = run_exact(capsys, "--job=999")
    assert (code, out, err) == (1, "", "ERROR: no job with koid 999\n")


def test_units_fix_every_size_exact(capsys: Capsys) -> None:
    code, out, _ = run_exact(capsys, "--units=k")
    assert code == 0
    lines = out.splitlines()
    # 42070 = 41k + 86: "41.1k"; 64 MiB = 65536k, wider than 7 (ps.c's %7s only pads).
    assert lines[2] == "  p:1200     41.1k      8k    5.3k   27.8k alpha"
    assert lines[-1] == "total                        65536k"


def test_swap_adds_a_swap_column_outside_attrib(capsys: Capsys) -> None:
    code, out, _ = run_exact(capsys, "--swap")
    assert code == 0
    assert out.splitlines()[:3] == [
        "TASK        ATTRIB PRIVATE  SHARED  KERNEL    SWAP NAME",
        "j:1024       93.3k     12k     16k   65.3k      0B root",
        "  p:1200     41.1k      8k   5462B   27.8k      0B alpha",
    ]


def test_attribution_2017_is_the_default(capsys: Capsys) -> None:
    assert main(["ps"], source=SimSource(world())) == 0
    default = capsys.readouterr()
    assert main(["ps", "--attribution=2017"], source=SimSource(world())) == 0
    assert capsys.readouterr() == default
    assert default.out.splitlines()[0] == "TASK           PSS PRIVATE  SHARED NAME"


@pytest.mark.parametrize("value", ["", "EXACT", "2018", "exact "])
def test_an_unknown_attribution_is_a_one_line_error(capsys: Capsys, value: str) -> None:
    code = main(["ps", f"--attribution={value}"], source=SimSource(world()))
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err == f"ps: --attribution must be 2017 or exact, not {value!r}\n"


def test_help_describes_exact_attribution(capsys: Capsys) -> None:
    assert main(["ps", "--help"], source=SimSource(world())) == 0
    out = capsys.readouterr().out
    assert out == HELP
    assert " --attribution=?\n" in out
    for word in ("2017", "exact", "ATTRIB", "PRIVATE", "SHARED", "KERNEL", "total physical"):
        assert word in out


def test_a_source_without_page_facts_is_a_one_line_error(capsys: Capsys) -> None:
    source = FixedSource(SimSource(world()).snapshot(Level.FULL))
    code, out, err = run_exact(capsys, source=source)
    assert (code, out) == (1, "")
    assert err == "ps: --attribution=exact: the source fixed has no page-level facts to attribute\n"


# --- figures the sim never produces: hand-made page facts -------------------------------


def with_facts(facts: PageFacts, **changes: Any) -> FixedSource:
    """The hand-built world's tree with ``facts`` instead of the kernel's."""
    snap = SimSource(world()).snapshot(Level.PAGES)
    processes = dict(snap.processes)
    for koid, fields in changes.items():
        processes[int(koid[1:])] = dataclasses.replace(processes[int(koid[1:])], **fields)
    return FixedSource(dataclasses.replace(snap, pages=facts, processes=processes))


def approximate_facts() -> PageFacts:
    """alpha: 3 private pages, half of a page shared with beta, 4096 of page tables,
    1 MiB swapped; beta: the other half page, 10000 bytes estimated (no page-level
    figure); gamma: nothing. free 1 MiB. Accounted: 12288 + 2048 + 4096 + 2048 + 10000 +
    1048576 = 1079056 of a 1081344 total: a residual of 2288 bytes.

    By hand: alpha ATTRIB 18432 = "18k"; beta 2048 + 10000 = 12048 = 11k + 784 ->
    "11.8k" (ESTIM 10000 = 9k + 784 -> "9.8k"); root 30480 = 29k + 784 -> "29.8k"."""
    return PageFacts(
        total_bytes=1081344,
        page_size=P,
        pages={
            (PageUse(7, (1200,)),): 3,
            (PageUse(8, (1200, 1300)),): 1,
        },
        process_kernel={1200: {"page tables": 4096}},
        process_estimated={1300: 10000},
        process_swap={1200: 1 << 20},
        categories={"free": 1 << 20},
        exact=False,
        notes=("no root: PSS from smaps_rollup", "pages changed between reads"),
    )


def test_approximate_attribution_says_so(capsys: Capsys) -> None:
    code, out, err = run_exact(capsys, source=with_facts(approximate_facts()))
    assert code == 0
    # ESTIM appears because beta's figure is not page-level; ATTRIB adds it up.
    assert out.splitlines() == [
        "TASK        ATTRIB PRIVATE  SHARED  KERNEL   ESTIM NAME",
        "j:1024       29.8k     12k      4k      4k    9.8k root",
        "  p:1200       18k     12k      2k      4k      0B alpha",
        "  j:1100     11.8k      0B      2k      0B    9.8k services",
        "    p:1300   11.8k      0B      2k      0B    9.8k beta",
        "    p:1400      0B      0B      0B      0B      0B gamma",
        "TASK        ATTRIB PRIVATE  SHARED  KERNEL   ESTIM NAME",
        "",
        "MEMORY (whole system, approximate)  ATTRIB",
        "free                                    1M",
        "processes                            29.8k",
        "total                                1056k",
        "residual                             2288B = total - the lines above, not attributed;"
        " likely causes:",
        "  - no root: PSS from smaps_rollup",
        "  - pages changed between reads",
    ]
    # Defect i: the notes are under the residual line; standard error does not repeat
    # them (it printed each twice), it says once that the attribution is approximate.
    assert err == (
        f"ps: note: {APPROXIMATE}\n"
        "ps: note: 1M of the processes' memory is swapped out (their share of it) and not"
        " RAM, so not in ATTRIB; --swap shows it\n"
    )


def test_approximate_json_carries_exact_false_notes_and_a_residual(capsys: Capsys) -> None:
    doc = ps_json(capsys, source=with_facts(approximate_facts()))
    check_adds_up(doc)
    assert doc["exact"] is False
    assert doc["notes"] == ["no root: PSS from smaps_rollup", "pages changed between reads"]
    alpha, beta = doc["rows"][1], doc["rows"][3]
    assert (alpha["attributed_bytes"], alpha["swap_bytes"]) == (12288 + 2048 + 4096, 1 << 20)
    assert (beta["shared_bytes"], beta["estimated_bytes"]) == (2048, 10000)
    assert doc["summary"]["residual_bytes"] == 2288
    assert doc["summary"]["swap_bytes"] == 1 << 20


def system_of(facts: PageFacts) -> SystemFigures:
    system = figures(with_facts(facts).snapshot(Level.PAGES), "exact").system
    assert system is not None
    return system


def test_every_approximate_attribution_says_so_once_and_each_note_once() -> None:
    facts = dataclasses.replace(approximate_facts(), notes=("Approximate: no kpagecount", "x"))
    residual = (
        "residual: 2288B (2288 bytes) of physical memory not accounted for by the processes"
        " and named categories (likely causes: the notes above)"
    )
    notes = figures_notes(["source note"], system_of(facts))
    assert notes == ["source note", APPROXIMATE, "Approximate: no kpagecount", "x", residual]
    # Notes the source already gave are not repeated.
    assert figures_notes(["x"], system_of(facts))[1:] == [
        APPROXIMATE,
        "Approximate: no kpagecount",
        residual,
    ]
    # Nothing is repeated where the output already shows it (a residual block, JSON),
    # but that the attribution is approximate is still said.
    assert figures_notes(["x"], system_of(facts), shown_in_output=True) == ["x", APPROXIMATE]
    exact = dataclasses.replace(facts, exact=True)
    assert figures_notes(["x"], system_of(exact), shown_in_output=True) == ["x"]
    # An approximate attribution without notes still says it is approximate.
    facts = dataclasses.replace(approximate_facts(), notes=())
    assert figures_notes([], system_of(facts))[0] == APPROXIMATE
    # The 2017 rule has no system figures: the source's notes only.
    assert figures_notes(["x"], None) == ["x"]


def test_swap_column_shows_the_swapped_share(capsys: Capsys) -> None:
    code, out, err = run_exact(capsys, "--swap", source=with_facts(approximate_facts()))
    assert code == 0
    assert out.splitlines()[2] == (
        "  p:1200       18k     12k      2k      4k      0B      1M alpha"
    )
    assert "swapped out" not in err


def test_a_negative_residual_is_shown_with_its_sign(capsys: Capsys) -> None:
    facts = dataclasses.replace(approximate_facts(), total_bytes=1 << 20, exact=True, notes=())
    code, out, err = run_exact(capsys, source=with_facts(facts))
    assert code == 0
    # Accounted 1079056 of 1048576: 30480 bytes more than the total = 29.8k.
    assert out.splitlines()[-2:] == [
        "residual               -29.8k = total - the lines above, not attributed; likely causes:",
        "  - the source gives none",
    ]
    assert "approximate" not in out + err


def test_unknown_and_kernel_thread_cells(capsys: Capsys) -> None:
    facts = dataclasses.replace(approximate_facts(), process_estimated={}, exact=True)
    source = with_facts(
        facts, p1300={"unreadable": "permission denied"}, p1400={"kernel_thread": True}
    )
    code, out, err = run_exact(capsys, source=source)
    assert code == 0
    # beta: a half page is attributed to it, so it is known though unreadable. Take it
    # out of the facts and it is "?", left out of its job's sums.
    assert out.splitlines()[4:6] == [
        "    p:1300      2k      0B      2k      0B beta",
        "    p:1400                                 gamma",
    ]
    facts = dataclasses.replace(facts, pages={(PageUse(7, (1200,)),): 3})
    source = with_facts(
        facts, p1300={"unreadable": "permission denied"}, p1400={"kernel_thread": True}
    )
    code, out, err = run_exact(capsys, source=source)
    assert out.splitlines()[3:6] == [
        "  j:1100        0B      0B      0B      0B services",
        "    p:1300       ?       ?       ?       ? beta",
        "    p:1400                                 gamma",
    ]
    assert err.endswith(
        "ps: note: the sizes of 1 process are unknown (shown as ?); job totals leave them out\n"
    )
    doc = ps_json(capsys, source=source)
    beta, gamma = doc["rows"][3], doc["rows"][4]
    assert beta["attributed_bytes"] is None and beta["private_bytes"] is None
    assert gamma["attributed_bytes"] == gamma["kernel_bytes"] == 0


def test_hostile_names_are_neutralised_in_text_only_exact(capsys: Capsys) -> None:
    name = "evil\x1b[2J\nname"
    source = with_facts(approximate_facts(), p1200={"name": name})
    code, out, _ = run_exact(capsys, source=source)
    assert code == 0
    assert "\x1b" not in out
    assert out.splitlines()[2].endswith(r" evil\x1b[2J\nname")
    assert ps_json(capsys, source=source)["rows"][1]["name"] == name


def test_schema_rejects_what_exact_ps_never_writes(capsys: Capsys) -> None:
    doc = ps_json(capsys, "-T")
    broken = json.loads(json.dumps(doc))
    broken["rows"][1]["shared_bytes"] = None  # a process with one unknown cell
    assert not VALIDATOR.is_valid(broken)
    broken = json.loads(json.dumps(doc))
    del broken["rows"][2]["state"]  # the thread row
    assert not VALIDATOR.is_valid(broken)
    broken = json.loads(json.dumps(doc))
    broken["summary"]["categories"][0]["bytes"] = -1
    assert not VALIDATOR.is_valid(broken)
    broken = json.loads(json.dumps(doc))
    del broken["summary"]
    assert not VALIDATOR.is_valid(broken)
    # The 2017 form is still valid, and an exact row is not a 2017 row.
    assert VALIDATOR.is_valid([])
    assert not VALIDATOR.is_valid(doc["rows"])


# --- the built-in worlds: goldens, two rows by hand ------------------------------------------


@pytest.mark.parametrize("world_spec", ["doc", "doc-vmaps", "doc-vmos", "scale:40"])
def test_every_builtin_world_adds_up_to_the_byte(capsys: Capsys, world_spec: str) -> None:
    doc = ps_json(capsys, "-T", source=open_source(f"sim:{world_spec}"))
    check_adds_up(doc)
    assert doc["exact"] is True
    assert doc["summary"]["residual_bytes"] == 0
    # The root job holds every process: its ATTRIB is the summary's processes line.
    assert doc["rows"][0]["attributed_bytes"] == doc["summary"]["processes_bytes"]


# --- the other sources: a capture file and the live host --------------------------------------


def test_a_capture_of_the_sim(tmp_path: Path, capsys: Capsys) -> None:
    path = tmp_path / "doc.json"
    assert main(["--sim", "capture", "-o", str(path)]) == 0
    capsys.readouterr()
    if open_source(f"capture:{path}").snapshot(Level.PAGES).pages is None:
        pytest.xfail("the capture source has no page facts (Level.PAGES) yet")
    code = main(["--capture", str(path), "ps", "--attribution=exact"])
    out, err = capsys.readouterr()
    assert code == 0
    sim = ps_json(capsys, source=open_source("sim:doc"))
    doc = ps_json(capsys, source=open_source(f"capture:{path}"))
    check_adds_up(doc)
    # The same tree, in the same order, and the same total memory.
    assert [(r["koid"], r["name"]) for r in doc["rows"]] == [
        (r["koid"], r["name"]) for r in sim["rows"]
    ]
    assert doc["summary"]["total_bytes"] == sim["summary"]["total_bytes"] == MEMORY_BYTES
    if doc["exact"]:
        assert doc == sim
    else:
        # Said on the summary's heading and once on standard error, with each note of
        # the attribution once (on standard error, or under a residual line).
        assert "MEMORY (whole system, approximate)" in out
        notes = [ln for ln in err.splitlines() if ln.startswith("ps: note: approximate")]
        assert notes == [f"ps: note: {APPROXIMATE}"]
        for note in doc["notes"]:
            assert (out + err).count(note) == 1, note


# --- one model: ps and memgraph print the same figures ------------------------------------


@pytest.mark.parametrize("world_spec", ["doc", "doc-vmos", "scale:300"])
def test_ps_json_and_memgraph_give_the_same_exact_figures(
    world_spec: str, capsys: Capsys
) -> None:
    # Issue 10, must show 1: both tools print the figures accounting rounded once, so
    # every process's and job's integers agree (they rounded two ways before).
    source = open_source(f"sim:{world_spec}")
    doc = ps_json(capsys, source=source)
    assert main(["memgraph", "--attribution=exact"], source=source) == 0
    records = json.loads(capsys.readouterr().out)
    by_id = {(r["type"], r["koid"]): r for r in records if r.get("type") in ("j", "p")}
    rows = [r for r in doc["rows"] if r["type"] in ("j", "p")]
    assert len(rows) == len(by_id)
    for row in rows:
        record = by_id[(row["type"], row["koid"])]
        assert record["attributed_bytes"] == row["attributed_bytes"], row["koid"]
        if row["type"] == "p":
            parts = record["attributed"]
            for key in ("private_bytes", "shared_bytes", "kernel_bytes", "estimated_bytes"):
                assert parts[key] == row[key], (row["koid"], key)
            assert parts["swap_bytes"] == row["swap_bytes"]
    meta = records[-1]["attribution"]
    assert meta["processes_bytes"] == doc["summary"]["processes_bytes"]
    assert meta["residual_bytes"] == doc["summary"]["residual_bytes"]
    assert list(meta["categories"].items()) == [
        (c["name"], c["bytes"]) for c in doc["summary"]["categories"]
    ]


def test_a_fuchsia_capture_prints_unknown_kernel_memory_as_unknown(capsys: Capsys) -> None:
    # Defect i: a Fuchsia capture says nothing of the kernel memory each process causes;
    # KERNEL was 0B. It is ? (null in JSON), and ATTRIB adds up the columns it knows.
    capture = FIXTURES / "fuchsia" / "test_snapshot.json"
    source = open_source(f"capture:{capture}")
    code, out, err = run_exact(capsys, source=source)
    assert code == 0
    header, root, first = out.splitlines()[:3]
    assert header.split() == ["TASK", "ATTRIB", "PRIVATE", "SHARED", "KERNEL", "NAME"]
    assert root.split()[4] == "?" and first.split()[4] == "?"
    # The notes are under the residual line, once; standard error says it is approximate.
    doc = ps_json(capsys, source=source)
    for note in doc["notes"]:
        assert out.count(note) == 1 and note not in err
    assert err.count("approximate") == 1
    for row in doc["rows"]:
        assert row["kernel_bytes"] is None
    check_adds_up(doc)


def test_a_job_whose_processes_are_all_unknown_is_unknown(capsys: Capsys) -> None:
    # Defect i: such a job showed 0B, a made-up zero. The hand-built world's services
    # j:1100 holds beta and gamma: make both unreadable, as a live source would find
    # them (no page facts of theirs).
    facts = SimSource(world()).snapshot(Level.PAGES).pages
    assert facts is not None
    gone = {1300, 1400}
    pages: dict[tuple[PageUse, ...], int] = {}
    for key, count in facts.pages.items():
        new = tuple(u._replace(users=tuple(p for p in u.users if p not in gone)) for u in key)
        pages[new] = pages.get(new, 0) + count
    kernel = {p: k for p, k in facts.process_kernel.items() if p not in gone}
    facts = dataclasses.replace(facts, pages=pages, process_kernel=kernel, exact=False)
    source = with_facts(
        facts,
        p1300={"unreadable": "permission denied"},
        p1400={"unreadable": "permission denied"},
    )
    code, out, err = run_exact(capsys, source=source)
    assert code == 0
    assert out.splitlines()[3].split() == ["j:1100", "?", "?", "?", "?", "services"]
    assert "the sizes of 2 processes are unknown" in err
    doc = ps_json(capsys, source=source)
    apps = next(r for r in doc["rows"] if r["koid"] == 1100)
    assert apps["attributed_bytes"] is None and apps["kernel_bytes"] is None
    # The 2017 rule rolls jobs up the same way.
    assert main(["ps", "--json"], source=source) == 0
    rows = json.loads(capsys.readouterr().out)
    apps = next(r for r in rows if r["koid"] == 1100)
    assert (apps["pss_bytes"], apps["private_bytes"]) == (None, None)
