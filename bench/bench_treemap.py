"""Time ``memgraph -vt | treemap`` over scale worlds, and the page's load in Chromium.

    python3 bench/bench_treemap.py                # scale:10000 and scale:100000
    python3 bench/bench_treemap.py --quick        # scale:1000 and scale:10000
    python3 bench/bench_treemap.py 3000 50000     # any sizes
    python3 bench/bench_treemap.py --no-browser   # the Python side only

For each world, once (a 100k-process world takes minutes to build and to snapshot):

* ``build``: generating the world (not part of any tool);
* ``memgraph``: the real ``memgraph -vt`` tool into a string (snapshot, accounting, JSON);
* the treemap's steps on that text, as ``memgraph -vt | treemap`` runs them: ``read``
  (the capture source's memgraph reader, :func:`load_capture`: decode, checks,
  snapshot), ``figures`` (:func:`~mxmem.accounting.figures.figures`), ``tree``
  (:func:`memory_tree`), ``fold`` (:func:`fold_tree`) and ``html`` (:func:`page_data`
  + :func:`treemap_html`);
* ``snapshot``: the tool's own way in, ``mxmem --sim=scale:N treemap``: the source's
  snapshot (``Level.FULL``), after which figures, tree, fold and html are the same steps;
  ``direct`` = snapshot + figures + tree + fold + html;
* ``load``: headless Chromium (Debian's, ``/usr/bin/chromium``) opening the page from a
  ``file://`` URL until its script has drawn the treemap and the table, best of 3.

Wall time is ``time.perf_counter``; CPU time (``time.process_time``) is shown beside it
for the Python steps, as other work on the machine inflates wall time.
"""

from __future__ import annotations

import argparse
import gc
import io
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from mxmem.accounting.figures import Figures, figures, rule_for
from mxmem.cli import memgraph as memgraph_cli
from mxmem.cli.treemap import load_template
from mxmem.model import Level, Snapshot
from mxmem.render.treemap import (
    FoldedTree,
    MemoryTree,
    fold_tree,
    memory_tree,
    page_data,
    treemap_html,
)
from mxmem.sources.capture import load_capture
from mxmem.sources.sim import SimSource
from mxmem.sources.sim.worlds import scale

