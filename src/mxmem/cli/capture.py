"""``mxmem capture -o FILE``: save a full snapshot of the source as an mxmem snapshot file.

``-o FILE.gz`` compresses it (gzip); ``-o -`` writes the JSON to standard output. Any
tool reads the file back with ``--capture FILE`` (the format is told by content) and
prints what it printed on the live source. The format: ``docs/capture-format.md``.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from typing import TextIO

from mxmem.cli.common import Tool
from mxmem.model import Level
from mxmem.render.text import safe_text
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
 -h|--help     Display this message
"""


def _parse(args: Sequence[str], out: TextIO, err: TextIO) -> str | int:
    """The output path, or the exit code when the tool is done (help or an error)."""
    path: str | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-h", "--help"):
            out.write(HELP)
            return 0
        if arg in ("-o", "--output"):
            if i + 1 == len(args):
                err.write(f"capture: {arg} needs a file name\n{HELP}")
                return 1
            path = args[i + 1]
            i += 2
            continue
        if arg.startswith("-o") and len(arg) > 2:
            path = arg[2:]
        elif arg.startswith("--output="):
            path = arg[len("--output=") :]
        else:
            err.write(f"capture: unexpected argument '{safe_text(arg)}'\n{HELP}")
            return 1
        i += 1
    if not path:
        err.write(f"capture: -o FILE is required\n{HELP}")
        return 1
    return path


def run(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
    path = _parse(args, out, err)
    if isinstance(path, int):
        return path
    text = dumps(source.snapshot(Level.FULL))
    if path == "-":
        out.write(text)
        return 0
    data = text.encode("ascii")  # dumps escapes everything else
    if path.endswith(".gz"):
        # mtime=0: the same snapshot always gives the same bytes.
        data = gzip.compress(data, mtime=0)
    # Write a temporary file and rename it, so an interrupted capture never leaves a
    # truncated file under the requested name.
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return 0


TOOL = Tool("capture", "save a snapshot of the system to a file (read back with --capture)", run)
