"""A process's file descriptors as handles: memory objects (memfd, tmpfs/shm files,
dma-bufs) are VMO handles, the others are typed by what the descriptor is (the table in
:mod:`.host` says how)."""

from __future__ import annotations

import stat

from mxmem.model import Handle, ObjType, Rights
from mxmem.sources.linux.procfs import FdInfo, parse_fdinfo
from mxmem.sources.linux.reader import FileStat, Unreadable, Vanished
from mxmem.sources.linux.scanstate import ScanState, VmoAcc
from mxmem.sources.linux.vmas import SHMEM_PREFIXES, fold_koid

_ANON_INODE_TYPES = {
    "eventfd": ObjType.EVENTFD,
    "timerfd": ObjType.TIMERFD,
    "signalfd": ObjType.SIGNALFD,
    "eventpoll": ObjType.EPOLL,
    "inotify": ObjType.INOTIFY,
    "pidfd": ObjType.PIDFD,
}

_DT = Rights.DUPLICATE | Rights.TRANSFER


def _is_dmabuf(target: str) -> bool:
    return target.startswith("/dmabuf:") or target == "anon_inode:dmabuf"


def _shmem_file(target: str, st: FileStat, shmem_devs: set[tuple[int, int]]) -> bool:
    """Whether a descriptor's file is a memory object of shmem (memfd, tmpfs, shm)."""
    return st.is_regular and (
        target.startswith(SHMEM_PREFIXES) or (st.major, st.minor) in shmem_devs
    )


class FdReads:
    """The descriptor files of one process as :meth:`Descriptors._read_fds` reads them: the
    descriptors (None: the fd directory could not be listed) with their links, and the
    ``stat`` and ``fdinfo`` text, or the error, by descriptor."""

    __slots__ = ("fds", "infos", "stats")

    def __init__(self) -> None:
        self.fds: list[tuple[int, str, str]] | None = None
        self.stats: dict[int, FileStat | Unreadable] = {}
        self.infos: dict[int, str | Unreadable] = {}


class Descriptors(ScanState):
    """The descriptors pass of a scan (Level.FULL)."""

    def _read_fds(self, pid: int, shmem_devs: set[tuple[int, int]]) -> FdReads:
        """The system calls :meth:`_handles` needs, made ahead (at Level.PAGES, on the
        threads that read the process's other files): the descriptors, their links, the
        ``stat`` of those that name files, the ``fdinfo`` of memory objects."""
        fd_dir = f"{self.proc}/{pid}/fd"
        reads = FdReads()
        try:
            names = self.reader.listdir(fd_dir)
        except Unreadable:
            return reads
        reads.fds = []
        for name in sorted(names, key=lambda n: int(n) if n.isdigit() else -1):
            if not name.isdigit():
                continue
            link = f"{fd_dir}/{name}"
            try:
                target = self.reader.readlink(link)
            except Unreadable:
                continue  # closed meanwhile
            fd = int(name)
            reads.fds.append((fd, link, target))
            dmabuf = _is_dmabuf(target)
            if not (target.startswith("/") or dmabuf):
                continue  # (described by its link alone)
            try:
                st = reads.stats[fd] = self.reader.stat(link)
            except Unreadable as err:
                reads.stats[fd] = err
                continue
            if dmabuf or _shmem_file(target, st, shmem_devs):
                try:
                    reads.infos[fd] = self.reader.read(f"{self.proc}/{pid}/fdinfo/{fd}")
                except Unreadable as err:
                    reads.infos[fd] = err
        return reads

    def _handles(
        self,
        pid: int,
        accs: dict[tuple[object, ...], VmoAcc],
        shmem_devs: set[tuple[int, int]],
        reads: FdReads | None = None,
    ) -> tuple[Handle, ...] | None:
        if reads is None:
            reads = self._read_fds(pid, shmem_devs)
        if reads.fds is None:
            return None
        handles: list[Handle] = []
        for fd, link, target in reads.fds:
            handle = self._handle(pid, fd, link, target, accs, shmem_devs, reads)
            if handle is not None:
                handles.append(handle)
        return tuple(handles)

    def _handle(
        self,
        pid: int,
        fd: int,
        link: str,
        target: str,
        accs: dict[tuple[object, ...], VmoAcc],
        shmem_devs: set[tuple[int, int]],
        reads: FdReads,
    ) -> Handle | None:
        own = fold_koid(("fd", pid, fd))
        if target.startswith("socket:["):
            return Handle(fd, fold_koid(("socket", target)), ObjType.SOCKET, _DT)
        if target.startswith("pipe:["):
            return Handle(fd, fold_koid(("pipe", target)), ObjType.PIPE, _DT)
        if target.startswith("pidfd:"):
            return Handle(fd, own, ObjType.PIDFD, _DT)
        dmabuf = _is_dmabuf(target)
        if target.startswith("anon_inode:") and not dmabuf:
            kind = target[len("anon_inode:") :].strip("[]")
            return Handle(fd, own, _ANON_INODE_TYPES.get(kind, ObjType.OTHER), _DT)
        if not target.startswith("/") and not dmabuf:
            return Handle(fd, own, ObjType.OTHER, _DT)  # namespaces ("net:[...]") etc.
        st = reads.stats[fd]
        if isinstance(st, Vanished):
            return None
        if isinstance(st, Unreadable):
            return Handle(fd, own, ObjType.OTHER, _DT)
        key: tuple[object, ...] = ("file", st.major, st.minor, st.ino)
        memory = dmabuf or _shmem_file(target, st, shmem_devs)
        if not memory:
            if st.is_regular:
                obj = ObjType.FILE
            elif stat.S_ISDIR(st.mode):
                obj = ObjType.DIRECTORY
            elif stat.S_ISCHR(st.mode) or stat.S_ISBLK(st.mode):
                obj = ObjType.DEVICE
            elif stat.S_ISFIFO(st.mode):
                obj = ObjType.PIPE
            elif stat.S_ISSOCK(st.mode):
                obj = ObjType.SOCKET
            else:
                obj = ObjType.OTHER
            return Handle(fd, fold_koid(key), obj, _DT)
        text = reads.infos[fd]
        if isinstance(text, Vanished):
            return None
        info: FdInfo | None = None
        if not isinstance(text, Unreadable):
            try:
                info = parse_fdinfo(text)
            except ValueError:
                info = None
        name = target
        if dmabuf and info is not None and target == "anon_inode:dmabuf":
            name = f"dmabuf:{info.name or info.exp_name or ''}"
        acc = self._acc(accs, key, "dmabuf" if dmabuf else "file", name)
        acc.shmem = acc.shmem or not dmabuf
        if link not in acc.probes:
            acc.probes.insert(0, link)
        if dmabuf and info is not None and info.size is not None:
            acc.dmabuf_size = info.size
        rights = _DT
        mode = info.access_mode if info is not None else 0
        if mode in (0, 2):
            rights |= Rights.READ | Rights.MAP  # mmap needs a readable descriptor
        if mode in (1, 2):
            rights |= Rights.WRITE
        return Handle(fd, acc.koid, ObjType.VMO, rights)
