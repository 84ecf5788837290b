"""``mxmem diff OLD NEW [--json] [--all]``: what changed between two snapshots.

OLD and NEW are capture files (any format ``--capture`` reads, gzipped or not), or the
source spellings ``sim``, ``sim:WORLD`` and ``host``/``host:ROOT``, so a live system can be
compared with a capture. The two operands are the sources: a source option before ``diff``
would be ignored, so it is a usage error. A bad file is the capture loader's one-line error
(exit 2); a wrong command line is one line (exit 2, as in every tool).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from mxmem.accounting.diff import diff
from mxmem.cli.common import Tool, print_notes
from mxmem.cli.options import Grammar, Opt, parse, usage_error
from mxmem.model import Level, Snapshot
from mxmem.render.diff import write_diff_json, write_diff_text
from mxmem.sources import Source, open_source

HELP = """\
Usage: diff OLD NEW [--json] [--all]
Show what changed between two snapshots: kernel memory fields, jobs (PSS and
PRIVATE roll-ups), processes (PSS, PRIVATE, SHARED) and committed bytes per
VMO name, each sorted by growth (largest increase first).
OLD and NEW are capture files (an mxmem snapshot, memgraph JSON or a Fuchsia
capture, gzipped or not), or `sim`, `sim:WORLD`, `host` or `host:ROOT` for a
live source (write ./host for a file named host). No source option goes
before diff: OLD and NEW are the sources.
Jobs and processes are matched by koid when the koid has the same name in
both; the rest are paired by name in koid order (a restarted process shows
OLD>NEW koids); others are new or gone.
 --json   machine-readable output with exact byte counts
 --all    list unchanged rows too
 -h|--help  display this message
"""


def _open(operand: str) -> Snapshot:
    kind = operand.partition(":")[0]
    spec = operand if kind in ("sim", "host") else f"capture:{operand}"
    return open_source(spec).snapshot(Level.FULL)


GRAMMAR = Grammar(
    "diff",
    HELP,
    (Opt("json", long="json"), Opt("all", long="all")),
    operands=(2, 2),
    spec="OLD and NEW",
)


def run(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
    parsed = parse(GRAMMAR, args, out, err)
    if isinstance(parsed, int):
        return parsed
    if getattr(source, "chosen", False):  # the operands name the two sources
        return usage_error(
            GRAMMAR,
            "diff: no source option goes before diff: OLD and NEW are its sources"
            " (`mxmem diff sim:doc host`)",
            err,
        )
    as_json, all_rows = "json" in parsed.flags, "all" in parsed.flags
    operands = parsed.operands
    old, new = (_open(o) for o in operands)
    result = diff(old, new, old_label=operands[0], new_label=operands[1])
    if as_json:
        write_diff_json(result, out, all_rows=all_rows)
    else:
        write_diff_text(result, out, all_rows=all_rows)
    print_notes("diff", result.notes, err)
    return 0


TOOL = Tool("diff", "what changed between two captures or sources, sorted by growth", run)
