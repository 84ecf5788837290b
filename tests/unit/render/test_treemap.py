"""``treemap``: the tree by treemap.py's rules (spec §7) from a snapshot, folding, the
page's data, and the CLI with every way in (a source, a capture file, standard input).
The browser side is in ``test_treemap_browser.py``.

The fixture ``fixtures/treemap/memgraph-small.json`` is hand-written in memgraph's format
(spec §6) and read by the capture source, as every memgraph file is; every expected size
below is worked out from it by hand.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paths import FIXTURES

from mxmem.accounting.figures import figures, rule_for
from mxmem.cli import main
from mxmem.cli.treemap import HELP, load_template
from mxmem.errors import SourceError
from mxmem.render.treemap import (
    FoldedTree,
    MemoryTree,
    Node,
    NodeType,
    fold_tree,
    memory_tree,
    page_data,
    script_json,
    treemap_html,
)
from mxmem.sources.capture.memgraph import from_records

TREEMAP_FIXTURES = FIXTURES / "treemap"
SMALL = TREEMAP_FIXTURES / "memgraph-small.json"
HOSTILE_WORLD = TREEMAP_FIXTURES / "hostile-names.toml"

K, J, P, V, M, OTHER = (
    NodeType.KERNEL,
    NodeType.JOB,
    NodeType.PROCESS,
    NodeType.VMO,
    NodeType.MEMORY,
    NodeType.OTHER,
)

Shape = tuple[Any, ...]


def small() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(SMALL.read_text())
    return records


def tree_of(records: object) -> MemoryTree:
    snapshot = from_records(records, "test")
    return memory_tree(snapshot, figures(snapshot, rule_for(snapshot, "2017")))


def shape(node: Node) -> Shape:
    """(name, type, size[, koid]) and the children's shapes, for exact comparisons."""
    head: tuple[Any, ...] = (node.name, node.type, node.size_bytes)
    if node.koid is not None:
        head += (node.koid,)
    if node.members or node.folded:
        head += (f"members={node.members}", f"folded={node.folded}")
    return (*head, [shape(c) for c in node.children]) if node.children else head


def find(node: Node, name: str, koid: int | None = None) -> Node:
    stack = [node]
    while stack:
        n = stack.pop()
        if n.name == name and (koid is None or n.koid == koid):
            return n
        stack.extend(n.children)
    raise AssertionError(f"no node {name!r}")


# svc (p/10): libc.so mapped, 8192 committed // 4 sharers = 2048 (listed twice: once);
# heap 12288 and heap 4096 mapped, unshared: one "heap[2]" box of 16384; koid 103 held
# only by a handle: 3000 // (2 + 1) = 1000; koid 104 mapped: 10; shm held by a handle and
# mapped, so the mapping rule: 9000 // 2 = 4500. svc = 23942.
SVC = (
    "svc",
    P,
    23942,
    10,
    [
        ("heap[2]", V, 16384, "members=2", "folded=0"),
        ("shm", V, 4500, 105),
        ("libc.so", V, 2048, 100),
        ("<unnamed>", V, 1000, 103),
        ("<unnamed>", V, 10, 104),
    ],
)
# apps (j/2): no VMO lists, so Private and Proportional shared (pss - private) boxes;
# odd has pss < private, so no shared box; dead has only zeros, so no box at all.
APPS = (
    "apps",
    J,
    10000,
    2,
    [
        ("nov", P, 7000, 20, [("Private", M, 5000), ("Proportional shared", M, 2000)]),
        ("odd", P, 3000, 22, [("Private", M, 3000)]),
        ("dead", P, 0, 21),
    ],
)
SMALL_TREE = (
    "All physical memory",
    K,
    100000,
    [
        (
            "VMOs/processes",
            K,
            50000,
            [
                ("root job", J, 33942, 1, [SVC, APPS]),
                # 50000 - 33942
                ("unknown (kernel & unmapped)", K, 16058),
            ],
        ),
        ("free", K, 40000),
        ("heap", K, 6000, [("heap/allocated", K, 5000), ("heap/free", K, 1000)]),
        ("wired", K, 3000),
        ("mmu", K, 1000),
        ("other", K, 0),
    ],
)


# --- parsing ------------------------------------------------------------------------------


def test_tree_follows_treemap_rules() -> None:
    tree = tree_of(small())
    assert shape(tree.root) == SMALL_TREE
    assert tree.notes == ()
    assert tree.unknown_clamped_bytes == 0
    assert (tree.jobs, tree.processes, tree.vmos) == (2, 4, 6)


