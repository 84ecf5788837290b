"""Pure parsers for the Linux ``/proc`` and cgroup files the host source reads.

Every function here takes the text of one file and returns values: no I/O, no clock, no
``os``. The reader (:mod:`mxmem.sources.linux.reader`) fetches the text; tests feed
captured samples and hand-written edge cases.

Sizes come out in bytes. Texts are split on ``"\\n"`` only, never with
``str.splitlines()``: a process or file name may contain ``\\r``, ``\\x85`` or ``\\u2028``,
which ``splitlines`` would treat as line ends (the kernel escapes only ``\\n`` in paths).
"""

from __future__ import annotations

from typing import NamedTuple

from mxmem.model import ThreadState

__all__ = [
    "PF_KTHREAD",
    "CgroupEntry",
    "FdInfo",
    "MemFigures",
    "Mount",
    "ProcStat",
    "ShmSegment",
    "Status",
    "Vma",
    "cgroup_path",
    "kb_fields",
    "memory_cgroup_path",
    "parse_cgroup",
    "parse_fdinfo",
    "parse_maps",
    "parse_meminfo",
    "parse_mountinfo",
    "parse_slab_free",
    "parse_smaps",
    "parse_smaps_rollup",
    "parse_stat",
    "parse_status",
    "parse_sysvipc_shm",
    "thread_state",
]

#: ``task->flags`` bit of a kernel thread (include/linux/sched.h), stat field 9.
PF_KTHREAD = 0x00200000


# --- smaps and smaps_rollup ------------------------------------------------------------


class MemFigures(NamedTuple):
    """The memory fields of one ``smaps`` VMA or of ``smaps_rollup``, in bytes.

    ``Swap`` is kept for display only: summed over processes it counts a shared swap
    entry once per sharer (16 MiB swapped before a fork into 51 processes sums to
    816 MiB), so totals use ``swap_pss`` (``SwapPss``).
    """

    rss: int = 0
    pss: int = 0
    shared_clean: int = 0
    shared_dirty: int = 0
    private_clean: int = 0
    private_dirty: int = 0
    anonymous: int = 0
    shared_hugetlb: int = 0
    private_hugetlb: int = 0
    swap: int = 0
    swap_pss: int = 0
    locked: int = 0


def kb_fields(lines: list[str]) -> dict[str, int]:
    """``"Key:   12 kB"`` lines as ``{"Key": 12288}``; a value without ``kB`` is kept as
    the plain number (``THPeligible: 1``). Lines that are not ``key: number`` (VmFlags,
    blank lines) are left out."""
    out: dict[str, int] = {}
    for line in lines:
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        parts = rest.split()
        if not parts or not parts[0].isdigit():
            continue
        value = int(parts[0])
        out[key] = value * 1024 if len(parts) > 1 and parts[1] == "kB" else value
    return out


def _figures(fields: dict[str, int]) -> MemFigures:
    get = fields.get
    return MemFigures(
        rss=get("Rss", 0),
        pss=get("Pss", 0),
        shared_clean=get("Shared_Clean", 0),
        shared_dirty=get("Shared_Dirty", 0),
        private_clean=get("Private_Clean", 0),
        private_dirty=get("Private_Dirty", 0),
        anonymous=get("Anonymous", 0),
        shared_hugetlb=get("Shared_Hugetlb", 0),
        private_hugetlb=get("Private_Hugetlb", 0),
        swap=get("Swap", 0),
        swap_pss=get("SwapPss", 0),
        locked=get("Locked", 0),
    )


def parse_smaps_rollup(text: str) -> MemFigures | None:
    """``/proc/PID/smaps_rollup``; ``None`` for an empty file (a process without an
    address space: it is exiting, or the kernel gave no VMAs)."""
    lines = text.split("\n")
    # Line 1 is the "[rollup]" pseudo-VMA header (the range of the first to the last VMA).
    if len(lines) < 2 or "[rollup]" not in lines[0]:
        return None
    return _figures(kb_fields(lines[1:]))


