"""``mxmem kstats``: kernel memory figures and per-CPU activity, every DELAY seconds
(spec §8; the seed document's ``kstats -m`` sample).

Options are getopt's ``"cd:n:hmt"`` as in kstats.c (so ``-mt``, ``-d 0.5`` and ``-d0.5``
all work), plus ``--help``, read by the common option layer (:mod:`mxmem.cli.options`).
Reports repeat every ``-d`` seconds until ``-n`` of them are printed or Ctrl-C, which
ends kstats normally (exit 0).

Time: kstats sleeps the delay between samples and then, when the source's time is
simulated (:class:`~mxmem.sources.Advancing`), advances it by the same delay, so a
simulated kernel's clock, timestamps and counters move exactly ``delay`` per report.
A ``-c`` report shows what happened during the interval that ends with it, so the first
one comes after one interval; ``-m`` alone prints its first report at once.
"""

from __future__ import annotations

import gc
import io
import re
import time
from collections.abc import Sequence
from typing import NamedTuple, TextIO

from mxmem.cli.common import LazySource, Tool, print_notes
from mxmem.cli.options import EXIT_USAGE, Grammar, Opt, bad_value, parse
from mxmem.errors import MxmemError
from mxmem.model import Level, Snapshot
from mxmem.render.kstats import cpu_row, cpu_rows, timestamp_line, write_cpu, write_kmem
from mxmem.sources import Advancing, Source

# kstats.c's help, then a glossary of the -c columns.
HELP = """\
Usage: kstats [options]
Options:
 -c              Print system CPU stats
 -m              Print system memory stats
 -d <delay>      Delay in seconds (default 1 second)
 -n <times>      Run this many times and then exit
 -t              Print timestamp for each report

CPU stats columns (counts are for the last interval):
  cpu:    the CPU number
  load:   percentage of the interval the CPU was busy
  sched (cs ylds pmpts irq_pmpts): scheduler events
    cs:        context switches
    ylds:      explicit thread yields
    pmpts:     thread preemptions (the time slice ran out)
    irq_pmpts: thread preemptions on return from an interrupt
  excep:  exceptions other than page faults (bad access, undefined instruction)
  pagef:  page faults
  sysc:   system calls
  ints (hw  tmr tmr_cb): interrupts
    hw:     hardware (device) interrupts
    tmr:    timer interrupts
    tmr_cb: kernel timer callbacks
  ipi (rs  gen): inter-processor interrupts received
    rs:     reschedule IPIs
    gen:    generic IPIs (TLB shootdowns and other cross-CPU calls)
  -:      the source keeps no such counter (for that CPU)
  all:    the whole system, for counters a source keeps only system-wide

On Linux (--host) the counters come from /proc/stat (load; cs system-wide only:
ctxt), /proc/schedstat when the kernel has it (cs, ylds per CPU), /proc/interrupts
(hw: numbered device IRQs; tmr: local timer; rs: rescheduling; gen: function call and
TLB shootdown IPIs) and /proc/vmstat (pagef, system-wide only: pgfault). Linux counts
no system calls, preemptions, exceptions or timer callbacks: those print -.
"""

MAX_DELAY = 86400.0  # a day; more is a typo (and overflows time.sleep eventually)
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


class KstatsOptions(NamedTuple):
    cpu: bool = False
    memory: bool = False
    delay: float = 1.0
    times: int = 0  # 0: until Ctrl-C
    timestamps: bool = False


# kstats.c's getopt "cd:n:hmt"; its help and errors follow its usage.
GRAMMAR = Grammar(
    "kstats",
    HELP,
    (
        Opt("cpu", "c"),
        Opt("memory", "m"),
        Opt("delay", "d", value=True),
        Opt("times", "n", value=True),
        Opt("timestamps", "t"),
        Opt("help", "h", "help", acts=True),
    ),
    after_error="help",
)


