"""``treemap --attribution=exact`` (issue 6): the tree, the page, the residual.

The tree is built from a source's snapshot and its exact attribution, like every tool's
figures: the tiny hand-computed world of tests/support/exact_worlds.py (and its clone
world, for the VMO boxes), page facts a test writes (for the residuals a simulated
kernel never has), every built-in world, captures and the live host. The browser tests
open the pages in Debian's headless Chromium (tests/support/browser.py)
and check what a person sees: the residual stated in one line with its details on
demand, the category boxes, hostile names as text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, IN_USE, open_page, run_mxmem
from exact_worlds import HOSTILE, HOSTILE_WORLD, clone_world, tiny_world, with_facts
from fixed import FixedSource
from playwright.sync_api import Browser, Page, sync_playwright

from mxmem.accounting.exact import attribute_snapshot
from mxmem.accounting.figures import figures
from mxmem.cli import main
from mxmem.model import Level, PageUse
from mxmem.render.treemap import (
    NO_KOID_NAME,
    UNKNOWN_NAME,
    ExactMeta,
    Node,
    NodeType,
    attribution_details,
    attribution_summary,
    attribution_text,
    exact_tree,
)
from mxmem.render.units import format_size
from mxmem.sources import Source, open_source
from mxmem.sources.sim import PAGE_SIZE, SimSource

WORLDS = ["doc", "doc-vmaps", "doc-vmos", "scale:300"]
TOTAL = 1048576  # the tiny world's RAM
EXACT = "--attribution=exact"

Shape = tuple[Any, ...]


def treemap(
    capsys: pytest.CaptureFixture[str], source: Source | str, *args: str
) -> tuple[int, str, str]:
    """``mxmem [SOURCE] treemap ARGS``: a source object, or source options as text."""
    if isinstance(source, str):
        code = main([*source.split(), "treemap", *args])
    else:
        code = main(["treemap", *args], source=source)
    out, err = capsys.readouterr()
    return code, out, err


def tree_of(capsys: pytest.CaptureFixture[str], source: Source | str, *args: str) -> Any:
    code, out, err = treemap(capsys, source, "--json", EXACT, *args)
    assert code == 0, err
    return json.loads(out)


def tiny() -> Source:
    return SimSource(tiny_world())


def walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("children", []):
        yield from walk(child)


def shape(node: dict[str, Any]) -> Shape:
    head: tuple[Any, ...] = (node["name"], node["type"], node["size_bytes"])
    if "koid" in node:
        head += (node["koid"],)
    return (*head, [shape(c) for c in node["children"]]) if "children" in node else head


def check_exact_tree(out: dict[str, Any]) -> None:
    """What every exact tree promises: no negative box, no "unknown" box, every box the
    sum of its children, the root all physical memory (more only by a negative
    residual), one box per category and a residual box exactly when it is positive."""
    meta = out["attribution"]
    root = out["tree"]
    for node in walk(root):
        assert node["size_bytes"] >= 0, node["name"]
        assert node["name"] != UNKNOWN_NAME and "unknown" not in node["name"], node["name"]
        if "children" in node:
            assert node["size_bytes"] == sum(c["size_bytes"] for c in node["children"])
    residual = meta["residual_bytes"]
    assert root["size_bytes"] == meta["total_bytes"] + max(-residual, 0)
    categories = {c["name"]: c["size_bytes"] for c in root["children"] if c["type"] == "category"}
    jobs = [c for c in root["children"] if c["type"] == "job"]
    assert len(jobs) == 1 and jobs[0]["name"] == "root job"
    assert ("residual" in categories) == (residual > 0)
    if residual > 0:
        assert categories.pop("residual") == residual
    assert all(size > 0 for size in categories.values())
    assert jobs[0]["size_bytes"] + sum(categories.values()) + residual == meta["total_bytes"]
    # Only the free category is marked free (the page hides it until asked).
    assert [c["name"] for c in root["children"] if c.get("free")] == (
        ["free"] if "free" in categories else []
    )


# --------------------------------------------------------------------------- the tiny world

C, J, P, M, K, V = "category", "job", "process", "memory", "kernel", "vmo"
# A process's private and shared boxes are its VMO boxes, its exact share of each VMO
# (tests/support/exact_worlds.py's TINY_VMOS): a's lib 2731, b's
# buf 4096 and lib 2731, c's lib 2730 (c's shared_bytes); the rest as by kind.
TINY_TREE = (
    "All physical memory",
    K,
    TOTAL,
    [
        ("free", C, 856064),
        (
            "root job",
            J,
            78528,
            1024,
            [
                (
                    "apps",
                    J,
                    52245,
                    1100,
                    [
                        (
                            "c",
                            P,
                            30442,
                            1400,
                            [
                                ("page tables", M, 16384),
                                ("kernel stacks", M, 8192),
                                ("kernel objects", M, 3136),
                                ("lib", V, 2730, 1500),
                            ],
                        ),
                        (
                            "a",
                            P,
                            21803,
                            1200,
                            [
                                ("page tables", M, 16384),
                                ("lib", V, 2731, 1500),
                                ("kernel objects", M, 2688),
                            ],
                        ),
                    ],
                ),
                (
                    "b",
                    P,
                    26283,
                    1300,
                    [
                        ("page tables", M, 16384),
                        ("buf", V, 4096, 1600),
                        ("kernel objects", M, 3072),
                        ("lib", V, 2731, 1500),
                    ],
                ),
            ],
        ),
        ("wired", C, 65536),
        ("kernel heap free", C, 47424),
        ("kernel objects (no process)", C, 1024),
    ],
)
TINY_SUMMARY = "Exact attribution of 1M · residual 0B"
TINY_DETAILS = ["Residual 0: every byte is a process's or a named category's."]


def test_tiny_world_tree_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    # The figures are worked out in tests/support/exact_worlds.py's tiny_world.
    out = tree_of(capsys, tiny())
    assert shape(out["tree"]) == TINY_TREE
    assert out["attribution"] == {
        "mode": "exact",
        "exact": True,
        "total_bytes": TOTAL,
        "residual_bytes": 0,
        "notes": [],
        "text": TINY_SUMMARY + " — " + TINY_DETAILS[0],
    }
    # VMOs counted per process, as treemap.py's tree does: a lib; b lib, buf; c lib.
    assert out["counts"] == {"jobs": 2, "processes": 3, "vmos": 4}
    assert (out["notes"], out["unknown_clamped_bytes"]) == ([], 0)
    check_exact_tree(out)


def test_the_attribution_option_picks_the_tree(capsys: pytest.CaptureFixture[str]) -> None:
    exact = tree_of(capsys, tiny())
    code, out, _ = treemap(capsys, tiny(), "--json", "--attribution", "exact")
    assert code == 0 and json.loads(out) == exact
    # 2017, the default as in every tool: treemap.py's tree of the same snapshot.
    for args in ([], ["--attribution=2017"]):
        code, out, _ = treemap(capsys, tiny(), "--json", *args)
        old = json.loads(out)
        assert "attribution" not in old
        names = [n["name"] for n in walk(old["tree"])]
        assert "VMOs/processes" in names and UNKNOWN_NAME in names


def test_the_page_states_the_residual(capsys: pytest.CaptureFixture[str]) -> None:
    code, page, err = treemap(capsys, tiny(), EXACT)
    assert (code, err) == (0, "")
    data = json.loads(page.split('id="treemap-data">', 1)[1].split("</script>", 1)[0])
    assert data["attribution"] == {
        "exact": True,
        "residual": "0",
        "summary": TINY_SUMMARY,
        "details": TINY_DETAILS,
    }
    assert [c["t"] for c in data["tree"]["c"]] == ["c", "j", "c", "c", "c"]
    assert [c.get("x") for c in data["tree"]["c"]] == [1, None, None, None, None]


def test_a_process_without_vmo_shares_is_split_by_kind(capsys: pytest.CaptureFixture[str]) -> None:
    # The tiny world's facts with every page reached through "no VMO" (koid 0): the
    # processes' private and shared figures are the same, but no VMO says where.
    snapshot = SimSource(tiny_world()).snapshot(Level.PAGES)
    assert snapshot.pages is not None
    pages: dict[Any, int] = {}
    for key, count in snapshot.pages.pages.items():
        bare = tuple(sorted(use._replace(vmo_koid=0) for use in key))
        pages[bare] = pages.get(bare, 0) + count
    facts = {
        name: getattr(snapshot.pages, name)
        for name in ("total_bytes", "page_size", "process_kernel", "categories")
    }
    out = tree_of(capsys, FixedSource(with_facts(pages=pages, **facts)))
    check_exact_tree(out)
    boxes = {n["name"]: n for n in walk(out["tree"]) if n["type"] == P}
    assert [c["name"] for c in boxes["b"]["children"] if c["type"] == V] == [NO_KOID_NAME]


# --------------------------------------------------------------------------- residuals


def residual_source(free: int, notes: tuple[str, ...] = ()) -> Source:
    """b with 10 private pages of buf, "free" as given, the rest of TOTAL nowhere."""
    return FixedSource(
        with_facts(
            total_bytes=TOTAL,
            page_size=PAGE_SIZE,
            pages={(PageUse(1600, (1300,)),): 10},
            categories={"free": free},
            notes=notes,
        )
    )


def test_a_positive_residual_is_a_box_and_said(capsys: pytest.CaptureFixture[str]) -> None:
    # As a live source would: 1024 bytes the source could not name, with its reason.
    source = residual_source(TOTAL - 10 * PAGE_SIZE - 1024, ("<b>jobs</b> were not itemized",))
    out = tree_of(capsys, source)
    check_exact_tree(out)
    assert [(c["name"], c["size_bytes"]) for c in out["tree"]["children"]][-1] == (
        "residual",
        1024,
    )
    assert out["tree"]["size_bytes"] == TOTAL
    assert out["attribution"]["text"] == (
        'Exact attribution of 1M · residual 1k (the "residual" box) — Residual 1024 bytes:'
        " not accounted for by the processes and named categories, shown as the"
        ' "residual" box. Likely causes: <b>jobs</b> were not itemized'
    )
    code, _, err = treemap(capsys, residual_source(TOTAL - 10 * PAGE_SIZE - 1024, ("x",)), EXACT)
    assert code == 0
    assert err.splitlines() == [
        "treemap: note: x",
        "treemap: note: residual: 1k (1024 bytes) of physical memory not accounted for by the"
        " processes and named categories (likely causes: the notes above)",
    ]


def test_a_negative_residual_makes_no_box_and_is_said(capsys: pytest.CaptureFixture[str]) -> None:
    out = tree_of(capsys, residual_source(TOTAL - 10 * PAGE_SIZE + 4096))
    check_exact_tree(out)
    assert "residual" not in [c["name"] for c in out["tree"]["children"]]
    assert out["tree"]["size_bytes"] == TOTAL + 4096
    assert out["attribution"]["text"] == (
        "Exact attribution of 1M · residual -4k (the parts add up to more than the total)"
        " — Residual -4096 bytes: the processes and named categories add up to more than"
        " the total; the map is that much larger."
    )


def test_attribution_summary_and_details() -> None:
    def meta(exact: bool, residual: int, notes: tuple[str, ...] = ()) -> ExactMeta:
        return ExactMeta(
            exact=exact,
            total_bytes=2 << 30,
            processes_bytes=0,
            categories=(),
            residual_bytes=residual,
            notes=notes,
        )

    assert attribution_summary(meta(True, 0)) == "Exact attribution of 2G · residual 0B"
    assert attribution_details(meta(True, 0)) == TINY_DETAILS
    assert attribution_summary(meta(False, 0, ("no root", "PSS only"))) == (
        "Approximate attribution of 2G · residual 0B"
    )
    assert attribution_details(meta(False, 0, ("no root", "PSS only"))) == [
        "Not every figure is page-level: the notes below say what is estimated.",
        "Notes:",
        "no root",
        "PSS only",
    ]
    assert attribution_summary(meta(False, 3 << 20, ("drivers",))) == (
        'Approximate attribution of 2G · residual 3M (the "residual" box)'
    )
    assert attribution_text(meta(False, 3 << 20, ("drivers",))).endswith(
        "Likely causes: drivers"
    )


# --------------------------------------------------------------------------- VMO boxes


def process_boxes(out: dict[str, Any]) -> dict[str, Shape]:
    """Each process's boxes, by process name: (name, type, size[, koid][, members])."""

    def box(node: dict[str, Any]) -> Shape:
        head: tuple[Any, ...] = (node["name"], node["type"], node["size_bytes"])
        if "koid" in node:
            head += (node["koid"],)
        if "members" in node:
            head += (f"members={node['members']}",)
        return head

    return {
        n["name"]: tuple(box(c) for c in n.get("children", []))
        for n in walk(out["tree"])
        if n["type"] == P
    }


