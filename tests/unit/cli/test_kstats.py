"""``mxmem kstats``: the -m layout of the seed document, -c counter deltas of known kernel
operations, the simulated scheduler, options, and Ctrl-C.

Every expected count below is worked out by hand from the operations the test makes; the
rules are in ``sources/sim/cpu.py`` (operation k since boot runs on CPU k % cpus, a
thread's own CPU is koid % cpus, 1000 timer ticks per second).
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import signal
import subprocess
import sys
from collections.abc import Collection
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from paths import SRC
from runner import Mxmem

from mxmem.cli import kstats as kstats_cli
from mxmem.cli import main
from mxmem.cli.kstats import HELP
from mxmem.errors import KernelError
from mxmem.model import CpuStats, KernelMemory, Level, Platform, Snapshot, ThreadState
from mxmem.render.kstats import (
    CPU_COUNTERS,
    CPU_HEADER,
    CpuRow,
    cpu_rows,
    timestamp_line,
    write_cpu,
    write_kmem,
)
from mxmem.sources.sim import PAGE_SIZE, Kernel, SimSource
from mxmem.sources.sim.kernel import USER_ASPACE_BASE, SimMapping

K = 1024
M = K * K

# The seed document's `kstats -m` sample (docs/memory.md), up to its "...".
DOC_SAMPLE = """\
--- 2017-06-07T05:51:08.021Z ---
     total       free       VMOs      kheap      kfree      wired        mmu
   2046.9M    1943.8M      20.7M       1.1M       0.9M      72.6M       7.8M

