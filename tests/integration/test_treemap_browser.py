"""The treemap page in a real browser: Debian's headless Chromium through Playwright.

Pages are made by the real CLI, as a user would: ``mxmem --sim=WORLD memgraph -vt |
mxmem treemap -o PAGE``. Expected figures come from the Python side (the tree built
from the same memgraph output, read as a capture), so the page is checked against an
independent computation of what it should say. The page opens on the memory in use:
the free box is hidden (and left out of its ancestors' sizes) until it is switched on.

The tests skip only when ``/usr/bin/chromium`` is missing (``.ci/run`` installs it);
Playwright itself is a test dependency, so its absence is an error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, IN_USE, Log, open_page, run_mxmem
from paths import FIXTURES
from playwright.sync_api import Browser, Page, sync_playwright

from mxmem.accounting.figures import figures, rule_for
from mxmem.render.treemap import Node, memory_tree
from mxmem.render.units import format_size
from mxmem.sources.capture import load_capture

pytestmark = pytest.mark.browser

HOSTILE_WORLD = FIXTURES / "treemap" / "hostile-names.toml"
HOSTILE = "</script><img src=x onerror=alert(1)>"
SCALE_WORLD = "scale:3000"
SCALE_LOAD_LIMIT_S = 15.0  # measured ~1 s on the 2-core CI machine; generous for noise


@dataclass
class Built:
    memgraph: Path
    page: Path

    def tree(self) -> Node:
        snapshot = load_capture(self.memgraph.read_bytes(), str(self.memgraph))
        return memory_tree(snapshot, figures(snapshot, rule_for(snapshot, "2017"))).root


def in_use(tree: Node) -> Node:
    """The root as the page first shows it: without its free box, named for that."""
    kept = tuple(c for c in tree.children if not c.free)
    return tree._replace(
        name=IN_USE, size_bytes=sum(c.size_bytes for c in kept), children=kept
    )


def _build(world: str, directory: Path) -> Built:
    """memgraph -vt of ``world``, then the page made from it: the pipeline, in two steps
    so the test can also read the memgraph output."""
    memgraph = directory / "memgraph.json"
    page = directory / "mem.html"
    memgraph.write_bytes(run_mxmem(f"--sim={world}", "memgraph", "-vt").stdout)
    run_mxmem("treemap", "-o", str(page), input=memgraph.read_bytes())
    return Built(memgraph, page)


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return _build("doc", tmp_path_factory.mktemp("doc"))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return _build(str(HOSTILE_WORLD), tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"Debian's Chromium is not installed at {CHROMIUM}"
            " (`apt-get install chromium`; .ci/run installs it)"
        )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def doc_page(browser: Browser, doc: Built) -> Iterator[tuple[Page, Log]]:
    page, log = open_page(browser, doc.page)
    yield page, log
    page.close()


def _box(page: Page, type_name: str, name: str) -> Any:
    # aria-label is "<type> <name>, <size>"; the box's own label strip is its top 16px
    # (its children cover the rest), so clicks and hovers aim there.
    return page.locator(f'.tm-box[aria-label^="{type_name} {name}, "]')


def _current_crumb(page: Page) -> str:
    return page.locator("#crumbs button[aria-current]").inner_text()


def _depth_rows(page: Page, depth: int) -> list[str]:
    return page.locator(f'#rows tr[data-depth="{depth}"] .nm').all_inner_texts()


def _find(node: Node, name: str) -> tuple[Node, Node | None]:
    stack: list[tuple[Node, Node | None]] = [(node, None)]
    while stack:
        n, parent = stack.pop()
        if n.name == name:
            return n, parent
        stack.extend((c, n) for c in n.children)
    raise AssertionError(name)


def test_page_renders_boxes_labels_and_table(doc_page: tuple[Page, Log], doc: Built) -> None:
    page, log = doc_page
    tree = in_use(doc.tree())
    assert page.title() == "Memory usage"
    assert page.locator(".tm-box").count() > 20
    top = page.locator(".tm-box.tm-root .tm-label")
    assert top.inner_text() == f"K {IN_USE} {format_size(tree.size_bytes)}"
    # Every node of the doc world's tree is small enough to be in the table, open.
    assert page.locator("#rows tr").count() == sum(1 for _ in _nodes(tree))
    assert _current_crumb(page) == f"{IN_USE} ({format_size(tree.size_bytes)})"
    # The policy's hashes match the page's style and script, or they would not run.
    assert log.console_errors == [] and log.page_errors == []


def _nodes(node: Node) -> Iterator[Node]:
    yield node
    for c in node.children:
        yield from _nodes(c)


def test_click_zooms_in_and_the_outer_box_and_breadcrumbs_zoom_out(
    doc_page: tuple[Page, Log], doc: Built
) -> None:
    page, _ = doc_page
    tree = in_use(doc.tree())
    vmo, _ = _find(tree, "VMOs/processes")
    devmgr, root_job = _find(tree, "bin/devmgr")
    assert root_job is not None

    _box(page, "Kernel memory", "VMOs/processes").click(position={"x": 6, "y": 6})
    assert _current_crumb(page) == f"VMOs/processes ({format_size(vmo.size_bytes)})"

    _box(page, "Process", "bin/devmgr").click(position={"x": 6, "y": 6})
    assert _current_crumb(page) == f"bin/devmgr ({format_size(devmgr.size_bytes)})"
    assert page.locator("#crumbs button").all_inner_texts() == [
        f"{IN_USE} ({format_size(tree.size_bytes)})",
        f"VMOs/processes ({format_size(vmo.size_bytes)})",
        f"root job ({format_size(root_job.size_bytes)})",
        f"bin/devmgr ({format_size(devmgr.size_bytes)})",
    ]
    # The zoomed box fills the map, and shows its VMOs.
    assert page.locator(".tm-box.tm-root").get_attribute("aria-label") == (
        f"Process bin/devmgr, {format_size(devmgr.size_bytes)}"
    )
    assert page.locator(".tm-box").count() == 1 + len(
        [c for c in devmgr.children if c.size_bytes > 0]
    )

    # The outermost box zooms out one level.
    page.locator(".tm-box.tm-root").click(position={"x": 6, "y": 6})
    assert _current_crumb(page) == f"root job ({format_size(root_job.size_bytes)})"

    # A breadcrumb zooms out to it.
    page.locator("#crumbs button", has_text=IN_USE).click()
    assert _current_crumb(page) == f"{IN_USE} ({format_size(tree.size_bytes)})"


def test_keyboard_zooms_in_and_out(doc_page: tuple[Page, Log]) -> None:
    page, _ = doc_page
    box = _box(page, "Kernel memory", "VMOs/processes")
    box.focus()
    page.keyboard.press("Enter")
    assert _current_crumb(page).startswith("VMOs/processes (")
    # Focus stays on the map (the zoomed box), so Escape zooms back out.
    page.keyboard.press("Escape")
    assert _current_crumb(page).startswith(f"{IN_USE} (")


def test_hover_shows_type_koid_exact_bytes_and_shares(
    doc_page: tuple[Page, Log], doc: Built
) -> None:
    page, _ = doc_page
    tree = in_use(doc.tree())
    devmgr, root_job = _find(tree, "bin/devmgr")
    assert root_job is not None
    _box(page, "Kernel memory", "VMOs/processes").click(position={"x": 6, "y": 6})
    _box(page, "Process", "bin/devmgr").hover(position={"x": 6, "y": 6})
    tooltip = page.locator("#tooltip")
    assert tooltip.is_visible()
    parent_share = 100 * devmgr.size_bytes / root_job.size_bytes
    total_share = 100 * devmgr.size_bytes / tree.size_bytes
    assert tooltip.inner_text().splitlines() == [
        "bin/devmgr",
        f"Process, koid {devmgr.koid}",
        f"Size: {format_size(devmgr.size_bytes)} ({devmgr.size_bytes} bytes)",
        f"Share of parent: {parent_share:.3f}% of root job",
        f"Share of total: {total_share:.3f}%",
        f"{len(devmgr.children)} children",
    ]
    page.mouse.move(1, 1)  # off the map
    assert not tooltip.is_visible()


def test_table_sorts_on_header_click(doc_page: tuple[Page, Log], doc: Built) -> None:
    page, _ = doc_page
    parts = in_use(doc.tree()).children
    by_size = [n.name for n in parts]  # the tree's own order: largest first
    assert _depth_rows(page, 1) == by_size
    assert page.locator('th[data-key="size"]').get_attribute("aria-sort") == "descending"

    page.locator('th[data-key="name"] button').click()
    assert _depth_rows(page, 1) == sorted(n.name for n in parts)
    assert page.locator('th[data-key="name"]').get_attribute("aria-sort") == "ascending"
    assert page.locator('th[data-key="size"]').get_attribute("aria-sort") is None

    page.locator('th[data-key="name"] button').click()
    assert _depth_rows(page, 1) == sorted((n.name for n in parts), reverse=True)

    page.locator('th[data-key="bytes"] button').click()
    assert _depth_rows(page, 1) == by_size
    page.locator('th[data-key="bytes"] button').click()
    ascending = [n.name for n in sorted(parts, key=lambda n: n.size_bytes)]
    assert _depth_rows(page, 1) == ascending
    # Sizes in the table are exact and Magenta-formatted.
    first = page.locator('#rows tr[data-depth="1"]').first
    smallest = min(parts, key=lambda n: n.size_bytes)
    assert first.locator("td.size").inner_text() == format_size(smallest.size_bytes)
    assert first.locator("td.bytes").inner_text() == str(smallest.size_bytes)


def test_table_rows_collapse_and_expand(doc_page: tuple[Page, Log]) -> None:
    page, _ = doc_page
    rows = page.locator("#rows tr").count()
    page.locator("#collapse-all").click()
    assert page.locator("#rows tr").count() == 1 + len(_depth_rows(page, 1))
    page.locator("#expand-all").click()
    assert page.locator("#rows tr").count() == rows


def test_hostile_names_are_text_and_nothing_runs(browser: Browser, hostile: Built) -> None:
    page, log = open_page(browser, hostile.page)
    try:
        # In the table, as text.
        assert page.get_by_text(HOSTILE, exact=True).count() >= 1
        assert page.get_by_text("<i>apps</i>&amp;", exact=True).count() >= 1
        # In the treemap and the tooltip: a click on its name in the table zooms to it.
        page.locator("#rows button.nm", has_text=HOSTILE).click()
        assert _current_crumb(page).startswith(HOSTILE + " (")
        assert (
            page.locator(".tm-box.tm-root .tm-label").inner_text().startswith("P " + HOSTILE + " ")
        )
        page.locator(".tm-box.tm-root").hover(position={"x": 6, "y": 6})
        assert page.locator("#tooltip .tt-name").inner_text() == HOSTILE
        assert page.locator("img").count() == 0
        assert page.locator("i, b").count() == 1  # the page's own <b>[n]</b> in the legend
        assert log.dialogs == []
        assert log.page_errors == [] and log.console_errors == []
        assert page.title() == "Memory usage"
    finally:
        page.close()


def test_no_request_leaves_the_page(browser: Browser, doc: Built) -> None:
    page, log = open_page(browser, doc.page)
    try:
        _box(page, "Kernel memory", "VMOs/processes").click(position={"x": 6, "y": 6})
        _box(page, "Process", "bin/devmgr").hover(position={"x": 6, "y": 6})
        page.locator('th[data-key="name"] button').click()
        page.wait_for_timeout(200)
        assert log.requests == [doc.page.as_uri()]
    finally:
        page.close()


def test_the_page_opens_on_memory_in_use_and_free_can_be_switched_on(
    browser: Browser, doc: Built
) -> None:
    # Defect n: the first view was 92% "free", every process a sliver.
    page, log = open_page(browser, doc.page)
    try:
        tree = doc.tree()
        free = next(c for c in tree.children if c.free)
        assert free.name == "free" and free.size_bytes * 2 > tree.size_bytes
        assert _box(page, "Kernel memory", "free").count() == 0
        assert "free" not in _depth_rows(page, 1)
        switch = page.get_by_label("Show free memory")
        assert not switch.is_checked()
        assert page.locator("#free-toggle").inner_text().strip() == (
            f"Show free memory ({format_size(free.size_bytes)})"
        )
        # The largest process is a box big enough to read its label.
        devmgr = _box(page, "Process", "bin/devmgr").bounding_box()
        assert devmgr is not None and devmgr["width"] * devmgr["height"] > 100 * 100
        # The map starts within the first screen.
        top = page.locator("#map").bounding_box()
        assert top is not None and top["y"] < 450
        switch.check()
        assert page.locator(".tm-box.tm-root .tm-label").inner_text() == (
            f"K All physical memory {format_size(tree.size_bytes)}"
        )
        assert _box(page, "Kernel memory", "free").count() == 1
        assert "free" in _depth_rows(page, 1)
        switch.uncheck()
        assert _box(page, "Kernel memory", "free").count() == 0
        assert log.page_errors == [] and log.console_errors == []
    finally:
        page.close()


def test_the_table_shows_koids_beside_names(doc_page: tuple[Page, Log], doc: Built) -> None:
    page, _ = doc_page
    devmgr, _ = _find(doc.tree(), "bin/devmgr")
    row = page.locator("#rows tr", has=page.get_by_role("button", name="bin/devmgr", exact=True))
    assert row.locator("td.koid").inner_text() == str(devmgr.koid)
    header = page.locator("#table thead th").all_inner_texts()
    assert header[:2] == ["Name", "Koid"]
    root = page.locator('#rows tr[data-depth="0"] td.koid').inner_text()
    assert root == ""  # the kernel's parts have no koid


K, M, G, T, P, E = (1024**i for i in range(1, 7))
UINT64_MAX = 2**64 - 1
# The spec's format_size vectors (magenta-tools.md §1), natural and fixed units.
SIZE_VECTORS: list[tuple[int, str]] = [
    (n, "")
    for n in [
        0, 1, 1023, 1024, 1025, 9 * K, 9 * K + 1, 10 * K, M - K, M, M + K, 9 * M + K,
        G, T, P, E, M - 1, M + M // 3, G - 1, UINT64_MAX, 9999, 10000, 9999 * K,
        9999 * K + 1, 10000 * K, 10 * 1024 + 150, 10 * 1024 + 51, 11190, 11210,
        0x7FFFFEFFF000, 1384 * 1024 + (28 * 1024) // 12, 1023 * 1024 + 1023,
    ]
] + [(UINT64_MAX, u) for u in "BkMGTPE"] + [
    (G, "k"), (M // 10, "M"), (0, "M"), (G, "X"), (K, "?"), (G + 1, "X"), (K + 1, "?"),
]  # fmt: skip


def test_javascript_format_size_matches_python(doc_page: tuple[Page, Log]) -> None:
    page, _ = doc_page
    got = page.evaluate(
        "vs => vs.map(([n, u]) => window.mxmemTreemap.formatSize(n, u))",
        [[str(n), u] for n, u in SIZE_VECTORS],
    )
    assert got == [format_size(n, u) for n, u in SIZE_VECTORS]
    # A few of the spec's vectors spelled out, so the Python side is pinned too.
    assert got[:3] == ["0B", "1B", "1023B"]
    assert got[SIZE_VECTORS.index((UINT64_MAX, ""))] == "16.0E"
    assert got[SIZE_VECTORS.index((M - 1, ""))] == "1024.0k"


@pytest.mark.slow
def test_scale_world_page_loads_quickly(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    built = _build(SCALE_WORLD, tmp_path_factory.mktemp("scale"))
    start = time.perf_counter()
    page, log = open_page(browser, built.page)
    elapsed = time.perf_counter() - start
    try:
        assert elapsed < SCALE_LOAD_LIMIT_S
        assert log.page_errors == [] and log.console_errors == []
        assert page.locator(".tm-box").count() > 50
        processes = page.evaluate(
            "JSON.parse(document.getElementById('treemap-data').textContent).counts.processes"
        )
        assert processes == 3000
        # The table opens level by level up to about 300 rows.
        assert 100 < page.locator("#rows tr").count() <= 300
    finally:
        page.close()