def test_clone_world_vmo_boxes_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    # Worked out in tests/support/exact_worlds.py's clone_world: the two-step rule's
    # fractional splits, rounded to the byte, and c's lib and its clone (both "lib") one
    # lib[2] box of c's exact shares of both, 1365 + 4096.
    out = tree_of(capsys, SimSource(clone_world()))
    check_exact_tree(out)
    boxes = process_boxes(out)
    assert [b for b in boxes["a"] if b[1] == V] == [("lib", V, 1366, 1500)]
    assert [b for b in boxes["b"] if b[1] == V] == [("buf", V, 4096, 1600), ("lib", V, 1365, 1500)]
    assert [b for b in boxes["c"] if b[1] == V] == [("lib[2]", V, 5461, "members=2")]
    # The rest of c: its kernel kinds (c holds the clone's handle: 384 + 64 more kernel
    # objects than in the tiny world).
    assert [b for b in boxes["c"] if b[1] != V] == [
        ("page tables", M, 16384),
        ("kernel stacks", M, 8192),
        ("kernel objects", M, 3136 + 384 + 64),
    ]
    assert out["counts"] == {"jobs": 2, "processes": 3, "vmos": 5}


def test_koid_0_and_unknown_koids_from_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    # Memory reached through no VMO (koid 0), a kernel VMO (shown by its name, with the
    # koid the tools print for it: 0), buf, and a VMO the snapshot lacks.
    snapshot = with_facts(total_bytes=10 * PAGE_SIZE, page_size=PAGE_SIZE)
    kernel_vmo = next(v for v in snapshot.vmos.values() if v.kernel_only)
    snapshot = with_facts(
        total_bytes=10 * PAGE_SIZE,
        page_size=PAGE_SIZE,
        pages={
            (PageUse(0, (1300,)),): 2,
            (PageUse(kernel_vmo.koid, (1300,)),): 1,
            (PageUse(1600, (1300,)),): 1,
            (PageUse(4242, (1300,)),): 3,
        },
        categories={"free": 3 * PAGE_SIZE},
    )
    out = tree_of(capsys, FixedSource(snapshot))
    check_exact_tree(out)
    assert process_boxes(out)["b"] == (
        ("<VMO koid 4242>", V, 3 * PAGE_SIZE, 4242),
        (NO_KOID_NAME, V, 2 * PAGE_SIZE, 0),
        ("buf", V, PAGE_SIZE, 1600),
        (kernel_vmo.name, V, PAGE_SIZE, 0),
    )


