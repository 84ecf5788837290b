"""``k mx ps`` over a Linux host: file descriptors by kind instead of Magenta's handle
types (which Linux does not have: no jobs, channels or ports).

The rows keep ``diagnostics.cpp``'s printf layout (``%7llu%4u: %3u ... [%s]``), with the
columns of :data:`LINUX_PS_KEY`. Descriptors are classified by what ``/proc/PID/fd``
links to, as the host source recorded them (:class:`~mxmem.model.ObjType`); memory
objects (handles to VMOs) are split into dma-bufs and the rest (memfds, tmpfs and
``/dev/shm`` files) by the VMO's name. A process whose descriptors could not be read
shows ``?`` in every column; a kernel thread has none.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingOf
from typing import TextIO

from mxmem.model import ObjType, Process, Snapshot, Vmo
from mxmem.render.text import safe_text

__all__ = [
    "LINUX_PS_COLUMNS",
    "LINUX_PS_HEADER",
    "LINUX_PS_KEY",
    "fd_counts",
    "write_linux_ps",
    "write_linux_ps_key",
]

#: Column names in order; ``mf`` and ``db`` are memory objects, told apart by name.
LINUX_PS_COLUMNS = ("fi", "so", "pi", "ev", "tm", "sg", "ep", "mf", "db", "ot")

LINUX_PS_HEADER = f"{'id':>7}  #h:  " + " ".join(f"#{c}" for c in LINUX_PS_COLUMNS) + " [name]\n"

LINUX_PS_KEY = """\
id  : process id number
#h  : total number of file descriptors
#fi : number of files, directories and devices
#so : number of sockets
#pi : number of pipes and FIFOs
#ev : number of eventfds
#tm : number of timerfds
#sg : number of signalfds
#ep : number of epoll instances
#mf : number of memfds and files on tmpfs or /dev/shm
#db : number of dma-bufs
#ot : number of other descriptors (inotify, pidfd, namespaces, other anon inodes)
?   : the process's descriptors could not be read
"""

_COLUMN_OF_TYPE = {
    ObjType.FILE: "fi",
    ObjType.DIRECTORY: "fi",
    ObjType.DEVICE: "fi",
    ObjType.SOCKET: "so",
    ObjType.PIPE: "pi",
    ObjType.FIFO: "pi",
    ObjType.EVENTFD: "ev",
    ObjType.TIMERFD: "tm",
    ObjType.SIGNALFD: "sg",
    ObjType.EPOLL: "ep",
}


def _is_dmabuf(vmo: Vmo | None) -> bool:
    # The host source names a dma-buf "dmabuf:NAME" (from fdinfo) or by its fd link
    # "/dmabuf:NAME".
    return vmo is not None and vmo.name.startswith(("dmabuf:", "/dmabuf:"))


def fd_counts(process: Process, vmos: MappingOf[int, Vmo]) -> tuple[int, dict[str, int]] | None:
    """(total, count per column) of the process's descriptors; ``None`` if unknown."""
    if process.handles is None:
        if process.unreadable is not None:
            return None
        return 0, dict.fromkeys(LINUX_PS_COLUMNS, 0)  # a kernel thread or a zombie
    counts = dict.fromkeys(LINUX_PS_COLUMNS, 0)
    for handle in process.handles:
        if handle.type is ObjType.VMO:
            column = "db" if _is_dmabuf(vmos.get(handle.koid)) else "mf"
        else:
            column = _COLUMN_OF_TYPE.get(handle.type, "ot")
        counts[column] += 1
    return len(process.handles), counts


def write_linux_ps(snapshot: Snapshot, out: TextIO) -> None:
    """``mx ps`` on Linux: every process in the job walk, with its descriptor counts."""
    lines = [LINUX_PS_HEADER]
    for entry in snapshot.walk():
        process = entry.obj
        if entry.kind != "p" or not isinstance(process, Process):
            continue
        counted = fd_counts(process, snapshot.vmos)
        if counted is None:
            total = "   ?"
            cells = " ".join("  ?" for _ in LINUX_PS_COLUMNS)
        else:
            total = f"{counted[0]:4d}"
            cells = " ".join(f"{counted[1][c]:3d}" for c in LINUX_PS_COLUMNS)
        lines.append(f"{process.koid:7d}{total}: {cells} [{safe_text(process.name)}]\n")
    out.write("".join(lines))


def write_linux_ps_key(out: TextIO) -> None:
    """``mx ps help`` on Linux: what the columns mean."""
    out.write(LINUX_PS_KEY)
