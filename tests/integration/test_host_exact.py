"""Exact attribution of the live Linux host (``HostSource.snapshot(Level.PAGES)``).

The test starts real processes that build known page patterns — a memfd held only by a
descriptor, a file mapped twice by one process, copy-on-write children of a parent, a
file read by several processes, fresh anonymous pages that were only read — then takes
one page-level snapshot of the whole system and checks each process's bytes through the
VMO that reaches those pages against a hand computation, exactly (``Fraction``).

The page-level path needs root (``/proc/kpagecount`` and the PFNs of ``pagemap``); the
approximate path is checked as uid 65534.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import pytest
from clonevm import clone_vm_pair
from users import as_nobody

from mxmem.accounting.exact import Attribution, attribute_snapshot
from mxmem.model import KERNEL_STACKS, PAGE_TABLES, Level, ObjType, Snapshot
from mxmem.sources import open_source
from mxmem.sources.linux import host, pagemap, pagetable, pageusers, reader
from mxmem.sources.linux.procfs import parse_smaps, parse_smaps_rollup

PAGE = 4096
MiB = 1 << 20

LINUX = sys.platform.startswith("linux") and os.path.exists("/proc/self/pagemap")
ROOT = LINUX and os.geteuid() == 0
KPAGECOUNT = LINUX and os.path.exists("/proc/kpagecount")
needs_root = pytest.mark.skipif(
    not (ROOT and KPAGECOUNT), reason="page-level reads need root and /proc/kpagecount"
)

# Every child prints one JSON line when its pages are in place, then sleeps until killed.
SLEEP = "\nimport time\nwhile True: time.sleep(60)\n"

# A ctypes preamble: mmap/mprotect/madvise, and a private anonymous region of n pages
# between two PROT_NONE guard pages (so it stays one VMA, never merged with a
# neighbour), with 4 KiB pages only (MADV_NOHUGEPAGE: no THP, no huge zero page).
REGION = """
import ctypes, json, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
def region(pages):
    base = libc.mmap(None, (pages + 2) * 4096, 3, 0x22, -1, 0)  # RW, PRIVATE|ANONYMOUS
    libc.mprotect(base, 4096, 0)
    libc.mprotect(base + 4096 * (pages + 1), 4096, 0)
    libc.madvise(base + 4096, pages * 4096, 15)  # MADV_NOHUGEPAGE
    return base + 4096
"""

# (a) A memfd with 8 MiB written through the descriptor, never mapped; with "fork", the
# parent forks a child that inherits the descriptor: two holders.
HELD_MEMFD = (
    """
import json, os, sys
fd = os.memfd_create("mxmem-exact-held")
os.pwrite(fd, b"\\x05" * (8 << 20), 0)
pids = [os.getpid()]
if sys.argv[1] == "fork":
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(w, b"x")
        import time
        while True: time.sleep(60)
    os.read(r, 1)
    pids.append(child)
print(json.dumps({"pids": pids, "fd": fd}), flush=True)
"""
    + SLEEP
)

# (b) A file mapped twice (two MAP_SHARED mappings) by one process, every page read
# through both; the descriptor is closed, so only the mappings remain.
MAP_TWICE = (
    """
import json, mmap, os, sys
with open(sys.argv[1], "rb") as f:
    maps = [mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) for _ in range(2)]
total = sum(m[i] for m in maps for i in range(0, len(m), 4096))
print(json.dumps({"pid": os.getpid()}), flush=True)
"""
    + SLEEP
)

# (c) A parent fills N anonymous pages, forks K children; child j then writes its own M
# pages (pages j*M .. j*M+M-1). Nobody writes anything else of the region.
COW = (
    REGION
    + """
n, k, m = (int(a) for a in sys.argv[1:4])
base = region(n)
ctypes.memset(base, 1, n * 4096)
r, w = os.pipe()
children = []
for j in range(k):
    pid = os.fork()
    if pid == 0:
        ctypes.memset(base + j * m * 4096, 2, m * 4096)
        os.write(w, b"x")
        while True:
            signal.pause()
    children.append(pid)
for _ in range(k):
    os.read(r, 1)
print(json.dumps({"parent": os.getpid(), "children": children, "base": base}), flush=True)
"""
    + SLEEP
)

# (d) A file read through a MAP_SHARED mapping, every page.
MAP_ONCE = (
    """
import json, mmap, os, sys
with open(sys.argv[1], "rb") as f:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
total = sum(m[i] for i in range(0, len(m), 4096))
print(json.dumps({"pid": os.getpid()}), flush=True)
"""
    + SLEEP
)

# Zero page: 101 fresh anonymous pages; page 0 written, pages 1..100 only read (each read
# maps the shared zero page).
ZERO = (
    REGION
    + """