def parse_args(args: Sequence[str], out: TextIO, err: TextIO) -> KstatsOptions | int:
    """The options, or the exit code when kstats is done (help or a usage error)."""
    parsed = parse(GRAMMAR, args, out, err)
    if isinstance(parsed, int):
        return parsed
    flags, values = parsed.flags, parsed.values
    opts = KstatsOptions(
        cpu="cpu" in flags, memory="memory" in flags, timestamps="timestamps" in flags
    )
    if "delay" in values:
        value = values["delay"]
        delay = float(value) if _DECIMAL.fullmatch(value) else 0.0
        if not 0 < delay <= MAX_DELAY:
            expected = f"seconds, more than 0 and at most {MAX_DELAY:.0f}"
            return bad_value("kstats", "-d", value, expected, err)
        opts = opts._replace(delay=delay)
    if "times" in values:
        value = values["times"]
        times = int(value) if value.isascii() and value.isdigit() else 0
        if times < 1:
            return bad_value("kstats", "-n", value, "a whole number >= 1", err)
        opts = opts._replace(times=times)
    if not (opts.cpu or opts.memory):
        err.write(f"No statistics selected\n{HELP}")
        return EXIT_USAGE
    return opts


def _sample(source: Source, opts: KstatsOptions) -> Snapshot:
    snapshot = source.snapshot(Level.KMEM)
    if opts.memory and snapshot.kernel is None:
        raise MxmemError(f"kstats: {source.name} has no kernel memory figures")
    if opts.cpu and not snapshot.cpus:
        raise MxmemError(f"kstats: {source.name} has no per-CPU counters")
    return snapshot


def _later(source: Source, opts: KstatsOptions, first: Snapshot) -> Snapshot | None:
    """A second sample, taken at once, or ``None`` when the source holds one moment (a
    capture: asked again, it gives the snapshot of the same time). A simulated kernel's
    time moves when told (it is :class:`~mxmem.sources.Advancing`), a live host's by
    itself: the second sample of a host is a few microseconds later."""
    opened = source.opened() if isinstance(source, LazySource) else source
    if isinstance(opened, Advancing):
        return first
    later = _sample(source, opts)
    return None if later.timestamp == first.timestamp else later


def _report(
    opts: KstatsOptions, previous: Snapshot | None, snapshot: Snapshot, out: TextIO
) -> None:
    # A report is made whole, then written at once, so Ctrl-C never leaves half of one;
    # and flushed, so it shows as it is made, also through a pipe.
    report = io.StringIO()
    if opts.timestamps:
        report.write(timestamp_line(snapshot.timestamp))
    if opts.cpu:
        assert previous is not None
        rows = cpu_rows(previous.cpus, snapshot.cpus)
        if previous.cpu_total is not None and snapshot.cpu_total is not None:
            rows.append(cpu_row(previous.cpu_total, snapshot.cpu_total))
        write_cpu(rows, report)
    if opts.memory:
        assert snapshot.kernel is not None
        write_kmem(snapshot.kernel, report, snapshot.platform)
    out.write(report.getvalue())
    out.flush()


def _reports(opts: KstatsOptions, source: Source, out: TextIO, err: TextIO) -> None:
    first = _sample(source, opts)
    snapshot = _later(source, opts, first)
    if snapshot is None:
        # One moment: one -m report, and no -c deltas (they would be zeros forever).
        if opts.cpu:
            raise MxmemError(
                f"kstats: -c needs two samples to show what changed, and {source.name}"
                " holds one moment; -m shows its memory"
            )
        _report(opts, None, first, out)
        print_notes("kstats", first.notes, err)
        return
    previous = snapshot
    # Deadlines, as kstats.c's mx_deadline_after: the time spent sampling and printing
    # does not stretch the period.
    deadline = time.monotonic()
    count = 0
    while True:
        if opts.cpu or count:
            deadline += opts.delay
            # The CLI runs tools with the cyclic GC off (cli.main); a report loop that may
            # run for days collects between reports instead.
            gc.collect()
            time.sleep(max(deadline - time.monotonic(), 0.0))
            if isinstance(source, Advancing):
                source.advance(opts.delay)
            snapshot = _sample(source, opts)
        _report(opts, previous, snapshot, out)
        if count == 0:
            print_notes("kstats", snapshot.notes, err)
        previous = snapshot
        count += 1
        if count == opts.times:
            return


def run(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
    opts = parse_args(args, out, err)
    if isinstance(opts, int):
        return opts
    try:
        _reports(opts, source, out, err)
    except KeyboardInterrupt:
        # kstats.c stopped on Ctrl-C and exited normally: the reports are the output.
        return 0
    return 0


TOOL = Tool("kstats", "kernel memory and per-CPU statistics, every few seconds", run)
