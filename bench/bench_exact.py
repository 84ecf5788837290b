"""Exact attribution on the host against the raw cost of the reads it rests on.

    sudo python3 bench/bench_exact.py              # 10 interleaved runs of each command
    sudo python3 bench/bench_exact.py --repeat 30
    sudo python3 bench/bench_exact.py --no-load    # the machine as it is, no load

Root only: page-level attribution reads ``/proc/kpagecount`` and the PFNs of
``pagemap``.

**The load** is ``bench_host_ps.py``'s (imported from beside this file): 201 processes
sharing a 64 MiB file, a 32 MiB memfd mapped by 191 of them, an 8 MiB memfd only held by
descriptors, a 48 MiB copy-on-write region of 51 forked processes, 140 exec'd Python
children and 10 ``setarch -R sleep``.

**What is timed**, each as a fresh process (``python -c``), interleaved round-robin after
one warm-up run of each (so a burst of other activity hits all alike):

* ``raw``: a plain script that reads exactly the pagemap ranges exact mode reads —
  recorded beforehand from one ``snapshot(Level.PAGES)`` as it made them (its
  ``preadv`` calls on each process's pagemap: the VMAs PAGEMAP_SCAN found pages in,
  nearby ones read as one) and written to a file — keeps the present entries' PFNs,
  takes their distinct values (a sort: which kpagecount entries are needed cannot be
  known without it; not ``np.unique``, which numpy 2.4 makes a hash table of, 70x slower
  here on 4 M PFNs), and reads those entries of ``/proc/kpagecount`` in the same
  coalesced runs, with no attribution. It imports numpy, as exact mode does. Not in it:
  the ``PAGEMAP_SCAN`` calls that find the ranges (exact mode's cost, reported below),
  nor ``maps``, which says where the VMAs are.
* ``raw I/O``: the same reads with the kpagecount runs also taken from the recording
  (the floor: system calls and the kernel's page-table walks only).
* ``raw, a read per VMA``: ``raw`` with the reads of the previous design: one ``preadv``
  per VMA with pages, whole (the raw of the measurements before PAGEMAP_SCAN and the
  coalesced reads).
* ``exact (library)``: ``open_source("host").snapshot(Level.PAGES)`` +
  ``attribute_snapshot``; the script also reports the phases of the snapshot: the
  per-process reads (stat, cgroup, status, maps, PAGEMAP_SCAN and pagemap; on one thread
  per CPU), the page table (the sort, kpagecount, the figures of every VMA), the FULL
  part (address spaces, descriptors, VMOs) and the page facts (grouping by users, the
  categories); and the time spent in PAGEMAP_SCAN and in pagemap reads, summed over
  the threads.
* ``FULL snapshot``: ``snapshot(Level.FULL)`` alone (it reads ``smaps``), for comparison.
* ``mxmem ps --attribution=exact``: the CLI, when it accepts the flag.

The table shows medians, min and max, and each median's ratio to ``raw``'s; then the
medians of the phases reported from inside the library runs. The aim: exact mode within
2x of raw.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_host_ps import (  # noqa: E402  (the load lives beside this file)
    Command,
    Timing,
    _children_cpu,
    _src_env,
    compile_bytecode,
    running_load,
)

# The raw reads. argv: the ranges file, and "io" to take the kpagecount runs from it too.
RAW = """
import json, os, sys, time
import numpy as np
spec = json.load(open(sys.argv[1]))
t0 = time.perf_counter()
mask = np.uint64((1 << 55) - 1)
parts = []
for pid, offsets, sizes in spec["ranges"]:
    try:
        fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    except OSError:
        continue
    buf = bytearray(sum(sizes))
    view = memoryview(buf)
    pos = 0
    for offset, size in zip(offsets, sizes):
        os.preadv(fd, [view[pos:pos + size]], offset)
        pos += size
    view.release()
    os.close(fd)
    entries = np.frombuffer(buf, dtype=np.uint64)
    parts.append(entries[entries >= np.uint64(1 << 63)] & mask)
if sys.argv[2:] == ["io"]:
    starts, lengths = spec["runs"]
