"""``mxmem treemap [-o FILE] [--json] [--attribution=MODE] [INPUT]``: memgraph JSON as one
self-contained HTML page.

The successor of Fuchsia's ``scripts/memory/treemap.py`` (spec §7): it reads what
``memgraph -v`` printed — from mxmem, from a real Magenta system, or made by hand — and
writes a page with a zoomable treemap and a sortable table, which needs no network.

Exact attribution (issue 6): input from ``memgraph --attribution=exact`` gives the exact
tree (:func:`mxmem.render.treemap.exact_tree`) by itself — a process split into its exact
share of each of its VMOs when the input was made with ``-v`` too, else by kind;
``--attribution=exact`` on plain memgraph output computes the attribution from the
records, read as a capture (as far as the capture source can derive page facts from them,
by VMO when the records list VMOs); ``--attribution=2017`` always gives treemap.py's tree.
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import NamedTuple, TextIO

from mxmem.accounting.figures import figures, rule_for
from mxmem.cli.common import ATTRIBUTIONS, Tool, print_notes
from mxmem.errors import MxmemError
from mxmem.model import Level
from mxmem.render.exact import exact_notes
from mxmem.render.jsonout import dumps_json
from mxmem.render.memgraph import memgraph_view
from mxmem.render.text import safe_text
from mxmem.render.treemap import (
    MemGraph,
    exact_tree,
    fold_tree,
    memory_tree,
    page_data,
    parse_memgraph,
    tree_json,
    treemap_html,
)
from mxmem.sources import Source
from mxmem.sources.capture import CaptureSource, load_capture

HELP = """\
Usage: treemap [-o FILE] [--json] [--attribution=exact|2017] [INPUT]
  Reads memgraph JSON (the output of `memgraph -vt`) from INPUT, or from
  standard input when INPUT is missing or "-", and writes a zoomable treemap
  of memory usage as one self-contained HTML page.
Options:
 -o|--output FILE  Write the page to FILE instead of standard output
 --json            Write the whole tree as JSON instead of the page
 --attribution=exact|2017
                   exact: every byte of physical memory once, in the processes
                   and in named kinds of unowned memory, with the residual (from
                   `memgraph --attribution=exact` output, or computed from plain
                   memgraph output as far as it allows); 2017: treemap.py's tree.
                   Default: exact when the input carries it, else 2017
 -h|--help         Display this message
Examples:
  mxmem memgraph -vt | mxmem treemap > mem.html
  mxmem memgraph -vt --attribution=exact | mxmem treemap > exact.html
"""


class TreemapOptions(NamedTuple):
    input: str | None = None  # None or "-": standard input
    output: str | None = None  # None: standard output
    json: bool = False
    attribution: str | None = None  # None: as the input says; "exact" or "2017"


def parse_args(args: Sequence[str], out: TextIO, err: TextIO) -> TreemapOptions | int:
    """The options, or the exit code when treemap is done (help or a usage error)."""
    opts = TreemapOptions()
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-h", "--help"):
            out.write(HELP)
            return 0
        if arg in ("-o", "--output"):
            if i + 1 == len(args):
                err.write(f"treemap: {arg} needs a file name\n{HELP}")
                return 1
            opts = opts._replace(output=args[i + 1])
            i += 1
        elif arg.startswith("--output="):
            opts = opts._replace(output=arg[len("--output=") :])
        elif arg == "--json":
            opts = opts._replace(json=True)
        elif arg == "--attribution" or arg.startswith("--attribution="):
            if arg == "--attribution":
                if i + 1 == len(args):
                    err.write(f"treemap: --attribution needs exact or 2017\n{HELP}")
                    return 1
                i += 1
                mode = args[i]
            else:
                mode = arg[len("--attribution=") :]
            if mode not in ATTRIBUTIONS:
                err.write(
                    f"treemap: --attribution must be exact or 2017, not {safe_text(mode)}\n{HELP}"
                )
                return 1
            opts = opts._replace(attribution=mode)
        elif arg == "--":
            positional.extend(args[i + 1 :])
            break
        elif arg.startswith("-") and arg != "-":
            err.write(f"treemap: unknown option {safe_text(arg)}\n{HELP}")
            return 1
        else:
            positional.append(arg)
        i += 1
    if len(positional) > 1:
        err.write(f"treemap: more than one INPUT: {safe_text(' '.join(positional))}\n{HELP}")
        return 1
    if opts.output == "":
        err.write(f"treemap: the output file name is empty\n{HELP}")
        return 1
    return opts._replace(input=positional[0] if positional else None)


def load_template() -> str:
    """The page template, from the package's data."""
    return (resources.files("mxmem") / "templates" / "treemap.html").read_text(encoding="utf-8")