def test_every_parent_is_exactly_the_sum_of_its_children() -> None:
    stack = [tree_of(small()).root]
    while stack:
        node = stack.pop()
        if node.children:
            assert node.size_bytes == sum(c.size_bytes for c in node.children), node.name
        stack.extend(node.children)


def test_same_name_aggregation_skips_unnamed_and_single_names() -> None:
    svc = find(tree_of(small()).root, "svc")
    names = [c.name for c in svc.children]
    assert names.count("<unnamed>") == 2  # never aggregated
    assert "heap[2]" in names and "heap" not in names
    assert "libc.so" in names  # one VMO (listed twice) is not an aggregate


def test_negative_unknown_is_clamped_at_zero_with_a_note() -> None:
    records = small()
    # kernel/vmo 30000 (free grows by 20000 so physmem's parts still add up to 100000):
    # unknown would be 30000 - 33942 = -3942.
    by_id = {r.get("id"): r for r in records}
    by_id["kernel/vmo"]["size_bytes"] = 30000
    by_id["kernel/free"]["size_bytes"] = 60000
    tree = tree_of(records)
    assert tree.unknown_clamped_bytes == 3942
    vmo = find(tree.root, "VMOs/processes")
    assert [(c.name, c.size_bytes) for c in vmo.children] == [
        ("root job", 33942),
        ("unknown (kernel & unmapped)", 0),
    ]
    assert vmo.size_bytes == 33942
    # physmem's parts now add up to 103942: shown as such, and said so.
    assert tree.root.size_bytes == 103942
    assert tree.notes == (
        '"unknown (kernel & unmapped)" = VMOs/processes - root job would be -3942B'
        " (3942 bytes): the processes' VMOs add up to more than the kernel's VMO memory."
        ' It is shown as 0, so "VMOs/processes" is 3942B larger than the kernel reported.',
        'The parts of "All physical memory" add up to 3942B (3942 bytes) more than its own'
        " figure (97.7k (100000 bytes)); it is shown as the sum of its parts.",
    )


def test_kernel_parts_short_of_their_parent_get_a_not_itemized_part() -> None:
    records = small()
    next(r for r in records if r.get("id") == "kernel/physmem")["size_bytes"] = 100500
    tree = tree_of(records)
    assert tree.root.size_bytes == 100500
    assert ("not itemized", K, 500) in [shape(c) for c in tree.root.children]
    assert tree.notes == ()


def test_process_without_figures_is_zero_and_noted() -> None:
    records = small()
    nov = next(r for r in records if r.get("id") == "p/20")
    for key in ("private_bytes", "shared_bytes", "pss_bytes"):
        del nov[key]
    tree = tree_of(records)
    assert shape(find(tree.root, "nov")) == ("nov", P, 0, 20)
    assert find(tree.root, "apps").size_bytes == 3000
    assert tree.notes == (
        "1 process had no memory figures (the source could not read it) and is shown as 0.",
    )


def test_input_without_kernel_records_is_rooted_at_the_root_job() -> None:
    records = [r for r in small() if r.get("type") != "kernel"]
    next(r for r in records if r.get("id") == "j/1")["parent"] = ""
    tree = tree_of(records)
    assert shape(tree.root) == ("root job", J, 33942, 1, [SVC, APPS])


def test_share_count_zero_divides_as_one() -> None:
    records = small()
    svc = next(r for r in records if r.get("id") == "p/10")
    for vmo in svc["vmos"]:
        if vmo["koid"] == 100:
            vmo["share_count"] = 0
    assert find(tree_of(records).root, "libc.so").size_bytes == 8192


def test_areas_use_integer_division_beyond_float_precision() -> None:
    records = small()
    svc = next(r for r in records if r.get("id") == "p/10")
    big = 2**60 + 3  # int(big / 3) through a float would be off
    for vmo in svc["vmos"]:
        if vmo["koid"] == 104:
            vmo["committed_bytes"], vmo["share_count"] = big, 3
    tree = tree_of(records)
    assert int(big / 3) != big // 3
    assert find(tree.root, "<unnamed>", 104).size_bytes == big // 3 == 384307168202282326


# --- structural errors --------------------------------------------------------------------


def _set(record_id: str, key: str, value: object) -> Callable[[list[dict[str, Any]]], object]:
    def mutate(records: list[dict[str, Any]]) -> object:
        next(r for r in records if r.get("id") == record_id)[key] = value
        return records

    return mutate