else:
    pfns = np.sort(np.concatenate(parts))  # distinct: sorted, then equal neighbours out
    pfns = pfns[np.concatenate(([True], pfns[1:] != pfns[:-1]))]
    breaks = np.flatnonzero(np.diff(pfns) > 16) + 1  # exact mode's runs (pages._RUN_GAP)
    first = np.concatenate(([0], breaks))
    last = np.concatenate((breaks - 1, [pfns.size - 1]))
    starts = pfns[first].tolist()
    lengths = (pfns[last] - pfns[first] + np.uint64(1)).tolist()
buf = bytearray(8 * sum(lengths))
view = memoryview(buf)
fd = os.open("/proc/kpagecount", os.O_RDONLY)
pos = 0
for start, length in zip(starts, lengths):
    os.preadv(fd, [view[pos:pos + 8 * length]], 8 * start)
    pos += 8 * length
os.close(fd)
print(json.dumps({"reads": time.perf_counter() - t0}))
"""

# The library path, timing its phases: the per-process reads (TASKS files, maps,
# PAGEMAP_SCAN probes and pagemap, on threads), the page table (sort, kpagecount, the
# figures), the FULL part (address spaces, descriptors, VMOs) and the page facts.
LIBRARY = """
import json, sys, threading, time
t0 = time.perf_counter()
import mxmem.sources.linux.host as host
import mxmem.sources.linux.pagefacts as pagefacts
import mxmem.sources.linux.reader as reader
from mxmem.accounting.exact import attribute_snapshot
from mxmem.model import Level
from mxmem.sources import open_source
t1 = time.perf_counter()
spent = {}
lock = threading.Lock()
def timed(owner, name, key):
    inner = getattr(owner, name)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            with lock:
                spent[key] = spent.get(key, 0.0) + time.perf_counter() - start
    setattr(owner, name, wrapper)
timed(host, "map_in_threads", "records")
timed(host._Scan, "_page_table", "table")
timed(host._Scan, "_full", "full")
timed(pagefacts, "host_page_facts", "facts")
timed(reader.Pagemap, "present", "probes")
timed(reader.Pagemap, "read", "pagemap")
snapshot = open_source("host").snapshot(Level.PAGES)
t2 = time.perf_counter()
attribution = attribute_snapshot(snapshot)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "snapshot": t2 - t1, "attribute": t3 - t2,
                  **spent, "residual": float(attribution.residual)}))