class Vma(NamedTuple):
    """One VMA of ``/proc/PID/maps`` or ``smaps``.

    ``path`` is what the kernel prints after the inode: a file path (with `` (deleted)``
    when unlinked, and a newline in the name shown as ``\\012``, which is left as is since
    a backslash is not escaped and the text cannot be decoded unambiguously), a pseudo
    name such as ``[heap]``, ``[stack]``, ``[vdso]``, ``[anon:NAME]``, or ``""``.
    ``figures`` and ``vmflags`` are present for ``smaps`` only.
    """

    start: int
    end: int
    perms: str  # "r-xp": read, write, execute, then p(rivate) or s(hared)
    offset: int
    major: int
    minor: int
    inode: int
    path: str
    figures: MemFigures | None = None
    vmflags: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return self.end - self.start


def _vma_header(line: str) -> Vma:
    parts = line.split(None, 5)
    start, _, end = parts[0].partition("-")
    major, _, minor = parts[3].partition(":")
    return Vma(
        start=int(start, 16),
        end=int(end, 16),
        perms=parts[1],
        offset=int(parts[2], 16),
        major=int(major, 16),
        minor=int(minor, 16),
        inode=int(parts[4]),
        path=parts[5] if len(parts) > 5 else "",
    )


def parse_maps(text: str) -> list[Vma]:
    """``/proc/PID/maps``: the VMA headers only."""
    # _vma_header inlined: Level.PAGES parses the maps of every process.
    vmas: list[Vma] = []
    new = tuple.__new__
    for line in text.split("\n"):
        if not line:
            continue
        parts = line.split(None, 5)
        start, _, end = parts[0].partition("-")
        major, _, minor = parts[3].partition(":")
        path = parts[5] if len(parts) > 5 else ""
        vmas.append(
            new(
                Vma,
                (
                    int(start, 16),
                    int(end, 16),
                    parts[1],
                    int(parts[2], 16),
                    int(major, 16),
                    int(minor, 16),
                    int(parts[4]),
                    path,
                    None,
                    (),
                ),
            )
        )
    return vmas


def parse_smaps(text: str) -> list[Vma]:
    """``/proc/PID/smaps``: each VMA header with its fields and ``VmFlags``."""
    vmas: list[Vma] = []
    header: Vma | None = None
    body: list[str] = []
    vmflags: tuple[str, ...] = ()

    def finish() -> None:
        if header is not None:
            vmas.append(header._replace(figures=_figures(kb_fields(body)), vmflags=vmflags))

    for line in text.split("\n"):
        if not line:
            continue
        # Field names start with an upper-case letter ("Rss:", "VmFlags:"); a header
        # starts with the VMA's start address in lower-case hex.
        if line[0].isupper():
            if line.startswith("VmFlags:"):
                vmflags = tuple(line[len("VmFlags:") :].split())
            else:
                body.append(line)
            continue
        finish()
        header = _vma_header(line)
        body = []
        vmflags = ()
    finish()
    return vmas


# --- stat and status -------------------------------------------------------------------


class ProcStat(NamedTuple):
    """The fields of ``/proc/PID/stat`` (or ``/proc/PID/task/TID/stat``) mxmem uses."""

    pid: int
    comm: str
    state: str  # one letter: R S D I T t Z X P W K ...
    ppid: int
    flags: int
    num_threads: int
    start_time: int  # clock ticks after boot
    vsize: int  # bytes
    rss_pages: int

    @property
    def kernel_thread(self) -> bool:
        return bool(self.flags & PF_KTHREAD)


def parse_stat(text: str) -> ProcStat:
    """``/proc/PID/stat``. The name sits between the first ``(`` and the *last* ``)``:
    it may itself contain ``)``, spaces and newlines (it is whatever the process set with
    ``prctl(PR_SET_NAME)``, up to 15 bytes)."""
    open_paren = text.index("(")
    close_paren = text.rindex(")")
    rest = text[close_paren + 2 :].split()
    # rest[0] is field 3 (state); field N is rest[N - 3] (proc(5)).
    return ProcStat(
        pid=int(text[:open_paren]),
        comm=text[open_paren + 1 : close_paren],
        state=rest[0],
        ppid=int(rest[1]),
        flags=int(rest[6]),
        num_threads=int(rest[17]),
        start_time=int(rest[19]),
        vsize=int(rest[20]),
        rss_pages=int(rest[21]),
    )


