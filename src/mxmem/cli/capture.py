"""``mxmem capture -o FILE``: save a full snapshot of the source as an mxmem snapshot file.

``-o FILE.gz`` compresses it (gzip); ``-o -`` writes the JSON to standard output. Any
tool reads the file back with ``--capture FILE`` (the format is told by content) and
prints what it printed on the live source. ``--attribution=exact`` takes the snapshot at
``Level.PAGES``, so the file also carries the page facts exact attribution needs (the
default, ``--attribution=2017``, saves ``Level.FULL``). The format:
``docs/capture-format.md``.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from typing import TextIO

from mxmem.cli.common import Tool, capture_file
from mxmem.cli.options import ATTRIBUTION_OPT, Grammar, Opt, parse, usage_error
from mxmem.cli.outfile import check_output, refuse_input, write_file
from mxmem.model import Level
from mxmem.sources import Source
from mxmem.sources.capture.snapshot_file import dumps

HELP = """\
Usage: capture -o FILE
  Saves a snapshot of the whole system (tasks, address spaces, VMOs, kernel
  figures) as an mxmem snapshot file, for any tool to read back with
  `mxmem --capture FILE TOOL`.
Options:
 -o FILE       Write to FILE; a name ending in .gz is compressed with gzip.
               `-o -` writes the JSON to standard output.
 --attribution=exact
               Also save the page-level facts exact attribution needs, so a
               tool's --attribution=exact on the file counts what the source
               saw page by page (default: --attribution=2017, without them).
 -h|--help     Display this message
"""

_LEVELS = {"2017": Level.FULL, "exact": Level.PAGES}


GRAMMAR = Grammar("capture", HELP, (Opt("output", "o", "output", value=True), ATTRIBUTION_OPT))


def _parse(args: Sequence[str], out: TextIO, err: TextIO) -> tuple[str, Level] | int:
    """The output path and the level to save, or the exit code when the tool is done
    (help or an error)."""
    parsed = parse(GRAMMAR, args, out, err)
    if isinstance(parsed, int):
        return parsed
    path = parsed.values.get("output")
    if not path:
        return usage_error(GRAMMAR, "capture: -o FILE is required", err)
    return path, _LEVELS[parsed.values.get("attribution", "2017")]


def run(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
    parsed = _parse(args, out, err)
    if isinstance(parsed, int):
        return parsed
    path, level = parsed
    if path != "-":
        check_output("capture", path)
        refuse_input("capture", path, capture_file(source))
    text = dumps(source.snapshot(level))
    if path == "-":
        out.write(text)
        return 0
    data = text.encode("ascii")  # dumps escapes everything else
    if path.endswith(".gz"):
        # mtime=0: the same snapshot always gives the same bytes.
        data = gzip.compress(data, mtime=0)
    write_file("capture", path, data)
    return 0


TOOL = Tool("capture", "save a snapshot of the system to a file (read back with --capture)", run)
