"""``mxmem memgraph [-t] [-v] [-S] [-H] [--attribution=MODE]``: the whole system as JSON
(spec §6).

Options are parsed the way glibc's ``getopt_long`` parses memgraph.cpp's ``"tvSHh"``
table: short options combine (``-vt``), long ones may be abbreviated to a unique prefix
(``--thr``), arguments that are not options are collected wherever they stand and
reported together afterwards, and ``--`` ends the options. ``-h`` and ``-S`` act as soon
as they are read. ``--json`` is accepted and does nothing (not in the help, which is
memgraph's): every mxmem tool takes it, and memgraph's output is JSON already.

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

from mxmem.accounting.exact import attribute_snapshot
from mxmem.accounting.magenta2017 import task_memory
from mxmem.cli.common import ATTRIBUTIONS, Tool, print_notes
from mxmem.errors import MxmemError
from mxmem.model import Level
from mxmem.render.exact import exact_notes
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

# getopt_long's table: long name -> the short option it stands for ("" for none, "A" for
# --attribution, which has no short form but is handled like one).
_LONG = {
    "threads": "t",
    "vmos": "v",
    "schema": "S",
    "handles": "H",
    "help": "h",
    "json": "",
    "attribution": "A",
}
_SHORT = frozenset("tvSHh")
# Long options with a required argument.
_TAKES_ARGUMENT = frozenset({"attribution"})


class MemgraphOptions(NamedTuple):
    threads: bool = False
    vmos: bool = False
    handles: bool = False
    exact: bool = False


def schema_text() -> str:
    """The JSON Schema of the output, as shipped in the package."""
    return files("mxmem").joinpath(*SCHEMA_RESOURCE).read_text(encoding="utf-8")


def _usage_error(message: str, err: TextIO) -> int:
    err.write(f"memgraph: {safe_text(message)}\n{HELP}")
    return 1


def _long_option(arg: str, err: TextIO) -> tuple[str, str | None] | int:
    """The long option's name and its ``=value`` (``None`` without one), or the exit code
    after a getopt-style error."""
    name, eq, value = arg[2:].partition("=")
    # An exact name wins; otherwise a unique prefix ("--thr") stands for the option.
    matches = [n for n in _LONG if n == name] or [n for n in _LONG if name and n.startswith(name)]
    if not matches:
        return _usage_error(f"unrecognized option '{arg}'", err)
    if len(matches) > 1:
        choices = " ".join(f"'--{m}'" for m in matches)
        return _usage_error(f"option '--{name}' is ambiguous; possibilities: {choices}", err)
    if eq and matches[0] not in _TAKES_ARGUMENT:
        return _usage_error(f"option '--{matches[0]}' doesn't allow an argument", err)
    return matches[0], value if eq else None


def parse_args(args: Sequence[str], out: TextIO, err: TextIO) -> MemgraphOptions | int:
    """The options, or the exit code when memgraph is done (help, schema or an error)."""
    opts = MemgraphOptions()
    extra: list[str] = []
    letters: list[str] = []
    i = -1
    while i + 1 < len(args):
        i += 1
        arg = args[i]
        if arg == "--":
            extra.extend(args[i + 1 :])
            break
        if arg.startswith("--"):
            found = _long_option(arg, err)
            if isinstance(found, int):
                return found
            name, value = found
            if name in _TAKES_ARGUMENT:
                if value is None:
                    # getopt takes the next argument, whatever it looks like.
                    if i + 1 == len(args):
                        return _usage_error(f"option '--{name}' requires an argument", err)
                    i += 1
                    value = args[i]
                if value not in ATTRIBUTIONS:
                    return _usage_error(f"--attribution must be exact or 2017, not '{value}'", err)
                opts = opts._replace(exact=value == "exact")
                continue
            letters = [_LONG[name]] if _LONG[name] else []
        elif arg.startswith("-") and arg != "-":
            letters = list(arg[1:])
        else:
            extra.append(arg)
            continue
        for letter in letters:
            if letter not in _SHORT:
                return _usage_error(f"invalid option -- '{letter}'", err)
            if letter == "h":
                out.write(HELP)
                return 0
            if letter == "S":
                out.write(schema_text())
                return 0
            if letter == "t":
                opts = opts._replace(threads=True)
            elif letter == "v":
                opts = opts._replace(vmos=True)
            elif letter == "H":
                opts = opts._replace(handles=True)
    if extra:
        err.write("unrecognized extra arguments:\n")
        err.write("".join(f"{safe_text(a)}\n" for a in extra))
        return 1
    return opts


def run(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
    opts = parse_args(args, out, err)
    if isinstance(opts, int):
        return opts
    # VMOs and handle tables are only in full snapshots; plain memgraph needs no more
    # than ps does. Exact attribution needs the page facts.
    level = Level.FULL if opts.vmos or opts.handles else Level.TASKS
    if opts.exact:
        level = Level.PAGES
    snapshot = source.snapshot(level)
    attribution = None
    if opts.exact:
        if snapshot.pages is None:
            raise MxmemError(
                f"memgraph: --attribution=exact: the source ({source.name}) gives no"
                " page-level facts to attribute"
            )
        attribution = attribute_snapshot(snapshot)
    view = memgraph_view(
        snapshot,
        task_memory(snapshot),
        threads=opts.threads,
        vmos=opts.vmos,
        handles=opts.handles,
        attribution=attribution,
    )
    write_memgraph(view.records, out)
    notes = list(snapshot.notes)
    if view.exact is not None and attribution is not None:
        every = (*attribution.notes, *view.exact.notes)
        notes.extend(exact_notes(attribution.exact, every, view.exact.residual_bytes))
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
