"""Save and load a capture of a large simulated world: time, file size and peak memory.

    python3 bench/bench_capture.py                    # scale:100000 (minutes to build)
    python3 bench/bench_capture.py --processes 10000  # a quicker run

Once, for ``scale:N``:

* ``build`` and ``snapshot``: generating the world and ``SimSource.snapshot(Level.FULL)``
  (not part of saving; shown for scale);
* ``save``: :func:`snapshot_file.dumps` and writing the file, plain and gzipped (as
  ``mxmem capture -o FILE[.gz]`` does: ``gzip.compress(data, mtime=0)``), with the size
  of each file;
* ``load``: :func:`open_capture` of each file in a fresh interpreter, so that its peak
  RSS is the loader's own and not this process's (which holds the world). Peak RSS is
  the child's ``ru_maxrss`` as ``os.wait4`` reports it for that one child (started by
  a small launcher process: see ``_LAUNCHER``); the same interpreter importing the
  loader and stopping is shown as the baseline, so the difference is what loading
  costs. Each file is loaded twice: as a library caller would (the cyclic GC on) and
  with the GC off, as the ``mxmem`` command runs (``cli.main``: a load builds millions
  of acyclic objects, which the GC rescans over and over);
* ``ps``: the ``mxmem --capture FILE ps`` command against ``mxmem --sim=scale:N ps``
  (which rebuilds the world), output to ``/dev/null``, wall time and peak RSS.

Wall time is ``time.perf_counter``. Each step runs once: a 100k-process world takes
minutes, and the point is the order of magnitude, not the third digit.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

SRC = Path(__file__).resolve().parent.parent / "src"
sys.path.insert(0, str(SRC))

from mxmem.model import Level  # noqa: E402
from mxmem.sources.capture.snapshot_file import dumps  # noqa: E402
from mxmem.sources.sim.source import SimSource  # noqa: E402
from mxmem.sources.sim.worlds import build  # noqa: E402

# Run in the child: import the loader (the baseline), then load the file unless told not
# to, and report the load's wall time as JSON on stdout.
_LOADER = """\
import gc, json, sys, time
from mxmem.sources.capture import open_capture
t = 0.0
if sys.argv[2:] == ["nogc"]:
    gc.disable()
if sys.argv[1] != "-":
    start = time.perf_counter()
    source = open_capture(sys.argv[1])
    t = time.perf_counter() - start
    n = len(source.snapshot().processes)
else:
    n = 0
print(json.dumps({"seconds": t, "processes": n}))
"""


class Run(NamedTuple):
    seconds: float  # wall time of the whole child
    max_rss_kib: int
    stdout: str


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# Linux carries a process's peak RSS across execve, and a forked child starts with its
# parent's: a child spawned straight from this process (which holds the whole world)
# would report this process's peak. So children are started by a small launcher
# interpreter, whose own peak is a few MiB; it reports the child's wall time and its
# ``ru_maxrss`` (from ``wait4``, that one child's, unlike ``RUSAGE_CHILDREN``).
_LAUNCHER = """\
import json, os, subprocess, sys, time
with open(sys.argv[1], "wb") as out:
    start = time.perf_counter()
    proc = subprocess.Popen(sys.argv[2:], stdout=out, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
print(json.dumps({"seconds": seconds, "maxrss": usage.ru_maxrss,
                  "code": os.waitstatus_to_exitcode(status), "stderr": err[-500:]}))
"""


def run_measured(argv: Sequence[str]) -> Run:
    """``argv`` run by the launcher: its wall time, peak RSS and standard output."""
    with tempfile.NamedTemporaryFile() as out:
        report = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, out.name, *argv],
            env=_env(),
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(report.stdout)
        if result["code"] != 0:
            sys.exit(f"{' '.join(argv)} failed ({result['code']}): {result['stderr']}")
        # ru_maxrss is in KiB on Linux.
        return Run(result["seconds"], result["maxrss"], Path(out.name).read_text())


def mib(n: float) -> str:
    return f"{n / (1 << 20):8.1f} MiB"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=100000, help="world size (scale:N)")
    parser.add_argument("--keep", metavar="DIR", help="write the captures here and keep them")
    args = parser.parse_args(argv)
    n = args.processes
    spec = f"scale:{n}"
    python = sys.executable
    rows: list[tuple[str, str, str, str]] = []

    gc.disable()  # as mxmem's CLI does: large acyclic graphs
    print(f"building {spec} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    kernel = build(spec)
    t_build = time.perf_counter() - start
    start = time.perf_counter()
    snapshot = SimSource(kernel).snapshot(Level.FULL)
    t_snap = time.perf_counter() - start
    del kernel
    rows.append(("build world", f"{t_build:7.2f} s", "", ""))
    rows.append(("snapshot (FULL)", f"{t_snap:7.2f} s", "", ""))

    with tempfile.TemporaryDirectory() as tmp:
        where = Path(args.keep or tmp)
        where.mkdir(parents=True, exist_ok=True)
        plain = where / f"scale-{n}.json"
        packed = where / f"scale-{n}.json.gz"

        print("saving ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        data = dumps(snapshot).encode("ascii")
        plain.write_bytes(data)
        t_save = time.perf_counter() - start
        start = time.perf_counter()
        packed.write_bytes(gzip.compress(data, mtime=0))
        t_gzip = time.perf_counter() - start
        del data, snapshot
        gc.enable()
        gc.collect()
        rows.append(("save .json", f"{t_save:7.2f} s", mib(plain.stat().st_size), ""))
        rows.append(
            ("save .json.gz (+gzip)", f"{t_save + t_gzip:7.2f} s", mib(packed.stat().st_size), "")
        )

        print("loading ...", file=sys.stderr, flush=True)
        base = run_measured([python, "-c", _LOADER, "-"])
        rows.append(("interpreter + loader import", f"{base.seconds:7.2f} s", "", _rss(base)))
        for path, gc_flag in ((plain, ""), (packed, ""), (plain, "nogc"), (packed, "nogc")):
            run = run_measured([python, "-c", _LOADER, str(path), *([gc_flag] if gc_flag else [])])
            report = json.loads(run.stdout)
            if report["processes"] < n:
                sys.exit(f"{path}: loaded {report['processes']} processes, expected >= {n}")
            rows.append(
                (
                    f"load {path.name[len(f'scale-{n}') :]}" + (" (gc off)" if gc_flag else ""),
                    f"{report['seconds']:7.2f} s",
                    "",
                    f"{_rss(run)} (+{(run.max_rss_kib - base.max_rss_kib) / 1024:.0f} MiB)",
                )
            )

        print("ps ...", file=sys.stderr, flush=True)
        for label, cmd in (
            ("mxmem --capture .json ps", ["--capture", str(plain), "ps"]),
            ("mxmem --capture .json.gz ps", ["--capture", str(packed), "ps"]),
            (f"mxmem --sim={spec} ps", [f"--sim={spec}", "ps"]),
        ):
            run = run_measured([python, "-m", "mxmem", *cmd])
            rows.append((label, f"{run.seconds:7.2f} s", "", _rss(run)))

    width = max(len(r[0]) for r in rows)
    print(f"\n{spec} ({n} processes), {python} {sys.version.split()[0]}\n")
    print(f"{'step':<{width}}  {'wall':>9}  {'file':>12}  peak RSS")
    for label, wall, size, rss in rows:
        print(f"{label:<{width}}  {wall:>9}  {size:>12}  {rss}".rstrip())
    return 0


def _rss(run: Run) -> str:
    return f"{run.max_rss_kib / 1024:6.0f} MiB"


if __name__ == "__main__":
    sys.exit(main())
