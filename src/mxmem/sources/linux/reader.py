"""The one seam between the host source and the running system.

:class:`ProcReader` (with the :class:`Pagemap` it opens) is the only code of mxmem that
opens ``/proc`` and ``/sys`` files or calls ``os`` on them (and the system calls ``kcmp``
and ``cachestat`` and the ``PAGEMAP_SCAN`` ioctl), text files and binary ones alike
(:meth:`ProcReader.read_ranges` and :meth:`Pagemap.read`: ``pagemap``, ``kpagecount``).
A fixture tree has no PAGEMAP_SCAN (:meth:`Pagemap.present` answers None). Its root is
configurable, like psutil's ``PROCFS_PATH``: ``ProcReader("/tmp/tree")`` reads
``/tmp/tree/proc/...`` and ``/tmp/tree/sys/...``, so tests can point it at a fixture tree.
Nothing here runs at import time.

Failures come out typed. A file of a process that has exited (``ENOENT``, ``ESRCH``)
raises :class:`Vanished`; a file the caller may not read (``EACCES``, ``EPERM``) raises
:class:`AccessDenied`; any other ``OSError`` raises :class:`Unreadable` with the
system's message. All three are :class:`~mxmem.errors.MxmemError`\\ s, raised ``from``
the ``OSError``.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from mxmem.errors import MxmemError

if TYPE_CHECKING:
    import ctypes

__all__ = ["AccessDenied", "FileStat", "Pagemap", "ProcReader", "Unreadable", "Vanished"]


class Unreadable(MxmemError):
    """A /proc or /sys file could not be read; ``reason`` says why in a few words."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot read {path}: {reason}")
        self.path = path
        self.reason = reason


class AccessDenied(Unreadable):
    """``EACCES``/``EPERM``: other users' processes need root (or CAP_SYS_PTRACE), and
    some (PID 1 in a container) refuse even root."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "permission denied")


class Vanished(Unreadable):
    """``ENOENT``/``ESRCH``: the process (or thread, or file descriptor) is gone."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "no such process")


def _error(err: OSError, path: str) -> Unreadable:
    if err.errno in (errno.ENOENT, errno.ESRCH):
        return Vanished(path)
    if err.errno in (errno.EACCES, errno.EPERM):
        return AccessDenied(path)
    return Unreadable(path, err.strerror or f"errno {err.errno}")


class FileStat(NamedTuple):
    """What ``stat(2)`` says about an object, with the device split like ``maps``
    prints it (``fe:00`` is major 0xfe, minor 0)."""

    major: int
    minor: int
    ino: int
    mode: int
    size: int
    blocks: int  # 512-byte units; for shmem this includes swapped-out pages

    @property
    def is_regular(self) -> bool:
        return stat.S_ISREG(self.mode)


# Syscall numbers, x86-64 and the asm-generic table (arm64, riscv...) agree on neither.
_SYS_KCMP = {"x86_64": 312, "aarch64": 272, "riscv64": 272, "i686": 349}
_SYS_CACHESTAT = 451  # the same on every architecture (added after the tables merged)
_KCMP_VM = 1


# ctypes is imported on the first system call, not with this module: ps, which only
# reads files on most systems, would pay ~5 ms for it on every run.
@functools.cache
def _cachestat_structs() -> tuple[type[ctypes.Structure], type[ctypes.Structure]]:
    """``struct cachestat_range`` and ``struct cachestat`` (include/uapi/linux/mman.h)."""
    import ctypes

    class CachestatRange(ctypes.Structure):
        _fields_ = (("off", ctypes.c_uint64), ("len", ctypes.c_uint64))

    class Cachestat(ctypes.Structure):
        _fields_ = (
            ("nr_cache", ctypes.c_uint64),
            ("nr_dirty", ctypes.c_uint64),
            ("nr_writeback", ctypes.c_uint64),
            ("nr_evicted", ctypes.c_uint64),
            ("nr_recently_evicted", ctypes.c_uint64),
        )

    return CachestatRange, Cachestat


