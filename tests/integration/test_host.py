"""The live Linux source (``mxmem --host``) on processes the tests start, and on a fixture
tree standing in for ``/proc`` and ``/sys``.

Every child is started in its own session and killed with its whole process group in the
fixture's finalizer. Figures are checked against the kernel's own files, parsed here
independently of mxmem's parsers. The tests pass as root and as a normal user; the few
that need root say so when they skip.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import TypeVar

import jsonschema
import pytest
from children import Spawn
from clonevm import clone_vm_pair
from paths import FIXTURES, SRC
from users import as_nobody

from mxmem.accounting.digest import vmo_pages_once
from mxmem.cli import main
from mxmem.model import Level, ObjType, ProcessState, Rights, Vmar
from mxmem.sources import open_source
from mxmem.sources.linux import HostSource

LINUX_FIXTURES = FIXTURES / "linux"
T = TypeVar("T")
U = TypeVar("U")
K = 1024
MiB = 1 << 20
PAGE = 4096

LINUX = sys.platform.startswith("linux") and os.path.exists("/proc/self/smaps_rollup")
linux_only = pytest.mark.skipif(not LINUX, reason="needs Linux /proc with smaps_rollup (4.14+)")
ROOT = LINUX and os.geteuid() == 0


# --- start-up: ps imports only what it uses ----------------------------------------------

# Runs one command in a fresh interpreter and prints its exit code and the heavy modules
# it imported that ps has no use for: numpy and the page modules (60-180 ms, more than
# ps's whole scan of a quiet host), hashlib (OpenSSL, ~5 ms: koids of VMOs only),
# fractions and decimal (~3-13 ms: exact attribution only) and json (the capture readers
# and --json only).
IMPORTS_SCRIPT = """
import sys
from mxmem.cli import main
code = main(sys.argv[1:])
print(code, *sorted(m for m in sys.modules
                    if m.split(".")[0] in ("numpy", "hashlib", "fractions", "decimal", "json")
                    or m in ("mxmem.sources.linux.pagemap", "mxmem.sources.linux.pagefacts")))