class Status(NamedTuple):
    """The fields of ``/proc/PID/status`` mxmem uses. ``name`` is the kernel's escaped
    form (a newline shows as ``\\n``); prefer the raw name of ``stat``."""

    name: str
    tgid: int
    ppid: int
    uid: int  # real uid
    threads: int
    vm_size: int  # bytes; 0 for a kernel thread (no VmSize line)
    vm_rss: int
    kthread: bool | None  # the "Kthread:" line (6.x kernels); None where absent
    # Bytes of the address space's page tables (mm_pgtables_bytes); 0 for a kernel
    # thread. One figure per mm: processes sharing an address space show the same one.
    vm_pte: int = 0
    vm_swap: int = 0  # bytes of its pages in swap (entries, shared ones whole)
    hugetlb: int = 0  # bytes of hugetlb pages mapped (HugetlbPages)
    # The address space's counters (the Vm*, Rss* and HugetlbPages lines) as one text:
    # processes sharing an address space (CLONE_VM) show the same.
    mm: str = ""


def parse_status(text: str) -> Status:
    fields: dict[str, str] = {}
    mm: list[str] = []
    for line in text.split("\n"):
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
            if key.startswith(_MM_FIELDS):
                mm.append(line)

    def kb(key: str) -> int:
        value = fields.get(key)
        return int(value.split()[0]) * 1024 if value else 0

    kthread = fields.get("Kthread")
    return Status(
        name=fields.get("Name", ""),
        tgid=int(fields.get("Tgid", "0")),
        ppid=int(fields.get("PPid", "0")),
        uid=int(fields.get("Uid", "0").split()[0]),
        threads=int(fields.get("Threads", "1")),
        vm_size=kb("VmSize"),
        vm_rss=kb("VmRSS"),
        kthread=None if kthread is None else kthread == "1",
        vm_pte=kb("VmPTE"),
        vm_swap=kb("VmSwap"),
        hugetlb=kb("HugetlbPages"),
        mm="\n".join(mm),
    )


_MM_FIELDS = ("Vm", "Rss", "HugetlbPages")


# The stat state letters (fs/proc/array.c task_state_array, plus the letters of older
# kernels: W paging/waking, K wakekill, x dead). Magenta has no uninterruptible or idle
# sleep: every kind of wait is "blocked".
_THREAD_STATES = {
    "R": ThreadState.RUNNING,
    "S": ThreadState.BLOCKED,
    "D": ThreadState.BLOCKED,
    "I": ThreadState.BLOCKED,
    "P": ThreadState.BLOCKED,  # parked (a kernel thread waiting to be unparked)
    "W": ThreadState.BLOCKED,
    "K": ThreadState.BLOCKED,
    "T": ThreadState.SUSPENDED,  # stopped by a signal
    "t": ThreadState.SUSPENDED,  # stopped by a tracer
    "Z": ThreadState.DEAD,  # exited, not yet reaped
    "X": ThreadState.DEAD,
    "x": ThreadState.DEAD,
}


def thread_state(letter: str) -> ThreadState:
    """Magenta's name for a stat state letter; an unknown letter is taken as a wait."""
    return _THREAD_STATES.get(letter, ThreadState.BLOCKED)


# --- cgroups ---------------------------------------------------------------------------


class CgroupEntry(NamedTuple):
    """One line of ``/proc/PID/cgroup``: ``hierarchy-ID:controller-list:path``."""

    hierarchy_id: int
    controllers: tuple[str, ...]  # () for the v2 line "0::/path"
    path: str


def parse_cgroup(text: str) -> list[CgroupEntry]:
    entries: list[CgroupEntry] = []
    for line in text.split("\n"):
        if not line:
            continue
        hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        entries.append(CgroupEntry(int(hid), tuple(c for c in controllers.split(",") if c), path))
    return entries


def cgroup_path(text: str, version: int) -> str | None:
    """:func:`memory_cgroup_path` straight from the text of ``/proc/PID/cgroup``
    (read for every process, so it skips building the other lines)."""
    for line in text.split("\n"):
        hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if version == 2:
            if hid == "0" and not controllers:
                return path
        elif "memory" in controllers.split(","):
            return path
    return None


def memory_cgroup_path(entries: list[CgroupEntry], version: int) -> str | None:
    """The process's cgroup in the memory hierarchy: the v2 ``0::`` line, or the v1 line
    whose controllers include ``memory``; ``None`` if the file has no such line."""
    for entry in entries:
        if version == 2 and entry.hierarchy_id == 0 and not entry.controllers:
            return entry.path
        if version == 1 and "memory" in entry.controllers:
            return entry.path
    return None