def _read_input(path: str | None, err: TextIO) -> bytes:
    if path is not None and path != "-":
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise MxmemError(f"treemap: cannot read {path}: {e.strerror or e}") from None
    stdin = sys.stdin
    if stdin is None:
        raise MxmemError("treemap: no standard input; name an INPUT file")
    if stdin.isatty():
        err.write("treemap: reading memgraph JSON from the terminal (see `treemap --help`)\n")
    buffer = getattr(stdin, "buffer", None)
    if buffer is not None:
        data: bytes = buffer.read()
        return data
    return stdin.read().encode("utf-8", "surrogateescape")


def decode_memgraph(raw: bytes) -> object:
    """The JSON value of memgraph's output. Bytes that are not UTF-8 (memgraph printed
    names as the kernel had them) become U+FFFD, and control characters are allowed
    inside strings, since the 2017 memgraph did not escape names."""
    text = raw.decode("utf-8", errors="replace").removeprefix("\ufeff")
    if not text.strip():
        raise MxmemError(
            "treemap: the input is empty (expected memgraph JSON, e.g."
            " `mxmem memgraph -vt | mxmem treemap`)"
        )
    try:
        return json.loads(text, strict=False)
    except json.JSONDecodeError as e:
        raise MxmemError(
            f"treemap: the input is not JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except RecursionError:
        raise MxmemError("treemap: the input is not memgraph JSON: nested too deeply") from None


@contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: decoding and building make millions of objects,
    none in a cycle, and each collection would rescan them all (measured: 40% of the CPU
    time on a 10k-process graph). Reference counting still frees everything."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def run(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
    opts = parse_args(args, out, err)
    if isinstance(opts, int):
        return opts
    raw = _read_input(opts.input, err)
    with no_gc():
        value = decode_memgraph(raw)
        try:
            graph = parse_memgraph(value)
            if opts.attribution == "2017" or (
                opts.attribution is None and graph.attribution is None
            ):
                tree = memory_tree(graph)
            else:
                if graph.attribution is None:
                    graph = attribute_memgraph(raw, opts.input)
                tree = exact_tree(graph)
        except MxmemError as e:
            raise MxmemError(f"treemap: {e}") from None
        if opts.json:
            folded = None
            page = dumps_json(tree_json(tree)) + "\n"
        else:
            folded = fold_tree(tree.root)
            page = treemap_html(page_data(tree, folded), load_template())
    if opts.output is None:
        out.write(page)
    else:
        try:
            with open(opts.output, "w", encoding="utf-8") as f:
                f.write(page)
        except OSError as e:
            raise MxmemError(f"treemap: cannot write {opts.output}: {e.strerror or e}") from None
    notes = list(tree.notes)
    meta = tree.attribution
    if meta is not None:
        notes.extend(exact_notes(meta.exact, meta.notes, meta.residual_bytes))
    if folded is not None and folded.folded:
        notes.append(
            f"{folded.folded} of {folded.total} nodes are folded into larger boxes"
            f" (the page shows {folded.shown})"
        )
    print_notes("treemap", notes, err)
    return 0


def attribute_memgraph(raw: bytes, path: str | None) -> MemGraph:
    """Plain memgraph output made exact: the records read as a capture, asked for page
    facts, attributed, and rendered back as ``memgraph -v --attribution=exact`` records
    (so with each process's VMO list, when the capture's page facts reach VMOs)."""
    where = "standard input" if path is None or path == "-" else path
    source = CaptureSource(load_capture(raw, where), f"capture:{where}")
    snapshot = source.snapshot(Level.PAGES)
    if snapshot.pages is None:
        raise MxmemError(
            f"--attribution=exact: no page facts can be derived from {where} (make the"
            " input with `mxmem memgraph -vt --attribution=exact`)"
        )
    base = figures(snapshot, rule_for(snapshot, "2017"))
    view = memgraph_view(snapshot, base, vmos=True, exact=figures(snapshot, "exact"))
    return parse_memgraph(view.records)


TOOL = Tool("treemap", "memgraph JSON as a zoomable HTML treemap page", run)
