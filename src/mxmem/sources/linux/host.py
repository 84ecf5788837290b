"""The live Linux host as a source: ``/proc`` and the cgroup tree as a Magenta snapshot.

How Linux maps onto the model (the README copies this table):

==================  =====================================================================
model               Linux
==================  =====================================================================
job                 a cgroup of the memory controller (v2 if it carries ``memory``, else
                    the v1 ``memory`` hierarchy; hybrid layouts are handled); koid = the
                    cgroup directory's inode, name = the directory name, the hierarchy
                    root is ``root``. ``Job.charge_bytes`` = the cgroup's own charge
                    (``memory.current`` v2, ``memory.usage_in_bytes`` v1: one small read
                    per cgroup). Without a readable hierarchy: the process tree (job P
                    holds P's children, root job koid 0). See :mod:`.cgroups`.
process             ``/proc/PID``: koid = pid, name = ``comm`` (stat field 2, what
                    ``ps -o comm`` shows), placed in the job of its cgroup (the v2 ``0::``
                    line or the v1 ``memory`` line of ``/proc/PID/cgroup``). A zombie is
                    ``DEAD`` (figures 0).
kernel thread       a process with ``kernel_thread=True`` (PF_KTHREAD in stat field 9),
                    one thread, ``stats`` = zeros: it has no user address space, so its
                    PSS/PRIVATE/SHARED are 0 by definition, not unknown.
thread              ``/proc/PID/task/TID``: koid = tid (the main thread's tid is the pid),
                    state from the stat letter: R running; S, D, I (and P, W, K) blocked;
                    T, t susp; Z, X dead.
process figures     ``smaps_rollup`` only (one page-table walk, one truncation: within
                    1 KiB of exact, while summing per-VMA ``smaps`` loses up to 24 KiB):
                    mapped = VmSize (stat ``vsize``, as Magenta summed mapping sizes);
                    private = Private_Clean + Private_Dirty + Private_Hugetlb;
                    shared = Shared_Clean + Shared_Dirty + Shared_Hugetlb;
                    scaled_shared = Pss - Private_Clean - Private_Dirty, so PSS = the
                    kernel's Pss (+ Private_Hugetlb, which Pss leaves out);
                    swap_pss = SwapPss (never ``Swap``, which counts a shared swap entry
                    once per sharer). Level.PAGES with root: the same sums from the
                    pages read (below), Pss truncated to a byte, not a KiB.
shared mm           processes sharing one address space (CLONE_VM without CLONE_THREAD)
                    are counted once: candidates have identical ``smaps_rollup`` text
                    (Level.PAGES with root: identical address space counters, the
                    ``Vm*``/``Rss*`` lines of ``status``), ``kcmp(KCMP_VM)`` confirms;
                    all but the lowest pid get zero PSS, PRIVATE and SHARED, and a
                    snapshot note names them.
unreadable          EACCES: ``Process.unreadable = "permission denied"``, sizes unknown
                    (``?``), and one note counts them. A process that exits during the
                    scan (ENOENT/ESRCH) is left out silently.
address space       (Level.FULL, only the requested processes) the VMAs of
                    ``/proc/PID/smaps`` (Level.PAGES with root: of ``maps``, see page
                    facts). Aspace ``proc:PID`` = the user range (x86-64:
                    0 .. 0x7ffffffff000, wider if a VMA lies above it); ``[vsyscall]``,
                    in the kernel half, is left out. Consecutive VMAs of one loaded object
                    (same file, first segment at offset 0 and ``r--``/``r-x``, gaps of at
                    most 2 MiB, offsets increasing) form a VMAR named after the file.
mapping             one VMA: base, size, perms, vmo_koid, vmo_offset (file offset; 0 for
                    anonymous memory), committed = Rss (+ hugetlb pages, which Rss leaves
                    out), name = the path or ``[heap]``/``[stack]``/``[anon:NAME]``/
                    ``[vdso]``/... (``""`` for plain anonymous memory), stats = the VMA's
                    own Pss/private/shared/SwapPss as for a process.
VMO                 the object behind a mapping or a descriptor, by identity, never by
                    name: a file, device, memfd, tmpfs/shm file or dma-buf by
                    (dev, inode); a SysV segment by (dev, shmid); an anonymous region by
                    (pid, start address), one per VMA. There are no COW clones: the
                    written pages of a MAP_PRIVATE file mapping count to the file's VMO;
                    ``[vdso]``/``[vvar]`` as one kernel-only VMO (koid shown as 0).
                    size = st_size (regular files, shmem), the segment size (SysV), the
                    dma-buf size, or the mapped extent (anonymous, devices);
                    committed = resident pages of the whole object from ``cachestat(2)``
                    (page cache; for shmem excluding swapped pages), else st_blocks * 512
                    for shmem, else Σ Rss of its mappings in this snapshot; SysV: the
                    ``rss`` of ``/proc/sysvipc/shm``; anonymous: the VMA's Pss (pages still
                    shared copy-on-write after a fork are in every sharer's Rss).
                    share_count = distinct processes mapping it (1 below two mappings, as
                    Magenta), counted over every readable process; num_mappings likewise.
                    ``physical`` for VM_PFNMAP/VM_IO mappings (``pf``/``io`` VmFlags).
VMO koid            a 52-bit hash of the identity key (exact in JSON consumers that use
                    doubles), so it is unique in a snapshot (a collision takes the next
                    free number) and stable across snapshots of the same system.
handle              a file descriptor (Level.FULL): memfd, files on tmpfs/shm and dma-bufs
                    are VMO handles (the koid of their VMO, so one held but never mapped is
                    a handle-only row of ``vmos``); the others are FILE, DIRECTORY, DEVICE,
                    PIPE, SOCKET, EVENTFD, TIMERFD, SIGNALFD, EPOLL, INOTIFY, PIDFD or
                    OTHER. Rights: r/w from the fdinfo open mode, m for a readable memory
                    object, d and t always (a descriptor can be dup'ed and sent); the
                    fdinfo of non-memory descriptors is not read, so they carry only d t.
kernel memory       ``/proc/meminfo``, field by field in :mod:`.kernel`; heap_free from
                    ``/proc/slabinfo`` (root only) at Level.KMEM and for whole-system FULL
                    snapshots, 0 otherwise.
page facts          (Level.PAGES: the whole-system FULL snapshot, a process list is
                    ignored) ``Snapshot.pages`` from ``pagemap`` + ``kpagecount`` for every
                    readable process (root), else each process's PSS marked approximate.
                    With root, ``/proc/kpagecgroup`` of the same pages gives each job
                    ``charged_pages_bytes``: the bytes of the mapped pages read
                    that the kernel charges to its cgroup.
                    With root, PAGES differs from FULL in where the figures come from,
                    not in what they mean: each process's VMAs are read from ``maps``
                    and its pages from ``pagemap`` (PAGEMAP_SCAN, Linux 6.7, skips the
                    VMAs and ranges without pages), on the threads that read its other
                    files, in place of ``smaps_rollup`` and ``smaps``; a mapping's
                    committed/Rss, private, shared and Pss and a process's figures are
                    then computed from the pages and their ``kpagecount`` as the kernel's
                    smaps does (Rss: pages with a mapcount, so not the zero page nor
                    VM_PFNMAP frames; private: mapcount 1; Pss: each page / its mapcount
                    in smaps' fixed point), exact to the byte where smaps truncates to a
                    KiB. ``smaps_rollup`` and ``smaps`` are still read for a process
                    whose figures the pages cannot give: swap (``VmSwap``: SwapPss needs
                    the swap counts), hugetlb pages (``HugetlbPages``), a VMA that may be
                    device memory (VM_PFNMAP/VM_IO are only in smaps' VmFlags: paths
                    under ``/dev``, dma-bufs, anonymous inodes), or, without
                    PAGEMAP_SCAN, a VMA too large to read whole. See :mod:`.pages`.
CPU counters        every level: ``/proc/stat``, ``/proc/interrupts``, ``/proc/vmstat``,
                    ``/proc/schedstat``; ``Snapshot.cpu_total`` holds the counters Linux
                    keeps only system-wide. See :mod:`.kernel`.
kernel aspace       (Level.FULL without a process list) the x86-64 layout with the areas
                    of ``/proc/vmallocinfo``, the kernel image and modules; the kernel's
                    own memory (slab, page tables, vmalloc...) as kernel-only VMOs listed
                    first. See :mod:`.kernel`.
==================  =====================================================================
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import re
import stat
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import UTC, datetime

from mxmem.errors import SourceError
from mxmem.model import (
    ZERO_STATS,
    Aspace,
    Handle,
    Job,
    KernelMemory,
    Level,
    Mapping,
    ObjType,
    Perm,
    Platform,
    Process,
    ProcessState,
    Rights,
    Snapshot,
    TaskStats,
    Thread,
    Vmar,
    Vmo,
)
from mxmem.sources.linux import cgroups

# The kernel's own figures (memory by use, CPU counters, the kernel address space);
# kernel_memory is re-exported for the callers that know it from here.
from mxmem.sources.linux.kernel import (
    kernel_memory,
    read_cpus,
    read_kernel_memory,
    read_kernel_space,
)
from mxmem.sources.linux.pages import (
    ANON,
    DMABUF,
    FILE,
    HUGETLB,
    PHYSICAL,
    SHMEM,
    SPECIAL,
    U64,
    Entries,
    PageAccess,
    PageFigures,
    PagesRead,
    PageTable,
    PfnsHidden,
    cgroup_pages,
    host_page_facts,
    live_pages,
    needs_smaps_for,
    page_access,
    page_table,
    read_entries,
)
from mxmem.sources.linux.parallel import map_in_threads, useful_workers
from mxmem.sources.linux.procfs import (
    FdInfo,
    MemFigures,
    Mount,
    ProcStat,
    ShmSegment,
    Vma,
    cgroup_path,
    parse_fdinfo,
    parse_maps,
    parse_mountinfo,
    parse_smaps,
    parse_smaps_rollup,
    parse_stat,
    parse_status,
    parse_sysvipc_shm,
    thread_state,
)
from mxmem.sources.linux.reader import FileStat, ProcReader, Unreadable, Vanished

__all__ = ["HostSource", "kernel_memory", "task_size", "task_stats"]


class HostSource:
    """Snapshots of the Linux system whose ``/proc`` is at ``<root>/proc``."""

    def __init__(self, root: str = "/", name: str = "host") -> None:
        self.reader = ProcReader(root)
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def snapshot(
        self, level: Level = Level.FULL, processes: Collection[int] | None = None
    ) -> Snapshot:
        with _collector_paused():
            return _Scan(self.reader, level, processes).run(self._name)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a scan runs: it makes objects by the
    hundred thousand (a whole-system PAGES snapshot: ~170 collections, 100-130 ms of
    it) and none of them in cycles; back on afterwards if it was on."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# --- pure mappings ---------------------------------------------------------------------


def task_stats(figures: MemFigures, mapped_bytes: int) -> TaskStats:
    """A process's (or one VMA's) figures from its ``smaps_rollup`` (``smaps``) fields."""
    private_pages = figures.private_clean + figures.private_dirty
    return TaskStats(
        mapped_bytes=mapped_bytes,
        private_bytes=private_pages + figures.private_hugetlb,
        shared_bytes=figures.shared_clean + figures.shared_dirty + figures.shared_hugetlb,
        # Pss counts every private page whole, so it is never below them; max() only
        # guards against a malformed file.
        scaled_shared_bytes=max(0, figures.pss - private_pages),
        swap_pss_bytes=figures.swap_pss,
    )


# The top of the user address range (TASK_SIZE) for the usual page-table depths.
_TASK_SIZE = {
    "x86_64": 0x7FFFFFFFF000,  # 4-level paging, 47 bits minus the guard page
    "aarch64": 1 << 48,
    "ppc64le": 1 << 47,
    "riscv64": 1 << 47,
    "s390x": 1 << 53,
    "i686": 0xC0000000,
    "armv7l": 0xBF000000,
}
_KERNEL_HALF = 1 << 63  # [vsyscall] lives at 0xffffffffff600000


def task_size(machine: str, highest_end: int) -> int:
    """The user range's size: the architecture's usual ``TASK_SIZE``, or the next power
    of two when a VMA lies above it (5-level paging, 52-bit VAs)."""
    size = _TASK_SIZE.get(machine, 1 << 47)
    if highest_end > size:
        size = 1 << (highest_end - 1).bit_length()
    return size


_KOID_BITS = 52


def _fold(key: tuple[object, ...]) -> int:
    # Imported here: only FULL snapshots fold keys, and hashlib loads OpenSSL (~5 ms of
    # every ps otherwise).
    from hashlib import blake2b

    digest = blake2b(repr(key).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> (64 - _KOID_BITS)) or 1


def _perms(text: str) -> int:
    perms = _PERMS.get(text[:3])
    if perms is None:
        value = Perm.NONE
        if text[0] == "r":
            value |= Perm.READ
        if text[1] == "w":
            value |= Perm.WRITE
        if text[2] == "x":
            value |= Perm.EXECUTE
        perms = _PERMS[text[:3]] = int(value)
    return perms


_PERMS: dict[str, int] = {}  # "r-x" -> Perm bits (enum arithmetic is slow, per VMA)


# Pseudo-files the kernel maps into every process; one shared kernel-owned object each.
_SPECIAL = frozenset(
    {"[vdso]", "[vvar]", "[vvar_vclock]", "[uprobes]", "[sigpage]", "[vectors]", "[vsyscall]"}
)
# The name ipc/shm.c gives a SysV segment's file ("SYSV%08x" on the internal shm mount);
# its inode number is the shmid (verified: shmid 0 shows inode 0 in maps).
_SYSV = re.compile(r"/SYSV[0-9a-f]{8} \(deleted\)")
# Names of objects on the kernel's internal shmem mount, which mountinfo does not list.
_SHMEM_PREFIXES = ("/memfd:", "/dev/zero", "[anon_shmem:")
_SHMEM_FSTYPES = frozenset({"tmpfs", "hugetlbfs", "ramfs", "devtmpfs"})

_ELF_GAP = 2 << 20  # ld.so aligns segments to at most 2 MiB (max-page-size)

_ANON_INODE_TYPES = {
    "eventfd": ObjType.EVENTFD,
    "timerfd": ObjType.TIMERFD,
    "signalfd": ObjType.SIGNALFD,
    "eventpoll": ObjType.EPOLL,
    "inotify": ObjType.INOTIFY,
    "pidfd": ObjType.PIDFD,
}

_DT = Rights.DUPLICATE | Rights.TRANSFER


def _vma_key(pid: int, vma: Vma) -> tuple[str, tuple[object, ...]]:
    """(kind, identity key) of the object behind a VMA."""
    if vma.major == 0 and _SYSV.fullmatch(vma.path):
        return "sysv", ("sysv", vma.major, vma.minor, vma.inode)
    if vma.inode == 0:
        if vma.path in _SPECIAL:
            return "special", ("special", vma.path)
        return "anon", ("anon", pid, vma.start)
    kind = "dmabuf" if vma.path.startswith("/dmabuf:") else "file"
    return kind, ("file", vma.major, vma.minor, vma.inode)


def _elf_end(vmas: list[Vma], i: int) -> int:
    """The end (exclusive) of the run of VMAs of one loaded object starting at ``i``."""
    first = vmas[i]
    if first.inode == 0 or first.offset != 0 or first.perms[:3] not in ("r--", "r-x"):
        return i + 1
    j = i + 1
    while j < len(vmas):
        prev, nxt = vmas[j - 1], vmas[j]
        if (
            nxt.inode != first.inode
            or (nxt.major, nxt.minor) != (first.major, first.minor)
            or nxt.path != first.path
            or nxt.start - prev.end > _ELF_GAP
            or nxt.offset < prev.offset
            or nxt.offset == 0
        ):
            break
        j += 1
    return j


# Paths of VMAs that may be device memory (VM_PFNMAP/VM_IO, only smaps' VmFlags tell):
# device files, dma-bufs, and hugetlb (the VmFlags ht) by its usual names; and, below,
# anything not a path or a [name] (anonymous inodes: "anon_inode:[...]").
_SMAPS_PATHS = ("/dev/", "/dmabuf:", "/anon_hugepage")
_NOT_DEVICES = ("/dev/shm/", "/dev/zero")  # tmpfs files, MAP_SHARED anonymous memory
_NOT_PAGES = frozenset({"pf", "io", "ht"})  # VmFlags of mappings whose pages are not read


def _in_order(vmar: Vmar) -> Iterator[Mapping]:
    """The mappings of a VMAR, in address order."""
    for child in vmar.children:
        if isinstance(child, Vmar):
            yield from _in_order(child)
        else:
            yield child


def _user(vmas: list[Vma]) -> list[Vma]:
    """The VMAs of the user address range (not [vsyscall], in the kernel half)."""
    return [v for v in vmas if v.start < _KERNEL_HALF]


def _needs_smaps(vmas: list[Vma], page: int, access: PageAccess) -> bool:
    """Whether the VMAs of ``maps`` need ``smaps`` to be known (see _Scan._read_space)."""
    for path in {v.path for v in vmas}:
        if path.startswith(_SMAPS_PATHS) and not path.startswith(_NOT_DEVICES):
            return True
        if path and path[0] not in "/[":
            return True
    return not access.scan and any(needs_smaps_for(v.end - v.start, page, access) for v in vmas)


def _read_with_smaps(vma: Vma) -> bool:
    """Whether the pages of a VMA of ``smaps`` are read: it has some, and they are the
    process's (not the kernel's ``[vdso]``, hugetlb pages or device memory)."""
    return (
        vma.figures is not None
        and vma.figures.rss > 0
        and vma.path not in _SPECIAL
        and _NOT_PAGES.isdisjoint(vma.vmflags)
    )


def _page_kind(acc: _VmoAcc) -> str:
    """What :mod:`.pages` makes of an object's pages."""
    if acc.kind == "special":
        return SPECIAL
    if acc.hugetlb:
        return HUGETLB
    if acc.physical:
        return PHYSICAL
    if acc.kind == "anon":
        return ANON
    if acc.kind == "dmabuf":
        return DMABUF
    return SHMEM if acc.kind == "sysv" or acc.shmem else FILE


