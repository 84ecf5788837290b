"""``mxmem memgraph [-t] [-v] [-S] [-H]``: the whole system as JSON (spec §6).

Options are parsed the way glibc's ``getopt_long`` parses memgraph.cpp's ``"tvSHh"``
table: short options combine (``-vt``), long ones may be abbreviated to a unique prefix
(``--thr``), arguments that are not options are collected wherever they stand and
reported together afterwards, and ``--`` ends the options. ``-h`` and ``-S`` act as soon
as they are read. ``--json`` is accepted and does nothing (not in the help, which is
memgraph's): every mxmem tool takes it, and memgraph's output is JSON already.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from typing import NamedTuple, TextIO

from mxmem.accounting.magenta2017 import task_memory
from mxmem.cli.common import Tool, print_notes
from mxmem.model import Level
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
 -h|--help     Display this message
"""

SCHEMA_RESOURCE = ("schemas", "memgraph.schema.json")

# getopt_long's table: long name -> the short option it stands for.
_LONG = {
    "threads": "t",
    "vmos": "v",
    "schema": "S",
    "handles": "H",
    "help": "h",
    "json": "",
}
_SHORT = frozenset("tvSHh")


class MemgraphOptions(NamedTuple):
    threads: bool = False
    vmos: bool = False
    handles: bool = False


def schema_text() -> str:
    """The JSON Schema of the output, as shipped in the package."""
    return files("mxmem").joinpath(*SCHEMA_RESOURCE).read_text(encoding="utf-8")


def _usage_error(message: str, err: TextIO) -> int:
    err.write(f"memgraph: {safe_text(message)}\n{HELP}")
    return 1


def _long_option(arg: str, err: TextIO) -> str | int:
    """The short letter ``--name[=value]`` stands for, or the exit code after a
    getopt-style error."""
    name, eq, _value = arg[2:].partition("=")
    # An exact name wins; otherwise a unique prefix ("--thr") stands for the option.
    matches = [n for n in _LONG if n == name] or [n for n in _LONG if name and n.startswith(name)]
    if not matches:
        return _usage_error(f"unrecognized option '{arg}'", err)
    if len(matches) > 1:
        choices = " ".join(f"'--{m}'" for m in matches)
        return _usage_error(f"option '--{name}' is ambiguous; possibilities: {choices}", err)
    if eq:
        return _usage_error(f"option '--{matches[0]}' doesn't allow an argument", err)
    return _LONG[matches[0]]


def parse_args(args: Sequence[str], out: TextIO, err: TextIO) -> MemgraphOptions | int:
    """The options, or the exit code when memgraph is done (help, schema or an error)."""
    opts = MemgraphOptions()
    extra: list[str] = []
    letters: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            extra.extend(args[i + 1 :])
            break
        if arg.startswith("--"):
            letter = _long_option(arg, err)
            if isinstance(letter, int):
                return letter
            letters = [letter] if letter else []
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
    # than ps does.
    level = Level.FULL if opts.vmos or opts.handles else Level.TASKS
    snapshot = source.snapshot(level)
    view = memgraph_view(
        snapshot,
        task_memory(snapshot),
        threads=opts.threads,
        vmos=opts.vmos,
        handles=opts.handles,
    )
    write_memgraph(view.records, out)
    notes = list(snapshot.notes)
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