class Mount(NamedTuple):
    """One line of ``/proc/PID/mountinfo`` (proc(5))."""

    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str
    mount_point: str
    fstype: str
    source: str
    super_options: tuple[str, ...]


def _unescape_octal(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo, so this is exact.
    if "\\" not in s:
        return s
    out: list[str] = []
    i = 0
    while i < len(s):
        digits = s[i + 1 : i + 4]
        if s[i] == "\\" and len(digits) == 3 and digits.isdigit():
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    mounts: list[Mount] = []
    for line in text.split("\n"):
        if not line:
            continue
        left, _, right = line.partition(" - ")
        fields = left.split()
        fstype, source, options = [*right.split(" "), "", "", ""][:3]
        major, _, minor = fields[2].partition(":")
        mounts.append(
            Mount(
                mount_id=int(fields[0]),
                parent_id=int(fields[1]),
                major=int(major),
                minor=int(minor),
                root=_unescape_octal(fields[3]),
                mount_point=_unescape_octal(fields[4]),
                fstype=fstype,
                source=_unescape_octal(source),
                super_options=tuple(options.split(",")) if options else (),
            )
        )
    return mounts


# --- file descriptors ------------------------------------------------------------------


class FdInfo(NamedTuple):
    """``/proc/PID/fdinfo/FD``. ``flags`` are the open flags (printed in octal). A
    dma-buf adds ``size``, ``count``, ``exp_name`` and ``name``
    (drivers/dma-buf/dma-buf.c ``dma_buf_show_fdinfo``)."""

    pos: int
    flags: int
    mnt_id: int
    ino: int
    size: int | None = None
    exp_name: str | None = None
    name: str | None = None

    @property
    def access_mode(self) -> int:
        """``O_RDONLY`` (0), ``O_WRONLY`` (1) or ``O_RDWR`` (2)."""
        return self.flags & 0o3


def parse_fdinfo(text: str) -> FdInfo:
    fields: dict[str, str] = {}
    for line in text.split("\n"):
        key, sep, value = line.partition(":")
        if sep and key not in fields:
            fields[key] = value.strip()
    size = fields.get("size")
    return FdInfo(
        pos=int(fields.get("pos", "0")),
        flags=int(fields.get("flags", "0"), 8),
        mnt_id=int(fields.get("mnt_id", "0")),
        ino=int(fields.get("ino", "0")),
        size=int(size) if size is not None and size.isdigit() else None,
        exp_name=fields.get("exp_name"),
        name=fields.get("name"),
    )


# --- system-wide files -----------------------------------------------------------------


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` as ``{"MemTotal": bytes, ...}``; the ``HugePages_*`` counts,
    which have no unit, stay counts."""
    return kb_fields(text.split("\n"))


class ShmSegment(NamedTuple):
    """One SysV shared memory segment of ``/proc/sysvipc/shm``. Sizes in bytes. The
    segment's file in ``maps`` is ``/SYSV<key as %08x> (deleted)`` with inode = shmid."""

    key: int
    shmid: int
    size: int
    cpid: int
    nattch: int
    uid: int
    rss: int
    swap: int


def parse_sysvipc_shm(text: str) -> list[ShmSegment]:
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return []
    columns = lines[0].split()
    segments: list[ShmSegment] = []
    for line in lines[1:]:
        row = dict(zip(columns, line.split(), strict=False))
        segments.append(
            ShmSegment(
                key=int(row["key"]),
                shmid=int(row["shmid"]),
                size=int(row["size"]),
                cpid=int(row["cpid"]),
                nattch=int(row["nattch"]),
                uid=int(row["uid"]),
                # rss and swap (bytes) were added in Linux 2.6.37.
                rss=int(row.get("rss", "0")),
                swap=int(row.get("swap", "0")),
            )
        )
    return segments


def parse_slab_free(text: str) -> int:
    """Bytes of unused objects in allocated slabs, from ``/proc/slabinfo`` (version
    2.x): Σ (num_objs - active_objs) * objsize. With SLUB and without slab debugging
    the kernel reports ``active_objs == num_objs``, so this may be 0."""
    free = 0
    for line in text.split("\n"):
        if not line or line.startswith(("slabinfo", "#")):
            continue
        parts = line.split()
        if len(parts) < 4 or not parts[1].isdigit():
            continue
        active, total, objsize = int(parts[1]), int(parts[2]), int(parts[3])
        free += max(0, total - active) * objsize
    return free