def _with_cgroup_pages(jobs: dict[int, Job], charged: dict[int, int]) -> dict[int, Job]:
    """Jobs whose cgroup has mapped pages charged to it gain ``charged_pages_bytes``
    (a job's koid is its cgroup directory's inode, which is what kpagecgroup names)."""
    return {
        koid: dataclasses.replace(job, charged_pages_bytes=charged[koid])
        if koid in charged
        else job
        for koid, job in jobs.items()
    }


# --- the scan --------------------------------------------------------------------------


def _is_dmabuf(target: str) -> bool:
    return target.startswith("/dmabuf:") or target == "anon_inode:dmabuf"


def _shmem_file(target: str, st: FileStat, shmem_devs: set[tuple[int, int]]) -> bool:
    """Whether a descriptor's file is a memory object of shmem (memfd, tmpfs, shm)."""
    return st.is_regular and (
        target.startswith(_SHMEM_PREFIXES) or (st.major, st.minor) in shmem_devs
    )


class _FdReads:
    """The descriptor files of one process as :meth:`_Scan._read_fds` read them: the
    descriptors (None: the fd directory could not be listed) with their links, and the
    ``stat`` and ``fdinfo`` text, or the error, by descriptor."""

    __slots__ = ("fds", "infos", "stats")

    def __init__(self) -> None:
        self.fds: list[tuple[int, str, str]] | None = None
        self.stats: dict[int, FileStat | Unreadable] = {}
        self.infos: dict[int, str | Unreadable] = {}


