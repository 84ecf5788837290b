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
from users import as_nobody

from mxmem.accounting.exact import Attribution, attribute_snapshot
from mxmem.model import KERNEL_STACKS, PAGE_TABLES, Level, ObjType, Snapshot
from mxmem.sources import open_source
from mxmem.sources.linux import pages

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
        ):
            proc, report = _start(script, *args)
            started.append(proc)
            reports[name] = report
        snapshot = open_source("host").snapshot(Level.PAGES)
        yield Scene(snapshot, attribute_snapshot(snapshot), reports, paths)
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


def _keys(entries: list[tuple[int, int, int]], overflow_after: int | None) -> pages._Keys:
    import numpy as np

    keys = pages._Keys(12, 20)
    by_proc: dict[int, list[tuple[int, int]]] = {}
    for pfn, proc, field in entries:
        by_proc.setdefault(proc, []).append((pfn, field))
    for n, (proc, items) in enumerate(sorted(by_proc.items())):
        if overflow_after is not None and n == overflow_after:
            keys.limit = 1  # every PFN from now on overflows: the three-array path
        values = np.array([(1 << 63) | pfn for pfn, _ in items], dtype=np.uint64)
        fields = np.array([field for _, field in items], dtype=np.uint64)
        keys.add(proc, values, fields)
    return keys


@pytest.mark.parametrize("overflow_after", [None, 0, 5])
def test_pairs_and_patterns_match_a_brute_force(overflow_after: int | None) -> None:
    import numpy as np

    entries = _random_entries(7)
    truth = _brute(entries)
    pair_pfn, pair_proc, pair_field, _, total = _keys(entries, overflow_after).pairs()
    assert total == len(entries)
    starts = np.flatnonzero(np.concatenate(([True], pair_pfn[1:] != pair_pfn[:-1])))
    users = np.diff(np.append(starts, pair_pfn.size))
    found = pages._Pages(pair_pfn[starts], starts, users, pair_field[starts], pair_proc)
    seen = {
        int(found.pfn[i]): (
            int(found.field[i]),
            tuple(int(p) for p in pair_proc[starts[i] : starts[i] + users[i]]),
        )
        for i in range(starts.size)
    }
    assert seen == truth
    # Group every page by (field, users); with tokens all 0 every pattern of one field
    # and user count hashes alike, and the member-by-member check must split them.
    every = np.arange(starts.size, dtype=np.int64)
    expected: dict[tuple[int, tuple[int, ...]], int] = {}
    for pattern in truth.values():
        expected[pattern] = expected.get(pattern, 0) + 1
    for token in (None, np.zeros(12, dtype=np.uint64)):
        got: dict[tuple[int, tuple[int, ...]], int] = {}
        for page, count in pages._patterns(found, every, 12, token):
            pattern = seen[int(found.pfn[page])]
            got[pattern] = got.get(pattern, 0) + count
        assert got == expected
