"""Level.PAGES of the host scan: each process's VMAs and pages in RAM, read with its
other files in place of ``smaps_rollup`` and ``smaps`` (root), and the figures of
processes and VMAs worked out from the pages (see :mod:`.pagefacts`). The page modules,
and so numpy, are imported only here and only when pages are read."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mxmem.model import Process
from mxmem.sources.linux.aspaces import AddressSpaces
from mxmem.sources.linux.procfs import (
    MemFigures,
    ProcStat,
    Vma,
    parse_maps,
    parse_smaps,
    parse_smaps_rollup,
    parse_status,
)
from mxmem.sources.linux.reader import Unreadable, Vanished
from mxmem.sources.linux.scanstate import Record
from mxmem.sources.linux.vmas import KERNEL_FILES, KERNEL_HALF

if TYPE_CHECKING:
    from mxmem.sources.linux.pagemap import PageAccess
    from mxmem.sources.linux.pagetable import PageTable

# Paths of VMAs that may be device memory (VM_PFNMAP/VM_IO, only smaps' VmFlags tell):
# device files, dma-bufs, and hugetlb (the VmFlags ht) by its usual names; and, below,
# anything not a path or a [name] (anonymous inodes: "anon_inode:[...]").
_SMAPS_PATHS = ("/dev/", "/dmabuf:", "/anon_hugepage")
_NOT_DEVICES = ("/dev/shm/", "/dev/zero")  # tmpfs files, MAP_SHARED anonymous memory
_NOT_PAGES = frozenset({"pf", "io", "ht"})  # VmFlags of mappings whose pages are not read


def _user(vmas: list[Vma]) -> list[Vma]:
    """The VMAs of the user address range (not [vsyscall], in the kernel half)."""
    return [v for v in vmas if v.start < KERNEL_HALF]


def _needs_smaps(vmas: list[Vma], page: int, access: PageAccess) -> bool:
    """Whether the VMAs of ``maps`` need ``smaps`` to be known (see PageReads._read_space)."""
    from mxmem.sources.linux.pagemap import needs_smaps_for  # (see the module docstring)

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
        and vma.path not in KERNEL_FILES
        and _NOT_PAGES.isdisjoint(vma.vmflags)
    )


class PageReads(AddressSpaces):
    """The reads of a scan that differ with page-level access (Level.PAGES, root)."""

    def _read_rollup(self, pid: int, st: ProcStat, rec: Record) -> bool:
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

    def _read_space(self, pid: int, st: ProcStat, rec: Record, access: PageAccess) -> bool:
        """The VMAs of a process and its pages in RAM (``rec.vmas``, ``rec.entries``),
        read with page-level access in place of ``smaps_rollup``; False if the process
        has no address space any more.

        ``maps`` lists the VMAs; their figures and the process's come from the pages read
        (:func:`.pagetable.page_table`), so ``smaps``, with its text and its page-table walk
        per VMA, and ``smaps_rollup`` are read only when ``maps`` cannot say enough: the
        process has swap (``VmSwap`` of ``status``: SwapPss needs the swap counts) or
        hugetlb pages (``HugetlbPages``: the VmFlags ``ht`` find them), a VMA may be
        device memory (VmFlags ``pf``/``io``: a path under ``/dev``, a dma-buf, an
        anonymous inode), or, without PAGEMAP_SCAN, a VMA is too large to read whole.
        A file that cannot be read leaves the process to ``smaps_rollup`` and the FULL
        scan's ``smaps``, as without page-level reads."""
        from mxmem.sources.linux.pagemap import read_entries

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
        self, records: dict[int, Record], duplicates: dict[int, int]
    ) -> tuple[list[int], PageTable] | None:
        """The pages read, sorted and counted; the figures of the processes and VMAs
        read from ``maps`` filled in from them. None if pagemap turned out to show no
        PFNs: then the scan goes on without page-level reads (``smaps_rollup`` read for
        the processes that were read without it)."""
        from mxmem.sources.linux.pagetable import PfnsHidden, page_table

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
        self, pids: list[int], records: dict[int, Record], processes: dict[int, Process]
    ) -> list[list[int]]:
        """The VMO of each VMA read, per process read."""
        out: list[list[int]] = []
        for pid in pids:
            koids = self.vma_koids[pid]  # its VMAs were prepared: it was expanded
            out.append([koids[i] for i in records[pid].spans])
        return out