"""


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--host", "ps"], marks=linux_only),
        pytest.param(["--host", "ps", "-T"], marks=linux_only),
        ["--sim", "ps"],
    ],
)
def test_ps_imports_no_numpy(args: list[str]) -> None:
    """2017 attribution never reads pages, so ``mxmem ps`` must not import numpy (nor the
    page modules that need it); exact mode imports them when it reads pages. Nor the
    exact rule's fractions and decimal, nor json (captures, --json)."""
    src = str(SRC)
    path = os.environ.get("PYTHONPATH")
    proc = subprocess.run(
        [sys.executable, "-c", IMPORTS_SCRIPT, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": src + (os.pathsep + path if path else "")},
        check=True,
        timeout=120,
    )
    assert proc.stdout.splitlines()[-1].split() == ["0"]


@pytest.mark.skipif(not ROOT, reason="page-level reads need root")
def test_exact_mode_imports_the_page_modules_when_it_reads_pages() -> None:
    """(The test above is not vacuous: the same script sees them when pages are read.)"""
    src = str(SRC)
    proc = subprocess.run(
        [sys.executable, "-c", IMPORTS_SCRIPT, "--host", "ps", "--attribution=exact"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": src},
        check=True,
        timeout=300,
    )
    found = proc.stdout.splitlines()[-1].split()
    assert found[0] == "0"
    assert {"numpy", "mxmem.sources.linux.pagemap", "mxmem.sources.linux.pagefacts"} <= set(found)


# --- the kernel's own figures, parsed without mxmem ------------------------------------


def kernel_rollup(pid: int) -> dict[str, int]:
    """``/proc/PID/smaps_rollup`` as {field: bytes}."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().split("\n")[1:]:
        if line.endswith(" kB"):
            key, value = line.split(":")
            fields[key] = int(value.split()[0]) * K
    return fields


def kernel_vma(pid: int, start: int) -> dict[str, int]:
    """The smaps fields (bytes) of the VMA of ``pid`` starting at ``start``."""
    found: dict[str, int] | None = None
    for line in Path(f"/proc/{pid}/smaps").read_text().split("\n"):
        head = line.split(" ", 1)[0]
        if "-" in head and ":" not in head:
            if found is not None:
                break
            if int(head.split("-")[0], 16) == start:
                found = {"Size": int(head.split("-")[1], 16) - start}
        elif found is not None and line.endswith(" kB"):
            key, value = line.split(":")
            found[key] = int(value.split()[0]) * K
    assert found is not None, f"no VMA at {start:#x} in process {pid}"
    return found


def stable(kernel: Callable[[], T], ours: Callable[[], U]) -> tuple[T, U]:
    """``kernel()`` and ``ours()`` taken while the kernel's figures did not move.

    PSS of shared pages changes whenever any process on the machine maps or unmaps
    them (libc, libpython), so the kernel's figures are read before and after ours and
    the pair is kept once both reads agree."""
    for _ in range(50):
        before = kernel()
        result = ours()
        if kernel() == before:
            return before, result
        time.sleep(0.05)
    pytest.skip("the system is too busy: shared pages kept changing their PSS")


# --- children ---------------------------------------------------------------------------

def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    # --host unless the arguments name their source (two source options are an error).
    code = main(args if args[0].startswith("--capture=") else ["--host", *args])
    out, err = capsys.readouterr()
    return code, out, err


SLEEP = "import time\nwhile True: time.sleep(60)\n"
PRINT_PID = "import os\nprint(os.getpid(), flush=True)\n"

HOLD_MEMFD = (
    """
import os
fd = os.memfd_create("mxmem-held")
os.ftruncate(fd, 8 << 20)
print(os.getpid(), fd, flush=True)
"""
    + SLEEP
)

MAP_FILE = (
    """
import mmap, os, sys
with open(sys.argv[1], "rb") as f:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
total = sum(m[i] for i in range(0, len(m), 4096))  # fault in every page
print(os.getpid(), flush=True)
"""
    + SLEEP
)

# A 16 MiB private anonymous region between two PROT_NONE guard pages (so it stays one
# VMA), filled, then shared by fork with two children; the first child then writes 4 MiB.
COW = (
    """
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
size = 16 << 20
base = libc.mmap(None, size + 2 * 4096, 3, 0x22, -1, 0)  # RW, MAP_PRIVATE|MAP_ANONYMOUS
libc.mprotect(base, 4096, 0)
libc.mprotect(base + 4096 + size, 4096, 0)
region = base + 4096
libc.madvise(region, size, 15)  # MADV_NOHUGEPAGE: 4 KiB pages, split on write
ctypes.memset(region, 1, size)
r, w = os.pipe()
pids = []
for child in range(2):
    pid = os.fork()
    if pid == 0:
        if child == 0:
            ctypes.memset(region, 2, 4 << 20)
        os.write(w, b"x")
        while True:
            signal.pause()
    pids.append(pid)
os.read(r, 1)
os.read(r, 1)
print(os.getpid(), pids[0], pids[1], region, flush=True)
"""
    + SLEEP
)

HOSTILE = (
    """
import ctypes, os
ctypes.CDLL(None).prctl(15, b"\\x1b[31mevil\\n", 0, 0, 0)  # PR_SET_NAME
print(os.getpid(), flush=True)
"""
    + SLEEP
)

ZOMBIE = (
    """
import os
pid = os.fork()
if pid == 0:
    os._exit(0)
import time
while open(f"/proc/{pid}/stat").read().split(") ")[1][0] != "Z":
    time.sleep(0.01)
print(os.getpid(), pid, flush=True)
"""
    + SLEEP
)

THREADS = (
    """
import ctypes, os, threading
ready = threading.Event()
def worker():
    ctypes.CDLL(None).prctl(15, b"worker", 0, 0, 0)  # PR_SET_NAME names the thread
    ready.set()
    threading.Event().wait()
threading.Thread(target=worker, daemon=True, name="worker").start()
ready.wait()
tids = sorted(int(t) for t in os.listdir("/proc/self/task"))
print(os.getpid(), *tids, flush=True)
"""
    + SLEEP
)


def vmo_rows(out: str, name: str) -> list[list[str]]:
    """The ``vmos`` text rows for ``name``, split into columns (name last)."""
    rows = []
    for line in out.splitlines():
        cols = line.split(None, 8)
        if len(cols) == 9 and cols[8] == name:
            rows.append(cols)
    return rows


# --- memory objects ---------------------------------------------------------------------


@linux_only
def test_memfd_held_but_never_mapped_is_a_handle_row(
    spawn: Spawn, capsys: pytest.CaptureFixture[str]
) -> None:
    _, (pid, fd) = spawn(HOLD_MEMFD)
    code, out, err = run(capsys, "vmos", pid)
    assert code == 0, err
    # rights rw (O_RDWR) + m (mappable) + d t; no mapping; 8M; nothing written yet.
    (row,) = vmo_rows(out, "/memfd:mxmem-held (deleted)")
    assert row[0] == "rw-mdt"
    assert row[2:8] == ["-", "0", "0", "1", "8M", "0B"]
    code, out, _ = run(capsys, "vmos", pid, "--json")
    (obj,) = [o for o in json.loads(out) if o["name"] == "/memfd:mxmem-held (deleted)"]
    assert obj["via"] == "HANDLE"
    assert (obj["size_bytes"], obj["committed_bytes"], obj["num_mappings"]) == (8 * MiB, 0, 0)
    snap = HostSource().snapshot(Level.FULL, [int(pid)])
    handles = snap.processes[int(pid)].handles
    assert handles is not None
    (handle,) = [h for h in handles if h.value == int(fd)]
    assert handle.type is ObjType.VMO and snap.vmos[handle.koid].size_bytes == 8 * MiB
    assert handle.rights == Rights.READ | Rights.WRITE | Rights.MAP | Rights.DUPLICATE | (
        Rights.TRANSFER
    )


@pytest.fixture
def four_mappers(spawn: Spawn, tmp_path: Path) -> tuple[Path, list[int]]:
    path = tmp_path / "shared.bin"
    path.write_bytes(bytes(range(256)) * (4 * MiB // 256))
    pids = [int(spawn(MAP_FILE, str(path))[1][0]) for _ in range(4)]
    return path, pids


@linux_only
def test_four_processes_share_one_file(
    four_mappers: tuple[Path, list[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, pids = four_mappers
    snap = HostSource().snapshot(Level.FULL, pids[:1])
    aspace = snap.processes[pids[0]].aspace
    assert aspace is not None
    (mapping,) = [m for m in aspace.mappings() if m.name == str(path)]
    vmo = snap.vmos[mapping.vmo_koid]
    assert (vmo.share_count, vmo.num_mappings, vmo.size_bytes) == (4, 4, 4 * MiB)
    assert mapping.committed_bytes == 4 * MiB  # every page faulted in
    # The mapping's PSS is the kernel's per-VMA Pss: a quarter of the file.
    kernel = kernel_vma(pids[0], mapping.base)
    assert mapping.stats is not None
    assert mapping.stats.pss_bytes == kernel["Pss"]
    assert abs(kernel["Pss"] - MiB) <= 8 * K
    assert mapping.stats.shared_bytes == kernel["Shared_Clean"] + kernel["Shared_Dirty"]
    code, out, _ = run(capsys, "vmos", str(pids[1]))
    assert code == 0
    (row,) = vmo_rows(out, str(path))
    assert row[4:7] == ["4", "4", "4M"]  # #map #shr size


@linux_only
def test_ps_figures_are_the_kernels_rollup(
    four_mappers: tuple[Path, list[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, pids = four_mappers

    def ps_json() -> dict[int, dict[str, int]]:
        code, out, _ = run(capsys, "ps", "--json")
        assert code == 0
        return {r["koid"]: r for r in json.loads(out) if r["type"] == "p"}

    before, rows = stable(lambda: [kernel_rollup(pid) for pid in pids], ps_json)
    for pid, rollup in zip(pids, before, strict=True):
        private = rollup["Private_Clean"] + rollup["Private_Dirty"] + rollup["Private_Hugetlb"]
        shared = rollup["Shared_Clean"] + rollup["Shared_Dirty"] + rollup["Shared_Hugetlb"]
        row = rows[pid]
        assert (row["pss_bytes"], row["private_bytes"], row["shared_bytes"]) == (
            rollup["Pss"] + rollup["Private_Hugetlb"],
            private,
            shared,
        )

    # And in the text table, in KiB.
    def ps_text() -> str:
        code, out, _ = run(capsys, "ps", "--units=k")
        assert code == 0
        return next(ln for ln in out.splitlines() if f"p:{pids[0]} " in ln)

    rollup, line = stable(lambda: kernel_rollup(pids[0]), ps_text)
    assert line.split()[1] == f"{rollup['Pss'] // K}k"


@linux_only
def test_copy_on_write_children(spawn: Spawn) -> None:
    _, words = spawn(COW)
    parent, writer, reader = (int(w) for w in words[:3])
    region = int(words[3])
    snap = HostSource().snapshot(Level.FULL, [parent, writer, reader])
    figures = {}
    koids = set()
    for pid in (parent, writer, reader):
        aspace = snap.processes[pid].aspace
        assert aspace is not None
        (mapping,) = [m for m in aspace.mappings() if m.base == region]
        assert mapping.size == 16 * MiB and mapping.name == ""
        assert mapping.stats is not None
        kernel = kernel_vma(pid, region)
        assert mapping.stats.pss_bytes == kernel["Pss"]
        assert mapping.stats.private_bytes == kernel["Private_Clean"] + kernel["Private_Dirty"]
        assert mapping.committed_bytes == kernel["Rss"] == 16 * MiB
        # Each process's anonymous region is its own VMO (keyed by pid and address).
        assert snap.vmos[mapping.vmo_koid].share_count == 1
        figures[pid] = mapping.stats
        koids.add(mapping.vmo_koid)
    assert len(koids) == 3
    # Hand-computed: 12 MiB are still shared by all three, the writer's first 4 MiB are
    # its own copies, and the originals of those 4 MiB are shared by parent and reader.
    assert figures[writer].private_bytes == 4 * MiB
    assert figures[writer].shared_bytes == 12 * MiB
    assert figures[parent].private_bytes == figures[reader].private_bytes == 0
    assert abs(figures[writer].pss_bytes - 8 * MiB) <= 4 * K
    assert abs(figures[parent].pss_bytes - 6 * MiB) <= 4 * K
    assert abs(figures[reader].pss_bytes - 6 * MiB) <= 4 * K


# A 64 MiB private anonymous region (between guard pages: one VMA), filled by one process,
# which then forks a child that only sleeps: every page is shared copy-on-write by two.
FORKED_REGION = (
    """
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
size = 64 << 20
base = libc.mmap(None, size + 2 * 4096, 3, 0x22, -1, 0)
libc.mprotect(base, 4096, 0)
libc.mprotect(base + 4096 + size, 4096, 0)
region = base + 4096
libc.madvise(region, size, 15)  # MADV_NOHUGEPAGE
ctypes.memset(region, 1, size)
pid = os.fork()
if pid == 0:
    while True:
        signal.pause()
print(os.getpid(), pid, region, flush=True)
"""
    + SLEEP
)


@linux_only
def test_vmos_alloc_of_a_shared_anonymous_region_is_its_rss(
    spawn: Spawn, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect k: alloc is the VMO's resident bytes on every source, so a region whose
    pages a forked child shares shows its Rss (64M, as vmaps and pmap do), not its
    Pss (32M)."""
    _, words = spawn(FORKED_REGION)
    parent, child, region = (int(w) for w in words)
    for pid in (parent, child):
        rss = kernel_vma(pid, region)["Rss"]
        assert rss == 64 * MiB
        snap = HostSource().snapshot(Level.FULL, [pid])
        aspace = snap.processes[pid].aspace
        assert aspace is not None
        (mapping,) = [m for m in aspace.mappings() if m.base == region]
        code, out, err = run(capsys, "vmos", str(pid), "--json")
        assert code == 0, err
        rows = [r for r in json.loads(out) if r["koid"] == mapping.vmo_koid]
        assert rows and all(r["committed_bytes"] == rss for r in rows)
        code, out, _ = run(capsys, "vmos", str(pid))
        assert code == 0
        allocs = [line.split()[7] for line in out.splitlines() if f" {mapping.vmo_koid} " in line]
        assert allocs == ["64M"] * len(rows)


@pytest.mark.skipif(not ROOT, reason="page-level reads need root")
def test_vmo_committed_from_the_pages_is_the_regions_rss(spawn: Spawn) -> None:
    """The same with the figures worked out from the pages (Level.PAGES)."""
    _, words = spawn(FORKED_REGION)
    parent, child, region = (int(w) for w in words)
    snap = HostSource().snapshot(Level.PAGES)
    for pid in (parent, child):
        aspace = snap.processes[pid].aspace
        assert aspace is not None
        (mapping,) = [m for m in aspace.mappings() if m.base == region]
        assert snap.vmos[mapping.vmo_koid].committed_bytes == mapping.committed_bytes == 64 * MiB


@linux_only
def test_digest_counts_pages_shared_after_fork_once(spawn: Spawn) -> None:
    """The two VMOs of the 64 MiB region a forked child shares copy-on-write hold 64M
    each (their Rss, defect k), but the digest's buckets count the region's pages once:
    32M each, as the kernel's PSS splits them (the host's digest had a Residual of
    -881 MiB from such pages counted twice)."""
    _, words = spawn(FORKED_REGION)
    parent, child, region = (int(w) for w in words)
    snap = HostSource().snapshot(Level.FULL, [parent, child])
    once = vmo_pages_once(snap)
    sizes = []
    for pid in (parent, child):
        aspace = snap.processes[pid].aspace
        assert aspace is not None
        (mapping,) = [m for m in aspace.mappings() if m.base == region]
        assert snap.vmos[mapping.vmo_koid].committed_bytes == 64 * MiB
        sizes.append(once[mapping.vmo_koid])
    assert all(abs(size - 32 * MiB) <= 64 * K for size in sizes), sizes
    assert abs(sum(sizes) - 64 * MiB) <= 64 * K


def _process_nodes(node: dict[str, object], out: dict[int, dict[str, object]]) -> None:
    if node.get("type") == "process":
        out[int(str(node["koid"]))] = node
    for child in node.get("children", ()):  # type: ignore[attr-defined]
        _process_nodes(child, out)


@linux_only
def test_treemap_counts_pages_shared_after_fork_once(
    spawn: Spawn, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Each of the two processes sharing the 64 MiB region copy-on-write has a VMO whose
    committed bytes are 64M (defect k): the treemap's boxes for it add up to the kernel's
    PSS of the process (32M each), not 64M each, live and through a memgraph capture of
    the host (whose __META says it is Linux)."""
    _, words = spawn(FORKED_REGION)
    parent, child = int(words[0]), int(words[1])
    code, out, err = run(capsys, "memgraph", "-v")
    assert code == 0, err
    graph = tmp_path / "host.json"
    graph.write_text(out)
    pss = {
        r["koid"]: r.get("pss_bytes", 0) for r in json.loads(out) if r["type"] == "p"
    }
    code, out, err = run(capsys, f"--capture={graph}", "treemap", "--json")
    assert code == 0, err
    nodes: dict[int, dict[str, object]] = {}
    _process_nodes(json.loads(out)["tree"], nodes)
    for pid in (parent, child):
        box = nodes[pid]
        assert isinstance(box["size_bytes"], int) and box["size_bytes"] <= pss[pid]
        assert 32 * MiB - 64 * K <= pss[pid] <= 32 * MiB + 8 * MiB
        assert box["size_bytes"] >= pss[pid] - 8 * MiB  # the region is in it, halved
    # The capture knows it describes Linux: k mx ps shows file descriptors, not handles.
    code, out, err = run(capsys, f"--capture={graph}", "k", "mx", "ps")
    assert code == 0, err
    assert "#fi" in out.splitlines()[0]


@linux_only
def test_json_outputs_match_their_schemas(spawn: Spawn, capsys: pytest.CaptureFixture[str]) -> None:
    _, (pid, _fd) = spawn(HOLD_MEMFD)
    runs = {
        "ps": ["ps", "-T", "--json"],
        "vmaps": ["vmaps", pid, "--json"],
        "vmos": ["vmos", pid, "--json"],
    }
    for tool, args in runs.items():
        schema = json.loads((files("mxmem") / "schemas" / f"{tool}.schema.json").read_text())
        code, out, err = run(capsys, *args)
        assert code == 0, err
        jsonschema.validate(json.loads(out), schema)


# --- processes and threads -----------------------------------------------------------------


@linux_only
def test_hostile_name_is_neutralised(spawn: Spawn, capsys: pytest.CaptureFixture[str]) -> None:
    _, (pid,) = spawn(HOSTILE)
    code, out, _ = run(capsys, "ps")
    assert code == 0
    assert "\x1b" not in out
    (line,) = [ln for ln in out.splitlines() if f"p:{pid} " in ln]
    assert line.endswith(" \\x1b[31mevil\\n")
    code, out, _ = run(capsys, "ps", "--json")
    (row,) = [r for r in json.loads(out) if r["koid"] == int(pid)]
    assert row["name"] == "\x1b[31mevil\n"  # JSON keeps the real name


@linux_only
def test_threads_and_thread_ids(spawn: Spawn, capsys: pytest.CaptureFixture[str]) -> None:
    _, words = spawn(THREADS)
    pid, tids = int(words[0]), [int(w) for w in words[1:]]
    snap = HostSource().snapshot(Level.TASKS, [pid])
    process = snap.processes[pid]
    assert [t.koid for t in process.threads] == tids
    assert [t.name for t in process.threads][1:] == ["worker"]
    # A thread id has a /proc entry of its own, but it is not a process.
    other = next(t for t in tids if t != pid)
    assert other not in HostSource().snapshot(Level.TASKS, [other]).processes
    code, _, err = run(capsys, "vmaps", str(other))
    assert code == 1 and "MX_ERR_NOT_FOUND" in err
    code, out, _ = run(capsys, "ps", "-T")
    assert code == 0
    assert any(ln.split()[0] == f"t:{other}" and ln.endswith(" worker") for ln in out.splitlines())


@linux_only
def test_zombie_is_dead_with_zero_figures(spawn: Spawn, capsys: pytest.CaptureFixture[str]) -> None:
    _, words = spawn(ZOMBIE)
    zombie = int(words[1])
    snap = HostSource().snapshot(Level.TASKS, [zombie])
    process = snap.processes[zombie]
    assert process.state is ProcessState.DEAD and process.unreadable is None
    code, out, _ = run(capsys, "ps")
    (line,) = [ln for ln in out.splitlines() if f"p:{zombie} " in ln]
    assert line.split()[1:4] == ["0B", "0B", "0B"]
    code, _, err = run(capsys, "vmaps", str(zombie))
    assert code == 1 and "MX_ERR_BAD_STATE" in err


@linux_only
def test_kernel_threads_have_no_memory() -> None:
    snap = HostSource().snapshot(Level.TASKS)
    kthreads = [p for p in snap.processes.values() if p.kernel_thread]
    if not kthreads:
        pytest.skip("no kernel threads visible (a PID namespace)")
    for process in kthreads:
        assert process.stats is not None and process.stats.pss_bytes == 0
        assert process.unreadable is None and len(process.threads) == 1


@linux_only
def test_ps_lists_kernel_threads_without_memory_cells(capsys: pytest.CaptureFixture[str]) -> None:
    # Kernel threads appear where ps lists tasks, but have no memory rows: blank cells,
    # neither a made-up 0B nor the "?" of an unreadable process.
    snap = HostSource().snapshot(Level.TASKS)
    # The oldest kernel thread (kthreadd, pid 2) lives as long as the machine.
    kthreads = [p for p in snap.processes.values() if p.kernel_thread]
    kthread = min(kthreads, key=lambda p: p.koid) if kthreads else None
    if kthread is None:
        pytest.skip("no kernel threads visible (a PID namespace)")
    assert main(["--host", "ps"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.split()[0] == f"p:{kthread.koid}")
    assert row.split()[1:] == kthread.name.split()


@linux_only
def test_vmaps_groups_loaded_objects(spawn: Spawn, capsys: pytest.CaptureFixture[str]) -> None:
    _, (pid, _fd) = spawn(HOLD_MEMFD)
    snap = HostSource().snapshot(Level.FULL, [int(pid)])
    aspace = snap.processes[int(pid)].aspace
    assert aspace is not None
    assert (aspace.name, aspace.base) == (f"proc:{pid}", 0)
    exe = os.path.realpath(sys.executable)
    (region,) = [c for c in aspace.root.children if isinstance(c, Vmar) and c.name == exe]
    names = {c.name for c in region.children}
    assert names == {exe} and len(region.children) >= 2
    assert all(m.end <= aspace.size for m in aspace.mappings())  # [vsyscall] left out
    code, out, _ = run(capsys, "vmaps", pid)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("/A ") and lines[0].endswith(f"'proc:{pid}'")
    assert any(ln.startswith("R ") and ln.endswith(f"'{exe}'") for ln in lines)
    assert any(ln.endswith("'[stack]'") for ln in lines)


@linux_only
def test_shared_address_space_is_counted_once(tmp_path: Path) -> None:
    with clone_vm_pair(tmp_path) as (low, high):
        # A shared page's PSS can move and move back between the kernel reads that
        # bracket ours (another process mapping libc briefly): retry such a race.
        for _ in range(20):
            rollup, snap = stable(
                lambda: kernel_rollup(low),
                lambda: HostSource().snapshot(Level.TASKS, [low, high]),
            )
            low_stats = snap.processes[low].stats
            if low_stats is not None and low_stats.pss_bytes == rollup["Pss"]:
                break
            time.sleep(0.05)
        assert HostSource().reader.same_mm(low, high) is True
        stats = {pid: snap.processes[pid].stats for pid in (low, high)}
        assert stats[low] is not None and stats[low].pss_bytes == rollup["Pss"]
        assert stats[high] is not None and stats[high].pss_bytes == 0
        assert any("CLONE_VM" in note and f"{high} with {low}" in note for note in snap.notes)


@linux_only
def test_identical_but_separate_processes_are_not_merged() -> None:
    # ps_mem's bug: processes with byte-identical smaps_rollup are taken as one address
    # space. Two `setarch -R sleep` (no ASLR) print the same rollup; kcmp tells them apart.
    setarch = shutil.which("setarch")
    if setarch is None:
        pytest.skip("no setarch to start processes without address space randomisation")
    procs = [
        subprocess.Popen([setarch, "-R", "sleep", "1000"], start_new_session=True) for _ in range(2)
    ]
    try:
        pids = [p.pid for p in procs]
        for _ in range(100):
            time.sleep(0.05)
            try:  # (ESRCH while setarch execs sleep)
                comms = [Path(f"/proc/{pid}/comm").read_text() for pid in pids]
                texts = [Path(f"/proc/{pid}/smaps_rollup").read_text() for pid in pids]
            except OSError:
                continue
            if comms == ["sleep\n"] * 2 and texts[0] == texts[1]:
                break
        else:
            pytest.skip("the two processes never had identical smaps_rollup")
        rollups, snap = stable(
            lambda: [kernel_rollup(pid) for pid in pids],
            lambda: HostSource().snapshot(Level.TASKS, pids),
        )
        assert HostSource().reader.same_mm(*pids) is False
        for pid, rollup in zip(pids, rollups, strict=True):
            stats = snap.processes[pid].stats
            assert stats is not None and stats.pss_bytes == rollup["Pss"] > 0
        assert not any("CLONE_VM" in note or "kcmp" in note for note in snap.notes)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


# --- permissions ---------------------------------------------------------------------------


@linux_only
@pytest.mark.skipif(not ROOT, reason="switching to another user needs root")
def test_other_users_processes_are_unknown_not_zero() -> None:
    me = os.getpid()

    def ps() -> str:
        out, err = io.StringIO(), io.StringIO()
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            main(["--host", "ps"])
        finally:
            sys.stdout, sys.stderr = saved
        return out.getvalue() + "\x00" + err.getvalue()

    out, err = as_nobody(ps).split("\x00")
    (line,) = [ln for ln in out.splitlines() if ln.split()[0] == f"p:{me}"]
    assert line.split()[1:4] == ["?", "?", "?"]  # root's test process, unreadable
    assert "unreadable (permission denied): run as root to read all" in err


@linux_only
@pytest.mark.skipif(ROOT, reason="as root every process of this user namespace is readable")
def test_unreadable_processes_as_a_normal_user() -> None:
    snap = HostSource().snapshot(Level.TASKS)
    me = os.getuid()
    foreign = [
        p
        for p in snap.processes.values()
        if not p.kernel_thread
        and p.state is ProcessState.RUNNING
        and os.stat(f"/proc/{p.koid}").st_uid != me
    ]
    if not foreign:
        pytest.skip("no other user's process to look at")
    assert all(p.unreadable == "permission denied" and p.stats is None for p in foreign)
    assert any("run as root to read all" in note for note in snap.notes)


# --- robustness ------------------------------------------------------------------------------


@pytest.mark.slow
@linux_only
def test_churn_never_crashes(capsys: pytest.CaptureFixture[str]) -> None:
    """ps, vmaps and vmos while processes (and threads) come and go all the time."""
    stop = threading.Event()
    live: list[subprocess.Popen[bytes]] = []
    lock = threading.Lock()
    churn = (
        "import os, sys, threading, time\n"
        "for _ in range(int(sys.argv[1])):\n"
        "    threading.Thread(target=time.sleep, args=(0.01,)).start()\n"
        "if os.fork() == 0:\n"
        "    os._exit(0)\n"
        "time.sleep(float(sys.argv[2]))\n"
    )

    def churner() -> None:
        rng = random.Random(7)
        while not stop.is_set():
            proc = subprocess.Popen(
                [sys.executable, "-c", churn, str(rng.randint(0, 8)), str(rng.random() / 5)],
                start_new_session=True,
            )
            with lock:
                live.append(proc)
                for old in [p for p in live if p.poll() is not None]:
                    live.remove(old)
                if len(live) > 6:
                    victim = live.pop(rng.randrange(len(live)))
                    victim.kill()
                    victim.wait()
            time.sleep(rng.random() / 50)

    thread = threading.Thread(target=churner)
    thread.start()
    try:
        deadline = time.monotonic() + 6
        rounds = 0
        while time.monotonic() < deadline or rounds < 3:
            with lock:
                pids = [p.pid for p in live] or [os.getpid()]
            pid = str(random.choice(pids))
            for args in (["ps", "-T"], ["vmaps", pid], ["vmos", pid], ["ps", "--json"]):
                code, _, err = run(capsys, *args)
                assert code in (0, 1), (args, err)
                assert "Traceback" not in err and "internal error" not in err, err
                if code == 1:
                    assert "MX_ERR_NOT_FOUND" in err or "MX_ERR_BAD_STATE" in err, err
            rounds += 1
    finally:
        stop.set()
        thread.join()
        for proc in live:
            proc.kill()
            proc.wait()


# --- a fixture tree instead of /proc ---------------------------------------------------------


def _tree(root: Path, *, layout: str = "v2") -> Path:
    """A tiny system: pid 100 (the captured child, smaps included) in cgroup /app/web,
    kernel thread 2, zombie 300 in a cgroup removed since, and pid 200 that vanished
    after being listed (no files). ``layout`` is ``v2`` (memory on the unified
    hierarchy), ``hybrid`` (v1 memory, cgroup2 with only hugetlb) or ``none``; returns
    the memory hierarchy's top directory."""
    proc = root / "proc"
    (proc / "self").mkdir(parents=True)
    shutil.copy(LINUX_FIXTURES / "meminfo", proc / "meminfo")
    (proc / "sysvipc").mkdir()
    shutil.copy(LINUX_FIXTURES / "sysvipc.shm", proc / "sysvipc" / "shm")
    mountinfo = "22 27 0:21 / /proc rw - proc proc rw\n"
    cgroups = root / "sys" / "fs" / "cgroup"
    top = cgroups
    if layout == "v2":
        mountinfo += "31 23 0:28 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n"
        cgroups.mkdir(parents=True)
        (cgroups / "cgroup.controllers").write_text("cpu memory pids\n")
        charge, line = "memory.current", "0::{}\n"
    elif layout == "hybrid":
        mountinfo += (
            "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
            "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
        )
        (cgroups / "unified").mkdir(parents=True)
        (cgroups / "unified" / "cgroup.controllers").write_text("hugetlb\n")
        top = cgroups / "memory"
        top.mkdir()
        (top / "memory.usage_in_bytes").write_text("999\n")
        charge, line = "memory.usage_in_bytes", "4:memory:{}\n1:cpu:/other\n0::/\n"
    if layout != "none":
        (top / "app" / "web").mkdir(parents=True)
        (top / "app" / charge).write_text("1234567\n")
        (top / "app" / "web" / charge).write_text("7654321\n")
    (proc / "self" / "mountinfo").write_text(mountinfo)
    child = proc / "100"
    child.mkdir()
    for name in ("stat", "smaps_rollup", "smaps"):
        shutil.copy(LINUX_FIXTURES / f"child.{name}", child / name)
    status = (LINUX_FIXTURES / "child.status").read_text()
    (child / "status").write_text(status.replace("Tgid:\t22496", "Tgid:\t100"))
    (child / "fd").mkdir()
    kthread = proc / "2"
    kthread.mkdir()
    shutil.copy(LINUX_FIXTURES / "kthreadd.stat", kthread / "stat")
    zombie = proc / "300"
    zombie.mkdir()
    (zombie / "stat").write_text(
        "300 (defunct) Z 100 300 300 0 -1 4227148 0 0 0 0 0 0 0 0 20 0 1 0 9 0 0 0\n"
    )
    if layout != "none":
        (child / "cgroup").write_text(line.format("/app/web"))
        (kthread / "cgroup").write_text(line.format("/"))
        (zombie / "cgroup").write_text(line.format("/app/gone"))
    (proc / "200").mkdir()
    return top


@pytest.mark.parametrize("layout", ["v2", "hybrid"])
def test_fixture_tree_cgroups(tmp_path: Path, layout: str) -> None:
    top = _tree(tmp_path, layout=layout)
    snap = open_source(f"host:{tmp_path}").snapshot(Level.TASKS)
    root, app, web = (os.stat(p).st_ino for p in (top, top / "app", top / "app" / "web"))
    assert snap.source == f"host:{tmp_path}"
    assert snap.root_job_koid == root
    assert [(e.depth, e.kind, e.obj.koid) for e in snap.walk()] == [
        (0, "j", root),
        (1, "p", 2),
        (1, "j", app),
        (2, "p", 300),  # its cgroup is gone: placed in the nearest ancestor
        (2, "j", web),
        (3, "p", 100),
    ]
    assert (snap.jobs[root].name, snap.jobs[app].name, snap.jobs[web].name) == (
        "root",
        "app",
        "web",
    )
    # memory.current (v2) or memory.usage_in_bytes (v1): the cgroup's own charge.
    assert snap.jobs[app].charge_bytes == 1234567
    assert snap.jobs[web].charge_bytes == 7654321
    # v2 has no memory.current at the root; v1 has memory.usage_in_bytes there.
    assert snap.jobs[root].charge_bytes == (None if layout == "v2" else 999)
    assert all(job.charged_pages_bytes is None for job in snap.jobs.values())
    child = snap.processes[100]
    assert (child.name, child.state, child.kernel_thread) == ("fixture)child", "running", False)
    assert child.stats is not None
    assert (child.stats.pss_bytes, child.stats.mapped_bytes) == (8227 * K, 19439616)
    assert [t.koid for t in child.threads] == [100]
    kthread = snap.processes[2]
    assert kthread.kernel_thread and kthread.stats is not None and kthread.stats.pss_bytes == 0
    assert snap.processes[300].state is ProcessState.DEAD
    assert 200 not in snap.processes  # listed, then gone: skipped silently
    assert snap.kernel is not None and snap.kernel.total_bytes == 24683656 * K
    assert snap.notes == ()


def test_fixture_tree_full(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _tree(tmp_path)
    source = HostSource(str(tmp_path))
    snap = source.snapshot(Level.FULL, [100])
    aspace = snap.processes[100].aspace
    assert aspace is not None and aspace.size == 0x7FFFFFFFF000
    mappings = aspace.mappings()
    assert len(mappings) == 120  # 121 VMAs without [vsyscall]
    exe = "/root/.pyenv/versions/3.11.7/bin/python3.11"
    region = aspace.root.children[0]
    assert isinstance(region, Vmar) and region.name == exe
    assert [c.base for c in region.children] == [0x55942BE2D000 + i * PAGE for i in range(5)]
    (sysv,) = [m for m in mappings if m.name == "/SYSV6d786d6d (deleted)"]
    vmo = snap.vmos[sysv.vmo_koid]
    # From /proc/sysvipc/shm: shmid 1 (the VMA's inode), 1 MiB, 12 KiB resident.
    assert (vmo.size_bytes, vmo.committed_bytes) == (MiB, 12 * K)
    vdso = next(m for m in mappings if m.name == "[vdso]")
    assert snap.vmos[vdso.vmo_koid].kernel_only
    heap = next(m for m in mappings if m.name == "[heap]")
    assert heap.vmo_offset == 0 and heap.stats is not None
    assert snap.processes[100].handles == ()
    code, out, _ = run_source(capsys, source, "vmaps", "100")
    # (The :vmo column of the mappings is as wide as a Linux koid: 16 digits, not 5.)
    assert code == 0 and out.splitlines()[2] == (
        f"R  000055942be2d000-000055942be32000       20k:sz{' ' * 30} '{exe}'"
    )


def run_source(
    capsys: pytest.CaptureFixture[str], source: HostSource, *args: str
) -> tuple[int, str, str]:
    code = main(list(args), source=source)
    out, err = capsys.readouterr()
    return code, out, err


def test_fixture_tree_without_cgroups_follows_the_process_tree(tmp_path: Path) -> None:
    _tree(tmp_path, layout="none")
    snap = HostSource(str(tmp_path)).snapshot(Level.TASKS)
    assert [(e.depth, e.kind, e.obj.koid) for e in snap.walk()] == [
        (0, "j", 0),
        (1, "p", 2),  # kthreadd: parent 0
        (1, "p", 100),  # its parent 22384 is not listed
        (1, "j", 100),
        (2, "p", 300),
    ]
    assert snap.jobs[100].name == "fixture)child"
    assert snap.notes == ("no readable cgroup memory hierarchy: jobs follow the process tree",)


def test_open_source_spellings(capsys: pytest.CaptureFixture[str]) -> None:
    assert open_source("host").name == "host"
    code = main(["--help"])
    out, _ = capsys.readouterr()
    assert code == 0 and "--host" in out
