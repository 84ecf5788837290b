"""``mxmem [SOURCE] treemap [-o FILE] [--json] [--attribution=MODE] [INPUT]``: the whole
system as one self-contained HTML page.

The successor of Fuchsia's ``scripts/memory/treemap.py`` (spec §7), but a tool like the
others: it maps the source's snapshot (the host by default, ``--sim``, ``--capture=F``),
with the 2017 figures or an exact attribution (``--attribution=exact``), and writes a
page with a zoomable treemap and a sortable table, which needs no network.

The 2017 pipeline ``memgraph -vt | treemap > mem.html`` still works, because that is what
its user means: with no source option, a capture piped or redirected to treemap's
standard input is what it maps (any capture format; memgraph JSON is read by the capture
source like a file). ``INPUT`` names a capture file, ``-`` standard input, as
``--capture=INPUT`` would. A terminal on standard input, or any source option, maps the
source instead; so does an explicit ``--host`` whatever standard input is.
"""

from __future__ import annotations

import os
import select
import stat
import sys
from collections.abc import Sequence
from importlib import resources
from typing import NamedTuple, TextIO

from mxmem.accounting.figures import figures, level_for, no_page_facts, rule_for
from mxmem.cli.common import Tool, capture_file, print_notes
from mxmem.cli.options import ATTRIBUTION_OPT, Grammar, Opt, Wording, parse, usage_error
from mxmem.cli.outfile import check_output, refuse_input, write_file
from mxmem.errors import MxmemError
from mxmem.model import Level, Snapshot
from mxmem.render.exact import figures_notes
from mxmem.render.text import safe_text
from mxmem.sources import Source
from mxmem.sources.capture import NO_MAPPINGS_NOTE, STDIN_NAME, open_capture, read_capture

HELP = """\
Usage: treemap [-o FILE] [--json] [--attribution=exact|2017] [INPUT]
  Writes a zoomable treemap of the whole system's memory (kernel, jobs,
  processes, VMOs) as one self-contained HTML page. It maps the source chosen
  before the tool (`mxmem --sim treemap`, `mxmem --capture=F treemap`; this
  machine by default), or INPUT: a capture file (memgraph JSON, an mxmem
  capture or a Fuchsia capture), or "-" for standard input. With no source
  option, a capture piped to treemap is what it maps, as the 2017 tool did.
Options:
 -o|--output FILE  Write the page to FILE instead of standard output
 --json            Write the whole tree as JSON instead of the page
 --attribution=exact|2017
                   exact: every byte of physical memory once, in the processes
                   and in named kinds of unowned memory, with the residual;
                   2017: treemap.py's tree (the default)
 -h|--help         Display this message
Examples:
  mxmem treemap -o mem.html
  mxmem --sim treemap --attribution=exact -o exact.html
  mxmem memgraph -vt | mxmem treemap > mem.html
"""

# How long treemap waits for piped data before saying what it is waiting for.
_STDIN_HINT_SECONDS = 1.0


class TreemapOptions(NamedTuple):
    input: str | None = None  # a capture file, "-" for standard input, None: the source
    output: str | None = None  # None or "-": standard output
    json: bool = False
    attribution: str = "2017"


class _TreemapWording(Wording):
    def operands(self, tool: str, operands: Sequence[str], spec: str) -> str:
        return f"treemap: more than one INPUT: {safe_text(' '.join(operands))}"


GRAMMAR = Grammar(
    "treemap",
    HELP,
    (Opt("output", "o", "output", value=True), Opt("json", long="json"), ATTRIBUTION_OPT),
    operands=(0, 1),
    wording=_TreemapWording(),
)


def parse_args(args: Sequence[str], out: TextIO, err: TextIO) -> TreemapOptions | int:
    """The options, or the exit code when treemap is done (help or a usage error)."""
    parsed = parse(GRAMMAR, args, out, err)
    if isinstance(parsed, int):
        return parsed
    output = parsed.values.get("output")
    if output == "":
        return usage_error(GRAMMAR, "treemap: the output file name is empty", err)
    return TreemapOptions(
        input=parsed.operands[0] if parsed.operands else None,
        output=output,
        json="json" in parsed.flags,
        attribution=parsed.values.get("attribution", "2017"),
    )