"""

FULL = """
from mxmem.model import Level
from mxmem.sources import open_source
open_source("host").snapshot(Level.FULL)
"""


def write_spec(path: Path) -> tuple[int, int, int, int]:
    """The pagemap ranges one PAGES snapshot reads, per process, and the kpagecount
    runs it reads, recorded as it reads them, as JSON; returns (processes, pagemap
    bytes, kpagecount bytes, PAGEMAP_SCAN calls)."""
    sys.path.insert(0, str(BENCH.parent / "src"))
    import threading

    from mxmem.model import Level
    from mxmem.sources.linux import HostSource, reader

    ranges: dict[int, tuple[list[int], list[int]]] = {}
    runs: tuple[list[int], list[int]] = ([], [])
    probes = [0]
    lock = threading.Lock()
    read, read_ranges, present = (
        reader.Pagemap.read,
        reader.ProcReader.read_ranges,
        reader.Pagemap.present,
    )

    def record_read(
        self: reader.Pagemap, offsets: Sequence[int], sizes: Sequence[int]
    ) -> bytearray:
        pid = int(self.path.split("/")[-2]) if self.path.split("/")[-2].isdigit() else 0
        if pid:
            with lock:
                mine = ranges.setdefault(pid, ([], []))
                mine[0].extend(offsets)
                mine[1].extend(sizes)
        return read(self, offsets, sizes)

    def record_runs(
        self: reader.ProcReader, path: str, offsets: Sequence[int], sizes: Sequence[int]
    ) -> bytearray:
        if path.endswith("/kpagecount") and sum(sizes) > 8:
            runs[0].extend(o // 8 for o in offsets)
            runs[1].extend(s // 8 for s in sizes)
        return read_ranges(self, path, offsets, sizes)

    def count_probes(
        self: reader.Pagemap, start: int, end: int, limit: int = 0
    ) -> list[tuple[int, int]] | None:
        with lock:
            probes[0] += 1
        return present(self, start, end, limit)

    reader.Pagemap.read = record_read  # type: ignore[method-assign]
    reader.ProcReader.read_ranges = record_runs  # type: ignore[method-assign]
    reader.Pagemap.present = count_probes  # type: ignore[method-assign]
    try:
        snapshot = HostSource().snapshot(Level.PAGES)
    finally:
        reader.Pagemap.read = read  # type: ignore[method-assign]
        reader.ProcReader.read_ranges = read_ranges  # type: ignore[method-assign]
        reader.Pagemap.present = present  # type: ignore[method-assign]
    spec = [(pid, offsets, sizes) for pid, (offsets, sizes) in sorted(ranges.items())]
    path.write_text(json.dumps({"ranges": spec, "runs": list(runs)}))
    # The reads of the previous design, for comparison: one per VMA with pages (as smaps
    # found them), whole, of the same processes.
    page = os.sysconf("SC_PAGE_SIZE")
    per_vma: list[tuple[int, list[int], list[int]]] = []
    for pid, _, _ in spec:
        aspace = snapshot.processes[pid].aspace if pid in snapshot.processes else None
        if aspace is None:
            continue
        offsets: list[int] = []
        sizes: list[int] = []
        for m in aspace.mappings():
            vmo = snapshot.vmos.get(m.vmo_koid)
            if m.committed_bytes and vmo is not None and not (vmo.physical or vmo.kernel_only):
                offsets.append(m.base // page * 8)
                sizes.append(m.size // page * 8)
        per_vma.append((pid, offsets, sizes))
    path.with_suffix(".per-vma.json").write_text(
        json.dumps({"ranges": per_vma, "runs": list(runs)})
    )
    pagemap = sum(sum(sizes) for _, _, sizes in spec)
    return len(spec), pagemap, 8 * sum(runs[1]), probes[0]


def cli_exact() -> Command | None:
    """``python -m mxmem --host ps --attribution=exact``, if it works here."""
    argv = [sys.executable, "-m", "mxmem", "--host", "ps", "--attribution=exact"]
    proc = subprocess.run(argv, capture_output=True, env=_src_env(), check=False)
    if proc.returncode != 0:
        return None
    return Command("mxmem ps --attribution=exact", argv, _src_env())


def interleave(
    cmds: Sequence[Command], repeat: int
) -> tuple[dict[str, Timing], dict[str, list[dict[str, float]]]]:
    """Round-robin runs (one warm-up each): wall times, and what each run reported
    about itself (a JSON line, for the scripts that print one)."""
    walls: dict[str, list[float]] = {c.label: [] for c in cmds}
    cpus: dict[str, list[float]] = {c.label: [] for c in cmds}
    reports: dict[str, list[dict[str, float]]] = {c.label: [] for c in cmds}
    for command in cmds:
        subprocess.run(command.argv, capture_output=True, env=command.env, check=True)
    for round_ in range(repeat):
        for k in range(len(cmds)):
            command = cmds[(round_ + k) % len(cmds)]
            cpu = _children_cpu()
            start = time.perf_counter()
            out = subprocess.run(
                command.argv, capture_output=True, text=True, env=command.env, check=True
            ).stdout
            walls[command.label].append(time.perf_counter() - start)
            cpus[command.label].append(_children_cpu() - cpu)
            if out.startswith("{"):
                reports[command.label].append(json.loads(out))
    timings = {
        label: Timing(statistics.median(w), min(w), max(w), statistics.median(cpus[label]))
        for label, w in walls.items()
    }
    return timings, reports


@contextlib.contextmanager
def maybe_load(enabled: bool) -> Iterator[int]:
    if not enabled:
        yield 0
        return
    with running_load(1800) as load:
        time.sleep(1)  # the last children's page faults settle
        yield len(load.pids)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="timed runs of each command")
    parser.add_argument("--no-load", action="store_true", help="measure the machine as it is")
    opts = parser.parse_args(argv)
    if os.geteuid() != 0 or not os.path.exists("/proc/kpagecount"):
        print("exact attribution's page-level path needs root and /proc/kpagecount")
        return 1
    notes: list[str] = []
    compile_bytecode(notes)
    for note in notes:
        print(f"note: {note}")
    with maybe_load(not opts.no_load) as loaded, tempfile.TemporaryDirectory() as tmp:
        if loaded:
            print(f"load ready: {loaded} processes")
        spec = Path(tmp) / "ranges.json"
        nproc, pagemap_bytes, count_bytes, probes = write_spec(spec)
        print(
            f"{nproc} processes read; pagemap {pagemap_bytes / 2**20:.1f} MiB"
            f" ({pagemap_bytes // 8} entries), kpagecount {count_bytes / 2**20:.2f} MiB;"
            f" {probes} PAGEMAP_SCAN calls"
        )
        env = _src_env()
        cmds = [
            Command("raw", [sys.executable, "-c", RAW, str(spec)], env),
            Command("raw I/O", [sys.executable, "-c", RAW, str(spec), "io"], env),
            Command(
                "raw, a read per VMA",
                [sys.executable, "-c", RAW, str(spec.with_suffix(".per-vma.json"))],
                env,
            ),
            Command("exact (library)", [sys.executable, "-c", LIBRARY], env),
            Command("FULL snapshot", [sys.executable, "-c", FULL], env),
        ]
        cli = cli_exact()
        if cli is None:
            print("note: `mxmem ps --attribution=exact` does not run here: not timed")
        else:
            cmds.append(cli)
        timings, reports = interleave(cmds, opts.repeat)
    raw = timings["raw"]
    width = max(len(label) for label in timings)
    print(f"\nWall time, {opts.repeat} interleaved runs after a warm-up, each a fresh process:")
    print(
        f"{'command':<{width}}  {'median':>8}  {'min':>8}  {'max':>8}  {'x raw':>6}"
        f"  {'CPU':>8}  {'x raw':>6}"
    )
    for label, t in timings.items():
        print(
            f"{label:<{width}}  {t.median * 1e3:6.0f}ms  {t.low * 1e3:6.0f}ms"
            f"  {t.high * 1e3:6.0f}ms  {t.median / raw.median:6.2f}"
            f"  {t.cpu * 1e3:6.0f}ms  {t.cpu / raw.cpu:6.2f}"
        )
    lib = reports["exact (library)"]
    med = {key: statistics.median(p[key] for p in lib) for key in lib[0]}
    reads = statistics.median(p["reads"] for p in reports["raw"])
    io_reads = statistics.median(p["reads"] for p in reports["raw I/O"])
    print("\nInside the processes (after the interpreter's start), medians:")
    print(f"  raw: the reads (+ a sort)       {reads * 1e3:6.0f} ms")
    print(f"  raw I/O: the reads only         {io_reads * 1e3:6.0f} ms")
    print(f"  exact: import mxmem             {med['import'] * 1e3:6.0f} ms")
    print(f"  exact: snapshot(Level.PAGES)    {med['snapshot'] * 1e3:6.0f} ms")
    print(f"    per-process reads (threads)   {med.get('records', 0) * 1e3:6.0f} ms")
    print(f"      PAGEMAP_SCAN, all threads   {med.get('probes', 0) * 1e3:6.0f} ms")
    print(f"      pagemap reads, all threads  {med.get('pagemap', 0) * 1e3:6.0f} ms")
    print(f"    page table                    {med.get('table', 0) * 1e3:6.0f} ms")
    print(f"    FULL part                     {med.get('full', 0) * 1e3:6.0f} ms")
    print(f"    page facts                    {med.get('facts', 0) * 1e3:6.0f} ms")
    print(f"  exact: attribute_snapshot       {med['attribute'] * 1e3:6.0f} ms")
    print(f"  residual                        {med['residual'] / 2**20:6.1f} MiB")
    ratio = timings["exact (library)"].median / raw.median
    cpu_ratio = timings["exact (library)"].cpu / raw.cpu
    verdict = "met" if ratio <= 2 else "NOT met"
    print(
        f"\ntarget: exact (library) {ratio:.2f}x raw, wall ({verdict}: at most 2x);"
        f" {cpu_ratio:.2f}x in CPU time (exact mode reads on one thread per CPU, raw on one)"
    )
    pages = med.get("records", 0) + med.get("table", 0) + med.get("facts", 0)
    print(
        f"the page-level work (per-process reads, page table, page facts) in-process:"
        f" {pages / reads:.2f}x the raw reads ({pages / io_reads:.2f}x the I/O alone);"
        f" the FULL snapshot (smaps) costs {timings['FULL snapshot'].median / raw.median:.2f}x"
        " raw by itself"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
