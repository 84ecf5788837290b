"""``mxmem memgraph [-t] [-v] [-S] [-H] [--attribution=MODE]``: the whole system as JSON
(spec §6).

Options are parsed by the common option layer (:mod:`mxmem.cli.options`), whose grammar
is glibc's ``getopt_long``, over memgraph.cpp's ``"tvSHh"`` table: short options combine
(``-vt``), long ones may be abbreviated to a unique prefix (``--thr``), arguments that are
not options are collected wherever they stand and reported together afterwards, and
``--`` ends the options. ``-h`` and ``-S`` act as soon as they are read. ``--json`` is
accepted and does nothing (not in the help, which is memgraph's): every mxmem tool takes
it, and memgraph's output is JSON already.

``--attribution=exact`` (issue 6; an mxmem addition, with a required argument as getopt
takes it: ``--attribution=exact`` or ``--attribution exact``) asks the source for page
facts and adds the exact attribution to the 2017 records (with ``-v``, each process's
private and shared bytes by VMO too); ``--attribution=2017`` is the default and adds
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from typing import NamedTuple, TextIO

from mxmem.accounting.figures import NoPageFacts, figures, level_for, no_page_facts, rule_for
from mxmem.cli.common import Tool, print_notes
from mxmem.cli.options import ATTRIBUTION_OPT, Grammar, Opt, Wording, parse
from mxmem.model import Level
from mxmem.render.exact import figures_notes
from mxmem.render.memgraph import memgraph_view, write_memgraph
from mxmem.render.text import safe_text
from mxmem.sources import Source

# memgraph.cpp's help, with the -H line later Zircon's memgraph.cc added.
HELP = """\
Usage: memgraph [options]
  Prints system-wide task and memory info as JSON.
Options:
 -t|--threads  Include threads in the output
 -v|--vmos     Include VMOs in the output
 -S|--schema   Print the schema for the JSON output format
 -H|--handles  Include handle stats in the output
 --attribution=exact|2017
               exact: also attribute every byte of physical memory once, to
               the processes and to named kinds of unowned memory (2017: the
               default, the 2017 figures only)
 -h|--help     Display this message
"""

SCHEMA_RESOURCE = ("schemas", "memgraph.schema.json")


class _MemgraphWording(Wording):
    """memgraph.cpp's: arguments that are not options are listed, one a line, alone."""

    operands_alone = True

    def operands(self, tool: str, operands: Sequence[str], spec: str) -> str:
        return "unrecognized extra arguments:\n" + "\n".join(safe_text(a) for a in operands)


# getopt_long's table: "tvSHh" and their long names; --json is accepted and does
# nothing; -S prints the schema as soon as it is read, as -h prints the help.
GRAMMAR = Grammar(
    "memgraph",
    HELP,
    (
        Opt("threads", "t", "threads"),
        Opt("vmos", "v", "vmos"),
        Opt("schema", "S", "schema", acts=True),
        Opt("handles", "H", "handles"),
        Opt("help", "h", "help", acts=True),
        Opt("json", long="json"),
        ATTRIBUTION_OPT,
    ),
    after_error="help",
    wording=_MemgraphWording(),
)


class MemgraphOptions(NamedTuple):
    threads: bool = False
    vmos: bool = False
    handles: bool = False
    exact: bool = False


def schema_text() -> str:
    """The JSON Schema of the output, as shipped in the package."""
    return files("mxmem").joinpath(*SCHEMA_RESOURCE).read_text(encoding="utf-8")


def parse_args(args: Sequence[str], out: TextIO, err: TextIO) -> MemgraphOptions | int:
    """The options, or the exit code when memgraph is done (help, schema or an error)."""
    parsed = parse(GRAMMAR, args, out, err)
    if isinstance(parsed, int):
        return parsed
    if "schema" in parsed.flags:
        out.write(schema_text())
        return 0
    return MemgraphOptions(
        threads="threads" in parsed.flags,
        vmos="vmos" in parsed.flags,
        handles="handles" in parsed.flags,
        exact=parsed.values.get("attribution") == "exact",
    )


def run(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
    opts = parse_args(args, out, err)
    if isinstance(opts, int):
        return opts
    # VMOs and handle tables are only in full snapshots; plain memgraph needs no more
    # than ps does. Exact attribution needs the page facts.
    level = Level.FULL if opts.vmos or opts.handles else Level.TASKS
    attribution = "exact" if opts.exact else "2017"
    snapshot = source.snapshot(level_for(attribution, level))
    try:
        # The 2017 records always; with --attribution=exact the exact fields too.
        exact = figures(snapshot, "exact") if opts.exact else None
    except NoPageFacts:
        err.write(f"memgraph: {safe_text(no_page_facts(source.name))}\n")
        return 1
    view = memgraph_view(
        snapshot,
        figures(snapshot, rule_for(snapshot, "2017")),
        threads=opts.threads,
        vmos=opts.vmos,
        handles=opts.handles,
        exact=exact,
    )
    write_memgraph(view.records, out)
    notes = figures_notes(snapshot.notes, None if exact is None else exact.system)
    if snapshot.kernel is None:
        notes.append("the source has no kernel memory figures; there are no kernel records")
    if view.unknown_processes:
        plural = "es" if view.unknown_processes != 1 else ""
        notes.append(
            f"the sizes of {view.unknown_processes} process{plural} are unknown;"
            " their records have no size fields"
        )
    if view.missing_vmo_refs:
        notes.append(
            f"{view.missing_vmo_refs} VMO references could not be resolved and are not listed"
        )
    print_notes("memgraph", notes, err)
    return 0


TOOL = Tool("memgraph", "the whole system (kernel, tasks, VMOs) as JSON records", run)
