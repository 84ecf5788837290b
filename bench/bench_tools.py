"""Time ``ps``, ``vmaps`` and ``vmos`` over scale worlds of growing size.

    python3 bench/bench_tools.py                 # scale:1000, scale:10000, scale:100000
    python3 bench/bench_tools.py --quick         # 1000 and 10000
    python3 bench/bench_tools.py 1000 50000      # any sizes

For each world it reports, as the best of ``--repeat`` runs (``time.perf_counter``):

* the world's build time (once: generating it is not part of any tool);
* the TASKS snapshot ``ps`` takes;
* ``ps``: accounting (``figures``) plus rendering (``ps_rows`` + ``write_ps`` into a
  ``StringIO``), per process and per mapping;
* ``vmaps`` and ``vmos`` on a sample of processes: the per-process FULL snapshot the tools
  take, and the rendering, per mapping of the sample.

The per-mapping costs should stay flat as the world grows; the last lines compare the
largest world with the smallest and check ``ps`` against its target (accounting plus
rendering under 3 s over a world of a million mappings or more).
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from mxmem.accounting.figures import figures
from mxmem.model import Level, Process, ProcessState, Snapshot
from mxmem.render.ps import ps_columns, ps_rows, write_ps
from mxmem.render.vmaps import vmaps_entries, write_vmaps
from mxmem.render.vmos import vmos_rows, write_vmos
from mxmem.sources.sim import SimSource
from mxmem.sources.sim.worlds import scale

DEFAULT_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
PS_TARGET_S = 3.0
PS_TARGET_MAPPINGS = 1_000_000

T = TypeVar("T")


class Timing(NamedTuple):
    wall_s: float  # time.perf_counter
    cpu_s: float  # time.process_time: what the run cost when other work shares the CPUs


def best_of(repeat: int, fn: Callable[[], T]) -> tuple[Timing, T]:
    """The shortest of ``repeat`` timed calls (by wall time), and the last result."""
    best = Timing(float("inf"), float("inf"))
    result: T
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        best = min(best, Timing(time.perf_counter() - wall, time.process_time() - cpu))
    return best, result


class Row(NamedTuple):
    n: int
    mappings: int
    build: Timing
    snapshot: Timing
    accounting: Timing
    render: Timing
    sample: int
    sample_mappings: int
    vmaps_snapshot: Timing  # the sample's per-process snapshots, summed
    vmaps_render: Timing
    vmos_render: Timing

    @property
    def ps_s(self) -> float:
        return self.accounting.wall_s + self.render.wall_s

    @property
    def ps_cpu_s(self) -> float:
        return self.accounting.cpu_s + self.render.cpu_s


def mapping_count(snapshot: Snapshot) -> int:
    return sum(len(p.aspace.mappings()) for p in snapshot.processes.values() if p.aspace)


def sample_processes(snapshot: Snapshot, size: int) -> list[Process]:
    """``size`` live processes spread evenly over the walk (so over the whole world)."""
    live = [
        e.obj
        for e in snapshot.walk()
        if isinstance(e.obj, Process) and e.obj.state is ProcessState.RUNNING
    ]
    step = max(1, len(live) // size)
    return live[::step][:size]


def measure(n: int, repeat: int, sample_size: int) -> Row:
    build, kernel = best_of(1, lambda: scale.build(n))
    source = SimSource(kernel, f"sim:scale:{n}")

    snapshot_t, snapshot = best_of(repeat, lambda: source.snapshot(Level.TASKS))
    accounting, memory = best_of(repeat, lambda: figures(snapshot, "2017"))

    def render() -> str:
        out = io.StringIO()
        write_ps(ps_rows(snapshot, memory), ps_columns(memory), out)
        return out.getvalue()

    render_t, text = best_of(repeat, render)
    assert text.count("\n") >= n + 2, "ps printed fewer rows than the world has processes"

    sample = sample_processes(snapshot, sample_size)
    koids = [p.koid for p in sample]
    sample_mappings = sum(len(p.aspace.mappings()) for p in sample if p.aspace)

    def full_snapshots() -> list[Snapshot]:
        return [source.snapshot(Level.FULL, processes=[koid]) for koid in koids]

    vmaps_snapshot, fulls = best_of(repeat, full_snapshots)

    def vmaps() -> None:
        for koid, full in zip(koids, fulls, strict=True):
            aspace = full.processes[koid].aspace
            assert aspace is not None
            write_vmaps(vmaps_entries(aspace, full.vmos), io.StringIO())

    def vmos() -> None:
        for koid, full in zip(koids, fulls, strict=True):
            rows, missing = vmos_rows(full.processes[koid], full.vmos)
            assert missing == 0
            write_vmos(rows, io.StringIO())

    vmaps_render, _ = best_of(repeat, vmaps)
    vmos_render, _ = best_of(repeat, vmos)
    return Row(
        n=n,
        mappings=mapping_count(snapshot),
        build=build,
        snapshot=snapshot_t,
        accounting=accounting,
        render=render_t,
        sample=len(sample),
        sample_mappings=sample_mappings,
        vmaps_snapshot=vmaps_snapshot,
        vmaps_render=vmaps_render,
        vmos_render=vmos_render,
    )


COLUMNS: tuple[tuple[str, str, Callable[[Row], str]], ...] = (
    ("world", "{:<13}", lambda r: f"scale:{r.n}"),
    ("mappings", "{:>9}", lambda r: f"{r.mappings:,}"),
    ("build s", "{:>7}", lambda r: f"{r.build.wall_s:.1f}"),
    ("(cpu)", "{:>6}", lambda r: f"{r.build.cpu_s:.1f}"),
    ("snap s", "{:>7}", lambda r: f"{r.snapshot.wall_s:.3f}"),
    ("(cpu)", "{:>7}", lambda r: f"{r.snapshot.cpu_s:.3f}"),
    ("acct s", "{:>7}", lambda r: f"{r.accounting.wall_s:.3f}"),
    ("render s", "{:>8}", lambda r: f"{r.render.wall_s:.3f}"),
    ("ps s", "{:>6}", lambda r: f"{r.ps_s:.3f}"),
    ("(cpu)", "{:>6}", lambda r: f"{r.ps_cpu_s:.3f}"),
    ("ps us/proc", "{:>10}", lambda r: f"{r.ps_s / r.n * 1e6:.2f}"),
    ("ps us/map", "{:>9}", lambda r: f"{r.ps_s / r.mappings * 1e6:.3f}"),
    ("snap us/map", "{:>11}", lambda r: f"{r.snapshot.wall_s / r.mappings * 1e6:.2f}"),
    ("vmaps us/map", "{:>12}", lambda r: per_sample_mapping(r, r.vmaps_render)),
    ("vmos us/map", "{:>11}", lambda r: per_sample_mapping(r, r.vmos_render)),
    ("1-proc snap ms", "{:>14}", lambda r: f"{r.vmaps_snapshot.wall_s / r.sample * 1e3:.2f}"),
)


def per_sample_mapping(row: Row, timing: Timing) -> str:
    return f"{timing.wall_s / row.sample_mappings * 1e6:.2f}"


def write_table(rows: Sequence[Row]) -> None:
    print(" ".join(fmt.format(name) for name, fmt, _ in COLUMNS))
    for row in rows:
        print(" ".join(fmt.format(cell(row)) for _, fmt, cell in COLUMNS))


def write_verdict(rows: Sequence[Row]) -> None:
    first, last = rows[0], rows[-1]
    if len(rows) > 1:

        def ratio(cost: Callable[[Row], float]) -> str:
            return f"x{cost(last) / cost(first):.2f}"

        print(
            f"\ncost per mapping, scale:{last.n} vs scale:{first.n}: "
            f"ps {ratio(lambda r: r.ps_s / r.mappings)}, "
            f"snapshot {ratio(lambda r: r.snapshot.wall_s / r.mappings)}, "
            f"vmaps {ratio(lambda r: r.vmaps_render.wall_s / r.sample_mappings)}, "
            f"vmos {ratio(lambda r: r.vmos_render.wall_s / r.sample_mappings)}; "
            "one process's FULL snapshot (vmaps/vmos) "
            f"{ratio(lambda r: r.vmaps_snapshot.wall_s / r.sample)} "
            "(x1.00 = flat)"
        )
    big = [r for r in rows if r.mappings >= PS_TARGET_MAPPINGS]
    for row in big:
        verdict = "OK" if row.ps_s < PS_TARGET_S else "OVER"
        print(
            f"ps over {row.mappings:,} mappings: accounting + rendering {row.ps_s:.2f} s "
            f"(cpu {row.ps_cpu_s:.2f} s; target < {PS_TARGET_S:.0f} s: {verdict}); "
            f"with its snapshot {row.ps_s + row.snapshot.wall_s:.2f} s; "
            f"world build {row.build.wall_s:.1f} s"
        )
    if not big:
        print(f"(no world reached {PS_TARGET_MAPPINGS:,} mappings: the ps target is not checked)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, help="processes per world")
    parser.add_argument("--quick", action="store_true", help="only 1000 and 10000 processes")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (best is kept)")
    parser.add_argument("--sample", type=int, default=20, help="processes for vmaps/vmos")
    parser.add_argument(
        "--no-gc", action="store_true", help="disable the cyclic GC while timing the tools"
    )
    args = parser.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"mxmem tools over scale worlds: best of {args.repeat}, {args.sample} processes "
        f"sampled for vmaps/vmos, GC {'off' if args.no_gc else 'on'}, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {load:.2f}"
    )
    rows: list[Row] = []
    for n in sizes:
        if args.no_gc:
            gc.disable()
        try:
            rows.append(measure(n, args.repeat, args.sample))
        finally:
            gc.enable()
        gc.collect()  # the last world goes before the next is built
    print()
    write_table(rows)
    write_verdict(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
