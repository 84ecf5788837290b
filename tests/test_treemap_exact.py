"""``treemap`` of an exact attribution (issue 6): the tree, the page, the residual.

Inputs are made by the real CLI (``mxmem memgraph -vt --attribution=exact``, or plain
``memgraph -vt`` given to ``treemap --attribution=exact``) for the tiny hand-computed world
of tests/test_memgraph_exact.py (and its clone world, for the VMO boxes), every built-in
world and the live host; hand-edited copies of the tiny world's output give the residuals
(and VMO lists) a simulated kernel never has. The
browser tests open the pages in Debian's headless Chromium (tests/test_treemap_browser.py's
helpers) and check what a person sees: the residual stated, the category boxes, hostile
names as text.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from test_memgraph import (
    HOSTILE,
    HOSTILE_WORLD,
    FixedSource,
    clone_world,
    tiny_world,
    with_facts,
)
from test_treemap_browser import CHROMIUM, CHROMIUM_ARGS, REPO, _mxmem, _open

from mxmem.accounting.exact import attribute_snapshot
from mxmem.cli import main
from mxmem.cli.treemap import HELP
from mxmem.model import Level, PageUse, Snapshot
from mxmem.render.treemap import (
    NO_KOID_NAME,
    NOT_ITEMIZED_NAME,
    UNKNOWN_NAME,
    VMOS_NOT_ITEMIZED_NAME,
    ExactMeta,
    Node,
    NodeType,
    TreemapInputError,
    attribution_text,
    exact_tree,
    parse_memgraph,
)
from mxmem.render.units import format_size
from mxmem.sources import Source
from mxmem.sources.capture import CaptureSource, load_capture
from mxmem.sources.sim import PAGE_SIZE, SimSource

WORLDS = ["doc", "doc-vmaps", "doc-vmos", "scale:300"]
TOTAL = 1048576  # the tiny world's RAM

Shape = tuple[Any, ...]


def memgraph(capsys: pytest.CaptureFixture[str], source: str | Source | None, *args: str) -> str:
    """``mxmem [SOURCE] memgraph ARGS`` (SOURCE None: the tiny world)."""
    if source is None:
        source = SimSource(tiny_world())
    if not isinstance(source, str):
        code = main(["memgraph", *args], source=source)
    else:
        code = main([source, "memgraph", *args])
    out, _ = capsys.readouterr()
    assert code == 0
    return out


def treemap(capsys: pytest.CaptureFixture[str], path: Path, *args: str) -> tuple[int, str, str]:
    code = main(["treemap", *args, str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def tree_of(capsys: pytest.CaptureFixture[str], path: Path, *args: str) -> dict[str, Any]:
    code, out, _ = treemap(capsys, path, "--json", *args)
    assert code == 0
    tree: dict[str, Any] = json.loads(out)
    return tree


def write(tmp_path: Path, text: str, name: str = "m.json") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


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


# --------------------------------------------------------------------------- the tiny world

C, J, P, M, K, V = "category", "job", "process", "memory", "kernel", "vmo"
# Input made without -v: each process split by kind.
TINY_TREE_BY_KIND = (
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
                                ("shared", M, 2730),
                            ],
                        ),
                        (
                            "a",
                            P,
                            21803,
                            1200,
                            [
                                ("page tables", M, 16384),
                                ("shared", M, 2731),
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
                        ("private", M, 4096),
                        ("kernel objects", M, 3072),
                        ("shared", M, 2731),
                    ],
                ),
            ],
        ),
        ("wired", C, 65536),
        ("kernel heap free", C, 47424),
        ("kernel objects (no process)", C, 1024),
    ],
)

# From `memgraph -vt`: a process's private and shared boxes become its VMO boxes, its
# exact share of each VMO (tests/test_memgraph_exact.py's TINY_VMOS): a's lib 2731, b's
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
TINY_TEXT = (
    "Exact attribution of 1M of physical memory · residual: 0B (every byte is a"
    " process's or a named category's)"
)


@pytest.fixture
def tiny(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Path:
    return write(tmp_path, memgraph(capsys, None, "-vt", "--attribution=exact"), "tiny.json")


def test_tiny_world_tree_by_hand(capsys: pytest.CaptureFixture[str], tiny: Path) -> None:
    # The figures are worked out in tests/test_memgraph_exact.py's tiny_world.
    out = tree_of(capsys, tiny)
    assert shape(out["tree"]) == TINY_TREE
    assert out["attribution"] == {
        "mode": "exact",
        "exact": True,
        "total_bytes": TOTAL,
        "residual_bytes": 0,
        "notes": [],
        "text": TINY_TEXT,
    }
    # VMOs counted per process, as treemap.py's tree does: a lib; b lib, buf; c lib.
    assert out["counts"] == {"jobs": 2, "processes": 3, "vmos": 4}
    assert (out["notes"], out["unknown_clamped_bytes"]) == ([], 0)
    check_exact_tree(out)


@pytest.mark.parametrize("args", [[], ["--attribution=exact"], ["--attribution", "exact"]])
def test_exact_input_gives_the_exact_tree(
    capsys: pytest.CaptureFixture[str], tiny: Path, args: list[str]
) -> None:
    assert shape(tree_of(capsys, tiny, *args)["tree"]) == TINY_TREE


def test_attribution_2017_gives_treemap_py_tree_of_the_same_input(
    capsys: pytest.CaptureFixture[str], tiny: Path, tmp_path: Path
) -> None:
    old = tree_of(capsys, tiny, "--attribution=2017")
    assert "attribution" not in old
    names = [n["name"] for n in walk(old["tree"])]
    assert "VMOs/processes" in names and UNKNOWN_NAME in names
    plain = write(tmp_path, memgraph(capsys, None, "-vt"), "plain.json")
    assert old == tree_of(capsys, plain)


def test_the_page_states_the_residual(capsys: pytest.CaptureFixture[str], tiny: Path) -> None:
    code, page, err = treemap(capsys, tiny)
    assert (code, err) == (0, "")
    data = json.loads(page.split('id="treemap-data">', 1)[1].split("</script>", 1)[0])
    assert data["attribution"] == {"exact": True, "residual": "0", "text": TINY_TEXT}
    assert [c["t"] for c in data["tree"]["c"]] == ["c", "j", "c", "c", "c"]


# --------------------------------------------------------------------------- residuals


def edited(path: Path, change: Callable[[list[Any]], None]) -> Path:
    records = json.loads(path.read_text())
    change(records)
    out = path.with_name("edited.json")
    out.write_text(json.dumps(records))
    return out


def meta_of(records: list[Any]) -> dict[str, Any]:
    meta: dict[str, Any] = records[-1]["attribution"]
    return meta


def test_a_positive_residual_is_a_box_and_said(
    capsys: pytest.CaptureFixture[str], tiny: Path
) -> None:
    # As a live source would: 1024 bytes the source could not name, with its reason.
    def change(records: list[Any]) -> None:
        meta = meta_of(records)
        del meta["categories"]["kernel objects (no process)"]
        meta["residual_bytes"] = 1024
        meta["notes"] = ["<b>jobs</b> were not itemized"]

    path = edited(tiny, change)
    out = tree_of(capsys, path)
    check_exact_tree(out)
    assert [(c["name"], c["size_bytes"]) for c in out["tree"]["children"]][-1] == (
        "residual",
        1024,
    )
    assert out["tree"]["size_bytes"] == TOTAL
    assert out["attribution"]["text"] == (
        "Exact attribution of 1M of physical memory · residual: 1k (1024 bytes) not"
        ' accounted for by the processes and named categories, shown as the "residual" box'
        " — likely causes: <b>jobs</b> were not itemized"
    )
    code, _, err = treemap(capsys, path)
    assert code == 0
    assert err.splitlines() == [
        "treemap: note: <b>jobs</b> were not itemized",
        "treemap: note: residual: 1k (1024 bytes) of physical memory not accounted for by the"
        " processes and named categories (likely causes: the notes above)",
    ]


def test_a_negative_residual_makes_no_box_and_is_said(
    capsys: pytest.CaptureFixture[str], tiny: Path
) -> None:
    def change(records: list[Any]) -> None:
        meta = meta_of(records)
        meta["categories"]["free"] += 4096
        meta["residual_bytes"] = -4096

    out = tree_of(capsys, edited(tiny, change))
    check_exact_tree(out)
    assert "residual" not in [c["name"] for c in out["tree"]["children"]]
    assert out["tree"]["size_bytes"] == TOTAL + 4096
    assert out["attribution"]["text"] == (
        "Exact attribution of 1M of physical memory · residual: -4k (-4096 bytes) (the"
        " processes and named categories add up to more than the total; the map is that"
        " much larger)"
    )


def test_figures_that_do_not_add_up_are_shown_as_they_are_and_noted(
    capsys: pytest.CaptureFixture[str], tiny: Path
) -> None:
    # A hand-edited file: b's parts short of its attributed_bytes by 100 (a "not
    # itemized" box), and a residual_bytes its figures do not leave.
    def change(records: list[Any]) -> None:
        b = next(r for r in records if r.get("id") == "p/1300")
        del b["attributed"]["vmos"]  # b alone by kind (a and c keep their VMO boxes)
        b["attributed"]["private_bytes"] -= 100
        b["attributed"]["kernel_bytes"] += 5  # 5 bytes no kind itemizes
        meta_of(records)["residual_bytes"] = 7

    out = tree_of(capsys, edited(tiny, change))
    check_exact_tree(out)
    b = next(n for n in walk(out["tree"]) if n["name"] == "b")
    assert sorted((c["name"], c["size_bytes"]) for c in b["children"]) == [
        ("kernel (not itemized)", 5),
        ("kernel objects", 3072),
        (NOT_ITEMIZED_NAME, 95),
        ("page tables", 16384),
        ("private", 3996),
        ("shared", 2731),
    ]
    assert b["size_bytes"] == 26283
    assert out["notes"] == [
        "The input says its residual is 7 bytes, but its figures leave 0 bytes of the total"
        f" ({TOTAL} bytes): the page shows what the figures leave."
    ]


def test_attribution_text() -> None:
    def meta(exact: bool, residual: int, notes: tuple[str, ...] = ()) -> ExactMeta:
        return ExactMeta(
            exact=exact,
            total_bytes=2 << 30,
            processes_bytes=0,
            categories=(),
            residual_bytes=residual,
            notes=notes,
        )

    assert attribution_text(meta(True, 0)) == (
        "Exact attribution of 2G of physical memory · residual: 0B (every byte is a"
        " process's or a named category's)"
    )
    assert attribution_text(meta(False, 0, ("no root", "PSS only"))) == (
        "Approximate attribution (not every figure is page-level) of 2G of physical memory ·"
        " residual: 0B — no root; PSS only"
    )
    assert attribution_text(meta(False, 3 << 20, ("drivers",))) == (
        "Approximate attribution (not every figure is page-level) of 2G of physical memory ·"
        " residual: 3M (3145728 bytes) not accounted for by the processes and named"
        ' categories, shown as the "residual" box — likely causes: drivers'
    )


# --------------------------------------------------------------------------- VMO boxes


def test_without_v_a_process_is_split_by_kind(capsys: pytest.CaptureFixture[str]) -> None:
    text = memgraph(capsys, None, "-t", "--attribution=exact")
    assert '"vmos"' not in text
    out = tree_of_text(capsys, text)
    assert shape(out["tree"]) == TINY_TREE_BY_KIND
    check_exact_tree(out)


def tree_of_text(capsys: pytest.CaptureFixture[str], text: str) -> dict[str, Any]:
    """``treemap --json`` of memgraph output given on standard input."""
    old = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(text.encode()))
    try:
        code = main(["treemap", "--json"])
    finally:
        sys.stdin = old
    out, _ = capsys.readouterr()
    assert code == 0
    tree: dict[str, Any] = json.loads(out)
    return tree


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
    # Worked out in tests/test_memgraph_exact.py's clone_world: the two-step rule's
    # fractional splits, rounded to the byte, and c's lib and its clone (both "lib") one
    # lib[2] box of c's exact shares of both, 1365 + 4096.
    out = tree_of_text(
        capsys, memgraph(capsys, SimSource(clone_world()), "-vt", "--attribution=exact")
    )
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


def test_vmo_boxes_are_named_from_any_record(
    capsys: pytest.CaptureFixture[str], tiny: Path
) -> None:
    # Hand-edited: c's share is of buf, a VMO only b's "vmos" list (a live host counts a
    # page shared copy-on-write through the VMO of the lowest pid); a's of a VMO no record
    # names; and of koid 0.
    def change(records: list[Any]) -> None:
        by_id = {r.get("id"): r for r in records}
        by_id["p/1400"]["attributed"]["vmos"] = [[1600, 2730]]
        by_id["p/1200"]["attributed"]["vmos"] = [[4242, 2000], [0, 731]]

    out = tree_of(capsys, edited(tiny, change))
    check_exact_tree(out)
    boxes = process_boxes(out)
    assert [b for b in boxes["c"] if b[1] == V] == [("buf", V, 2730, 1600)]
    assert [b for b in boxes["a"] if b[1] == V] == [
        ("<VMO koid 4242>", V, 2000, 4242),
        (NO_KOID_NAME, V, 731, 0),
    ]
    assert out["notes"] == []


def test_koid_0_and_unknown_koids_from_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    # The VMO list of test_memgraph_exact.py's koid test, drawn: memory reached through no
    # VMO (and a kernel VMO, printed as koid 0), buf, and a VMO the snapshot lacks.
    snapshot = with_facts(total_bytes=10 * PAGE_SIZE, page_size=PAGE_SIZE)
    kernel_vmo = next(v.koid for v in snapshot.vmos.values() if v.kernel_only)
    snapshot = with_facts(
        total_bytes=10 * PAGE_SIZE,
        page_size=PAGE_SIZE,
        pages={
            (PageUse(0, (1300,)),): 2,
            (PageUse(kernel_vmo, (1300,)),): 1,
            (PageUse(1600, (1300,)),): 1,
            (PageUse(4242, (1300,)),): 3,
        },
        categories={"free": 3 * PAGE_SIZE},
    )
    out = tree_of_text(capsys, memgraph(capsys, FixedSource(snapshot), "-v", "--attribution=exact"))
    check_exact_tree(out)
    assert process_boxes(out)["b"] == (
        (NO_KOID_NAME, V, 3 * PAGE_SIZE, 0),
        ("<VMO koid 4242>", V, 3 * PAGE_SIZE, 4242),
        ("buf", V, PAGE_SIZE, 1600),
    )


def test_vmos_short_of_private_and_shared_are_a_not_itemized_box(
    capsys: pytest.CaptureFixture[str], tiny: Path
) -> None:
    def change(records: list[Any]) -> None:
        b = next(r for r in records if r.get("id") == "p/1300")
        b["attributed"]["vmos"] = [[1600, 4000]]

    out = tree_of(capsys, edited(tiny, change))
    check_exact_tree(out)
    assert process_boxes(out)["b"] == (
        ("page tables", M, 16384),
        ("buf", V, 4000, 1600),
        ("kernel objects", M, 3072),
        (VMOS_NOT_ITEMIZED_NAME, M, 4096 + 2731 - 4000),
    )


# --------------------------------------------------------------------------- every world


@pytest.mark.parametrize("world", WORLDS)
def test_every_world_exact_tree(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, world: str
) -> None:
    out_text = memgraph(capsys, f"--sim={world}", "-vt", "--attribution=exact")
    records = json.loads(out_text)
    path = write(tmp_path, out_text)
    out = tree_of(capsys, path)
    check_exact_tree(out)
    meta = meta_of(records)
    assert out["attribution"]["residual_bytes"] == meta["residual_bytes"] == 0
    assert out["tree"]["size_bytes"] == meta["total_bytes"]
    # Every category of the memgraph is a box of the same size; every process is a box of
    # its attributed bytes.
    boxes = {c["name"]: c["size_bytes"] for c in out["tree"]["children"] if c["type"] == C}
    assert boxes == meta["categories"]
    processes = {n["koid"]: n["size_bytes"] for n in walk(out["tree"]) if n["type"] == P}
    assert processes == {r["koid"]: r["attributed_bytes"] for r in records if r["type"] == "p"}
    assert out["notes"] == []
    check_vmo_boxes(out, records)


def check_vmo_boxes(out: dict[str, Any], records: list[Any]) -> None:
    """Every process's VMO boxes are its private + shared bytes exactly, one box per VMO
    of its list (a name[n] box per n VMOs of one name), named as its "vmos" entries name
    them; its other boxes are its kernel kinds and estimated bytes."""
    by_koid = {r["koid"]: r for r in records if r["type"] == "p"}
    boxes = 0
    for node in walk(out["tree"]):
        if node["type"] != P:
            continue
        record = by_koid[node["koid"]]
        parts = record["attributed"]
        children = node.get("children", [])
        vmo_boxes = [c for c in children if c["type"] == V]
        boxes += len(vmo_boxes)
        assert sum(c["size_bytes"] for c in vmo_boxes) == (
            parts["private_bytes"] + parts["shared_bytes"]
        )
        listed = [(k, size) for k, size in parts["vmos"] if size]
        assert sum(c.get("members", 1) for c in vmo_boxes) == len(listed)
        names = {v["koid"]: v["name"] or "<unnamed>" for v in record.get("vmos", [])}
        for c in vmo_boxes:
            if "members" in c:
                assert c["name"].endswith(f"[{c['members']}]")
            else:
                assert (c["koid"], c["size_bytes"]) in listed
                assert c["name"] == names[c["koid"]]
        others = sorted((c["name"], c["size_bytes"]) for c in children if c["type"] != V)
        expected = [
            *parts["kernel_by_kind"].items(),
            ("estimated (not page-level)", parts["estimated_bytes"]),
        ]
        assert others == sorted((n, v) for n, v in expected if v)
    assert boxes > 0


@pytest.mark.parametrize("world", WORLDS)
def test_every_world_plain_memgraph_made_exact(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, world: str
) -> None:
    # Plain memgraph output: the capture source derives what it can, approximately.
    path = write(tmp_path, memgraph(capsys, f"--sim={world}", "-vt"))
    code, out_text, err = treemap(capsys, path, "--json", "--attribution=exact")
    assert code == 0
    out = json.loads(out_text)
    check_exact_tree(out)
    assert out["attribution"]["exact"] is False and out["attribution"]["notes"]
    assert out["attribution"]["text"].startswith("Approximate attribution")
    assert err.splitlines()[0] == (
        "treemap: note: approximate: not every figure of the exact attribution is page-level"
    )
    # The capture loader's page facts are by VMO: each process whose attribution has
    # VMOs shows them, named as the memgraph's "vmos" entries name them, adding up to
    # the process's private + shared bytes (here: all of its box but kernel kinds).
    snapshot = CaptureSource(load_capture(path.read_bytes(), str(path)), "c").snapshot(Level.PAGES)
    attribution = attribute_snapshot(snapshot)
    names = {v.koid: v.name or "<unnamed>" for v in snapshot.vmos.values()}
    with_vmos = {pid for pid, share in attribution.processes.items() if share.by_vmo}
    assert with_vmos
    for node in walk(out["tree"]):
        if node["type"] != P:
            continue
        vmo_boxes = [c for c in node.get("children", []) if c["type"] == V]
        share = attribution.processes.get(node["koid"])
        exact_sum = 0 if share is None else share.private + share.shared
        assert bool(vmo_boxes) == (node["koid"] in with_vmos and round(exact_sum) > 0)
        assert abs(sum(c["size_bytes"] for c in vmo_boxes) - exact_sum) <= 2
        for c in vmo_boxes:
            if "members" in c:
                assert c["name"][: c["name"].rindex("[")] in names.values()
            else:
                assert c["name"] == names[c["koid"]]
                assert share is not None and abs(c["size_bytes"] - share.by_vmo[c["koid"]]) <= 2


def test_no_page_facts_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # A capture source as it was before it derived page facts: the stored snapshot only.
    class StoredOnly(CaptureSource):
        def snapshot(
            self, level: Level = Level.FULL, processes: Collection[int] | None = None
        ) -> Snapshot:
            return self._snapshot

    monkeypatch.setattr("mxmem.cli.treemap.CaptureSource", StoredOnly)
    path = write(tmp_path, memgraph(capsys, None, "-vt"))
    code, out, err = treemap(capsys, path, "--attribution=exact")
    assert (code, out) == (1, "")
    assert err == (
        f"mxmem: treemap: --attribution=exact: no page facts can be derived from {path}"
        " (make the input with `mxmem memgraph -vt --attribution=exact`)\n"
    )


def test_host_exact_tree(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # `mxmem --host memgraph -vt --attribution=exact | mxmem treemap --json`.
    code = main(["--host", "memgraph", "-vt", "--attribution=exact"])
    out_text, err = capsys.readouterr()
    if code == 1 and "gives no page-level facts" in err:
        pytest.xfail("the host source gives no page facts at Level.PAGES (yet)")
    assert code == 0
    path = write(tmp_path, out_text)
    out = tree_of(capsys, path)
    check_exact_tree(out)
    meta = meta_of(json.loads(out_text))
    assert out["attribution"]["residual_bytes"] == meta["residual_bytes"]
    assert out["attribution"]["total_bytes"] == meta["total_bytes"] > 0
    # The residual is stated whatever its value, with the source's notes as its causes.
    assert "residual: " in out["attribution"]["text"]
    if meta["residual_bytes"]:
        assert out["attribution"]["text"].endswith("— likely causes: " + "; ".join(meta["notes"]))


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: r[-1].update(attribution=[]),
            'record 16 (__META): "attribution" must be an object, not []',
        ),
        (
            lambda r: r[-1]["attribution"].update(mode="fuzzy"),
            'record 16 (__META): "attribution": unknown "mode" "fuzzy" (expected "exact")',
        ),
        (
            lambda r: r[-1]["attribution"]["categories"].update(free=-1),
            'record 16 (__META): "attribution": "categories"["free"] must be a non-negative'
            " integer, not -1",
        ),
        (
            lambda r: r[-1]["attribution"].pop("total_bytes"),
            'record 16 (__META): "attribution": "total_bytes" is missing (expected a'
            " non-negative integer)",
        ),
        (
            lambda r: r[-1]["attribution"].update(residual_bytes="0"),
            'record 16 (__META): "attribution": "residual_bytes" must be an integer, not "0"',
        ),
        (
            lambda r: r[-1]["attribution"].update(notes=[3]),
            'record 16 (__META): "attribution": "notes"[0] must be a string, not a number',
        ),
        (
            lambda r: r[10].pop("attributed_bytes"),
            '"p/1300": "attributed_bytes" is missing, and the __META record says the input'
            " carries an exact attribution",
        ),
        (
            lambda r: r[10]["attributed"].update(kernel_bytes=1),
            'record 11 ("p/1300"): "attributed": "kernel_by_kind" adds up to 19456, more than'
            ' "kernel_bytes" (1)',
        ),
        (
            lambda r: r[10]["attributed"].update(shared_bytes=-5),
            'record 11 ("p/1300"): "attributed": "shared_bytes" must be a non-negative integer,'
            " not -5",
        ),
        (
            lambda r: r[10]["attributed"].update(vmos={"1600": 4096}),
            'record 11 ("p/1300"): "attributed": "vmos" must be an array, not {"1600": 4096}',
        ),
        (
            lambda r: r[10]["attributed"].update(vmos=[[1600, 4096], [1500]]),
            'record 11 ("p/1300"): "attributed": "vmos"[1] must be a [vmo_koid, bytes] pair of'
            " non-negative integers, not [1500]",
        ),
        (
            lambda r: r[10]["attributed"].update(vmos=[[1600, True]]),
            'record 11 ("p/1300"): "attributed": "vmos"[0] must be a [vmo_koid, bytes] pair of'
            " non-negative integers, not [1600, true]",
        ),
        (
            lambda r: r[10]["attributed"].update(vmos=[[-1600, 4096]]),
            'record 11 ("p/1300"): "attributed": "vmos"[0] must be a [vmo_koid, bytes] pair of'
            " non-negative integers, not [-1600, 4096]",
        ),
        (
            lambda r: r[10]["attributed"].update(vmos=[[1600, 4096], [1600, 1]]),
            'record 11 ("p/1300"): "attributed": "vmos"[1]: VMO koid 1600 is listed twice',
        ),
        (
            lambda r: r[10]["attributed"].update(vmos=[[1600, 4096], [1500, 2732]]),
            'record 11 ("p/1300"): "attributed": "vmos" add up to 6828, more than'
            ' "private_bytes" + "shared_bytes" (6827)',
        ),
    ],
)
def test_bad_exact_input_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str],
    tiny: Path,
    change: Callable[[list[Any]], None],
    message: str,
) -> None:
    assert json.loads(tiny.read_text())[10]["id"] == "p/1300"
    code, out, err = treemap(capsys, edited(tiny, change))
    assert (code, out, err) == (1, "", f"mxmem: treemap: {message}\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--attribution=best"], "treemap: --attribution must be exact or 2017, not best\n"),
        (["--attribution"], "treemap: --attribution needs exact or 2017\n"),
    ],
)
def test_bad_attribution_option_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert main(["treemap", *args]) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", message + HELP)


def test_exact_tree_needs_the_exact_meta() -> None:
    with pytest.raises(TreemapInputError, match=r'^the __META record has no exact "attribution"'):
        exact_tree(parse_memgraph([{"type": "__META", "timestamp": "x"}]))


# --------------------------------------------------------------------------- hostile names


def test_hostile_names_in_an_exact_page(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, memgraph(capsys, f"--sim={HOSTILE_WORLD}", "-vt", "--attribution=exact"))
    code, page, _ = treemap(capsys, path)
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


def _page_of(directory: Path, memgraph_args: list[str], treemap_args: list[str]) -> Path:
    """The pipeline as a user runs it, in two processes."""
    out = _mxmem(*memgraph_args).stdout
    page = directory / "mem.html"
    _mxmem("treemap", *treemap_args, "-o", str(page), input=out)
    return page


@contextmanager
def opened(browser: Browser, path: Path) -> Iterator[Page]:
    """The page, open; on leaving, nothing ran that should not have and nothing was
    fetched."""
    page, log = _open(browser, path)
    try:
        yield page
        assert log.page_errors == [] and log.console_errors == [] and log.dialogs == []
        assert log.requests == [path.as_uri()]
    finally:
        page.close()


def _exact_memgraph(source: str) -> bytes:
    """``mxmem SOURCE memgraph -vt --attribution=exact`` in a process of its own; the host
    without page facts is an expected failure."""
    done = subprocess.run(
        [sys.executable, "-m", "mxmem", source, "memgraph", "-vt", "--attribution=exact"],
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        capture_output=True,
        check=False,
    )
    if done.returncode == 1 and b"gives no page-level facts" in done.stderr:
        pytest.xfail("the host source gives no page facts at Level.PAGES (yet)")
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.browser
@pytest.mark.parametrize("source", [*(f"--sim={w}" for w in WORLDS), "--host"])
def test_browser_exact_page_shows_residual_and_categories(
    chromium: Browser, tmp_path: Path, source: str
) -> None:
    raw = _exact_memgraph(source)
    page_path = tmp_path / "mem.html"
    _mxmem("treemap", "-o", str(page_path), input=raw)
    # What the page must show, from the same input on the Python side.
    expected = exact_tree(parse_memgraph(json.loads(raw)))
    assert expected.attribution is not None
    root = expected.root
    with opened(chromium, page_path) as page:
        line = page.locator("#attribution")
        assert line.is_visible()
        assert line.inner_text() == attribution_text(expected.attribution)
        residual = expected.attribution.residual_bytes
        assert "residual: " in line.inner_text()
        if residual == 0:
            assert "residual: 0B" in line.inner_text()
        assert page.locator(".tm-box.tm-root .tm-label").inner_text() == (
            f"K All physical memory {format_size(root.size_bytes)}"
        )
        # The table lists every category under the root, beside the root job (and the
        # residual when it is positive); the large ones are boxes labelled unowned memory
        # (the small ones are thinner than a box can be drawn).
        assert page.locator('#rows tr[data-depth="1"] .nm').all_inner_texts() == [
            c.name for c in root.children
        ]
        categories = [c for c in root.children if c.type is NodeType.CATEGORY]
        assert [c.name == "residual" for c in categories].count(True) == (residual > 0)
        for child in root.children:
            if child.size_bytes * 50 >= root.size_bytes:
                kind = "Unowned memory" if child.type is NodeType.CATEGORY else "Job"
                label = f"{kind} {child.name}, {format_size(child.size_bytes)}"
                assert page.locator(f'.tm-box[aria-label="{label}"]').count() == 1, label
        assert any(c.name == "free" for c in categories)
        assert page.locator(".tm-box[aria-label*='unknown']").count() == 0
        assert page.get_by_text(UNKNOWN_NAME).count() == 0


@pytest.mark.browser
def test_browser_residual_box_and_text(
    chromium: Browser, capsys: pytest.CaptureFixture[str], tiny: Path, tmp_path: Path
) -> None:
    def change(records: list[Any]) -> None:
        meta = meta_of(records)
        meta["categories"]["free"] -= 8192
        meta["residual_bytes"] = 8192
        meta["notes"] = ["pages changed between the reads"]

    path = edited(tiny, change)
    page_path = tmp_path / "residual.html"
    assert main(["treemap", "-o", str(page_path), str(path)]) == 0
    capsys.readouterr()
    with opened(chromium, page_path) as page:
        assert page.locator("#attribution").inner_text() == (
            "Exact attribution of 1M of physical memory · residual: 8k (8192 bytes) not"
            " accounted for by the processes and named categories, shown as the"
            ' "residual" box — likely causes: pages changed between the reads'
        )
        assert page.locator('.tm-box[aria-label="Unowned memory residual, 8k"]').count() == 1


@pytest.mark.browser
def test_browser_approximate_page_says_so(chromium: Browser, tmp_path: Path) -> None:
    page_path = _page_of(tmp_path, ["--sim=doc", "memgraph", "-vt"], ["--attribution=exact"])
    with opened(chromium, page_path) as page:
        line = page.locator("#attribution")
        assert line.inner_text().startswith(
            "Approximate attribution (not every figure is page-level) of 2046.9M of physical"
            " memory · residual: 0B — "
        )
        assert "approximate" in (line.get_attribute("class") or "")
        assert page.locator(".tm-box[aria-label^='Unowned memory free, ']").count() == 1


@pytest.mark.browser
def test_browser_hostile_names_are_text_in_exact_mode(chromium: Browser, tmp_path: Path) -> None:
    page_path = _page_of(
        tmp_path, [f"--sim={HOSTILE_WORLD}", "memgraph", "-vt", "--attribution=exact"], []
    )
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
    # The clone world (tests/test_memgraph_exact.py): zoomed into a process, its VMO
    # boxes are there, and the tooltip and the table say what such a box is.
    path = write(tmp_path, memgraph(capsys, SimSource(clone_world()), "-vt", "--attribution=exact"))
    page_path = tmp_path / "clone.html"
    assert main(["treemap", "-o", str(page_path), str(path)]) == 0
    capsys.readouterr()
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

        page.locator("#crumbs button", has_text="All physical memory").click()
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
    raw = _exact_memgraph(f"--sim={world}")
    page_path = tmp_path / "mem.html"
    _mxmem("treemap", "-o", str(page_path), input=raw)
    root = exact_tree(parse_memgraph(json.loads(raw))).root
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