# PAGEMAP_SCAN (Linux 6.7, fs/proc/task_mmu.c; include/uapi/linux/fs.h): the ioctl
# number is _IOWR('f', 16, struct pm_scan_arg), with the struct's 96 bytes in it.
_PM_SCAN_ARG_FIELDS = (
    "size",
    "flags",
    "start",
    "end",
    "walk_end",
    "vec",
    "vec_len",
    "max_pages",
    "category_inverted",
    "category_mask",
    "category_anyof_mask",
    "return_mask",
)
_PAGEMAP_SCAN = (3 << 30) | (8 * len(_PM_SCAN_ARG_FIELDS) << 16) | (ord("f") << 8) | 16
_PAGE_IS_PRESENT = 1 << 3
# What an ioctl that the kernel does not have (ENOTTY: before 6.7) or does not take
# (EINVAL: another struct layout) answers.
_NO_IOCTL = frozenset({errno.ENOTTY, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})
_REGIONS = 256  # struct page_region slots per PAGEMAP_SCAN call


@functools.cache
def _scan_structs() -> tuple[type[ctypes.Structure], type[ctypes.Structure]]:
    """``struct pm_scan_arg`` and ``struct page_region`` (include/uapi/linux/fs.h)."""
    import ctypes

    class PmScanArg(ctypes.Structure):
        _fields_ = tuple((name, ctypes.c_uint64) for name in _PM_SCAN_ARG_FIELDS)

    class PageRegion(ctypes.Structure):
        _fields_ = (
            ("start", ctypes.c_uint64),
            ("end", ctypes.c_uint64),
            ("categories", ctypes.c_uint64),
        )

    return PmScanArg, PageRegion


# /proc files are read with one os.read of this size: the single-record files (stat,
# status, smaps_rollup, cgroup, fdinfo, meminfo) come back whole in one call, and a
# short read means the end. Multi-record files (smaps, maps) return about a page per read.
_CHUNK = 1 << 16
_O_READ = os.O_RDONLY | os.O_CLOEXEC


def _read_ranges(fd: int, path: str, offsets: Sequence[int], sizes: Sequence[int]) -> bytearray:
    buffer = bytearray(sum(sizes))
    view = memoryview(buffer)
    try:
        pos = 0
        for offset, size in zip(offsets, sizes, strict=True):
            end = pos + size
            while pos < end:
                got = os.preadv(fd, [view[pos:end]], offset)
                if got <= 0:
                    break
                pos += got
                offset += got
            pos = end
    except OSError as err:
        raise _error(err, path) from err
    finally:
        view.release()
    return buffer


class Pagemap:
    """An open ``/proc/PID/pagemap`` (from :meth:`ProcReader.pagemap`; close it, or use
    it in a ``with``): reads of its entries, and where pages are present, asked with the
    ``PAGEMAP_SCAN`` ioctl. One thread at a time."""

    def __init__(self, reader: ProcReader, path: str, fd: int) -> None:
        self.path = path
        self._reader = reader
        self._fd = fd
        self._arg: ctypes.Structure | None = None
        self._vec: ctypes.Array[ctypes.Structure] | None = None

    def __enter__(self) -> Pagemap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def read(self, offsets: Sequence[int], sizes: Sequence[int]) -> bytearray:
        """As :meth:`ProcReader.read_ranges`, on this open file."""
        return _read_ranges(self._fd, self.path, offsets, sizes)

    def present(self, start: int, end: int, limit: int = 0) -> list[tuple[int, int]] | None:
        """The address ranges in ``[start, end)`` whose pages are present, in order
        (adjacent ones merged), from ``PAGEMAP_SCAN`` (Linux 6.7); with ``limit``, the
        scan stops after that many pages. ``None`` when the kernel has no such ioctl
        (then only reading the entries tells). The kernel walks only the page tables
        that exist: a range with none, however large, costs next to nothing; one of
        present pages costs about what reading its entries does."""
        if not self._reader.live:
            return None
        import ctypes

        arg = self._arg
        vec = self._vec
        if arg is None or vec is None:
            arg_type, region_type = _scan_structs()
            vec = self._vec = (region_type * _REGIONS)()
            arg = self._arg = arg_type(
                size=ctypes.sizeof(arg_type),
                vec=ctypes.addressof(vec),
                vec_len=_REGIONS,
                category_anyof_mask=_PAGE_IS_PRESENT,
                return_mask=_PAGE_IS_PRESENT,
            )
        libc = self._reader._syscall()
        arg.max_pages = limit
        out: list[tuple[int, int]] = []
        at = start
        while at < end:
            arg.start, arg.end = at, end
            found: int = libc.ioctl(self._fd, ctypes.c_ulong(_PAGEMAP_SCAN), ctypes.byref(arg))
            if found < 0:
                err = ctypes.get_errno()
                if err in _NO_IOCTL:
                    return None
                raise _error(OSError(err, os.strerror(err)), self.path)
            for region in vec[:found]:
                a, b = region.start, region.end
                if out and out[-1][1] == a:
                    out[-1] = (out[-1][0], b)
                else:
                    out.append((a, b))
            walked: int = arg.walk_end
            if (limit and found) or walked <= at:
                break  # enough found, or the walk got no further (the vector was not full)
            at = walked
        return out