base = region(101)
ctypes.memset(base, 7, 4096)
total = sum(ctypes.string_at(base + i * 4096, 1)[0] for i in range(1, 101))
print(json.dumps({"pid": os.getpid(), "base": base}), flush=True)
"""
    + SLEEP
)

# A reservation of 64 GiB (MAP_NORESERVE) with three pages written: pages 0 and 5 and
# the page at 3 GiB.
SPARSE = (
    REGION
    + """
libc.mmap.restype = ctypes.c_void_p
size = 64 << 30
base = libc.mmap(None, size, 3, 0x4022, -1, 0)  # RW, PRIVATE|ANONYMOUS|NORESERVE
libc.madvise(base, size, 15)  # MADV_NOHUGEPAGE: 4 KiB pages only
for offset in (0, 5 * 4096, 3 << 30):
    ctypes.memset(base + offset, 9, 4096)
print(json.dumps({"pid": os.getpid(), "base": base, "size": size}), flush=True)
"""
    + SLEEP
)
SPARSE_PAGES = 3

# The copy-on-write family's sizes (pages).
N, K, M = 1024, 3, 128
FILE_PAGES = 300  # the file of (b)
SHARED_PAGES = 256  # the file of (d)
READERS = 3


class Scene(NamedTuple):
    snapshot: Snapshot
    attribution: Attribution
    reports: dict[str, dict[str, object]]
    paths: dict[str, Path]
    read: dict[int, int]  # pid -> bytes of its pagemap read by the snapshot


@contextlib.contextmanager
def counting_pagemap_reads() -> Iterator[dict[int, int]]:
    """Bytes of each process's pagemap read (by pid) while in the block, by the last scan
    (a snapshot scans again while the system changes: its facts are the last scan's)."""
    read: dict[int, int] = {}
    inner = reader.Pagemap.read
    run = host._Scan.run

    def scan(self: host._Scan, name: str) -> Snapshot:
        read.clear()
        return run(self, name)

    def counted(self: reader.Pagemap, offsets: list[int], sizes: list[int]) -> bytearray:
        pid = self.path.split("/")[-2]
        if pid.isdigit():
            read[int(pid)] = read.get(int(pid), 0) + sum(sizes)
        return inner(self, offsets, sizes)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reader.Pagemap, "read", counted)
        patch.setattr(host._Scan, "run", scan)
        yield read