class _Record:
    """What the TASKS pass learned about one process."""

    __slots__ = (
        "cgroup",
        "dead",
        "entries",
        "fds",
        "figures",
        "paged",
        "rollup",
        "sharing",
        "shmem_devs",
        "smaps",
        "spans",
        "stat",
        "threads",
        "unreadable",
        "vm_pte",
        "vmas",
    )

    def __init__(self, st: ProcStat) -> None:
        self.stat = st
        self.figures: MemFigures | None = None
        self.rollup: str | None = None  # the raw text
        # What processes sharing one address space (CLONE_VM) show alike: the rollup's
        # text, or (read without it) the address space's counters in status.
        self.sharing: str | None = None
        self.unreadable: str | None = None
        self.cgroup: str | None = None
        self.dead = False
        self.threads: tuple[Thread, ...] = ()
        # Level.PAGES with page-level reads: the user VMAs (from maps, or smaps when
        # ``smaps``), which of them were read from pagemap, and the pages in RAM found.
        self.vmas: list[Vma] | None = None
        self.smaps = False
        self.spans: list[int] = []
        self.entries: Entries | None = None
        self.paged: list[PageFigures] | None = None  # per VMA, from the pages (not smaps)
        self.vm_pte: int | None = None  # VmPTE, when status was read
        self.shmem_devs: set[tuple[int, int]] | None = None  # (see _Scan._shmem_devs)
        self.fds: _FdReads | None = None  # its descriptors, read ahead