# --------------------------------------------------------------------------- every world


def _memgraph_exact(capsys: pytest.CaptureFixture[str], world: str) -> list[Any]:
    assert main([f"--sim={world}", "memgraph", "-vt", EXACT]) == 0
    records: list[Any] = json.loads(capsys.readouterr().out)
    return records


@pytest.mark.parametrize("world", WORLDS)
def test_every_world_exact_tree_has_memgraph_figures(
    capsys: pytest.CaptureFixture[str], world: str
) -> None:
    # One rounding: each process's box is its memgraph attributed_bytes, each category
    # box its memgraph category, its VMO boxes its private + shared bytes.
    out = tree_of(capsys, f"--sim={world}")
    check_exact_tree(out)
    records = _memgraph_exact(capsys, world)
    meta = records[-1]["attribution"]
    assert out["attribution"]["residual_bytes"] == meta["residual_bytes"] == 0
    assert out["tree"]["size_bytes"] == meta["total_bytes"]
    boxes = {c["name"]: c["size_bytes"] for c in out["tree"]["children"] if c["type"] == C}
    assert boxes == meta["categories"]
    by_koid = {r["koid"]: r for r in records if r["type"] == "p"}
    processes = {n["koid"]: n for n in walk(out["tree"]) if n["type"] == P}
    assert {k: n["size_bytes"] for k, n in processes.items()} == {
        k: r["attributed_bytes"] for k, r in by_koid.items()
    }
    vmo_boxes = 0
    for koid, node in processes.items():
        parts = by_koid[koid]["attributed"]
        vmos = [c for c in node.get("children", []) if c["type"] == V]
        vmo_boxes += len(vmos)
        assert sum(c["size_bytes"] for c in vmos) == parts["private_bytes"] + parts["shared_bytes"]
        children = node.get("children", [])
        others = sorted((c["name"], c["size_bytes"]) for c in children if c["type"] != V)
        expected = [
            *parts["kernel_by_kind"].items(),
            ("estimated (not page-level)", parts["estimated_bytes"]),
        ]
        assert others == sorted((n, v) for n, v in expected if v)
    assert vmo_boxes > 0
    assert out["notes"] == []