class ProcReader:
    """Reads ``<root>/proc`` and ``<root>/sys``; ``root`` is ``/`` for the live system."""

    def __init__(self, root: str = "/") -> None:
        base = root.rstrip("/")
        self.root = root
        self.live = base == ""
        self.proc = f"{base}/proc"
        self.sys = f"{base}/sys"
        self._base = base
        self._libc: ctypes.CDLL | None = None

    def host_path(self, path: str) -> str:
        """An absolute path of the inspected system (``/sys/fs/cgroup``) under the root."""
        return self._base + path

    # --- files ----------------------------------------------------------------------

    def read(self, path: str) -> str:
        """The whole text of a single-record file, in one ``read`` when it fits."""
        try:
            fd = os.open(path, _O_READ)
        except OSError as err:
            raise _error(err, path) from err
        try:
            data = os.read(fd, _CHUNK)
            if len(data) == _CHUNK:
                chunks = [data]
                while chunk := os.read(fd, _CHUNK):
                    chunks.append(chunk)
                data = b"".join(chunks)
        except OSError as err:
            raise _error(err, path) from err
        finally:
            os.close(fd)
        # surrogateescape: names are bytes, not always UTF-8; safe_text shows the bytes.
        return data.decode("utf-8", "surrogateescape")

    def read_all(self, path: str) -> str:
        """The whole text of a multi-record seq_file (``smaps``, ``maps``), read until
        ``read`` returns nothing: a short read is not the end there."""
        try:
            fd = os.open(path, _O_READ)
        except OSError as err:
            raise _error(err, path) from err
        chunks: list[bytes] = []
        try:
            while chunk := os.read(fd, _CHUNK):
                chunks.append(chunk)
        except OSError as err:
            raise _error(err, path) from err
        finally:
            os.close(fd)
        return b"".join(chunks).decode("utf-8", "surrogateescape")

    def read_head(self, path: str, size: int) -> str:
        """At most the first ``size`` bytes of a file (one ``read``): for the few lines
        wanted from the top of a large generated file (``/proc/kallsyms``, 5 MB)."""
        try:
            fd = os.open(path, _O_READ)
        except OSError as err:
            raise _error(err, path) from err
        try:
            data = os.read(fd, size)
        except OSError as err:
            raise _error(err, path) from err
        finally:
            os.close(fd)
        return data.decode("utf-8", "surrogateescape")

    def read_ranges(self, path: str, offsets: Sequence[int], sizes: Sequence[int]) -> bytearray:
        """The bytes at ``offsets[i]`` (``sizes[i]`` long) of a binary file, one after the
        other in one buffer: one ``open`` and one ``preadv`` per range, straight into the
        buffer (``/proc/PID/pagemap``, ``/proc/kpagecount``; their reads must be multiples
        of 8 bytes at offsets that are, which the caller's ranges are). What a short read
        leaves unfilled stays zero: past the end of ``kpagecount`` there are no pages."""
        try:
            fd = os.open(path, _O_READ)
        except OSError as err:
            raise _error(err, path) from err
        try:
            return _read_ranges(fd, path, offsets, sizes)
        finally:
            os.close(fd)

    def pagemap(self, pid: int | str) -> Pagemap:
        """``/proc/PID/pagemap``, open."""
        path = f"{self.proc}/{pid}/pagemap"
        try:
            return Pagemap(self, path, os.open(path, _O_READ))
        except OSError as err:
            raise _error(err, path) from err

    def listdir(self, path: str) -> list[str]:
        try:
            return os.listdir(path)
        except OSError as err:
            raise _error(err, path) from err

    def readlink(self, path: str) -> str:
        try:
            return os.readlink(path)
        except OSError as err:
            raise _error(err, path) from err

    def stat(self, path: str) -> FileStat:
        """``stat`` following links: through ``/proc/PID/fd/N`` or ``map_files/A-B``
        this is the open object itself, even when its name is deleted."""
        try:
            st = os.stat(path)
        except OSError as err:
            raise _error(err, path) from err
        dev = st.st_dev
        return FileStat(
            os.major(dev), os.minor(dev), st.st_ino, st.st_mode, st.st_size, st.st_blocks
        )

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def pids(self) -> list[int]:
        """The thread-group ids listed in ``/proc``, ascending."""
        return sorted(int(name) for name in self.listdir(self.proc) if name.isdigit())

    def subdirs(self, path: str) -> list[tuple[str, int]]:
        """``(name, inode)`` of the directories in ``path``; readdir gives the inode
        without a ``stat`` per entry."""
        try:
            with os.scandir(path) as it:
                return [(e.name, e.inode()) for e in it if e.is_dir(follow_symlinks=False)]
        except OSError as err:
            raise _error(err, path) from err

    def inode(self, path: str) -> int:
        try:
            return os.stat(path).st_ino
        except OSError as err:
            raise _error(err, path) from err

    # --- system calls and facts about the caller -------------------------------------

    def machine(self) -> str:
        """The architecture (``uname -m``); a fixture tree is taken to be x86-64."""
        return os.uname().machine if self.live else "x86_64"

    def euid(self) -> int:
        return os.geteuid()

    def page_size(self) -> int:
        return os.sysconf("SC_PAGE_SIZE")

    def clock_ticks(self) -> int:
        """USER_HZ, the unit of ``/proc/stat``'s CPU times (100 on every Linux ABI)."""
        return os.sysconf("SC_CLK_TCK") if self.live else 100

    def _syscall(self) -> ctypes.CDLL:
        if self._libc is None:
            import ctypes

            self._libc = ctypes.CDLL(None, use_errno=True)
        return self._libc

    def same_mm(self, pid1: int, pid2: int) -> bool | None:
        """Whether two processes share one address space (``kcmp(KCMP_VM)``); ``None``
        when the kernel cannot tell us (no kcmp, no permission, a process gone)."""
        number = _SYS_KCMP.get(self.machine())
        if not self.live or number is None:
            return None
        libc = self._syscall()
        result: int = libc.syscall(number, pid1, pid2, _KCMP_VM, 0, 0)
        if result < 0:
            return None
        return result == 0

    def cachestat_pages(self, path: str) -> int | None:
        """Pages of the file at ``path`` in the page cache (``cachestat(2)``, Linux 6.5);
        for shmem, pages in RAM (swapped-out ones are "evicted"). Only regular files
        are opened: opening a device can have side effects. ``None`` if unavailable."""
        if not self.live:
            return None
        flags = _O_READ | os.O_NONBLOCK | os.O_NOCTTY
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                return None
            fd = os.open(path, flags)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            libc = self._syscall()
            import ctypes

            range_type, result_type = _cachestat_structs()
            whole = range_type(0, 0)  # len 0: to the end of the file
            result = result_type()
            if libc.syscall(_SYS_CACHESTAT, fd, ctypes.byref(whole), ctypes.byref(result), 0):
                return None
            return int(result.nr_cache)
        finally:
            os.close(fd)