DEFAULT_SIZES = (10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

T = TypeVar("T")


@contextmanager
def no_gc() -> Iterator[None]:
    """As ``mxmem`` runs a tool: the cyclic GC off (see ``cli.main``)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Timing(NamedTuple):
    wall_s: float
    cpu_s: float

    def __str__(self) -> str:
        return f"{self.wall_s:7.2f} ({self.cpu_s:6.2f})"


def timed(fn: Callable[..., T], *args: object) -> tuple[Timing, T]:
    gc.collect()  # no garbage of the previous step is collected on this one's time
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return Timing(time.perf_counter() - wall, time.process_time() - cpu), result


class Row(NamedTuple):
    n: int
    vmos: int
    memgraph_mb: float
    build: Timing
    memgraph: Timing
    snapshot: Timing
    read: Timing
    figures: Timing
    tree: Timing
    fold: Timing
    html: Timing
    total_nodes: int
    shown_nodes: int
    page_mb: float
    load_s: float | None

    @property
    def treemap(self) -> Timing:
        steps = (self.read, self.figures, self.tree, self.fold, self.html)
        return Timing(sum(s.wall_s for s in steps), sum(s.cpu_s for s in steps))

    @property
    def direct(self) -> Timing:
        steps = (self.snapshot, self.figures, self.tree, self.fold, self.html)
        return Timing(sum(s.wall_s for s in steps), sum(s.cpu_s for s in steps))


def page_load_s(page_path: Path, repeat: int = 3) -> float | None:
    """Best-of-``repeat`` seconds from navigation to the page's ready mark."""
    if not CHROMIUM.exists():
        return None
    from playwright.sync_api import sync_playwright

    best = float("inf")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for _ in range(repeat):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                start = time.perf_counter()
                page.goto(page_path.as_uri())
                page.wait_for_selector("html[data-ready=true]", timeout=300_000)
                best = min(best, time.perf_counter() - start)
                page.close()
        finally:
            browser.close()
    return best


def run_memgraph(source: SimSource) -> str:
    """The real ``memgraph -vt`` tool's output."""
    out, err = io.StringIO(), io.StringIO()
    code = memgraph_cli.TOOL.run(["-vt"], source, out, err)
    assert code == 0, err.getvalue()
    return out.getvalue()


def figures_2017(snapshot: Snapshot) -> Figures:
    return figures(snapshot, rule_for(snapshot, "2017"))


def render_page(tree: MemoryTree, folded: FoldedTree, template: str) -> str:
    return treemap_html(page_data(tree, folded), template)


def measure(n: int, browser: bool, directory: Path) -> Row:
    print(f"scale:{n}: building the world...", file=sys.stderr, flush=True)
    build, kernel = timed(lambda: scale.build_spec(f"scale:{n}"))
    source = SimSource(kernel, f"sim:scale:{n}")

    print(f"scale:{n}: memgraph -vt...", file=sys.stderr, flush=True)
    memgraph, text = timed(run_memgraph, source)
    with no_gc():
        snapshot_t, direct = timed(source.snapshot, Level.FULL)
    del kernel, source, direct  # the world's memory is not the treemap's
    raw = text.encode()
    del text
    print(f"scale:{n}: treemap ({len(raw) / 1e6:.0f} MB)...", file=sys.stderr, flush=True)
    template = load_template()
    with no_gc():  # as the treemap tool runs them
        read, snapshot = timed(load_capture, raw, "memgraph")
        figures_t, figs = timed(figures_2017, snapshot)
        tree_t, tree = timed(memory_tree, snapshot, figs)
        del snapshot, figs
        fold, folded = timed(fold_tree, tree.root)
        html_t, html = timed(render_page, tree, folded, template)
    page_path = directory / f"scale-{n}.html"
    page_path.write_text(html, encoding="utf-8")
    load = None
    if browser:
        print(f"scale:{n}: loading the page in Chromium...", file=sys.stderr, flush=True)
        load = page_load_s(page_path)
    return Row(
        n=n,
        vmos=tree.vmos,
        memgraph_mb=len(raw) / 1e6,
        build=build,
        memgraph=memgraph,
        snapshot=snapshot_t,
        read=read,
        figures=figures_t,
        tree=tree_t,
        fold=fold,
        html=html_t,
        total_nodes=folded.total,
        shown_nodes=folded.shown,
        page_mb=len(html) / 1e6,
        load_s=load,
    )


def print_table(rows: Sequence[Row]) -> None:
    print(
        "Seconds, wall (CPU). treemap = read + figures + tree + fold + html (from memgraph"
        " text); direct = snapshot + figures + tree + fold + html (`--sim=... treemap`)."
    )
    columns = [
        ("processes", lambda r: f"{r.n:>9}"),
        ("VMOs", lambda r: f"{r.vmos:>9}"),
        ("memgraph MB", lambda r: f"{r.memgraph_mb:>11.1f}"),
        ("build", lambda r: str(r.build)),
        ("memgraph -vt", lambda r: str(r.memgraph)),
        ("read", lambda r: str(r.read)),
        ("figures", lambda r: str(r.figures)),
        ("tree", lambda r: str(r.tree)),
        ("fold", lambda r: str(r.fold)),
        ("html", lambda r: str(r.html)),
        ("treemap", lambda r: str(r.treemap)),
        ("snapshot", lambda r: str(r.snapshot)),
        ("direct", lambda r: str(r.direct)),
        ("nodes (shown)", lambda r: f"{r.total_nodes} ({r.shown_nodes})"),
        ("page MB", lambda r: f"{r.page_mb:>7.1f}"),
        ("page load", lambda r: "n/a" if r.load_s is None else f"{r.load_s:9.2f}"),
    ]
    for title, cell in columns:
        print(f"{title:>14} | " + " | ".join(f"{cell(r):>18}" for r in rows))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, help="numbers of processes")
    parser.add_argument("--quick", action="store_true", help="scale:1000 and scale:10000")
    parser.add_argument("--no-browser", action="store_true", help="skip the page load")
    args = parser.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-treemap-") as tmp:
        for n in sizes:
            rows.append(measure(n, not args.no_browser, Path(tmp)))
    print_table(rows)
    if not args.no_browser and not CHROMIUM.exists():
        print(f"(page load: n/a, {CHROMIUM} is missing)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