class _VmoAcc:
    """A VMO being assembled from the mappings and descriptors that refer to it."""

    __slots__ = (
        "dmabuf_size",
        "extent",
        "hugetlb",
        "kind",
        "koid",
        "mappers",
        "name",
        "num_mappings",
        "physical",
        "probes",
        "rss",
        "shmem",
    )

    def __init__(self, koid: int, kind: str, name: str) -> None:
        self.koid = koid
        self.kind = kind
        self.name = name
        self.mappers: set[int] = set()
        self.num_mappings = 0
        self.rss = 0
        self.extent = 0
        self.physical = False
        self.shmem = False
        self.hugetlb = False
        self.dmabuf_size: int | None = None
        # Paths through which the object itself can be stat'ed: map_files/ and fd/
        # links first (they are the object even when deleted or in another namespace),
        # then (marked with a leading "?") a path name that must be checked to be it.
        self.probes: list[str] = []


class _Scan:
    def __init__(self, reader: ProcReader, level: Level, processes: Collection[int] | None) -> None:
        self.reader = reader
        self.proc = reader.proc
        self.level = level
        # Page facts are the whole system's: a process list is ignored at Level.PAGES.
        whole = processes is None or level >= Level.PAGES
        self.wanted = None if whole or processes is None else set(processes)
        self.notes: list[str] = []
        self.aspace_notes: tuple[str, ...] = ()  # about the kernel address space
        self.koids: dict[int, tuple[object, ...]] = {}
        self.page_kinds: dict[int, str] = {}  # VMO koid -> what .pages reads of it
        self.page_size = 4096
        self.meminfo: dict[str, int] = {}
        self.shmem_devs: dict[str, set[tuple[int, int]]] = {}  # mount namespace -> devices
        self.vma_koids: dict[int, list[int]] = {}  # pid -> the VMO of each of its VMAs
        self.stats_of: dict[tuple[int, PageFigures], TaskStats] = {}
        # Level.PAGES: page-level reads (root), or why they cannot be made.
        self.access: PageAccess | None = None
        self.refused: str | None = None
        self.live_pages: Callable[[U64], int] | None = None

    def run(self, name: str) -> Snapshot:
        now = datetime.now(UTC)
        kernel = self._kernel_memory()
        cpus, cpu_total = read_cpus(self.reader)
        if self.level < Level.TASKS:
            return Snapshot(
                source=name,
                platform=Platform.LINUX,
                level=self.level,
                timestamp=now,
                kernel=kernel,
                root_job_koid=None,
                notes=tuple(self.notes),
                cpus=cpus,
                cpu_total=cpu_total,
            )
        try:
            pids = self.reader.pids() if self.wanted is None else sorted(self.wanted)
        except Unreadable as err:
            raise SourceError(f"the host source needs Linux's /proc: {err}") from err
        mounts = self._mounts("self")
        hierarchy = cgroups.find_hierarchy(self.reader, mounts)
        if self.level >= Level.PAGES:
            self.page_size = self.reader.page_size()
            access = page_access(self.reader)
            if isinstance(access, str):
                self.refused = access
            else:
                self.access = access
                self.live_pages = live_pages(self.reader)
        # The smaps_rollup page-table walks are nearly all of ps's time: a few threads
        # run them on all CPUs at once (see .parallel).
        read = functools.partial(self._read_process, hierarchy=hierarchy)
        records = {
            pid: record
            for pid, record in zip(pids, map_in_threads(read, pids, useful_workers()), strict=True)
            if record is not None
        }
        duplicates = self._shared_address_spaces(records)
        paged = self._page_table(records, duplicates) if self.access is not None else None
        root_koid, jobs, job_of = self._jobs(hierarchy, records)
        processes = {
            pid: self._process(pid, rec, job_of[pid], duplicates) for pid, rec in records.items()
        }
        vmos: dict[int, Vmo] = {}
        kernel_aspace: Aspace | None = None
        if self.level >= Level.FULL:
            prepared = {pid: records[pid] for pid in paged[0]} if paged else {}
            processes, vmos = self._full(processes, prepared)
            if self.wanted is None:
                kernel_aspace, vmos = self._kernel_space(vmos)
        pages = None
        if self.level >= Level.PAGES:
            rollups = {pid: rec.rollup for pid, rec in records.items() if rec.rollup}
            facts_read = None
            if paged is not None:
                pids, table = paged
                facts_read = PagesRead(
                    table,
                    pids,
                    self._span_koids(pids, records, processes),
                    {pid: pte for pid in pids if (pte := records[pid].vm_pte) is not None},
                    {pid: self.vma_koids[pid] for pid in pids if not records[pid].smaps},
                )
            if paged is not None:
                jobs = _with_cgroup_pages(jobs, cgroup_pages(self.reader, paged[1]))
            pages = host_page_facts(
                self.reader,
                processes,
                vmos,
                self.page_kinds,
                duplicates,
                rollups,
                facts_read,
                self.refused,
            )
        self._unreadable_note(processes)
        return Snapshot(
            source=name,
            platform=Platform.LINUX,
            level=self.level,
            timestamp=now,
            kernel=kernel,
            root_job_koid=root_koid,
            jobs=jobs,
            processes=processes,
            vmos=vmos,
            kernel_aspace=kernel_aspace,
            notes=tuple(self.notes),
            kernel_aspace_notes=self.aspace_notes,
            cpus=cpus,
            cpu_total=cpu_total,
            pages=pages,
        )

    # --- system-wide files -----------------------------------------------------------

    def _kernel_memory(self) -> KernelMemory | None:
        # heap_free needs /proc/slabinfo (root only, ~1 ms to generate): read it for the
        # tools that show the whole system's kernel memory (KMEM, FULL without a process
        # list), not for ps (TASKS) or one process's vmaps/vmos.
        slab = self.level == Level.KMEM or (self.level >= Level.FULL and self.wanted is None)
        figures = read_kernel_memory(self.reader, slab=slab)
        if figures is None:
            return None
        self.meminfo = figures.meminfo
        self.notes.extend(figures.notes)
        return figures.memory

    def _kernel_space(self, vmos: dict[int, Vmo]) -> tuple[Aspace | None, dict[int, Vmo]]:
        """The kernel address space, and the kernel's own VMOs listed before the others
        (the oldest: the kernel made them at boot). See :mod:`.kernel`."""
        space = read_kernel_space(self.reader, self.meminfo, self._koid)
        self.aspace_notes = tuple(space.notes)
        return space.aspace, {**{v.koid: v for v in space.vmos}, **vmos}

    def _mounts(self, pid: int | str) -> list[Mount]:
        try:
            return parse_mountinfo(self.reader.read(f"{self.proc}/{pid}/mountinfo"))
        except (Unreadable, ValueError, IndexError):
            return []

    # --- processes -------------------------------------------------------------------

    def _read_process(self, pid: int, hierarchy: cgroups.Hierarchy | None) -> _Record | None:
        """The TASKS-level facts of one process; ``None`` if it is gone (or is not a
        process: a thread id named on the command line)."""
        base = f"{self.proc}/{pid}"
        read = self.reader.read
        try:
            st = parse_stat(read(f"{base}/stat"))
            if self.wanted is not None and parse_status(read(f"{base}/status")).tgid != pid:
                return None  # /proc/TID exists for every thread, but it is no process
            rec = _Record(st)
            if hierarchy is not None:
                try:
                    rec.cgroup = cgroup_path(read(f"{base}/cgroup"), hierarchy.version)
                except Vanished:
                    raise
                except Unreadable:
                    pass  # placed in the root job
            if st.state in ("Z", "X") and st.num_threads <= 1:
                rec.dead = True  # a zombie: exited, not reaped, no memory left
            elif not st.kernel_thread:
                if self.access is None or st.state in ("Z", "X"):
                    # (a main thread that has exited while others run on: its files
                    # show no address space; the rollup is read through another thread)
                    if not self._read_rollup(pid, st, rec):
                        return None
                elif not self._read_space(pid, st, rec, self.access):
                    return None
            rec.threads = self._threads(pid, st)
        except Vanished:
            return None
        except (ValueError, IndexError):
            return None  # a file cut short as the process exited
        return rec

    def _read_rollup(self, pid: int, st: ProcStat, rec: _Record) -> bool:
        """``rec.figures`` from ``smaps_rollup`` (or why it cannot be read); False if the
        process has no address space any more (it is exiting)."""
        try:
            rollup = self._rollup(pid, st)
        except Unreadable as err:
            if isinstance(err, Vanished):
                raise
            rec.unreadable = err.reason
            return True
        if rollup is None:
            return False
        rec.rollup, rec.figures = rollup
        rec.sharing = rollup[0]
        return True

    # --- Level.PAGES: VMAs and pages, read with the process's other files ---------------

    def _read_space(self, pid: int, st: ProcStat, rec: _Record, access: PageAccess) -> bool:
        """The VMAs of a process and its pages in RAM (``rec.vmas``, ``rec.entries``),
        read with page-level access in place of ``smaps_rollup``; False if the process
        has no address space any more.

        ``maps`` lists the VMAs; their figures and the process's come from the pages read
        (:func:`.pages.page_table`), so ``smaps``, with its text and its page-table walk
        per VMA, and ``smaps_rollup`` are read only when ``maps`` cannot say enough: the
        process has swap (``VmSwap`` of ``status``: SwapPss needs the swap counts) or
        hugetlb pages (``HugetlbPages``: the VmFlags ``ht`` find them), a VMA may be
        device memory (VmFlags ``pf``/``io``: a path under ``/dev``, a dma-buf, an
        anonymous inode), or, without PAGEMAP_SCAN, a VMA is too large to read whole.
        A file that cannot be read leaves the process to ``smaps_rollup`` and the FULL
        scan's ``smaps``, as without page-level reads."""
        base = f"{self.proc}/{pid}"
        page = self.page_size
        try:
            status = parse_status(self.reader.read(f"{base}/status"))
            rec.sharing, rec.vm_pte = status.mm, status.vm_pte
            smaps = bool(status.vm_swap or status.hugetlb)
            vmas: list[Vma] = []
            if not smaps:
                vmas = _user(parse_maps(self.reader.read_all(f"{base}/maps")))
                if not vmas:
                    return False  # exiting: its address space is already gone
                smaps = _needs_smaps(vmas, page, access)
            if smaps:
                if not self._read_rollup(pid, st, rec):
                    return False
                if rec.unreadable is not None:
                    return True
                vmas = _user(parse_smaps(self.reader.read_all(f"{base}/smaps")))
                # Pages read where smaps found some, of the VMAs whose pages are the
                # process's (not the kernel's, hugetlb pages or device memory).
                spans = [i for i, v in enumerate(vmas) if _read_with_smaps(v)]
            else:
                spans = list(range(len(vmas)))
            ranges = [(vmas[i].start, vmas[i].end) for i in spans]
            resident = None
            if smaps:  # what smaps found resident: the large VMAs read up to that
                resident = [(f.rss if (f := vmas[i].figures) else 0) // page for i in spans]
            with self.reader.pagemap(pid) as pagemap:
                entries = read_entries(
                    pagemap, ranges, page, access.scan, resident, self.live_pages
                )
        except Unreadable as err:
            if isinstance(err, Vanished):
                raise
            rec.vmas, rec.entries = None, None
            return rec.figures is not None or self._read_rollup(pid, st, rec)
        rec.vmas, rec.smaps, rec.spans, rec.entries = vmas, smaps, spans, entries
        # Its descriptors too, while on this thread (their system calls are most of it).
        rec.shmem_devs = self._shmem_devs(pid)
        rec.fds = self._read_fds(pid, rec.shmem_devs)
        return True

    def _page_table(
        self, records: dict[int, _Record], duplicates: dict[int, int]
    ) -> tuple[list[int], PageTable] | None:
        """The pages read, sorted and counted; the figures of the processes and VMAs
        read from ``maps`` filled in from them. None if pagemap turned out to show no
        PFNs: then the scan goes on without page-level reads (``smaps_rollup`` read for
        the processes that were read without it)."""
        pids = [
            pid
            for pid in sorted(records)
            if records[pid].entries is not None and pid not in duplicates
        ]
        parts = [records[pid].entries for pid in pids]
        try:
            table = page_table(self.reader, parts)  # type: ignore[arg-type]
        except PfnsHidden:
            self.access = None
            self.refused = "pagemap shows no page frame numbers (they need CAP_SYS_ADMIN)"
            for pid, rec in list(records.items()):
                rec.vmas = rec.entries = None
                if rec.figures is None and not rec.dead and not rec.stat.kernel_thread:
                    try:
                        if not self._read_rollup(pid, rec.stat, rec):
                            del records[pid]
                    except Vanished:
                        del records[pid]
            return None
        for k, pid in enumerate(pids):
            rec = records[pid]
            rec.entries = None  # in the table now
            if not rec.smaps:  # (its spans are its VMAs)
                rec.figures = table.process_figures[k]
                rec.paged = table.figures[k]
        # A CLONE_VM sharer's pages are its representative's: not in the table, and its
        # figures are left to the FULL scan's smaps.
        for pid in duplicates:
            if pid in records:
                records[pid].vmas = records[pid].entries = None
        return pids, table

    def _span_koids(
        self, pids: list[int], records: dict[int, _Record], processes: dict[int, Process]
    ) -> list[list[int]]:
        """The VMO of each VMA read, per process read."""
        out: list[list[int]] = []
        for pid in pids:
            koids = self.vma_koids[pid]  # its VMAs were prepared: it was expanded
            out.append([koids[i] for i in records[pid].spans])
        return out

    def _rollup(self, pid: int, st: ProcStat) -> tuple[str, MemFigures] | None:
        path = f"{self.proc}/{pid}/smaps_rollup"
        try:
            text = self.reader.read(path)
            figures = parse_smaps_rollup(text)
        except Vanished:
            if st.num_threads <= 1:
                raise
            figures = None
        if figures is not None:
            return text, figures
        if st.num_threads > 1:
            # The main thread has exited (its mm is gone) while others run on: read the
            # address space through a live thread.
            for tid in sorted(int(t) for t in self.reader.listdir(f"{self.proc}/{pid}/task")):
                if tid == pid:
                    continue
                try:
                    text = self.reader.read(f"{self.proc}/{pid}/task/{tid}/smaps_rollup")
                except Vanished:
                    continue
                figures = parse_smaps_rollup(text)
                if figures is not None:
                    return text, figures
        return None

    def _threads(self, pid: int, st: ProcStat) -> tuple[Thread, ...]:
        main = Thread(koid=pid, name=st.comm, state=thread_state(st.state))
        if st.num_threads <= 1:
            return (main,)
        task = f"{self.proc}/{pid}/task"
        try:
            tids = sorted(int(t) for t in self.reader.listdir(task) if t.isdigit())
        except Unreadable:
            return (main,)
        threads: list[Thread] = []
        for tid in tids:
            if tid == pid:
                threads.append(main)
                continue
            try:
                ts = parse_stat(self.reader.read(f"{task}/{tid}/stat"))
            except (Unreadable, ValueError, IndexError):
                continue  # the thread exited meanwhile
            threads.append(Thread(koid=tid, name=ts.comm, state=thread_state(ts.state)))
        return tuple(threads)

    def _shared_address_spaces(self, records: dict[int, _Record]) -> dict[int, int]:
        """pid → the lowest pid it shares its address space with (CLONE_VM).

        Two processes with one mm print the same smaps_rollup byte for byte (and the
        same address space counters in status, which Level.PAGES reads instead), so
        only those are compared, and with kcmp rather than on the text alone (ps_mem's
        hash collapses unrelated identical processes: 10 ``setarch -R sleep``)."""
        groups: dict[str, list[int]] = {}
        for pid, rec in records.items():
            if rec.sharing is not None:
                groups.setdefault(rec.sharing, []).append(pid)
        duplicates: dict[int, int] = {}
        uncertain: set[int] = set()
        for pids in groups.values():
            if len(pids) < 2:
                continue
            representatives: list[int] = []
            for pid in sorted(pids):
                for rep in representatives:
                    same = self.reader.same_mm(rep, pid)
                    if same is None:
                        uncertain.update((rep, pid))
                    elif same:
                        duplicates[pid] = rep
                        break
                else:
                    representatives.append(pid)
        if duplicates:
            pairs = ", ".join(f"{d} with {r}" for d, r in sorted(duplicates.items())[:5])
            more = f" and {len(duplicates) - 5} more" if len(duplicates) > 5 else ""
            count = len(duplicates)
            self.notes.append(
                f"{count} process{'es' if count != 1 else ''} share{'' if count != 1 else 's'}"
                f" an address space (CLONE_VM) with a lower pid ({pairs}{more}):"
                " its memory is counted once, under the lower pid"
            )
        uncertain -= duplicates.keys()
        if uncertain:
            self.notes.append(
                f"{len(uncertain)} processes with identical memory figures could not be"
                " compared (kcmp); any that share an address space are counted more than once"
            )
        return duplicates

    def _jobs(
        self, hierarchy: cgroups.Hierarchy | None, records: dict[int, _Record]
    ) -> tuple[int, dict[int, Job], dict[int, int]]:
        if hierarchy is not None:
            try:
                nodes = cgroups.walk_cgroups(self.reader, hierarchy)
            except Unreadable:
                nodes = {}
            if nodes:
                placement = {
                    pid: cgroups.nearest_cgroup(nodes, rec.cgroup) for pid, rec in records.items()
                }
                charges = self._charges(hierarchy, nodes)
                root_koid, jobs = cgroups.cgroup_jobs(nodes, placement, charges)
                job_of = {pid: nodes[path].inode for pid, path in placement.items()}
                return root_koid, jobs, job_of
        self.notes.append("no readable cgroup memory hierarchy: jobs follow the process tree")
        parents = {pid: rec.stat.ppid for pid, rec in records.items()}
        names = {pid: rec.stat.comm for pid, rec in records.items()}
        return cgroups.process_tree_jobs(parents, names)

    def _charges(
        self, hierarchy: cgroups.Hierarchy, nodes: dict[str, cgroups.CgroupNode]
    ) -> dict[str, int]:
        top = self.reader.host_path(hierarchy.mount_point)
        charges: dict[str, int] = {}
        for path in nodes:
            directory = top if path == "/" else top + path
            try:
                value = int(self.reader.read(f"{directory}/{hierarchy.charge_file}"))
            except (Unreadable, ValueError):
                continue  # v2 has no memory.current in the root cgroup
            charges[path] = value
        return charges

    def _process(
        self, pid: int, rec: _Record, job_koid: int, duplicates: dict[int, int]
    ) -> Process:
        st = rec.stat
        stats: TaskStats | None = None
        if st.kernel_thread:
            stats = ZERO_STATS
        elif pid in duplicates:
            stats = dataclasses.replace(ZERO_STATS, mapped_bytes=st.vsize)
        elif rec.figures is not None:
            stats = task_stats(rec.figures, st.vsize)
        return Process(
            koid=pid,
            job_koid=job_koid,
            name=st.comm,
            state=ProcessState.DEAD if rec.dead else ProcessState.RUNNING,
            threads=rec.threads,
            stats=stats,
            unreadable=rec.unreadable,
            kernel_thread=st.kernel_thread,
        )

    def _unreadable_note(self, processes: dict[int, Process]) -> None:
        reasons: dict[str, int] = {}
        for process in processes.values():
            if process.unreadable is not None:
                reasons[process.unreadable] = reasons.get(process.unreadable, 0) + 1
        for reason, count in sorted(reasons.items()):
            hint = ""
            if reason == "permission denied":
                hint = (
                    ": run as root to read all"
                    if self.reader.euid() != 0
                    else ": the kernel's ptrace check refused even root (a more privileged"
                    " process, e.g. one with capabilities this one lacks)"
                )
            plural = "es" if count != 1 else ""
            self.notes.append(f"{count} process{plural} unreadable ({reason}){hint}")

    # --- Level.FULL: address spaces, descriptors, VMOs -------------------------------

    def _full(
        self, processes: dict[int, Process], prepared: dict[int, _Record] | None = None
    ) -> tuple[dict[int, Process], dict[int, Vmo]]:
        """Address spaces, descriptors and VMOs; ``prepared`` has the records of the
        processes whose VMAs and descriptors were read already (Level.PAGES), the others'
        are read from ``smaps`` and ``fd/``."""
        self.page_size = self.reader.page_size()
        accs: dict[tuple[object, ...], _VmoAcc] = {}
        out: dict[int, Process] = {}
        for pid, process in processes.items():
            if process.kernel_thread or process.state is not ProcessState.RUNNING:
                out[pid] = process
                continue
            if process.unreadable is not None:
                out[pid] = process
                continue
            ready = prepared.get(pid) if prepared else None
            try:
                vmas = (
                    ready.vmas
                    if ready is not None and ready.vmas is not None
                    else parse_smaps(self.reader.read_all(f"{self.proc}/{pid}/smaps"))
                )
            except Vanished:
                continue  # exited since the TASKS pass
            except Unreadable as err:
                out[pid] = dataclasses.replace(process, unreadable=err.reason, stats=None)
                continue
            except (ValueError, IndexError):
                continue
            if ready is not None and ready.shmem_devs is not None:
                shmem_devs = ready.shmem_devs
            else:
                shmem_devs = self._shmem_devs(pid)
            aspace = self._aspace(pid, vmas, accs, shmem_devs, ready.paged if ready else None)
            if ready is not None:  # the VMOs of its VMAs, in order, for the page facts
                self.vma_koids[pid] = [m.vmo_koid for m in _in_order(aspace.root)]
            handles = self._handles(pid, accs, shmem_devs, ready.fds if ready else None)
            out[pid] = dataclasses.replace(process, aspace=aspace, handles=handles)
        segments = self._sysv_segments(accs)
        if self.wanted is not None:
            self._count_other_mappers(accs, set(out))
        else:
            self._add_unattached_segments(accs, segments)
        vmos = {acc.koid: self._vmo(acc, segments) for acc in accs.values()}
        self.page_kinds = {acc.koid: _page_kind(acc) for acc in accs.values()}
        return out, vmos

    def _shmem_devs(self, pid: int) -> set[tuple[int, int]]:
        """The devices of the shmem-like filesystems mounted in the process's mount
        namespace (mountinfo is read once per namespace: most processes share one)."""
        try:
            namespace: str | None = self.reader.readlink(f"{self.proc}/{pid}/ns/mnt")
        except Unreadable:
            namespace = None
        devs = self.shmem_devs.get(namespace) if namespace is not None else None
        if devs is None:
            mounts = self._mounts(pid)
            devs = {(m.major, m.minor) for m in mounts if m.fstype in _SHMEM_FSTYPES}
            if namespace is not None and mounts:  # (none: the process exited meanwhile)
                self.shmem_devs[namespace] = devs
        return devs

    def _koid(self, key: tuple[object, ...]) -> int:
        koid = _fold(key)
        while self.koids.setdefault(koid, key) != key:
            koid = koid + 1 if koid + 1 < 1 << _KOID_BITS else 1
        return koid

    def _acc(
        self, accs: dict[tuple[object, ...], _VmoAcc], key: tuple[object, ...], kind: str, name: str
    ) -> _VmoAcc:
        acc = accs.get(key)
        if acc is None:
            acc = accs[key] = _VmoAcc(self._koid(key), kind, name)
        return acc

    def _aspace(
        self,
        pid: int,
        vmas: list[Vma],
        accs: dict[tuple[object, ...], _VmoAcc],
        shmem_devs: set[tuple[int, int]],
        paged: Sequence[PageFigures] | None = None,
    ) -> Aspace:
        """The address space of ``vmas``; ``paged``, the figures of each VMA from the
        pages read (Level.PAGES), in place of their ``figures`` from smaps."""
        user = [v for v in vmas if v.start < _KERNEL_HALF]
        size = task_size(self.reader.machine(), max((v.end for v in user), default=0))
        nodes: list[Vmar | Mapping] = []
        i = 0
        while i < len(user):
            j = _elf_end(user, i)
            mappings = [
                self._mapping(pid, user[k], accs, shmem_devs, paged[k] if paged else None)
                for k in range(i, j)
            ]
            if j - i >= 2:
                first = user[i]
                nodes.append(
                    Vmar(
                        koid=_fold(("vmar", pid, first.start)),
                        name=first.path,
                        base=first.start,
                        size=user[j - 1].end - first.start,
                        children=tuple(mappings),
                    )
                )
            else:
                nodes.extend(mappings)
            i = j
        root = Vmar(
            koid=_fold(("vmar", pid)), name="root", base=0, size=size, children=tuple(nodes)
        )
        return Aspace(name=f"proc:{pid}", base=0, size=size, root=root)

    def _mapping(
        self,
        pid: int,
        vma: Vma,
        accs: dict[tuple[object, ...], _VmoAcc],
        shmem_devs: set[tuple[int, int]],
        paged: PageFigures | None = None,
    ) -> Mapping:
        kind, key = _vma_key(pid, vma)
        acc = self._acc(accs, key, kind, vma.path)
        size = vma.end - vma.start
        stats: TaskStats | None
        if paged is not None:  # from the pages (no hugetlb: those are read from smaps)
            committed, pss, private = paged
            own = pss
            # (immutable: one object for the many alike, e.g. every empty guard VMA)
            stats = self.stats_of.get((size, paged))
            if stats is None:
                stats = self.stats_of[size, paged] = TaskStats(
                    mapped_bytes=size,
                    private_bytes=private,
                    shared_bytes=committed - private,
                    scaled_shared_bytes=max(0, pss - private),
                    swap_pss_bytes=0,
                )
        else:
            figures = vma.figures or MemFigures()
            committed = figures.rss + figures.shared_hugetlb + figures.private_hugetlb
            own = figures.pss + figures.private_hugetlb
            stats = task_stats(figures, size) if vma.figures is not None else None
        acc.mappers.add(pid)
        acc.num_mappings += 1
        # An anonymous VMO is one process's VMA, but after a fork its pages stay shared
        # copy-on-write with the parent's and siblings' VMAs, and every one's Rss counts
        # them: its own memory is the VMA's Pss, so the VMOs of all processes add up to
        # the pages, each once (memgraph -v | treemap sums them).
        acc.rss += own if kind == "anon" else committed
        offset = 0 if kind in ("anon", "special") else vma.offset
        if offset + size > acc.extent:
            acc.extent = offset + size
        if vma.vmflags:  # (smaps only)
            if "pf" in vma.vmflags or "io" in vma.vmflags:
                acc.physical = True
            if "ht" in vma.vmflags:
                acc.hugetlb = True
        if kind in ("file", "dmabuf"):
            if not acc.probes:
                # map_files/ needs CAP_SYS_ADMIN; the path is the fallback.
                acc.probes.append(f"{self.proc}/{pid}/map_files/{vma.start:x}-{vma.end:x}")
                if vma.path.startswith("/") and not vma.path.endswith(" (deleted)"):
                    acc.probes.append("?" + self.reader.host_path(vma.path))
            if (vma.major, vma.minor) in shmem_devs or vma.path.startswith(_SHMEM_PREFIXES):
                acc.shmem = True
        return Mapping(
            vma.start, size, _perms(vma.perms), acc.koid, offset, committed, vma.path, stats
        )

    def _read_fds(self, pid: int, shmem_devs: set[tuple[int, int]]) -> _FdReads:
        """The system calls :meth:`_handles` needs, made ahead (at Level.PAGES, on the
        threads that read the process's other files): the descriptors, their links, the
        ``stat`` of those that name files, the ``fdinfo`` of memory objects."""
        fd_dir = f"{self.proc}/{pid}/fd"
        reads = _FdReads()
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
        accs: dict[tuple[object, ...], _VmoAcc],
        shmem_devs: set[tuple[int, int]],
        reads: _FdReads | None = None,
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
        accs: dict[tuple[object, ...], _VmoAcc],
        shmem_devs: set[tuple[int, int]],
        reads: _FdReads,
    ) -> Handle | None:
        own = _fold(("fd", pid, fd))
        if target.startswith("socket:["):
            return Handle(fd, _fold(("socket", target)), ObjType.SOCKET, _DT)
        if target.startswith("pipe:["):
            return Handle(fd, _fold(("pipe", target)), ObjType.PIPE, _DT)
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
            return Handle(fd, _fold(key), obj, _DT)
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

    def _sysv_segments(self, accs: dict[tuple[object, ...], _VmoAcc]) -> dict[int, ShmSegment]:
        if self.wanted is not None and not any(acc.kind == "sysv" for acc in accs.values()):
            return {}
        try:
            text = self.reader.read_all(f"{self.proc}/sysvipc/shm")
            return {s.shmid: s for s in parse_sysvipc_shm(text)}
        except (Unreadable, ValueError, KeyError):
            return {}

    def _add_unattached_segments(
        self, accs: dict[tuple[object, ...], _VmoAcc], segments: dict[int, ShmSegment]
    ) -> None:
        mapped = {key[3] for key in accs if key[0] == "sysv"}
        for shmid, seg in sorted(segments.items()):
            if shmid not in mapped:
                # Not mapped by anyone: its dev is unknown, and it needs none.
                key = ("sysv", -1, -1, shmid)
                self._acc(accs, key, "sysv", f"/SYSV{seg.key & 0xFFFFFFFF:08x}")

    def _count_other_mappers(self, accs: dict[tuple[object, ...], _VmoAcc], done: set[int]) -> None:
        """Share counts need every process's mappings: read the (cheap) ``maps`` of the
        processes that were not expanded, for the objects that can be shared."""
        shareable = {key for key, acc in accs.items() if acc.kind != "anon"}
        if not shareable:
            return
        skipped = 0
        for pid in self.reader.pids():
            if pid in done:
                continue
            try:
                text = self.reader.read_all(f"{self.proc}/{pid}/maps")
            except Vanished:
                continue
            except Unreadable:
                skipped += 1
                continue
            for vma in parse_maps(text):
                if vma.inode == 0 and vma.path not in _SPECIAL and not vma.path.startswith("/"):
                    continue  # anonymous: never shared with the expanded processes
                acc = accs.get(_vma_key(pid, vma)[1])
                if acc is not None:
                    acc.num_mappings += 1
                    acc.mappers.add(pid)
        if skipped:
            self.notes.append(
                f"share counts leave out {skipped} process{'es' if skipped != 1 else ''}"
                " whose mappings could not be read"
            )

    def _vmo(self, acc: _VmoAcc, segments: dict[int, ShmSegment]) -> Vmo:
        size, committed = acc.extent, acc.rss
        shmid = self._key_of(acc)[3] if acc.kind == "sysv" else None
        if isinstance(shmid, int):
            seg = segments.get(shmid)
            if seg is not None:
                size, committed = seg.size, seg.rss
        elif acc.kind in ("file", "dmabuf"):
            size, committed = self._object_size(acc)
        return Vmo(
            koid=acc.koid,
            name=acc.name,
            size_bytes=size,
            committed_bytes=committed,
            num_mappings=acc.num_mappings,
            share_count=len(acc.mappers) if acc.num_mappings >= 2 else 1,
            physical=acc.physical,
            kernel_only=acc.kind == "special",
        )

    def _key_of(self, acc: _VmoAcc) -> tuple[object, ...]:
        return self.koids[acc.koid]

    def _object_size(self, acc: _VmoAcc) -> tuple[int, int]:
        """(size, committed) of a file, device, shmem object or dma-buf."""
        key = self._key_of(acc)
        for probe in acc.probes:
            path = probe.lstrip("?")
            try:
                st = self.reader.stat(path)
            except Unreadable:
                continue
            if probe.startswith("?") and ("file", st.major, st.minor, st.ino) != key:
                continue  # the name now refers to another file
            if acc.kind == "dmabuf":
                size = acc.dmabuf_size if acc.dmabuf_size is not None else st.size
                return size, size  # exporter memory, allocated whole
            if not st.is_regular:
                break  # a device: its size is what is mapped of it
            pages = self.reader.cachestat_pages(path)
            if pages is not None:
                return st.size, pages * self.page_size
            if acc.shmem:
                return st.size, st.blocks * 512
            return st.size, acc.rss
        if acc.kind == "dmabuf" and acc.dmabuf_size is not None:
            return acc.dmabuf_size, acc.dmabuf_size
        return acc.extent, acc.rss