--- 2017-06-07T05:51:09.021Z ---
"""
KMEM_HEADER = "     total       free       VMOs      kheap      kfree      wired        mmu"


def run_kstats(
    capsys: pytest.CaptureFixture[str], *args: str, source: SimSource | None = None
) -> tuple[int, str, str]:
    code = main(["kstats", *args], source=source)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- -m


def doc_figures_kernel() -> Kernel:
    """A kernel whose figures print as the doc's sample: total 2046.9M and wired 72.6M
    as booted; 5295 committed pages = 20.68M of VMOs (20.7M); 1997 page-table pages =
    7988k of mmu (7.8M); a 2 MiB heap of which 1136k is allocated (1.1M) and 912k free
    (0.9M). Free is then 2096004k - 74328k - 2048k - 21180k - 7988k = 1990460k, which is
    1943M and 828k (1943.8M)."""
    k = Kernel((2046 * K + 900) * K, wired_bytes=(72 * K + 600) * K)
    p = k.process_create(k.root_job, "app")
    data = k.vmo_create(5295 * PAGE_SIZE, "data", owner=p)
    k.vmo_write(data, 0, 5295 * PAGE_SIZE)
    # One page mapped at the start of each of 1991 2-MiB blocks from 16M to 3996M: 1991
    # page tables, 4 directories (the first 4 GiB), 1 PDPT and the process's PML4: 1997.
    page = k.vmo_create(PAGE_SIZE, "page", owner=p)
    assert p.aspace is not None and p.aspace.root is not None
    for i in range(1991):
        k.vmar_map(p.aspace.root, page, addr=USER_ASPACE_BASE + i * 2 * M)
    assert p.aspace.mmu_pages == 1997
    # Grow the heap to exactly 2 MiB with handle-held VMOs (448 bytes each), then free
    # VMOs until 1136k remain allocated: the heap keeps its pages.
    spare = []
    while k.heap_pages < 512:
        spare.append(k.vmo_create(0, owner=p))
    assert k.heap_pages == 512
    while k.heap_allocated > 1136 * K:
        k.handle_close(p, k.handle_of(p, spare.pop()))
    return k


def test_kmem_reproduces_the_doc_sample(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # -d 1 as in the doc, on a fake clock so the test does not sleep a second.
    now = [0.0]
    fake_time = SimpleNamespace(
        monotonic=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
    )
    monkeypatch.setattr(kstats_cli, "time", fake_time)
    k = doc_figures_kernel()
    code, out, err = run_kstats(capsys, "-m", "-t", "-n", "2", "-d", "1", source=SimSource(k))
    assert (code, err) == (0, "")
    # Each report: a blank line, the timestamp, the header and the figures; the second
    # (the doc's "...") is the same figures one simulated second later.
    figures = DOC_SAMPLE.splitlines()[1:3]
    assert out == "\n" + DOC_SAMPLE + "\n".join(figures) + "\n"
    assert out.splitlines()[2] == KMEM_HEADER
    assert now[0] == 1.0  # slept once, between the two reports


def test_kmem_without_timestamps_repeats_header_and_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_kstats(
        capsys, "-m", "-n", "3", "-d", "0.01", source=SimSource(doc_figures_kernel())
    )
    values = "   2046.9M    1943.8M      20.7M       1.1M       0.9M      72.6M       7.8M"
    assert (code, err) == (0, "")
    assert out == f"{KMEM_HEADER}\n{values}\n" * 3


def test_kmem_shows_memory_changes_between_reports(capsys: pytest.CaptureFixture[str]) -> None:
    class Committing(SimSource):
        """Commits 1 MiB more of a VMO each time time passes."""

        def advance(self, seconds: float) -> None:
            self.kernel.vmo_write(vmo, 0, (self.kernel.clock_ns // 10_000_000 + 1) * M)
            super().advance(seconds)

    k = Kernel(64 * M, wired_bytes=M)
    vmo = k.vmo_create(8 * M, "grow", owner=None)
    code, out, _ = run_kstats(capsys, "-m", "-n", "3", "-d", "0.01", source=Committing(k))
    assert code == 0
    assert [line.split()[2] for line in out.splitlines()[1::2]] == ["0M", "1M", "2M"]


# --------------------------------------------------------------------------- -c


class Driven(SimSource):
    """A sim source whose kernel runs ``ops`` when time passes (before the interval's
    scheduling): the kernel operations of a test happen between two samples."""

    def __init__(self, kernel: Kernel, ops: list[object]) -> None:
        super().__init__(kernel)
        self.ops = ops

    def advance(self, seconds: float) -> None:
        for op in self.ops:
            assert callable(op)
            op()
        self.ops = []
        super().advance(seconds)


def test_cpu_deltas_of_known_operations(capsys: pytest.CaptureFixture[str]) -> None:
    k = Kernel(64 * M, wired_bytes=M, cpus=4)  # op 0: the root job
    p = k.process_create(k.root_job, "app", koid=2000)  # op 1 (its root VMAR is 2001)
    t = k.thread_create(p, "worker", koid=2002)  # op 2; thread 2002 lives on CPU 2
    k.process_start(p, t)  # op 3
    buf = k.vmo_create(8 * PAGE_SIZE, "buf", owner=p)  # op 4
    assert p.aspace is not None and p.aspace.root is not None
    root = p.aspace.root
    mapping = k.vmar_map(root, buf)  # op 5
    assert isinstance(mapping, SimMapping)
    ops: list[object] = [
        # op 6, CPU 2: one system call and five page faults.
        lambda: k.vmo_write(buf, 0, 5 * PAGE_SIZE),
        # op 7, CPU 3: the worker stops running: a context switch on its CPU 2, which
        # CPU 3 tells by a reschedule IPI.
        lambda: k.thread_set_state(t, ThreadState.BLOCKED),
        # op 8, CPU 0: an unmap shoots down the TLBs of CPUs 1, 2 and 3.
        lambda: k.vmar_unmap(root, mapping.base, mapping.size),
    ]
    # Then 10 ms pass with nothing running and one blocked thread: 10 timer ticks per
    # CPU, no load, and no wakeup (1 thread x 2/s x 0.01 s x at most 1.5 < 1).
    code, out, err = run_kstats(capsys, "-c", "-n", "1", "-d", "0.01", source=Driven(k, ops))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        CPU_HEADER,
        # cpu   load      cs ylds pmpts irq_pmpts excep pagef  sysc   hw  tmr tmr_cb  rs  gen
        "  0   0.00%         0    0     0         0"
        "      0     0     1        0   10      0        0    0",
        "  1   0.00%         0    0     0         0"
        "      0     0     0        0   10      0        0    1",
        "  2   0.00%         1    0     0         0"
        "      0     5     1        0   10      0        1    1",
        "  3   0.00%         0    0     0         0"
        "      0     0     1        0   10      0        0    1",
    ]


def test_cpu_exception_and_wakeup_on_the_current_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    k = Kernel(64 * M, wired_bytes=M, cpus=2)  # op 0
    p = k.process_create(k.root_job, "app", koid=3000)  # op 1
    t = k.thread_create(p, "t", koid=3002)  # op 2; thread 3002 lives on CPU 0
    k.process_start(p)  # op 3
    ops: list[object] = [
        # op 4, CPU 0: the thread starts on its own CPU: a switch, no IPI.
        lambda: k.thread_start(t),
        # op 5, CPU 1: it takes an exception: off the CPU (a switch and an IPI from 1).
        lambda: k.thread_set_state(t, ThreadState.EXCEPTION),
    ]
    code, out, _ = run_kstats(capsys, "-c", "-n", "1", "-d", "0.01", source=Driven(k, ops))
    assert code == 0
    assert out.splitlines()[1:] == [
        "  0   0.00%         2    0     0         0"
        "      1     0     1        0   10      0        1    0",
        "  1   0.00%         0    0     0         0"
        "      0     0     1        0   10      0        0    0",
    ]


def test_cpu_contended_scheduling(capsys: pytest.CaptureFixture[str]) -> None:
    """3 running threads on 2 CPUs, 10 ms at a time: both CPUs busy (100.00%), 10 ticks
    each, one CPU's worth of contention (10 preemptions spread 5 + 5), 2000 system calls
    per busy second (20), a time-slice callback per busy tick (10)."""
    k = Kernel(64 * M, wired_bytes=M, cpus=2)
    p = k.process_create(k.root_job, "busy")
    threads = [k.thread_create(p, f"t{i}") for i in range(3)]
    k.process_start(p)
    for t in threads:
        k.thread_start(t)
    code, out, _ = run_kstats(capsys, "-c", "-n", "2", "-d", "0.01", source=SimSource(k))
    assert code == 0
    row = (
        "100.00%         5    0     5         0"  # load, cs ylds pmpts irq_pmpts
        "      0     0    20        0   10     10        0    0"
    )
    assert out.splitlines() == [CPU_HEADER, f"  0 {row}", f"  1 {row}"] * 2


def test_scheduler_rates_over_a_second() -> None:
    """The same world for 1 s: per CPU 2000 system calls, 10 yields (each a switch, as
    the CPUs are contended), 20 page faults, 2 TLB shootdowns (so 2 generic IPIs from the
    other CPU), 1000 ticks and 500 preemptions."""
    k = Kernel(64 * M, wired_bytes=M, cpus=2)
    p = k.process_create(k.root_job, "busy")
    threads = [k.thread_create(p, f"t{i}") for i in range(3)]
    k.process_start(p)
    for t in threads:
        k.thread_start(t)
    before = SimSource(k).snapshot(Level.KMEM)
    k.run(1.0)
    after = SimSource(k).snapshot(Level.KMEM)
    assert after.timestamp - before.timestamp == timedelta(seconds=1)
    rows = cpu_rows(before.cpus, after.cpus)
    names = [name for name, _ in CPU_COUNTERS]
    expected = dict.fromkeys(names, 0) | {
        "context_switches": 510,
        "yields": 10,
        "preempts": 500,
        "page_faults": 20,
        "syscalls": 2000,
        "timer_interrupts": 1000,
        "timer_callbacks": 1000,
        "generic_ipis": 2,
    }
    for row in rows:
        assert row.load_hundredths == 10000
        assert dict(zip(names, row.counts, strict=True)) == expected


def test_wakeups_of_blocked_threads() -> None:
    """Blocked threads wake about twice a second each (x0.5..1.5): 10 threads over 10 s
    wake 100..299 times; each wakeup is two context switches and a system call, and comes
    by timer, device interrupt or IPI in turn. The same history gives the same counts."""

    def history() -> Kernel:
        k = Kernel(64 * M, wired_bytes=M, cpus=4)
        p = k.process_create(k.root_job, "waiters")
        for i in range(10):
            t = k.thread_create(p, f"w{i}")
            k.thread_start(t)
            k.thread_set_state(t, ThreadState.BLOCKED)
        k.process_start(p)
        return k

    k = history()
    before = k.sched.stats()
    for _ in range(10):
        k.run(1.0)
    rows = cpu_rows(before, k.sched.stats())
    names = [name for name, _ in CPU_COUNTERS]
    totals = {name: sum(row.counts[i] for row in rows) for i, name in enumerate(names)}
    wakeups = totals["context_switches"] // 2
    assert 100 <= wakeups < 300
    assert totals["context_switches"] == 2 * wakeups
    assert totals["syscalls"] == wakeups
    by_kind = (totals["timer_callbacks"], totals["interrupts"], totals["reschedule_ipis"])
    assert sum(by_kind) == wakeups
    assert max(by_kind) - min(by_kind) <= 1  # the kinds take turns
    # Nothing runs, so only wakeups make a CPU busy: 20 us each.
    for row in rows:
        cs = row.counts[names.index("context_switches")]
        assert row.load_hundredths == (cs // 2) * 20_000 * 10000 // 10**10
    again = history()
    for _ in range(10):
        again.run(1.0)
    assert again.sched.stats() == k.sched.stats()


def test_snapshots_do_not_count() -> None:
    k = Kernel(64 * M, wired_bytes=M)
    source = SimSource(k)
    first = source.snapshot(Level.FULL)
    assert source.snapshot(Level.KMEM).cpus == first.cpus
    assert sum(c.syscalls for c in first.cpus) == 1  # the root job, at boot
    assert first.timestamp == datetime(2017, 6, 7, 5, 51, 8, 21000, tzinfo=UTC)


def test_run_rejects_bad_intervals() -> None:
    k = Kernel(64 * M, wired_bytes=M)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(KernelError, match="ERR_INVALID_ARGS"):
            k.run(bad)
    assert k.clock_ns == 0


# --------------------------------------------------------------------------- rendering


def test_cpu_values_end_under_their_header_words() -> None:
    words = [
        m for m in re.finditer(r"[a-z_]+", CPU_HEADER) if m.group() not in ("sched", "ints", "ipi")
    ]
    assert [w.group() for w in words][:2] == ["cpu", "load"]
    big = CpuRow(999, 10000, tuple(10 ** (width - 1) for _, width in CPU_COUNTERS))
    out = io.StringIO()
    write_cpu([big], out)
    row = out.getvalue().splitlines()[1]
    ends = [m.end() for m in re.finditer(r"[0-9.%]+", row)]
    # cpu, "100.00%" and each counter end where their header word ends.
    assert ends == [w.end() for w in words]
    assert len(row) == len(CPU_HEADER) - 1  # all but the closing parenthesis


def test_cpu_rows_load_and_odd_counters() -> None:
    before = [CpuStats(cpu_number=0, busy_ns=100, idle_ns=0, syscalls=50)]
    after = [
        CpuStats(cpu_number=0, busy_ns=100 + 1, idle_ns=2, syscalls=40),
        CpuStats(cpu_number=1, busy_ns=0, idle_ns=0, yields=7),
    ]
    rows = cpu_rows(before, after)
    # 1 ns busy in 3: 33.33% (truncated); a counter that went back shows 0; CPU 1 is new
    # (counted from boot) and has had no time at all: load 0.
    assert rows == [CpuRow(0, 3333, (0,) * 12), CpuRow(1, 0, (0, 7) + (0,) * 10)]
    out = io.StringIO()
    write_cpu(rows, out)
    assert out.getvalue().splitlines()[1:] == [
        "  0  33.33%         0    0     0         0"
        "      0     0     0        0    0      0        0    0",
        "  1   0.00%         0    7     0         0"
        "      0     0     0        0    0      0        0    0",
    ]


def test_timestamp_line_is_utc_with_milliseconds() -> None:
    east = timezone(timedelta(hours=8))
    when = datetime(2017, 6, 7, 13, 51, 8, 21999, tzinfo=east)
    assert timestamp_line(when) == "\n--- 2017-06-07T05:51:08.021Z ---\n"


# --------------------------------------------------------------------------- the loop


def test_n_counts_reports_and_t_advances_by_the_delay(capsys: pytest.CaptureFixture[str]) -> None:
    # Through the command line's own (lazily opened) source: the doc world.
    code = main(["--sim", "kstats", "-mt", "-n3", "-d0.01"])
    out = capsys.readouterr().out
    assert code == 0
    assert re.findall(r"--- (.*) ---", out) == [
        "2017-06-07T05:51:08.021Z",
        "2017-06-07T05:51:08.031Z",
        "2017-06-07T05:51:08.041Z",
    ]
    assert out.count(KMEM_HEADER) == 3
    assert len(out.splitlines()) == 3 * 4


def test_cpu_reports_come_after_their_interval(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--sim", "kstats", "-c", "-m", "-t", "-n", "2", "-d", "0.25"])
    out = capsys.readouterr().out
    assert code == 0
    assert re.findall(r"--- (.*) ---", out) == [
        "2017-06-07T05:51:08.271Z",
        "2017-06-07T05:51:08.521Z",
    ]
    # Each report: timestamp (2 lines), the CPU table (4 CPUs), then -m's two lines.
    lines = out.splitlines()
    assert len(lines) == 2 * (2 + 5 + 2)
    assert lines[2] == CPU_HEADER and lines[7] == KMEM_HEADER
    # The doc world has one running thread for 4 CPUs: 25% each, and 250 ticks.
    for row in lines[3:7]:
        assert row[4:11] >= " 25.00%" and row.split()[10] == "250"


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert HELP.startswith(
        "Usage: kstats [options]\n"
        "Options:\n"
        " -c              Print system CPU stats\n"
        " -m              Print system memory stats\n"
        " -d <delay>      Delay in seconds (default 1 second)\n"
        " -n <times>      Run this many times and then exit\n"
        " -t              Print timestamp for each report\n"
        "\n"
    )
    for word in (
        "cpu:",
        "load:",
        "cs:",
        "ylds:",
        "pmpts:",
        "irq_pmpts:",
        "excep:",
        "pagef:",
        "sysc:",
        "hw:",
        "tmr:",
        "tmr_cb:",
        "rs:",
        "gen:",
    ):
        assert f" {word} " in HELP
    for args in (["-h"], ["--help"], ["-m", "-h"], ["-ch"]):
        assert run_kstats(capsys, *args) == (0, HELP, "")


def test_nothing_selected(capsys: pytest.CaptureFixture[str]) -> None:
    for args in ([], ["-t"], ["-d", "2", "-n", "1"]):
        assert run_kstats(capsys, *args) == (2, "", f"No statistics selected\n{HELP}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "x"], "kstats: -d must be seconds, more than 0 and at most 86400, not 'x'\n"),
        (["-d", "0"], "kstats: -d must be seconds, more than 0 and at most 86400, not '0'\n"),
        (["-d", "-1"], "kstats: -d must be seconds, more than 0 and at most 86400, not '-1'\n"),
        (
            ["-d", "nan"],
            "kstats: -d must be seconds, more than 0 and at most 86400, not 'nan'\n",
        ),
        (["-d1e3"], "kstats: -d must be seconds, more than 0 and at most 86400, not '1e3'\n"),
        (
            ["-d", "86401"],
            "kstats: -d must be seconds, more than 0 and at most 86400, not '86401'\n",
        ),
        (["-n", "0"], "kstats: -n must be a whole number >= 1, not '0'\n"),
        (["-n", "2.5"], "kstats: -n must be a whole number >= 1, not '2.5'\n"),
        (["-n", "\x1b[2J"], "kstats: -n must be a whole number >= 1, not '\\x1b[2J'\n"),
    ],
)
def test_bad_values(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert run_kstats(capsys, "-m", *args) == (2, "", message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-x"], "kstats: invalid option -- 'x'\n"),
        (["-d"], "kstats: option requires an argument -- 'd'\n"),
        (["--json"], "kstats: unrecognized option '--json'\n"),
        (["extra"], "kstats: unexpected argument 'extra'\n"),
    ],
)
def test_usage_errors(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert run_kstats(capsys, "-m", *args) == (2, "", message + HELP)


def test_source_without_cpu_counters(capsys: pytest.CaptureFixture[str]) -> None:
    class NoCpus(SimSource):
        def snapshot(
            self, level: Level = Level.FULL, processes: Collection[int] | None = None
        ) -> Snapshot:
            return dataclasses.replace(super().snapshot(level, processes), cpus=())

    code, out, err = run_kstats(
        capsys, "-c", "-n", "1", source=NoCpus(Kernel(64 * M, wired_bytes=M), "flat")
    )
    assert (code, out, err) == (1, "", "kstats: flat has no per-CPU counters\n")


def test_ctrl_c_ends_kstats_cleanly(mxmem: Mxmem) -> None:
    # mxmem.start gives the child SIGINT's default action even when the suite runs from a
    # background shell that ignores it (tests/support/runner.py).
    with mxmem.start("--sim", "kstats", "-m", "-d", "0.2") as proc:
        assert proc.readline() == KMEM_HEADER + "\n"
        assert proc.readline().startswith("   2046.9M")
        proc.send_signal(signal.SIGINT)
        code, rest, err = proc.finish(timeout=30)
    assert code == 0
    assert "Traceback" not in err
    assert err == ""
    # Whatever came before the interrupt is whole reports.
    assert len(rest.splitlines()) % 2 == 0


# --------------------------------------------------------------------------- one moment


@pytest.fixture
def doc_capture(tmp_path: Path) -> Path:
    path = tmp_path / "doc.json"
    assert main(["--sim", "capture", "-o", str(path)]) == 0
    return path


def _kstats_process(*args: str) -> subprocess.CompletedProcess[str]:
    # A child with a timeout: on main a capture printed reports forever.
    return subprocess.run(
        [sys.executable, "-m", "mxmem", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(SRC)),
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("extra", [[], ["-t"], ["-n", "5", "-d", "0.1"]])
def test_a_capture_gives_one_memory_report(doc_capture: Path, extra: list[str]) -> None:
    proc = _kstats_process(f"--capture={doc_capture}", "kstats", "-m", *extra)
    assert (proc.returncode, proc.stderr) == (0, "")
    live = _kstats_process("--sim", "kstats", "-m", "-n", "1", *(["-t"] if "-t" in extra else []))
    assert proc.stdout == live.stdout  # the captured moment, once
    assert proc.stdout.count(KMEM_HEADER) == 1


@pytest.mark.parametrize("args", [["-c"], ["-c", "-m"], ["-cm", "-n", "3"]])
def test_a_capture_cannot_show_cpu_deltas(doc_capture: Path, args: list[str]) -> None:
    # On main: a table of zeros every second, forever.
    proc = _kstats_process(f"--capture={doc_capture}", "kstats", *args)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"kstats: -c needs two samples to show what changed, and"
        f" capture:{doc_capture} holds one moment; -m shows its memory\n"
    )


# --------------------------------------------------------------------------- Linux -m

LINUX_HEADER = (
    "    total      free      VMOs     kheap     kfree     wired       mmu     other available"
)


def test_linux_memory_has_other_and_available() -> None:
    kmem = KernelMemory(
        total_bytes=1000 * M,
        free_bytes=300 * M,
        wired_bytes=20 * M,
        heap_total_bytes=50 * M,
        heap_free_bytes=10 * M,
        vmo_bytes=400 * M,
        mmu_bytes=10 * M,
        other_bytes=220 * M + 512 * K,
        available_bytes=650 * M,
    )
    out = io.StringIO()
    write_kmem(kmem, out, Platform.LINUX)
    assert out.getvalue() == (
        f"{LINUX_HEADER}\n    1000M      300M      400M       40M       10M       20M       10M"
        "    220.5M      650M\n"
    )
    out = io.StringIO()
    write_kmem(dataclasses.replace(kmem, available_bytes=None), out, Platform.LINUX)
    assert out.getvalue().splitlines()[1].endswith("    220.5M         -")
    out = io.StringIO()
    write_kmem(kmem, out, Platform.MAGENTA)  # the seed's seven columns
    assert out.getvalue().splitlines()[0] == KMEM_HEADER


def _mib(cell: str) -> float:
    assert cell.endswith("M"), cell
    return float(cell[:-1])


@pytest.mark.skipif(
    not os.path.exists("/proc/meminfo") or not sys.platform.startswith("linux"),
    reason="needs Linux /proc/meminfo",
)
def test_kstats_memory_on_the_host_adds_up(capsys: pytest.CaptureFixture[str]) -> None:
    # On main the seven columns missed `other`: 132-193 MiB short of total.
    assert main(["--host", "kstats", "-m", "-n", "1"]) == 0
    header, values = capsys.readouterr().out.splitlines()
    assert header == LINUX_HEADER
    cells = dict(zip(header.split(), values.split(), strict=True))
    total = _mib(cells["total"])
    parts = ["free", "VMOs", "kheap", "kfree", "wired", "mmu", "other"]
    # Each printed figure is within 0.08 MiB of its bytes (one decimal, with Magenta's
    # rounding of the remainder as thousandths): so the parts, whatever this machine's
    # memory, add up to the total within that much per column.
    assert abs(sum(_mib(cells[p]) for p in parts) - total) <= 0.08 * (len(parts) + 1)
    assert 0 < _mib(cells["available"]) <= total