@pytest.mark.parametrize("world", WORLDS)
def test_every_world_memgraph_capture_made_exact(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, world: str
) -> None:
    # memgraph output as a capture: the capture source derives what it can, approximately.
    assert main([f"--sim={world}", "memgraph", "-vt"]) == 0
    path = tmp_path / "m.json"
    path.write_text(capsys.readouterr().out)
    code, out_text, err = treemap(capsys, f"--capture={path}", "--json", EXACT)
    assert code == 0
    out = json.loads(out_text)
    check_exact_tree(out)
    assert out["attribution"]["exact"] is False and out["attribution"]["notes"]
    assert out["attribution"]["text"].startswith("Approximate attribution")
    assert err.splitlines()[0] == (
        "treemap: note: approximate: not every figure of the exact attribution is page-level"
    )
    # The capture's page facts are by VMO: each process's VMO boxes are its exact shares.
    snapshot = open_source(f"capture:{path}").snapshot(Level.PAGES)
    attribution = attribute_snapshot(snapshot)
    for node in walk(out["tree"]):
        if node["type"] != P:
            continue
        share = attribution.processes.get(node["koid"])
        vmo_boxes = [c for c in node.get("children", []) if c["type"] == V]
        exact_sum = 0 if share is None else share.private + share.shared
        assert abs(sum(c["size_bytes"] for c in vmo_boxes) - exact_sum) <= 2
        for c in vmo_boxes:
            if "members" not in c:
                assert share is not None and abs(c["size_bytes"] - share.by_vmo[c["koid"]]) <= 2