def _start(script: str, *args: str) -> tuple[subprocess.Popen[str], dict[str, object]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready, "child did not report ready"
    line = proc.stdout.readline()
    assert line, f"child exited with {proc.wait()}"
    report: dict[str, object] = json.loads(line)
    return proc, report


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """Every scenario's processes, and one page-level snapshot of the whole system."""
    if not (ROOT and KPAGECOUNT):
        pytest.skip("page-level reads need root and /proc/kpagecount")
    tmp = tmp_path_factory.mktemp("exact")
    paths = {"twice": tmp / "twice.bin", "shared": tmp / "shared.bin"}
    paths["twice"].write_bytes(bytes(range(256)) * (FILE_PAGES * PAGE // 256))
    paths["shared"].write_bytes(bytes(range(256)) * (SHARED_PAGES * PAGE // 256))
    started: list[subprocess.Popen[str]] = []
    reports: dict[str, dict[str, object]] = {}
    try:
        for name, script, args in (
            ("held1", HELD_MEMFD, ("one",)),
            ("held2", HELD_MEMFD, ("fork",)),
            ("twice", MAP_TWICE, (str(paths["twice"]),)),
            ("cow", COW, (str(N), str(K), str(M))),
            ("zero", ZERO, ()),
            *((f"reader{i}", MAP_ONCE, (str(paths["shared"]),)) for i in range(READERS)),
            ("sparse", SPARSE, ()),
        ):
            proc, report = _start(script, *args)
            started.append(proc)
            reports[name] = report
        with counting_pagemap_reads() as read:
            snapshot = open_source("host").snapshot(Level.PAGES)
        yield Scene(snapshot, attribute_snapshot(snapshot), reports, paths, read)
    finally:
        for proc in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the child and what it forked
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _pids(value: object) -> list[int]:
    assert isinstance(value, list)
    return [_int(v) for v in value]


def _region_koid(snapshot: Snapshot, pid: int, base: int) -> int:
    aspace = snapshot.processes[pid].aspace
    assert aspace is not None
    (mapping,) = [m for m in aspace.mappings() if m.base == base]
    return mapping.vmo_koid


def _file_koid(snapshot: Snapshot, pid: int, path: Path) -> int:
    aspace = snapshot.processes[pid].aspace
    assert aspace is not None
    koids = {m.vmo_koid for m in aspace.mappings() if m.name == str(path)}
    (koid,) = koids
    return koid


def _by_vmo(attribution: Attribution, pid: int, koid: int) -> Fraction:
    share = attribution.processes.get(pid)
    return Fraction(0) if share is None else Fraction(share.by_vmo.get(koid, 0))


def _memfd_koid(snapshot: Snapshot, pid: int, fd: int) -> int:
    handles = snapshot.processes[pid].handles
    assert handles is not None
    (handle,) = [h for h in handles if h.value == fd]
    assert handle.type is ObjType.VMO
    return handle.koid


# --- (a) held, never mapped -------------------------------------------------------------------


@needs_root
def test_memfd_held_by_one_process_is_its_own(scene: Scene) -> None:
    report = scene.reports["held1"]
    (pid,) = _pids(report["pids"])
    koid = _memfd_koid(scene.snapshot, pid, _int(report["fd"]))
    assert _by_vmo(scene.attribution, pid, koid) == 8 * MiB
    assert scene.attribution.vmos[koid] == 8 * MiB


@needs_root
def test_memfd_held_by_two_processes_is_split(scene: Scene) -> None:
    report = scene.reports["held2"]
    parent, child = _pids(report["pids"])
    koid = _memfd_koid(scene.snapshot, parent, _int(report["fd"]))
    assert _memfd_koid(scene.snapshot, child, _int(report["fd"])) == koid
    assert _by_vmo(scene.attribution, parent, koid) == 4 * MiB
    assert _by_vmo(scene.attribution, child, koid) == 4 * MiB
    # The pages are these two processes' only: shared between them, private to nobody.
    facts = scene.snapshot.pages
    assert facts is not None
    (key,) = [k for k in facts.pages if k[0].vmo_koid == koid]
    assert key[0].users == tuple(sorted((parent, child)))


# --- (b) one file mapped twice by one process -------------------------------------------------


@needs_root
def test_file_mapped_twice_counts_once(scene: Scene) -> None:
    pid = _int(scene.reports["twice"]["pid"])
    aspace = scene.snapshot.processes[pid].aspace
    assert aspace is not None
    assert len([m for m in aspace.mappings() if m.name == str(scene.paths["twice"])]) == 2
    koid = _file_koid(scene.snapshot, pid, scene.paths["twice"])
    assert _by_vmo(scene.attribution, pid, koid) == FILE_PAGES * PAGE
    assert scene.attribution.processes[pid].private >= FILE_PAGES * PAGE


# --- (c) copy-on-write after fork ---------------------------------------------------------------


@needs_root
def test_copy_on_write_shares(scene: Scene) -> None:
    report = scene.reports["cow"]
    parent, children = _int(report["parent"]), _pids(report["children"])
    base = _int(report["base"])
    family = [parent, *children]
    koid = {pid: _region_koid(scene.snapshot, pid, base) for pid in family}
    assert len(set(koid.values())) == K + 1  # each process's region is its own VMO
    # A page shared by several processes counts to the lowest pid's VMO; a copy to its
    # writer's. By hand: the N - K*M pages no child wrote are shared by all K + 1; the
    # originals of child j's M pages are shared by the parent and the K - 1 other
    # children; child j's M copies are its own.
    untouched = Fraction((N - K * M) * PAGE, K + 1)
    originals = Fraction(M * PAGE, K)
    lowest = koid[min(family)]
    expected: dict[int, dict[int, Fraction]] = {}
    for pid in family:
        mine: dict[int, Fraction] = {}
        if pid == parent:
            mine[lowest] = untouched + K * originals
        else:
            mine[lowest] = untouched + (K - 1) * originals
            mine[koid[pid]] = mine.get(koid[pid], Fraction(0)) + M * PAGE
        expected[pid] = mine
    for pid in family:
        got = {k: _by_vmo(scene.attribution, pid, k) for k in koid.values()}
        assert {k: v for k, v in got.items() if v} == expected[pid], pid
    # Every page of the family once: N originals and K*M copies.
    total = sum(
        (_by_vmo(scene.attribution, pid, k) for pid in family for k in koid.values()),
        Fraction(0),
    )
    assert total == (N + K * M) * PAGE


@needs_root
def test_cgroup_pages_from_kpagecgroup(scene: Scene) -> None:
    # The copy-on-write family was faulted in by processes of the test's own cgroup, so
    # the kernel charged every page of it there: that job's kpagecgroup figure holds at
    # least the family's N originals and K*M copies.
    report = scene.reports["cow"]
    parent = _int(report["parent"])
    job = scene.snapshot.jobs[scene.snapshot.processes[parent].job_koid]
    assert job.charged_pages_bytes is not None
    assert job.charged_pages_bytes >= (N + K * M) * PAGE
    # The pages charged are mapped pages read, each once: never more than the processes'
    # private and shared bytes together (which also hold descriptor-held objects).
    everyone = sum(j.charged_pages_bytes or 0 for j in scene.snapshot.jobs.values())
    attributed = sum(
        (s.private + s.shared for s in scene.attribution.processes.values()), Fraction(0)
    )
    assert 0 < everyone <= attributed


# --- (d) a file read by several processes -------------------------------------------------------


@needs_root
def test_file_shared_by_readers_is_split_equally(scene: Scene) -> None:
    pids = [_int(scene.reports[f"reader{i}"]["pid"]) for i in range(READERS)]
    koid = _file_koid(scene.snapshot, pids[0], scene.paths["shared"])
    for pid in pids:
        assert _by_vmo(scene.attribution, pid, koid) == Fraction(SHARED_PAGES * PAGE, READERS)
        assert scene.attribution.processes[pid].shared >= Fraction(SHARED_PAGES * PAGE, READERS)
    assert scene.attribution.vmos[koid] == SHARED_PAGES * PAGE


# --- zero page, swap, kernel costs, the whole ------------------------------------------------


@needs_root
def test_zero_page_is_not_anyones(scene: Scene) -> None:
    report = scene.reports["zero"]
    pid, base = _int(report["pid"]), _int(report["base"])
    koid = _region_koid(scene.snapshot, pid, base)
    # 101 pages present in pagemap, 100 of them the shared zero page: only the written one
    # is memory (and the 100 are counted in a note, with any other zero-page mappings).
    assert _by_vmo(scene.attribution, pid, koid) == PAGE
    facts = scene.snapshot.pages
    assert facts is not None
    (note,) = [n for n in facts.notes if "page count of 0" in n]
    assert int(note.split()[0]) >= 100


@needs_root
def test_kernel_costs_swap_and_the_whole(scene: Scene) -> None:
    snapshot, attribution = scene.snapshot, scene.attribution
    facts = snapshot.pages
    assert facts is not None and facts.exact and attribution.exact
    meminfo = {
        line.split(":")[0]: int(line.split()[1]) * 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.endswith(" kB")
    }
    # The total is RAM (MemTotal), swap apart.
    assert facts.total_bytes == meminfo["MemTotal"]
    for pid, swap in facts.process_swap.items():
        stats = snapshot.processes[pid].stats
        assert stats is not None and swap == stats.swap_pss_bytes
        share = attribution.processes[pid]
        assert share.total == share.private + share.shared + share.estimated + share.kernel_total
    # Kernel costs: page tables from VmPTE; stacks = threads x one stack size.
    cow_parent = _int(scene.reports["cow"]["parent"])
    status = Path(f"/proc/{cow_parent}/status").read_text()
    (pte,) = [int(ln.split()[1]) * 1024 for ln in status.splitlines() if ln.startswith("VmPTE:")]
    kernel = facts.process_kernel[cow_parent]
    assert kernel[PAGE_TABLES] == pte
    stack = kernel[KERNEL_STACKS] // len(snapshot.processes[cow_parent].threads)
    assert stack in (8192, 16384, 32768)
    # Categories and residual: never negative; notes say what the residual may be.
    assert all(value > 0 for value in attribution.categories.values())
    assert attribution.categories["free"] > 0
    assert attribution.residual >= 0
    assert any(note.startswith("the residual is") for note in facts.notes)
    # Every page pattern's users are processes of the snapshot, each once, sorted.
    for key, count in facts.pages.items():
        assert count > 0
        for use in key:
            assert list(use.users) == sorted(set(use.users))
            assert all(pid in snapshot.processes for pid in use.users)


@needs_root
def test_process_filter_is_ignored_at_pages() -> None:
    me = os.getpid()
    snapshot = open_source("host").snapshot(Level.PAGES, [me])
    assert snapshot.pages is not None
    assert len(snapshot.processes) > 1 and snapshot.kernel_aspace is not None


# --- the figures of mappings, from the pages read --------------------------------------------


def _scene_pids(scene: Scene) -> list[int]:
    pids: list[int] = []
    for report in scene.reports.values():
        for key in ("pid", "parent"):
            if key in report:
                pids.append(_int(report[key]))
        for key in ("pids", "children"):
            if key in report:
                pids.extend(_pids(report[key]))
    return sorted(set(pids))


def _own_mappings(scene: Scene, pid: int) -> set[int]:
    """Bases of the mappings of ``pid`` whose pages only the scene's processes map (its
    Pss cannot change while the test runs): the files of the scene, the regions."""
    aspace = scene.snapshot.processes[pid].aspace
    assert aspace is not None
    names = {str(path) for path in scene.paths.values()}
    bases = {_int(r["base"]) for r in scene.reports.values() if "base" in r}
    return {m.base for m in aspace.mappings() if m.name in names or m.base in bases}


@needs_root
def test_mapping_figures_agree_with_smaps(scene: Scene) -> None:
    """At Level.PAGES a mapping's figures come from pagemap + kpagecount, not smaps: the
    same Rss (and private, shared) as the kernel's smaps, and a Pss within its
    truncation to KiB; a process's Rss as its smaps_rollup's."""
    checked = 0
    for pid in _scene_pids(scene):
        process = scene.snapshot.processes[pid]
        assert process.aspace is not None and process.stats is not None
        smaps = {v.start: v for v in parse_smaps(Path(f"/proc/{pid}/smaps").read_text())}
        own = _own_mappings(scene, pid)
        for m in process.aspace.mappings():
            figures = smaps[m.base].figures
            assert figures is not None and m.stats is not None
            # The pages a sleeping process maps do not change: Rss of every mapping.
            assert m.committed_bytes == figures.rss, (pid, m.name)
            assert m.stats.private_bytes + m.stats.shared_bytes == figures.rss
            if m.base not in own:
                continue  # (its pages' mapcounts change as other processes come and go)
            assert m.stats.private_bytes == figures.private_clean + figures.private_dirty
            assert m.stats.shared_bytes == figures.shared_clean + figures.shared_dirty
            assert figures.pss <= m.stats.pss_bytes < figures.pss + 1024, (pid, m.name)
            checked += 1
        rollup = parse_smaps_rollup(Path(f"/proc/{pid}/smaps_rollup").read_text())
        assert rollup is not None
        assert process.stats.private_bytes + process.stats.shared_bytes == rollup.rss
    assert checked >= 10


@needs_root
def test_mapping_figures_by_hand(scene: Scene) -> None:
    # The copy-on-write parent's region: N - K*M pages shared by all K + 1 processes,
    # and the originals of the children's pages (M each) shared by the parent and the
    # K - 1 other children: all shared, Pss in smaps' fixed point (4096 * 4096 // n
    # per page, the sum shifted right by 12).
    report = scene.reports["cow"]
    parent, base = _int(report["parent"]), _int(report["base"])
    aspace = scene.snapshot.processes[parent].aspace
    assert aspace is not None
    (region,) = [m for m in aspace.mappings() if m.base == base]
    assert region.stats is not None
    assert region.committed_bytes == N * PAGE
    assert region.stats.private_bytes == 0 and region.stats.shared_bytes == N * PAGE
    fixed = (N - K * M) * (PAGE * 4096 // (K + 1)) + K * M * (PAGE * 4096 // K)
    assert region.stats.pss_bytes == fixed >> 12
    # The file mapped twice: each page in both mappings (mapcount 2), one process.
    pid = _int(scene.reports["twice"]["pid"])
    aspace = scene.snapshot.processes[pid].aspace
    assert aspace is not None
    for m in aspace.mappings():
        if m.name == str(scene.paths["twice"]):
            assert m.stats is not None and m.committed_bytes == FILE_PAGES * PAGE
            assert m.stats.shared_bytes == FILE_PAGES * PAGE
            assert m.stats.pss_bytes == FILE_PAGES * PAGE // 2


@needs_root
def test_sparse_reservation_is_not_read_whole(scene: Scene) -> None:
    report = scene.reports["sparse"]
    pid, base = _int(report["pid"]), _int(report["base"])
    aspace = scene.snapshot.processes[pid].aspace
    assert aspace is not None
    (region,) = [m for m in aspace.mappings() if m.base == base]
    assert region.size == _int(report["size"])
    assert region.committed_bytes == SPARSE_PAGES * PAGE
    koid = region.vmo_koid
    assert _by_vmo(scene.attribution, pid, koid) == SPARSE_PAGES * PAGE
    # 64 GiB of address space is 128 MiB of pagemap; PAGEMAP_SCAN finds the three
    # pages, and only their entries are read (plus the rest of the process).
    if pagemap.page_access(reader.ProcReader()) == pagemap.PageAccess(scan=True):
        assert scene.read[pid] < 1 << 20


@needs_root
def test_pagemap_scan_finds_present_pages() -> None:
    import mmap

    region = mmap.mmap(-1, 64 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    import ctypes

    base = ctypes.addressof(ctypes.c_char.from_buffer(region))
    for page in (3, 10, 11, 12):
        region[page * PAGE] = 1
    with reader.ProcReader().pagemap("self") as pagemap:
        found = pagemap.present(base, base + 64 * PAGE)
        if found is None:
            pytest.skip("the kernel has no PAGEMAP_SCAN (Linux 6.7)")
        assert found == [(base + 3 * PAGE, base + 4 * PAGE), (base + 10 * PAGE, base + 13 * PAGE)]
        assert pagemap.present(base, base + 64 * PAGE, limit=1) == [
            (base + 3 * PAGE, base + 4 * PAGE)
        ]
        assert pagemap.present(base + 13 * PAGE, base + 64 * PAGE) == []


@needs_root
def test_without_pagemap_scan(scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before Linux 6.7 (no PAGEMAP_SCAN): VMAs are read whole, and a process with a
    VMA too large for that reads smaps and reads its large VMAs only until smaps' Rss is
    found; the figures and the attribution are the same."""
    monkeypatch.setattr(pagemap, "page_access", lambda _: pagemap.PageAccess(scan=False))
    with counting_pagemap_reads() as read:
        snapshot = open_source("host").snapshot(Level.PAGES)
    attribution = attribute_snapshot(snapshot)
    for pid in _scene_pids(scene):
        before, after = scene.snapshot.processes[pid].aspace, snapshot.processes[pid].aspace
        assert before is not None and after is not None
        own = _own_mappings(scene, pid)
        mine = {m.base: m for m in after.mappings() if m.base in own}
        for m in before.mappings():
            if m.base in own:
                assert mine[m.base].vmo_koid == m.vmo_koid
                assert mine[m.base].committed_bytes == m.committed_bytes, (pid, m.name)
                assert mine[m.base].stats == m.stats, (pid, m.name)
                koid = m.vmo_koid
                assert _by_vmo(attribution, pid, koid) == _by_vmo(scene.attribution, pid, koid)
    # The reservation: from smaps, its Rss; read in pieces of 4 GiB of addresses (8 MiB
    # of pagemap) until its three pages are found: one piece, not 128 MiB.
    sparse = _int(scene.reports["sparse"]["pid"])
    assert 8 << 20 <= read[sparse] < 9 << 20
    koid = _region_koid(snapshot, sparse, _int(scene.reports["sparse"]["base"]))
    assert _by_vmo(attribution, sparse, koid) == SPARSE_PAGES * PAGE


@needs_root
def test_shared_address_space_is_read_once(tmp_path: Path) -> None:
    """A CLONE_VM sharer (found at Level.PAGES by its status counters, not smaps_rollup)
    is read once, under the lower pid: its pages are that pid's."""
    with clone_vm_pair(tmp_path, heap_bytes=4 * MiB) as (low, high):
        snapshot = open_source("host").snapshot(Level.PAGES)
        facts = snapshot.pages
        assert facts is not None and facts.exact
        assert any("CLONE_VM" in note and f"{high} with {low}" in note for note in snapshot.notes)
        stats = snapshot.processes[high].stats
        assert stats is not None and stats.pss_bytes == 0
        users = {pid for key in facts.pages for use in key for pid in use.users}
        assert low in users and high not in users
        attribution = attribute_snapshot(snapshot)
        assert attribution.processes[low].private >= 4 * MiB  # its heap, once
        assert high not in attribution.processes or attribution.processes[high].total == 0


# --- without root ------------------------------------------------------------------------------


@pytest.mark.skipif(not (ROOT and LINUX), reason="switching to another user needs root")
def test_approximate_without_root() -> None:
    def work() -> str:
        fd = os.memfd_create("mxmem-exact-nobody")
        os.pwrite(fd, b"\x05" * (2 * MiB), 0)
        snapshot = open_source("host").snapshot(Level.PAGES)
        facts = snapshot.pages
        assert facts is not None
        attribution = attribute_snapshot(snapshot)
        me = os.getpid()
        handles = snapshot.processes[me].handles or ()
        (koid,) = [h.koid for h in handles if h.value == fd]
        stats = snapshot.processes[me].stats
        share = attribution.processes[me]
        return json.dumps(
            {
                "exact": facts.exact and attribution.exact,
                "notes": list(facts.notes),
                "held": str(share.by_vmo.get(koid, 0)),
                "estimated": str(share.estimated),
                "pss": None if stats is None else stats.pss_bytes,
                "categories": [str(v) for v in attribution.categories.values()],
                "root_process": os.getppid() in attribution.processes,
            }
        )

    result = json.loads(as_nobody(work))
    assert result["exact"] is False
    assert result["notes"][0].startswith("approximate: /proc/kpagecount is readable by root only")
    # Its own memfd, held and never mapped: its pages, whole.
    assert Fraction(result["held"]) == 2 * MiB
    # Its own figure: the kernel's PSS (taken in the same scan).
    assert Fraction(result["estimated"]) == result["pss"] > 0
    assert all(Fraction(v) > 0 for v in result["categories"])
    assert result["root_process"] is False  # root's processes cannot be read: categories


# --- the vectorised grouping against a brute force ----------------------------------------------


def _random_entries(seed: int) -> list[tuple[int, int, int]]:
    """(PFN, process, VMO field) entries as pagemap reads would give them: a few pages
    mapped by many processes, some pages mapped twice by one process, the rest private."""
    rng = random.Random(seed)
    entries: list[tuple[int, int, int]] = []
    for pfn in rng.sample(range(1, 5000), 400):
        users = rng.sample(range(12), rng.choice((1, 1, 1, 2, 3, 12)))
        field = rng.randrange(20)
        for proc in users:
            entries.append((pfn, proc, field))
            if rng.random() < 0.1:  # the same page through another VMA of the process
                entries.append((pfn, proc, rng.randrange(20)))
    return entries


def _brute(entries: list[tuple[int, int, int]]) -> dict[int, tuple[int, tuple[int, ...]]]:
    """PFN -> (the lowest process's lowest field, the sorted distinct processes)."""
    out: dict[int, tuple[int, tuple[int, ...]]] = {}
    for pfn in {e[0] for e in entries}:
        mine = [e for e in entries if e[0] == pfn]
        low = min(e[1] for e in mine)
        field = min(e[2] for e in mine if e[1] == low)
        out[pfn] = (field, tuple(sorted({e[1] for e in mine})))
    return out


class _Counts:
    """A ProcReader stand-in for page_table: kpagecount says 1 for every page."""

    proc = "/proc"

    def page_size(self) -> int:
        return PAGE

    def read_ranges(self, path: str, offsets: list[int], sizes: list[int]) -> bytearray:
        assert path == "/proc/kpagecount"
        return bytearray(b"".join((1).to_bytes(8, "little") * (s // 8) for s in sizes))


def _table(entries: list[tuple[int, int, int]], limit: int | None) -> pagetable.PageTable:
    """page_table of entries as pagemap reads would give them: process k's are a part,
    its "fields" its spans (here 20 per process)."""
    import numpy as np

    by_proc: dict[int, list[tuple[int, int]]] = {proc: [] for proc in range(12)}
    for pfn, proc, field in entries:
        by_proc[proc].append((pfn, field))
    parts = [
        pagemap.Entries(
            np.array([pfn for pfn, _ in items], dtype=np.uint64),
            np.array([2 * field for _, field in items], dtype=np.uint32),
            20,
        )
        for _, items in sorted(by_proc.items())
    ]
    return pagetable.page_table(_Counts(), parts, limit)  # type: ignore[arg-type]


@pytest.mark.parametrize("limit", [None, 1])
def test_pairs_and_patterns_match_a_brute_force(limit: int | None) -> None:
    import numpy as np

    entries = _random_entries(7)
    truth = _brute(entries)
    table = _table(entries, limit)  # limit 1: the PFNs overflow the key, a lexsort
    assert int(table.entries.sum()) == len(entries)
    # The field of a page is its lowest process's lowest span, numbered across processes.
    found = pageusers._Pages(
        table.pfn, table.first, table.users, table.field >> np.uint64(1), table.proc
    )
    seen = {
        int(found.pfn[i]): (
            int(found.field[i]) - 20 * int(table.proc[table.first[i]]),
            tuple(int(p) for p in table.proc[table.first[i] : table.first[i] + table.users[i]]),
        )
        for i in range(found.pfn.size)
    }
    assert seen == truth
    # Group every page by (field, users); with tokens all 0 every pattern of one field
    # and user count hashes alike, and the member-by-member check must split them.
    every = np.arange(found.pfn.size, dtype=np.int64)
    expected: dict[tuple[int, tuple[int, ...]], int] = {}
    for pattern in truth.values():
        expected[pattern] = expected.get(pattern, 0) + 1
    for token in (None, np.zeros(12, dtype=np.uint64)):
        got: dict[tuple[int, tuple[int, ...]], int] = {}
        for page, count in pageusers._patterns(found, every, 12, token):
            pattern = seen[int(found.pfn[page])]
            got[pattern] = got.get(pattern, 0) + count
        assert got == expected


# --- which entries are read, against a brute force ---------------------------------------------


class _FakePagemap:
    """A pagemap of a made-up address space: page number -> entry; counts what is read."""

    def __init__(self, entries: dict[int, int]) -> None:
        self.entries = entries
        self.reads: list[tuple[int, int]] = []  # (first page, pages)

    def read(self, offsets: list[int], sizes: list[int]) -> bytearray:
        out = bytearray()
        for offset, size in zip(offsets, sizes, strict=True):
            first = offset // 8
            for page in range(first, first + size // 8):
                out += self.entries.get(page, 0).to_bytes(8, "little")
            self.reads.append((first, size // 8))
        return out

    def read_in(self, start: int, end: int) -> int:
        """Entries read of the pages from start to end (addresses)."""
        lo, hi = start // PAGE, end // PAGE
        return sum(max(0, min(hi, a + n) - max(lo, a)) for a, n in self.reads)

    def present(self, start: int, end: int, limit: int = 0) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        pages = sorted(p for p in self.entries if start // PAGE <= p < end // PAGE)
        for p in pages[:limit] if limit else pages:
            if found and found[-1][1] == p * PAGE:
                found[-1] = (found[-1][0], (p + 1) * PAGE)
            else:
                found.append((p * PAGE, (p + 1) * PAGE))
        return found


def _address_space(seed: int) -> tuple[dict[int, int], list[tuple[int, int]]]:
    """Present entries (some file pages: bit 61) and VMAs (address ranges): small dense
    ones, adjacent ones, medium ones empty or with pages from their middle on, one of
    2**17 pages with a few pages, and pages between VMAs (of VMAs not asked for)."""
    rng = random.Random(seed)
    entries: dict[int, int] = {}
    spans: list[tuple[int, int]] = []
    at = 16
    for kind in rng.choices(["dense", "empty", "middle", "huge", "hidden"], k=60):
        size = {"dense": rng.randrange(1, 600), "empty": 2000, "middle": 3000}.get(kind, 0)
        if kind == "huge":
            size = 1 << 17
        if kind == "hidden":  # pages in the gap before the next VMA: not to be read
            for p in range(at, at + 5):
                entries[p] = (1 << 63) | rng.randrange(1, 1 << 20)
            at += rng.choice((5, 100, 5000))
            continue
        spans.append((at * PAGE, (at + size) * PAGE))
        if kind == "dense":
            pages = [p for p in range(at, at + size) if rng.random() < 0.8]
        elif kind == "middle":
            pages = list(range(at + 1500, at + size, 3))
        elif kind == "huge":
            pages = [at + rng.randrange(size) for _ in range(3)]
        else:
            pages = []
        for p in pages:
            entries[p] = (1 << 63) | (rng.random() < 0.5) << 61 | rng.randrange(1, 1 << 20)
        at += size + rng.choice((0, 0, 7, 900, 2000))
    return entries, spans


@pytest.mark.parametrize("scan", [True, False])
@pytest.mark.parametrize("batch", [None, 512])
def test_read_entries_match_a_brute_force(
    scan: bool, batch: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    if batch is not None:  # batches of 64 entries: reads split across them
        monkeypatch.setattr(pagemap, "_BATCH_BYTES", batch)
    piece = 1 << 12
    monkeypatch.setattr(pagemap, "_PIECE_PAGES", piece)
    for seed in range(5):
        entries, spans = _address_space(seed)
        expected: list[tuple[int, int]] = []
        resident: list[int] = []
        for i, (start, end) in enumerate(spans):
            mine = [v for p, v in entries.items() if start // PAGE <= p < end // PAGE]
            expected += [(v & ((1 << 55) - 1), 2 * i + (v >> 61 & 1)) for v in mine]
            resident.append(len(mine))
        fake = _FakePagemap(entries)
        got = pagemap.read_entries(
            fake,  # type: ignore[arg-type]
            spans,
            PAGE,
            scan,
            resident,
            lambda pfns: int(pfns.size),  # every page has a mapcount
        )
        assert got.spans == len(spans)
        assert got.pfn.dtype == np.uint64
        assert sorted(zip(got.pfn.tolist(), got.field.tolist(), strict=True)) == sorted(expected)
        # The VMAs of 2**17 pages are not read whole: with PAGEMAP_SCAN their pages (and
        # holes of at most _GAP_PAGES read through between them); without, in pieces up
        # to the one with their last page.
        for start, end in spans:
            if end - start != PAGE << 17:
                continue
            present = sorted(p for p in entries if start // PAGE <= p < end // PAGE)
            if scan:
                assert fake.read_in(start, end) <= len(present) * (1 + pagemap._GAP_PAGES)
            else:
                last = present[-1] - start // PAGE
                assert fake.read_in(start, end) == (last // piece + 1) * piece


def test_page_table_of_nothing() -> None:
    import numpy as np

    table = pagetable.page_table(_Counts(), [])  # type: ignore[arg-type]
    assert table.pfn.size == 0 and table.figures == [] and table.process_figures == []
    empty = pagemap.Entries(np.zeros(0, np.uint64), np.zeros(0, np.uint32), 3)
    table = pagetable.page_table(_Counts(), [empty])  # type: ignore[arg-type]
    assert table.figures == [[(0, 0, 0)] * 3] and table.process_figures[0].rss == 0
