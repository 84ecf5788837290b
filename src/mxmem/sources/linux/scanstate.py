"""What one host scan holds while it runs: what it learned of each process
(:class:`Record`), the VMOs being assembled (:class:`VmoAcc`), and the state the passes
of :class:`~.host._Scan` share (:class:`ScanState`, the base of those passes: the
descriptors, the address spaces and VMOs, the page reads, the processes)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from mxmem.model import Level, TaskStats, Thread
from mxmem.sources.linux.procfs import MemFigures, Mount, ProcStat, Vma, parse_mountinfo
from mxmem.sources.linux.reader import ProcReader, Unreadable
from mxmem.sources.linux.vmas import KOID_BITS, SHMEM_FSTYPES, fold_koid

if TYPE_CHECKING:
    from mxmem.sources.linux.descriptors import FdReads
    from mxmem.sources.linux.pagemap import U64, Entries, PageAccess
    from mxmem.sources.linux.pagetable import PageFigures


class Record:
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
        self.shmem_devs: set[tuple[int, int]] | None = None  # (see ScanState._shmem_devs)
        self.fds: FdReads | None = None  # its descriptors, read ahead


class VmoAcc:
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


class ScanState:
    """The state of one scan, shared by its passes."""

    def __init__(
        self,
        reader: ProcReader,
        level: Level,
        processes: Collection[int] | None,
        earlier: Sequence[Mapping[str, int]] = (),
    ) -> None:
        self.reader = reader
        self.proc = reader.proc
        self.level = level
        # Page facts are the whole system's: a process list is ignored at Level.PAGES.
        whole = processes is None or level >= Level.PAGES
        self.wanted = None if whole or processes is None else set(processes)
        self.notes: list[str] = []
        self.aspace_notes: tuple[str, ...] = ()  # about the kernel address space
        self.koids: dict[int, tuple[object, ...]] = {}
        self.page_kinds: dict[int, str] = {}  # VMO koid -> what .pagefacts reads of it
        self.page_size = 4096
        self.meminfo: dict[str, int] = {}
        # Level.PAGES: /proc/meminfo before and while the pages are read, how its
        # counters moved in the scans before this one and in this one (see .categories).
        self.readings: list[dict[str, int]] = []
        self.earlier = earlier
        self.moves: dict[str, int] = {}
        self.shmem_devs: dict[str, set[tuple[int, int]]] = {}  # mount namespace -> devices
        self.vma_koids: dict[int, list[int]] = {}  # pid -> the VMO of each of its VMAs
        self.stats_of: dict[tuple[int, PageFigures], TaskStats] = {}
        # Level.PAGES: page-level reads (root), or why they cannot be made.
        self.access: PageAccess | None = None
        self.refused: str | None = None
        self.live_pages: Callable[[U64], int] | None = None

    def _mounts(self, pid: int | str) -> list[Mount]:
        try:
            return parse_mountinfo(self.reader.read(f"{self.proc}/{pid}/mountinfo"))
        except (Unreadable, ValueError, IndexError):
            return []

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
            devs = {(m.major, m.minor) for m in mounts if m.fstype in SHMEM_FSTYPES}
            if namespace is not None and mounts:  # (none: the process exited meanwhile)
                self.shmem_devs[namespace] = devs
        return devs

    def _koid(self, key: tuple[object, ...]) -> int:
        koid = fold_koid(key)
        while self.koids.setdefault(koid, key) != key:
            koid = koid + 1 if koid + 1 < 1 << KOID_BITS else 1
        return koid

    def _acc(
        self, accs: dict[tuple[object, ...], VmoAcc], key: tuple[object, ...], kind: str, name: str
    ) -> VmoAcc:
        acc = accs.get(key)
        if acc is None:
            acc = accs[key] = VmoAcc(self._koid(key), kind, name)
        return acc