def test_no_page_facts_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    # A source that gives no page facts even when asked for them.
    source = FixedSource(SimSource(tiny_world()).snapshot(Level.FULL))
    code, out, err = treemap(capsys, source, EXACT)
    assert (code, out) == (1, "")
    assert err == (
        "treemap: --attribution=exact: the source fixed has no page-level facts to"
        " attribute\n"
    )


def test_host_exact_tree(capsys: pytest.CaptureFixture[str]) -> None:
    out = tree_of(capsys, "--host")
    check_exact_tree(out)
    meta = out["attribution"]
    assert meta["total_bytes"] > 0
    # The residual is stated whatever its value, with the source's notes as its causes.
    assert "· residual " in meta["text"]
    if meta["residual_bytes"] and meta["notes"]:
        assert meta["text"].endswith("Likely causes: " + " ".join(meta["notes"]))


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--attribution=best"], "treemap: --attribution must be 2017 or exact, not 'best'\n"),
        (
            ["--attribution"],
            "treemap: option '--attribution' requires an argument; see `mxmem treemap --help`\n",
        ),
    ],
)
def test_bad_attribution_option_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["treemap", *args], source=tiny()) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", message)


# --------------------------------------------------------------------------- hostile names


def test_hostile_names_in_an_exact_page(capsys: pytest.CaptureFixture[str]) -> None:
    code, page, _ = treemap(capsys, f"--sim={HOSTILE_WORLD}", EXACT)
    assert code == 0
    assert page.count("</script>") == 2  # the data's and the code's own
    data = json.loads(page.split('id="treemap-data">', 1)[1].split("</script>", 1)[0])
    names = {n["n"] for n in _walk_page(data["tree"])}
    assert {HOSTILE, "<i>apps</i>&amp;"} <= names


