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
                    ``rss`` of ``/proc/sysvipc/shm``; anonymous: the VMA's Rss (the region's
                    resident pages, those still shared copy-on-write after a fork
                    included, as ``vmaps`` and ``pmap`` show it: ``vmos``'s alloc
                    means resident bytes on every source).
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
                    PAGEMAP_SCAN, a VMA too large to read whole. See :mod:`.pagefacts`.
CPU counters        every level: ``/proc/stat``, ``/proc/interrupts``, ``/proc/vmstat``,
                    ``/proc/schedstat``; ``Snapshot.cpu_total`` holds the counters Linux
                    keeps only system-wide. See :mod:`.kernel`.
kernel aspace       (Level.FULL without a process list) the x86-64 layout with the areas
                    of ``/proc/vmallocinfo``, the kernel image and modules; the kernel's
                    own memory (slab, page tables, vmalloc...) as kernel-only VMOs listed
                    first. See :mod:`.kernelspace`.
==================  =====================================================================
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
from collections.abc import Collection, Iterator
from datetime import UTC, datetime

from mxmem.errors import SourceError
from mxmem.model import (
    ZERO_STATS,
    Aspace,
    Job,
    KernelMemory,
    Level,
    Platform,
    Process,
    ProcessState,
    Snapshot,
    TaskStats,
    Thread,
    Vmo,
)
from mxmem.sources.linux import cgroups

# The kernel's own figures (memory by use, CPU counters, the kernel address space);
# kernel_memory is re-exported for the callers that know it from here.
from mxmem.sources.linux.categories import SCANS, read_meminfo
from mxmem.sources.linux.kernel import kernel_memory, read_cpus, read_kernel_memory
from mxmem.sources.linux.kernelspace import read_kernel_space
from mxmem.sources.linux.pagereads import PageReads
from mxmem.sources.linux.parallel import map_in_threads, useful_workers
from mxmem.sources.linux.procfs import ProcStat, cgroup_path, parse_stat, parse_status, thread_state
from mxmem.sources.linux.reader import ProcReader, Unreadable, Vanished
from mxmem.sources.linux.scanstate import Record
from mxmem.sources.linux.vmas import task_size, task_stats

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
            scan = _Scan(self.reader, level, processes)
            snapshot = scan.run(self._name)
            # Page facts compare pages read over a second or more with counters read at
            # single moments: while the counters moved meanwhile, scan again (a few times
            # at most; the facts' notes say what moved).
            earlier: list[dict[str, int]] = []
            while scan.moves and len(earlier) + 1 < SCANS:
                earlier.append(scan.moves)
                scan = _Scan(self.reader, level, processes, earlier)
                snapshot = scan.run(self._name)
            return snapshot


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


def _with_cgroup_pages(jobs: dict[int, Job], charged: dict[int, int]) -> dict[int, Job]:
    """Jobs whose cgroup has mapped pages charged to it gain ``charged_pages_bytes``
    (a job's koid is its cgroup directory's inode, which is what kpagecgroup names)."""
    return {
        koid: dataclasses.replace(job, charged_pages_bytes=charged[koid])
        if koid in charged
        else job
        for koid, job in jobs.items()
    }


class _Scan(PageReads):
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
            # The page modules (and numpy, 60-180 ms) only for the page-level reads.
            from mxmem.sources.linux.pagemap import live_pages, page_access

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
        if self.access is not None and self.meminfo:
            # (the counters again once the pages are read: see SCANS above)
            self.readings.append(read_meminfo(self.reader))
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
            from mxmem.sources.linux.pagefacts import PagesRead, host_page_facts
            from mxmem.sources.linux.pagetable import cgroup_pages

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
            pages, self.moves = host_page_facts(
                self.reader,
                processes,
                vmos,
                self.page_kinds,
                duplicates,
                rollups,
                facts_read,
                self.refused,
                self.readings,
                self.earlier,
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
        self.readings = [figures.meminfo]
        self.notes.extend(figures.notes)
        return figures.memory

    def _kernel_space(self, vmos: dict[int, Vmo]) -> tuple[Aspace | None, dict[int, Vmo]]:
        """The kernel address space, and the kernel's own VMOs listed before the others
        (the oldest: the kernel made them at boot). See :mod:`.kernelspace`."""
        space = read_kernel_space(self.reader, self.meminfo, self._koid)
        self.aspace_notes = tuple(space.notes)
        return space.aspace, {**{v.koid: v for v in space.vmos}, **vmos}

    # --- processes -------------------------------------------------------------------

    def _read_process(self, pid: int, hierarchy: cgroups.Hierarchy | None) -> Record | None:
        """The TASKS-level facts of one process; ``None`` if it is gone (or is not a
        process: a thread id named on the command line)."""
        base = f"{self.proc}/{pid}"
        read = self.reader.read
        try:
            st = parse_stat(read(f"{base}/stat"))
            if self.wanted is not None and parse_status(read(f"{base}/status")).tgid != pid:
                return None  # /proc/TID exists for every thread, but it is no process
            rec = Record(st)
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

    def _shared_address_spaces(self, records: dict[int, Record]) -> dict[int, int]:
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
        self, hierarchy: cgroups.Hierarchy | None, records: dict[int, Record]
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

    def _process(self, pid: int, rec: Record, job_koid: int, duplicates: dict[int, int]) -> Process:
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