def _drop(key: str, record_id: str) -> Callable[[list[dict[str, Any]]], object]:
    def mutate(records: list[dict[str, Any]]) -> object:
        del next(r for r in records if r.get("id") == record_id)[key]
        return records

    return mutate


def _svc(change: Callable[[dict[str, Any]], None]) -> Callable[[list[dict[str, Any]]], object]:
    def mutate(records: list[dict[str, Any]]) -> object:
        change(next(r for r in records if r.get("id") == "p/10"))
        return records

    return mutate


BROKEN: list[tuple[str, Callable[[list[dict[str, Any]]], object], str]] = [
    (
        "not-an-array",
        lambda r: {"records": r},
        "expected a JSON array of memgraph records, not an object (is this the output of"
        " `memgraph -v`?)",
    ),
    ("record-not-object", lambda r: [*r[:1], 7], "record 2: must be an object, not a number"),
    (
        "no-type",
        _drop("type", "kernel/free"),
        'record 2: "type" is missing (expected a string)',
    ),
    (
        "unknown-type",
        _set("kernel/free", "type", "process"),
        'record 2: unknown "type" "process" (expected kernel, j, p, t or __META)',
    ),
    (
        "duplicate-id",
        _set("p/21", "id", "p/20"),
        'record 15 ("p/20"): the same id as record 14',
    ),
    (
        "negative-size",
        _set("kernel/free", "size_bytes", -1),
        'record 2 ("kernel/free"): "size_bytes" must be a non-negative integer, not -1',
    ),
    (
        "boolean-size",
        _set("kernel/free", "size_bytes", True),
        'record 2 ("kernel/free"): "size_bytes" must be a non-negative integer, not true',
    ),
    (
        "string-private",
        _set("p/20", "private_bytes", "5k"),
        'record 14 ("p/20"): "private_bytes" must be a non-negative integer, not "5k"',
    ),
    (
        "no-koid",
        _drop("koid", "j/2"),
        'record 13 ("j/2"): "koid" is missing (expected a non-negative integer)',
    ),
    (
        "name-not-string",
        _set("j/2", "name", None),
        'record 13 ("j/2"): "name" must be a string, not null',
    ),
    (
        "vmos-not-array",
        _set("p/10", "vmos", {}),
        'record 11 ("p/10"): "vmos" must be an array, not {}',
    ),
    (
        "vmo-without-koid",
        _svc(lambda p: p["vmos"][2].pop("koid")),
        'record 11 ("p/10"): "vmos"[2]: "koid" is missing (expected a non-negative integer)',
    ),
    (
        "via-not-list",
        _svc(lambda p: p["vmo_refs"][1].update(via="MAPPING")),
        'record 11 ("p/10"): "vmo_refs"[1]: "via" must be an array of strings, not "MAPPING"',
    ),
    (
        "dangling-ref",
        _svc(lambda p: p["vmo_refs"][3].update(vmo_koid=999)),
        'record 11 ("p/10"): "vmo_refs"[3] refers to VMO koid 999, not in "vmos"',
    ),
    (
        "two-roots",
        _set("j/2", "parent", ""),
        "expected exactly one record with an empty parent (kernel/physmem), found 2:"
        ' "kernel/physmem", "j/2"',
    ),
    (
        "two-root-jobs",
        _set("j/2", "parent", "kernel/free"),
        "expected exactly one root job (a job whose parent is a kernel record), found 2:"
        ' "j/1", "j/2"',
    ),
    (
        "missing-parent",
        _set("p/20", "parent", "j/9"),
        '"p/20": its parent "j/9" is not a record',
    ),
    (
        "process-under-kernel",
        _set("p/20", "parent", "kernel/vmo"),
        '"p/20": a process cannot be a child of "kernel/vmo" (a kernel)',
    ),
    (
        "cycle",
        lambda r: (
            _set("j/2", "parent", "j/3")(r)
            and [*r[:-1], {"id": "j/3", "type": "j", "koid": 3, "parent": "j/2", "name": "c"}]
        ),
        '"j/2" is not connected to the root "kernel/physmem" (its parents form a cycle)',
    ),
]


