"""Writing a tool's output file (``capture -o FILE``, ``treemap -o FILE``): whole or not
at all, and every failure one line that names the file the user gave."""

from __future__ import annotations

import contextlib
import os

from mxmem.errors import MxmemError
from mxmem.render.text import safe_text


def check_output(tool: str, path: str) -> None:
    """Fail early, before any slow work, when ``path`` cannot be an output file: it is a
    directory, or its directory does not exist."""
    shown = safe_text(path)
    if os.path.isdir(path):
        raise MxmemError(f"{tool}: cannot write {shown}: it is a directory")
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise MxmemError(f"{tool}: cannot write {shown}: no directory {safe_text(parent)}")


def write_file(tool: str, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it, renamed over it at
    the end, so that an interrupted run never leaves a truncated file under the name
    asked for. Raises :class:`MxmemError` with one line naming ``path`` (never the
    temporary name)."""
    check_output(tool, path)
    shown = safe_text(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):  # never created, or already renamed
            os.unlink(tmp)
        raise MxmemError(f"{tool}: cannot write {shown}: {e.strerror or 'error'}") from None
