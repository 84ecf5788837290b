"""Level.FULL of the host scan: each process's address space from its VMAs, and the
VMOs behind its mappings and descriptors (the table in :mod:`.host` says how)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mxmem.model import Aspace, Mapping, Process, ProcessState, TaskStats, Vmar, Vmo
from mxmem.sources.linux.descriptors import Descriptors
from mxmem.sources.linux.pagekinds import ANON, DMABUF, FILE, HUGETLB, PHYSICAL, SHMEM, SPECIAL
from mxmem.sources.linux.procfs import (
    MemFigures,
    ShmSegment,
    Vma,
    parse_maps,
    parse_smaps,
    parse_sysvipc_shm,
)
from mxmem.sources.linux.reader import Unreadable, Vanished
from mxmem.sources.linux.scanstate import Record, VmoAcc
from mxmem.sources.linux.vmas import (
    KERNEL_FILES,
    KERNEL_HALF,
    SHMEM_PREFIXES,
    elf_end,
    fold_koid,
    in_order,
    perm_bits,
    task_size,
    task_stats,
    vma_key,
)

if TYPE_CHECKING:
    from mxmem.sources.linux.pagetable import PageFigures


def _page_kind(acc: VmoAcc) -> str:
    """What :mod:`.pagefacts` makes of an object's pages."""
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


class AddressSpaces(Descriptors):
    """The address spaces and VMOs pass of a scan (Level.FULL)."""

    def _full(
        self, processes: dict[int, Process], prepared: dict[int, Record] | None = None
    ) -> tuple[dict[int, Process], dict[int, Vmo]]:
        """Address spaces, descriptors and VMOs; ``prepared`` has the records of the
        processes whose VMAs and descriptors were read already (Level.PAGES), the others'
        are read from ``smaps`` and ``fd/``."""
        self.page_size = self.reader.page_size()
        accs: dict[tuple[object, ...], VmoAcc] = {}
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
                self.vma_koids[pid] = [m.vmo_koid for m in in_order(aspace.root)]
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

    def _aspace(
        self,
        pid: int,
        vmas: list[Vma],
        accs: dict[tuple[object, ...], VmoAcc],
        shmem_devs: set[tuple[int, int]],
        paged: Sequence[PageFigures] | None = None,
    ) -> Aspace:
        """The address space of ``vmas``; ``paged``, the figures of each VMA from the
        pages read (Level.PAGES), in place of their ``figures`` from smaps."""
        user = [v for v in vmas if v.start < KERNEL_HALF]
        size = task_size(self.reader.machine(), max((v.end for v in user), default=0))
        nodes: list[Vmar | Mapping] = []
        i = 0
        while i < len(user):
            j = elf_end(user, i)
            mappings = [
                self._mapping(pid, user[k], accs, shmem_devs, paged[k] if paged else None)
                for k in range(i, j)
            ]
            if j - i >= 2:
                first = user[i]
                nodes.append(
                    Vmar(
                        koid=fold_koid(("vmar", pid, first.start)),
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
            koid=fold_koid(("vmar", pid)), name="root", base=0, size=size, children=tuple(nodes)
        )
        return Aspace(name=f"proc:{pid}", base=0, size=size, root=root)

    def _mapping(
        self,
        pid: int,
        vma: Vma,
        accs: dict[tuple[object, ...], VmoAcc],
        shmem_devs: set[tuple[int, int]],
        paged: PageFigures | None = None,
    ) -> Mapping:
        kind, key = vma_key(pid, vma)
        acc = self._acc(accs, key, kind, vma.path)
        size = vma.end - vma.start
        stats: TaskStats | None
        if paged is not None:  # from the pages (no hugetlb: those are read from smaps)
            committed, pss, private = paged
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
            stats = task_stats(figures, size) if vma.figures is not None else None
        acc.mappers.add(pid)
        acc.num_mappings += 1
        # A VMO's alloc is its resident bytes on every source (what vmaps and pmap show
        # of the region): an anonymous VMO, one process's VMA, counts the pages it still
        # shares copy-on-write after a fork too, as each sharer's Rss does. Per-process
        # shares of such pages are the mappings' Pss and exact attribution's business.
        acc.rss += committed
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
            if (vma.major, vma.minor) in shmem_devs or vma.path.startswith(SHMEM_PREFIXES):
                acc.shmem = True
        return Mapping(
            vma.start, size, perm_bits(vma.perms), acc.koid, offset, committed, vma.path, stats
        )

    def _sysv_segments(self, accs: dict[tuple[object, ...], VmoAcc]) -> dict[int, ShmSegment]:
        if self.wanted is not None and not any(acc.kind == "sysv" for acc in accs.values()):
            return {}
        try:
            text = self.reader.read_all(f"{self.proc}/sysvipc/shm")
            return {s.shmid: s for s in parse_sysvipc_shm(text)}
        except (Unreadable, ValueError, KeyError):
            return {}

    def _add_unattached_segments(
        self, accs: dict[tuple[object, ...], VmoAcc], segments: dict[int, ShmSegment]
    ) -> None:
        mapped = {key[3] for key in accs if key[0] == "sysv"}
        for shmid, seg in sorted(segments.items()):
            if shmid not in mapped:
                # Not mapped by anyone: its dev is unknown, and it needs none.
                key = ("sysv", -1, -1, shmid)
                self._acc(accs, key, "sysv", f"/SYSV{seg.key & 0xFFFFFFFF:08x}")

    def _count_other_mappers(self, accs: dict[tuple[object, ...], VmoAcc], done: set[int]) -> None:
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
                if vma.inode == 0 and vma.path not in KERNEL_FILES and not vma.path.startswith("/"):
                    continue  # anonymous: never shared with the expanded processes
                acc = accs.get(vma_key(pid, vma)[1])
                if acc is not None:
                    acc.num_mappings += 1
                    acc.mappers.add(pid)
        if skipped:
            self.notes.append(
                f"share counts leave out {skipped} process{'es' if skipped != 1 else ''}"
                " whose mappings could not be read"
            )

    def _vmo(self, acc: VmoAcc, segments: dict[int, ShmSegment]) -> Vmo:
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

    def _key_of(self, acc: VmoAcc) -> tuple[object, ...]:
        return self.koids[acc.koid]

    def _object_size(self, acc: VmoAcc) -> tuple[int, int]:
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