def _walk_page(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("c", []):
        yield from _walk_page(child)


# --------------------------------------------------------------------------- in Chromium


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"Debian's Chromium is not installed at {CHROMIUM} (`apt-get install chromium`)"
        )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def opened(browser: Browser, path: Path) -> Iterator[Page]:
    """The page, open; on leaving, nothing ran that should not have and nothing was
    fetched."""
    page, log = open_page(browser, path)
    try:
        yield page
        assert log.page_errors == [] and log.console_errors == [] and log.dialogs == []
        assert log.requests == [path.as_uri()]
    finally:
        page.close()


def _embedded(path: Path) -> Any:
    page = path.read_text()
    return json.loads(page.split('id="treemap-data">', 1)[1].split("</script>", 1)[0])


def _exact_tree(world: str) -> Node:
    snapshot = open_source(f"sim:{world}").snapshot(Level.PAGES)
    return exact_tree(snapshot, figures(snapshot, "exact")).root


@pytest.mark.browser
@pytest.mark.parametrize("source", [*(f"--sim={w}" for w in WORLDS), "--host"])
def test_browser_exact_page_shows_residual_and_categories(
    chromium: Browser, tmp_path: Path, source: str
) -> None:
    page_path = tmp_path / "mem.html"
    run_mxmem(source, "treemap", EXACT, "-o", str(page_path))
    # What the page must show, from its data (a live host cannot be read twice alike).
    data = _embedded(page_path)
    root = data["tree"]
    free = sum(int(c["s"]) for c in root["c"] if c.get("x"))
    in_use = int(root["s"]) - free
    with opened(chromium, page_path) as page:
        box = page.locator("#attribution")
        summary = page.locator("#attribution-summary")
        assert summary.is_visible()
        assert summary.inner_text() == data["attribution"]["summary"]
        assert " · residual " in summary.inner_text()
        assert summary.bounding_box()["height"] < 30  # one line
        if data["attribution"]["residual"] == "0":
            assert summary.inner_text().endswith("residual 0B")
        # The details are there on demand.
        details = page.locator("#attribution-details li")
        assert not details.first.is_visible()
        summary.click()
        assert box.get_attribute("open") is not None
        assert details.all_inner_texts() == data["attribution"]["details"]
        assert page.locator(".tm-box.tm-root .tm-label").inner_text() == (
            f"K {IN_USE} {format_size(in_use)}"
        )
        # The table lists every category under the root but free, beside the root job
        # (and the residual when it is positive); the large ones are boxes labelled
        # unowned memory (the small ones are thinner than a box can be drawn).
        shown = [c for c in root["c"] if not c.get("x")]
        assert page.locator('#rows tr[data-depth="1"] .nm').all_inner_texts() == [
            c["n"] for c in shown
        ]
        for child in shown:
            if int(child["s"]) * 50 >= in_use:
                kind = "Unowned memory" if child["t"] == "c" else "Job"
                label = f"{kind} {child['n']}, {format_size(int(child['s']))}"
                assert page.locator(f'.tm-box[aria-label="{label}"]').count() == 1, label
        assert free > 0
        page.get_by_label("Show free memory").check()
        label = f"Unowned memory free, {format_size(free)}"
        assert page.locator(f'.tm-box[aria-label="{label}"]').count() == 1
        assert page.locator(".tm-box[aria-label*='unknown']").count() == 0
        assert page.get_by_text(UNKNOWN_NAME).count() == 0


