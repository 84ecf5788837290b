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

* ``raw``: a plain script that reads exactly the pagemap ranges exact mode reads — the
  VMAs that were resident when a snapshot listed them, minus device, hugetlb and
  ``[vdso]``-like ones, one ``preadv`` per VMA — keeps the present entries' PFNs, takes
  their distinct values (a sort: which kpagecount entries are needed cannot be known
  without it; not ``np.unique``, which numpy 2.4 makes a hash table of, 70x slower here
  on 4 M PFNs), and reads those entries of ``/proc/kpagecount`` in the same
  coalesced runs, with no attribution. The ranges are written to a file beforehand; the
  script imports numpy, as exact mode does.
* ``raw I/O``: the same reads with the distinct PFNs' runs also computed beforehand (the
  floor: system calls and the kernel's page-table walks only).
* ``exact (library)``: ``open_source("host").snapshot(Level.PAGES)`` +
  ``attribute_snapshot``; the script also reports how long the page facts took
  (``host_page_facts``, the part this bench is about) and the FULL scan under them.
* ``FULL snapshot``: ``snapshot(Level.FULL)`` alone, for comparison.
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
    breaks = np.flatnonzero(np.diff(pfns) > 512) + 1
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

# The library path, timing its phases: the page facts (host_page_facts) and the rest.
LIBRARY = """
import json, sys, time
t0 = time.perf_counter()
import mxmem.sources.linux.host as host
from mxmem.accounting.exact import attribute_snapshot
from mxmem.model import Level
from mxmem.sources import open_source
t1 = time.perf_counter()
spent = []
inner = host.host_page_facts
def timed(*args, **kwargs):
    start = time.perf_counter()
    try:
        return inner(*args, **kwargs)
    finally:
        spent.append(time.perf_counter() - start)
host.host_page_facts = timed
snapshot = open_source("host").snapshot(Level.PAGES)
t2 = time.perf_counter()
attribution = attribute_snapshot(snapshot)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "snapshot": t2 - t1, "pages": spent[0],
                  "attribute": t3 - t2, "residual": float(attribution.residual)}))
"""

FULL = """
from mxmem.model import Level
from mxmem.sources import open_source
open_source("host").snapshot(Level.FULL)
"""


def write_spec(path: Path) -> tuple[int, int, int]:
    """The ranges exact mode reads (from one PAGES snapshot's plan) and the kpagecount
    runs of their PFNs, as JSON; returns (processes, pagemap bytes, kpagecount bytes)."""
    import numpy as np

    sys.path.insert(0, str(BENCH.parent / "src"))
    from mxmem.model import Level
    from mxmem.sources.linux import HostSource

    snapshot = HostSource().snapshot(Level.FULL)
    page = os.sysconf("SC_PAGE_SIZE")
    ranges: list[tuple[int, list[int], list[int]]] = []
    for pid, process in sorted(snapshot.processes.items()):
        if process.aspace is None or process.stats is None or not process.stats.mapped_bytes:
            continue
        offsets: list[int] = []
        sizes: list[int] = []
        for m in process.aspace.mappings():
            vmo = snapshot.vmos.get(m.vmo_koid)
            if not m.committed_bytes or vmo is None or vmo.physical or vmo.kernel_only:
                continue
            offsets.append(m.base // page * 8)
            sizes.append(m.size // page * 8)
        if offsets:
            ranges.append((pid, offsets, sizes))
    pfns: list[object] = []
    for pid, offsets, sizes in ranges:
        with contextlib.suppress(OSError):
            fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
            data = b"".join(os.pread(fd, s, o) for o, s in zip(offsets, sizes, strict=True))
            os.close(fd)
            entries = np.frombuffer(data, dtype=np.uint64)
            pfns.append(entries[entries >= np.uint64(1 << 63)] & np.uint64((1 << 55) - 1))
    unique = np.sort(np.concatenate(pfns))  # type: ignore[arg-type]
    unique = unique[np.concatenate(([True], unique[1:] != unique[:-1]))]
    breaks = np.flatnonzero(np.diff(unique) > 512) + 1
    first = np.concatenate(([0], breaks))
    last = np.concatenate((breaks - 1, [unique.size - 1]))
    starts = unique[first].tolist()
    lengths = (unique[last] - unique[first] + np.uint64(1)).tolist()
    path.write_text(json.dumps({"ranges": ranges, "runs": [starts, lengths]}))
    return len(ranges), sum(sum(s) for _, _, s in ranges), 8 * sum(lengths)


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
        nproc, pagemap_bytes, count_bytes = write_spec(spec)
        print(
            f"{nproc} processes read; pagemap {pagemap_bytes / 2**20:.1f} MiB"
            f" ({pagemap_bytes // 8} entries), kpagecount {count_bytes / 2**20:.2f} MiB"
        )
        env = _src_env()
        cmds = [
            Command("raw", [sys.executable, "-c", RAW, str(spec)], env),
            Command("raw I/O", [sys.executable, "-c", RAW, str(spec), "io"], env),
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
    print(f"    of which page facts           {med['pages'] * 1e3:6.0f} ms")
    print(f"    of which the FULL scan        {(med['snapshot'] - med['pages']) * 1e3:6.0f} ms")
    print(f"  exact: attribute_snapshot       {med['attribute'] * 1e3:6.0f} ms")
    print(f"  residual                        {med['residual'] / 2**20:6.1f} MiB")
    ratio = timings["exact (library)"].median / raw.median
    cpu_ratio = timings["exact (library)"].cpu / raw.cpu
    verdict = "met" if ratio <= 2 else "NOT met"
    print(
        f"\ntarget: exact (library) {ratio:.2f}x raw, wall ({verdict}: at most 2x);"
        f" {cpu_ratio:.2f}x in CPU time (exact mode reads on one thread per CPU, raw on one)"
    )
    print(
        f"page facts alone: {med['pages'] / reads:.2f}x the raw reads, in-process"
        f" ({med['pages'] / io_reads:.2f}x the I/O alone); the FULL scan under them costs"
        f" {timings['FULL snapshot'].median / raw.median:.2f}x raw by itself"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
