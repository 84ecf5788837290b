"""Writing a tool's output file (``capture -o FILE``, ``treemap -o FILE``): whole or not
at all, and every failure one line that names the file the user gave.

A regular file is written through a temporary file beside it, renamed over it at the end,
so that an interrupted run never leaves a truncated file under the name asked for. What
the rename would destroy is written in place instead, as a shell's ``>`` would: a device,
a FIFO or a socket (``-o /dev/null`` must stay a device, a FIFO's reader must get the
bytes) and a file with more than one hard link (the rename would break the link). A
symlink is followed: the file it names is replaced, in its own directory, and the link
stays. A replaced file keeps its mode (and owner, where we may set it)."""

from __future__ import annotations

import contextlib
import os
import stat

from mxmem.errors import MxmemError, UsageError
from mxmem.render.text import safe_text


def _no_directory(parent: str) -> str:
    """Why ``parent`` cannot hold a new file: the nearest existing ancestor is a file, or
    the directory does not exist."""
    probe = parent
    while probe and not os.path.lexists(probe):
        up = os.path.dirname(probe)
        if up == probe:
            break
        probe = up
    if probe and os.path.exists(probe) and not os.path.isdir(probe):
        return f"{safe_text(probe)} is not a directory"
    return f"no directory {safe_text(parent)}"


def check_output(tool: str, path: str) -> None:
    """Fail early, before any slow work, when ``path`` cannot be an output file: it is a
    directory, or its directory does not exist (or is a file)."""
    shown = safe_text(path)
    if os.path.isdir(path):
        raise MxmemError(f"{tool}: cannot write {shown}: it is a directory")
    parent = os.path.dirname(os.path.realpath(path)) if os.path.islink(path) else None
    parent = parent or os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise MxmemError(f"{tool}: cannot write {shown}: {_no_directory(parent)}")


def refuse_input(tool: str, output: str, capture: str | None) -> None:
    """A usage error when ``output`` is the capture file being read (``capture``; None or
    ``-``: not a file): writing would destroy the input."""
    if capture is None or capture == "-" or output == "-":
        return
    try:
        same = os.path.samefile(output, capture)
    except OSError:  # one of them does not exist (yet): not the same file
        return
    if same:
        raise UsageError(
            f"{tool}: -o {safe_text(output)} is the capture being read; write to another file",
            2,
        )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _in_place(target: str, truncate: bool, data: bytes) -> None:
    fd = os.open(target, os.O_WRONLY | (os.O_TRUNC if truncate else 0))
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _replace(target: str, old: os.stat_result | None, data: bytes) -> None:
    tmp = f"{target}.tmp{os.getpid()}"
    try:
        # 0o666 less the umask for a new file; an existing one's mode is set below.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            _write_all(fd, data)
            if old is not None:
                os.fchmod(fd, stat.S_IMODE(old.st_mode))
                if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                    with contextlib.suppress(OSError):  # only root may give a file away
                        os.fchown(fd, old.st_uid, old.st_gid)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError:
        with contextlib.suppress(OSError):  # never created, or already renamed
            os.unlink(tmp)
        raise


def _reason(target: str, old: os.stat_result | None, error: OSError) -> str:
    """The real reason a file could not be written: a read-only file is one, whatever
    creating the temporary file beside it said (in /proc: "No such file")."""
    if old is not None and not old.st_mode & 0o222:
        return f"it is read-only (mode {stat.S_IMODE(old.st_mode):04o})"
    if old is None or error.filename != target:
        where = safe_text(os.path.dirname(target) or ".")
        return f"{error.strerror or 'error'} (creating a file in {where})"
    return error.strerror or "error"


def write_file(tool: str, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` (see the module's docstring for how). Raises
    :class:`MxmemError` with one line naming ``path`` (never the temporary name)."""
    check_output(tool, path)
    shown = safe_text(path)
    target = os.path.realpath(path) if os.path.islink(path) else path
    old: os.stat_result | None = None
    try:
        old = os.stat(target)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise MxmemError(f"{tool}: cannot write {shown}: {e.strerror or 'error'}") from None
    try:
        if old is not None and not stat.S_ISREG(old.st_mode):
            _in_place(target, False, data)
        elif old is not None and old.st_nlink > 1:
            _in_place(target, True, data)
        else:
            try:
                _replace(target, old, data)
            except OSError as e:
                why = _reason(target, old, e)
                raise MxmemError(f"{tool}: cannot write {shown}: {why}") from None
    except OSError as e:
        raise MxmemError(f"{tool}: cannot write {shown}: {e.strerror or 'error'}") from None