@pytest.mark.browser
def test_browser_residual_box_and_text(
    chromium: Browser, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = residual_source(TOTAL - 10 * PAGE_SIZE - 8192, ("pages changed between the reads",))
    page_path = tmp_path / "residual.html"
    assert treemap(capsys, source, EXACT, "-o", str(page_path))[0] == 0
    with opened(chromium, page_path) as page:
        assert page.locator("#attribution-summary").inner_text() == (
            'Exact attribution of 1M · residual 8k (the "residual" box)'
        )
        page.locator("#attribution-summary").click()
        assert page.locator("#attribution-details li").all_inner_texts() == [
            'Residual 8192 bytes: not accounted for by the processes and named categories,'
            ' shown as the "residual" box.',
            "Likely causes:",
            "pages changed between the reads",
        ]
        assert page.locator('.tm-box[aria-label="Unowned memory residual, 8k"]').count() == 1


@pytest.mark.browser
def test_browser_approximate_page_says_so(chromium: Browser, tmp_path: Path) -> None:
    memgraph = tmp_path / "m.json"
    memgraph.write_bytes(run_mxmem("--sim=doc", "memgraph", "-vt").stdout)
    page_path = tmp_path / "mem.html"
    run_mxmem(f"--capture={memgraph}", "treemap", EXACT, "-o", str(page_path))
    with opened(chromium, page_path) as page:
        assert page.locator("#attribution-summary").inner_text() == (
            "Approximate attribution of 2046.9M · residual 0B"
        )
        assert "approximate" in (page.locator("#attribution").get_attribute("class") or "")
        page.get_by_label("Show free memory").check()
        assert page.locator(".tm-box[aria-label^='Unowned memory free, ']").count() == 1


@pytest.mark.browser
def test_browser_hostile_names_are_text_in_exact_mode(chromium: Browser, tmp_path: Path) -> None:
    page_path = tmp_path / "hostile.html"
    run_mxmem(f"--sim={HOSTILE_WORLD}", "treemap", EXACT, "-o", str(page_path))
    with opened(chromium, page_path) as page:
        assert page.get_by_text(HOSTILE, exact=True).count() >= 1
        page.locator("#rows button.nm", has_text=HOSTILE).click()
        assert page.locator("#crumbs button[aria-current]").inner_text().startswith(HOSTILE + " (")
        assert page.locator(".tm-box.tm-root .tm-label").inner_text().startswith(f"P {HOSTILE} ")
        # Its boxes are its exact shares of its VMOs, hostile names and all, then its
        # kernel kinds.
        labels = page.locator(".tm-box:not(.tm-root)").evaluate_all(
            "bs => bs.map(b => b.getAttribute('aria-label').replace(/, [^,]*$/, ''))"
        )
        assert labels == [
            "VMO share <b>bold</b>\u2028<!--",
            "VMO share \"quoted\" & 'single'",
            "Process memory figure page tables",
            "Process memory figure kernel stacks",
            "Process memory figure kernel objects",
        ]
        assert page.locator("img").count() == 0
        assert page.title() == "Memory usage"


SHARE_HINT = "the pages of it only this process uses, plus its split of those it shares)"


@pytest.mark.browser
def test_browser_a_vmo_box_is_the_process_share(
    chromium: Browser, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The clone world (tests/support/exact_worlds.py): zoomed into a process, its VMO
    # boxes are there, and the tooltip and the table say what such a box is.
    page_path = tmp_path / "clone.html"
    assert treemap(capsys, SimSource(clone_world()), EXACT, "-o", str(page_path))[0] == 0
    with opened(chromium, page_path) as page:
        legend = page.locator(".legend").inner_text()
        assert "VMO (exact attribution: this process's exact share of the VMO)" in legend
        page.locator("#rows").get_by_role("button", name="c", exact=True).click()
        assert page.locator("#crumbs button[aria-current]").inner_text() == (
            f"c ({format_size(16384 + 8192 + 3584 + 5461)})"
        )
        lib = page.locator(f'.tm-box[aria-label="VMO share lib[2], {format_size(5461)}"]')
        assert lib.is_visible()
        lib.hover(position={"x": 6, "y": 6})
        lines = page.locator("#tooltip").inner_text().splitlines()
        assert lines[:3] == ["lib[2]", "VMO share", f"Size: {format_size(5461)} (5461 bytes)"]
        assert lines[5:] == [
            "Aggregate of 2 VMOs with this name",
            "This process's exact share of the 2 VMOs named lib",
            f"(process c: {SHARE_HINT}",
        ]
        row = page.locator("#rows tr", has=page.get_by_role("button", name="lib[2]", exact=True))
        assert row.get_attribute("title") == (
            f"This process's exact share of the 2 VMOs named lib (process c: {SHARE_HINT}"
        )

        page.locator("#crumbs button", has_text=IN_USE).click()
        page.locator("#rows").get_by_role("button", name="b", exact=True).click()
        buf = page.locator(f'.tm-box[aria-label="VMO share buf, {format_size(4096)}"]')
        assert buf.is_visible()
        buf.hover(position={"x": 6, "y": 6})
        lines = page.locator("#tooltip").inner_text().splitlines()
        assert lines[:2] == ["buf", "VMO share, koid 1600"]
        assert lines[-2:] == [
            "This process's exact share of VMO buf",
            f"(process b: {SHARE_HINT}",
        ]


def _path_to(root: Node, target: Node) -> list[Node]:
    """The nodes from ``root``'s child down to ``target``."""
    stack: list[tuple[Node, list[Node]]] = [(root, [])]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        stack.extend((c, [*path, c]) for c in node.children)
    raise AssertionError(target.name)


@pytest.mark.browser
@pytest.mark.parametrize("world", ["doc", "scale:300"])
def test_browser_vmo_boxes_after_zooming_into_a_process(
    chromium: Browser, tmp_path: Path, world: str
) -> None:
    # A person's way in: box by box, from the root job down to the largest process.
    page_path = tmp_path / "mem.html"
    run_mxmem(f"--sim={world}", "treemap", EXACT, "-o", str(page_path))
    root = _exact_tree(world)
    processes = [n for n in _nodes(root) if n.type is NodeType.PROCESS]
    target = max(processes, key=lambda n: n.size_bytes)
    vmo = max((c for c in target.children if c.type is NodeType.VMO), key=lambda c: c.size_bytes)
    kinds = {NodeType.JOB: "Job", NodeType.PROCESS: "Process"}
    with opened(chromium, page_path) as page:
        for node in _path_to(root, target):
            label = f"{kinds[node.type]} {node.name}, {format_size(node.size_bytes)}"
            page.locator(f'.tm-box[aria-label="{label}"]').first.click(position={"x": 6, "y": 6})
            assert page.locator("#crumbs button[aria-current]").inner_text() == (
                f"{node.name} ({format_size(node.size_bytes)})"
            )
        box = page.locator(
            f'.tm-box[aria-label="VMO share {vmo.name}, {format_size(vmo.size_bytes)}"]'
        )
        assert box.first.is_visible()
        box.first.hover(position={"x": 6, "y": 6})
        lines = page.locator("#tooltip").inner_text().splitlines()
        assert lines[-1] == f"(process {target.name}: {SHARE_HINT}"


def _nodes(node: Node) -> Iterator[Node]:
    yield node
    for c in node.children:
        yield from _nodes(c)