@pytest.mark.parametrize("mutate", [b[1] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_bad_memgraph_is_one_line_from_the_capture_reader(
    mutate: Callable[[list[dict[str, Any]]], object],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    # One reader per format: the treemap has no checker of its own; what it is given is
    # read by the capture source, whose messages name the file and the place.
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(mutate(copy.deepcopy(small()))))
    with pytest.raises(SourceError) as info:
        tree_of(mutate(copy.deepcopy(small())))
    assert "\n" not in str(info.value)
    assert main(["treemap", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"mxmem: {path}: ")
    assert captured.err.count("\n") == 1


# --- folding ------------------------------------------------------------------------------


def test_a_tree_within_the_limits_is_not_folded() -> None:
    tree = tree_of(small())
    folded = fold_tree(tree.root)
    assert folded.root is tree.root
    assert (folded.total, folded.shown, folded.folded) == (24, 24, 0)


def test_the_budget_keeps_the_largest_nodes() -> None:
    # Largest first, each after its parent, a node with children counting 2 (itself and
    # a box for what may be left of its children): physmem 2, VMOs/processes 50000 4,
    # free 40000 5, root job 33942 7, svc 23942 9, heap[2] 16384 10; unknown 16058 would
    # make 11. unknown and apps are then single left-out siblings, shown as leaves.
    folded = fold_tree(tree_of(small()).root, max_nodes=10)
    assert shape(folded.root) == (
        "All physical memory",
        K,
        100000,
        [
            (
                "VMOs/processes",
                K,
                50000,
                [
                    (
                        "root job",
                        J,
                        33942,
                        1,
                        [
                            (
                                "svc",
                                P,
                                23942,
                                10,
                                [
                                    ("heap[2]", V, 16384, "members=2", "folded=0"),
                                    # shm 4500 + libc.so 2048 + 1000 + 10
                                    ("other (4)", OTHER, 7558, "members=4", "folded=4"),
                                ],
                            ),
                            # none of its children made it: a leaf hiding 6 nodes
                            ("apps", J, 10000, 2, "members=0", "folded=6"),
                        ],
                    ),
                    ("unknown (kernel & unmapped)", K, 16058),
                ],
            ),
            ("free", K, 40000),
            # heap 6000 (+ its 2 parts) + wired 3000 + mmu 1000 + other 0
            ("other (4)", OTHER, 10000, "members=4", "folded=6"),
        ],
    )
    assert (folded.total, folded.shown, folded.folded) == (24, 10, 16)


def test_max_children_folds_the_smallest_siblings() -> None:
    leaves = tuple(Node(f"v{s}", V, s, s) for s in (50, 40, 30, 20, 10))
    parent = Node("p", P, 150, 1, leaves)
    assert shape(fold_tree(parent, max_children=2).root) == (
        "p",
        P,
        150,
        1,
        [("other (3)", OTHER, 60, "members=3", "folded=3"), ("v50", V, 50, 50), ("v40", V, 40, 40)],
    )
    # One sibling left over is kept rather than boxed as "other (1)".
    assert fold_tree(parent, max_children=4).root == parent


def test_fold_limits_must_leave_room_for_a_box() -> None:
    with pytest.raises(ValueError, match="max_nodes >= 2"):
        fold_tree(Node("p", P, 0), max_nodes=1)


def _trees(depth: int) -> st.SearchStrategy[Node]:
    leaf = st.builds(lambda s: Node("leaf", V, s), st.integers(0, 10**6))
    if depth == 0:
        return leaf

    def parent(children: list[Node]) -> Node:
        kids = tuple(sorted(children, key=lambda n: -n.size_bytes))
        return Node("inner", J, sum(c.size_bytes for c in kids), None, kids)

    return st.one_of(leaf, st.lists(_trees(depth - 1), min_size=1, max_size=6).map(parent))


def _count(node: Node, type_: NodeType | None = None) -> int:
    own = 1 if type_ is None or node.type is type_ else 0
    return own + sum(_count(c, type_) for c in node.children)


@given(_trees(4), st.integers(2, 40), st.integers(1, 5))
def test_folding_keeps_every_byte_and_counts_what_it_hides(
    root: Node, max_nodes: int, max_children: int
) -> None:
    result: FoldedTree = fold_tree(root, max_nodes=max_nodes, max_children=max_children)
    assert result.root.size_bytes == root.size_bytes
    assert result.shown <= max_nodes
    stack = [result.root]
    while stack:
        node = stack.pop()
        if node.children:
            assert node.size_bytes == sum(c.size_bytes for c in node.children)
            assert len(node.children) <= max_children + 2
        stack.extend(node.children)
    assert result.total == _count(root)
    assert result.shown == _count(result.root)
    others = _count(result.root, NodeType.OTHER)
    # Every node of the full tree is either shown or counted in some box's "folded".
    hidden = sum(n.folded for n in _walk(result.root))
    assert result.folded == hidden == result.total - (result.shown - others)


def _walk(node: Node) -> list[Node]:
    return [node, *(d for c in node.children for d in _walk(c))]


# --- the page -----------------------------------------------------------------------------

HOSTILE = "</script><img src=x onerror=alert(1)>"


def test_script_json_cannot_end_the_script_element() -> None:
    value = {"n": HOSTILE, "m": "a & b <!-- \u2028\u2029 \u00e9"}
    text = script_json(value)
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw not in text
    assert text.isascii()
    assert "\\u003c/script\\u003e" in text
    assert json.loads(text) == value


def _page(records: object) -> str:
    tree = tree_of(records)
    return treemap_html(page_data(tree, fold_tree(tree.root)), load_template())


def _embedded(page: str) -> dict[str, Any]:
    match = re.search(
        r'<script type="application/json" id="treemap-data">(.*?)</script>', page, re.S
    )
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def test_page_embeds_the_tree_as_safe_json() -> None:
    records = small()
    next(r for r in records if r.get("id") == "p/20")["name"] = HOSTILE
    page = _page(records)
    assert page.isascii()  # so any stdout encoding can carry it
    assert page.count("<title>Memory usage</title>") == 1
    # The hostile name cannot close the data element: only our two scripts end.
    assert page.count("</script>") == 2
    assert HOSTILE not in page
    data = _embedded(page)
    apps = data["tree"]["c"][0]["c"][0]["c"][1]
    assert [c["n"] for c in apps["c"]] == [HOSTILE, "odd", "dead"]
    assert data["tree"]["n"] == "All physical memory"
    assert data["tree"]["s"] == 100000
    assert (data["total"], data["shown"], data["folded"]) == (24, 24, 0)
    assert data["counts"] == {"jobs": 2, "processes": 4, "vmos": 6}
    assert data["timestamp"] == "2017-08-17T12:00:00.000Z"


def test_sizes_beyond_javascript_precision_travel_as_strings() -> None:
    huge = Node("huge", V, 2**64 - 1, 2**60)
    data = page_data(MemoryTree(root=huge), fold_tree(huge))
    assert data["tree"] == {"n": "huge", "t": "v", "s": "18446744073709551615", "k": str(2**60)}


def test_page_policy_allows_only_its_own_style_and_script() -> None:
    page = _page(small())
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert csp is not None
    style = page[page.index("<style>") + 7 : page.index("</style>")]
    script = page[page.index("<script>") + 8 : page.rindex("</script>")]

    def sha(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert csp.group(1) == (
        f"default-src 'none'; style-src 'sha256-{sha(style)}';"
        f" script-src 'sha256-{sha(script)}'; base-uri 'none'; form-action 'none'"
    )
    # Nothing is loaded from anywhere: no src/href attributes at all.
    assert not re.search(r"\b(src|href)\s*=", page.replace(HOSTILE, ""))


def test_template_uses_only_text_apis_for_names() -> None:
    # The page's script must never parse data as markup.
    template = load_template()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in template


# --- the CLI ------------------------------------------------------------------------------


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["treemap", "--help"]) == 0
    assert capsys.readouterr().out == HELP


def test_cli_reads_a_file_and_writes_the_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["treemap", str(SMALL)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("<!DOCTYPE html>")
    assert captured.err == ""
    assert _embedded(captured.out)["tree"]["s"] == 100000


def test_cli_reads_stdin_and_writes_a_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(SMALL.read_bytes())))
    out = tmp_path / "mem.html"
    assert main(["treemap", "-", "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert _embedded(out.read_text())["tree"]["s"] == 100000


def _json_shape(node: dict[str, Any]) -> Shape:
    head: tuple[Any, ...] = (node["name"], NodeType(node["type"]), node["size_bytes"])
    if "koid" in node:
        head += (node["koid"],)
    if "members" in node:
        head += (f"members={node['members']}", "folded=0")
    return (*head, [_json_shape(c) for c in node["children"]]) if "children" in node else head


def test_cli_json_prints_the_whole_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["treemap", "--json", str(SMALL)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert _json_shape(out["tree"]) == SMALL_TREE
    assert out["counts"] == {"jobs": 2, "processes": 4, "vmos": 6}
    assert (out["notes"], out["unknown_clamped_bytes"]) == ([], 0)
    assert out["timestamp"] == "2017-08-17T12:00:00.000Z"


def test_cli_tolerates_raw_control_characters_and_bad_utf8(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # memgraph.cpp printed names unescaped: a tab, and bytes that are not UTF-8.
    raw = SMALL.read_bytes().replace(b'"name": "odd"', b'"name": "o\tdd\xff"')
    path = tmp_path / "raw.json"
    path.write_bytes(raw)
    assert main(["treemap", str(path)]) == 0
    names = [
        c["n"] for c in _embedded(capsys.readouterr().out)["tree"]["c"][0]["c"][0]["c"][1]["c"]
    ]
    assert names == ["nov", "o\tdd\ufffd", "dead"]


def test_cli_notes_a_clamped_unknown(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    records = small()
    next(r for r in records if r.get("id") == "kernel/vmo")["size_bytes"] = 30000
    next(r for r in records if r.get("id") == "kernel/free")["size_bytes"] = 60000
    path = tmp_path / "m.json"
    path.write_text(json.dumps(records))
    assert main(["treemap", str(path)]) == 0
    captured = capsys.readouterr()
    assert _embedded(captured.out)["notes"][0].startswith(
        '"unknown (kernel & unmapped)" = VMOs/processes - root job would be -3942B'
    )
    assert captured.err.splitlines()[0].startswith(
        'treemap: note: "unknown (kernel & unmapped)" = VMOs/processes - root job would be'
    )


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["-x"], b"", "treemap: invalid option -- 'x'; see `mxmem treemap --help`\n"),
        (["-o"], b"", "treemap: option requires an argument -- 'o'; see `mxmem treemap --help`\n"),
        (["a", "b"], b"", "treemap: more than one INPUT: a b; see `mxmem treemap --help`\n"),
        (
            ["-"],
            b"",
            "mxmem: standard input: empty (expected a capture: memgraph JSON, an mxmem"
            " snapshot or a Fuchsia capture)\n",
        ),
        (
            ["-"],
            b"[{]",
            "mxmem: standard input: line 1 column 3: not valid JSON: Expecting property"
            " name enclosed in double quotes\n",
        ),
        (
            ["/nonexistent/m.json"],
            b"",
            "mxmem: /nonexistent/m.json: No such file or directory\n",
        ),
        (
            ["-o", "/nonexistent/x.html", str(SMALL)],
            b"",
            "treemap: cannot write /nonexistent/x.html: no directory /nonexistent\n",
        ),
        (
            ["-o", "/", str(SMALL)],
            b"",
            "treemap: cannot write /: it is a directory\n",
        ),
    ],
)
def test_cli_errors(
    args: list[str],
    stdin: bytes,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    # Usage errors exit 2, as in every tool, and so does a capture that cannot be read (a
    # source error); a page that cannot be written, 1.
    assert main(["treemap", *args]) == (1 if "cannot write" in message else 2)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == message


def _memgraph(capsys: pytest.CaptureFixture[str], *source: str) -> str:
    assert main([*source, "memgraph", "-vt"]) == 0
    return capsys.readouterr().out


def test_memgraph_of_the_doc_world_makes_a_consistent_tree(
    capsys: pytest.CaptureFixture[str],
) -> None:
    records = json.loads(_memgraph(capsys, "--sim"))
    tree = tree_of(records)
    kernel = {r["id"]: r["size_bytes"] for r in records if r.get("type") == "kernel"}
    assert tree.root.size_bytes == kernel["kernel/physmem"]
    vmo = find(tree.root, "VMOs/processes")
    assert vmo.size_bytes == kernel["kernel/vmo"]
    assert tree.unknown_clamped_bytes == 0
    processes = [r for r in records if r.get("type") == "p"]
    assert tree.processes == len(processes) == 12
    assert tree.vmos == sum(len({v["koid"] for v in p.get("vmos", [])}) for p in processes)
    for node in _walk(tree.root):
        if node.children:
            assert node.size_bytes == sum(c.size_bytes for c in node.children), node.name


def test_hostile_names_survive_the_pipeline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "m.json"
    path.write_text(_memgraph(capsys, f"--sim={HOSTILE_WORLD}"))
    assert main(["treemap", str(path)]) == 0
    page = capsys.readouterr().out
    assert page.count("</script>") == 2
    names = {n["n"] for n in _walk_json(_embedded(page)["tree"])}
    assert {HOSTILE, "<i>apps</i>&amp;", "<b>bold</b>\u2028<!--"} <= names


def _walk_json(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(d for c in node.get("c", []) for d in _walk_json(c))]