def load_template() -> str:
    """The page template, from the package's data."""
    return (resources.files("mxmem") / "templates" / "treemap.html").read_text(encoding="utf-8")


def _piped_stdin() -> bool:
    """Standard input is a pipe or a file (not a terminal, not /dev/null, not closed)."""
    stdin = sys.stdin
    if stdin is None or getattr(stdin, "buffer", None) is None:
        return False
    try:
        mode = os.fstat(stdin.fileno()).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


def _read_stdin(err: TextIO) -> Source:
    """The capture piped to treemap. If none has come after a moment, say what treemap
    waits for (an `ssh host mxmem treemap` would otherwise seem to hang)."""
    try:
        ready, _, _ = select.select([sys.stdin], [], [], _STDIN_HINT_SECONDS)
    except (OSError, ValueError):
        ready = [sys.stdin]
    if not ready:
        err.write(
            "treemap: waiting for a capture on standard input (name a source, e.g."
            " --host, to map it instead)\n"
        )
    return read_capture(sys.stdin.buffer, STDIN_NAME)


def _choose_source(opts: TreemapOptions, source: Source, err: TextIO) -> Source:
    chosen = getattr(source, "chosen", True)
    if opts.input is not None:
        if chosen:
            raise MxmemError(
                f"treemap: both a source ({safe_text(source.name)}) and INPUT"
                f" ({safe_text(opts.input)}) name what to map; give one"
            )
        return open_capture(opts.input)
    if not chosen and _piped_stdin():
        return _read_stdin(err)
    return source


def _capture_read(opts: TreemapOptions, source: Source) -> str | None:
    """The capture file treemap reads: INPUT, or the file of ``--capture=F``."""
    if opts.input is not None:
        return opts.input
    return capture_file(source)


def _snapshot(source: Source, exact: bool) -> Snapshot:
    snapshot = source.snapshot(level_for("exact" if exact else "2017", Level.FULL))
    if exact and snapshot.pages is None:
        raise MxmemError(f"treemap: {no_page_facts(source.name)}")
    return snapshot


def run(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
    opts = parse_args(args, out, err)
    if isinstance(opts, int):
        return opts
    to_file = opts.output is not None and opts.output != "-"
    if to_file:
        assert opts.output is not None
        check_output("treemap", opts.output)  # before the snapshot, which can be slow
        refuse_input("treemap", opts.output, _capture_read(opts, source))
    exact = opts.attribution == "exact"
    snapshot = _snapshot(_choose_source(opts, source, err), exact)
    # Imported here: --help and usage errors need none of the page's code.
    from mxmem.render.treemap import fold_tree, page_data, tree_json, treemap_html

    # memgraph's placeholder mappings do not matter to a map of memory.
    source_notes = [n for n in snapshot.notes if n != NO_MAPPINGS_NOTE]
    if exact:
        from mxmem.render.treemap import exact_tree

        figs = figures(snapshot, "exact")
        tree = exact_tree(snapshot, figs)
        notes = figures_notes(source_notes, figs.system)
    else:
        from mxmem.render.treemap import memory_tree

        tree = memory_tree(snapshot, figures(snapshot, rule_for(snapshot, "2017")))
        notes = source_notes
    notes.extend(tree.notes)
    if opts.json:
        from mxmem.render.jsonout import dumps_json

        page = dumps_json(tree_json(tree)) + "\n"
    else:
        folded = fold_tree(tree.root)
        page = treemap_html(page_data(tree, folded), load_template())
        if folded.folded:
            notes.append(
                f"{folded.folded} of {folded.total} nodes are folded into larger boxes"
                f" (the page shows {folded.shown})"
            )
    if to_file:
        assert opts.output is not None
        write_file("treemap", opts.output, page.encode("utf-8"))
    else:
        out.write(page)
    print_notes("treemap", list(dict.fromkeys(notes)), err)
    return 0


TOOL = Tool("treemap", "the whole system as a zoomable HTML treemap page", run)
