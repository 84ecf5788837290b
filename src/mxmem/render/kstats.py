"""``kstats``: kernel memory figures (``-m``) and per-CPU activity (``-c``), spec §8.

``-m`` follows the layout of the seed document's sample rather than the code of the time
(§8 records the discrepancy): seven columns, each right-aligned in 10 characters and
separated by one space (``%10s %10s ...``: the sample's columns end at 10, 21, 32...),
sizes in fixed M units. The sample left out the code's ``other`` column, harmless on
Magenta but not on Linux, where the kernel's uncounted allocations are 100-200 MiB: a
Linux snapshot prints the code's eight columns (``%9s``, ``other`` included, so the parts
add up to ``total``) and ``available`` (MemAvailable, not a part: free plus what could be
reclaimed; ``-`` when the snapshot lacks it). ``-c`` prints Magenta's header and, per CPU, the
changes of its counters between two samples; a counter the source does not keep prints
``-``, and a source that keeps some counters only system-wide (Linux) adds an ``all`` row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple, TextIO

from mxmem.model import CpuStats, KernelMemory, Platform
from mxmem.render.units import format_size

__all__ = [
    "CPU_COUNTERS",
    "CPU_HEADER",
    "KMEM_HEADER",
    "LINUX_KMEM_HEADER",
    "CpuRow",
    "cpu_row",
    "cpu_rows",
    "kmem_values",
    "timestamp_line",
    "write_cpu",
    "write_kmem",
]

KMEM_COLUMNS = ("total", "free", "VMOs", "kheap", "kfree", "wired", "mmu")
KMEM_WIDTH = 10
KMEM_HEADER = " ".join(f"{c:>{KMEM_WIDTH}}" for c in KMEM_COLUMNS)
# kstats.c's eight columns (80/8 - 1 wide), and Linux's MemAvailable.
LINUX_KMEM_COLUMNS = (*KMEM_COLUMNS, "other", "available")
LINUX_KMEM_WIDTH = 9
LINUX_KMEM_HEADER = " ".join(f"{c:>{LINUX_KMEM_WIDTH}}" for c in LINUX_KMEM_COLUMNS)

CPU_HEADER = (
    "cpu    load sched (cs ylds pmpts irq_pmpts) excep pagef  sysc"
    " ints (hw  tmr tmr_cb) ipi (rs  gen)"
)
# The counters after cpu and load, with the width of each value. A value is printed as
# " %*lu", which puts its last digit under the last letter of its word in CPU_HEADER
# (not under a closing parenthesis): the widths are the distances between those letters
# minus the separating space. This is Magenta's kstats.c row format except for excep,
# which it printed one column short of its header word.
CPU_COUNTERS: tuple[tuple[str, int], ...] = (
    ("context_switches", 9),  # cs
    ("yields", 4),  # ylds
    ("preempts", 5),  # pmpts
    ("irq_preempts", 9),  # irq_pmpts
    ("exceptions", 6),  # excep
    ("page_faults", 5),  # pagef
    ("syscalls", 5),  # sysc
    ("interrupts", 8),  # hw
    ("timer_interrupts", 4),  # tmr
    ("timer_callbacks", 6),  # tmr_cb
    ("reschedule_ipis", 8),  # rs
    ("generic_ipis", 4),  # gen
)


def kmem_values(kmem: KernelMemory) -> tuple[int, ...]:
    """The ``-m`` figures in column order, in bytes."""
    return (
        kmem.total_bytes,
        kmem.free_bytes,
        kmem.vmo_bytes,
        kmem.heap_allocated_bytes,  # kheap: heap marked allocated
        kmem.heap_free_bytes,  # kfree: heap marked free
        kmem.wired_bytes,
        kmem.mmu_bytes,
    )


def write_kmem(kmem: KernelMemory, out: TextIO, platform: Platform = Platform.MAGENTA) -> None:
    """The header and one line of figures, as every ``-m`` report has them: the seed's
    seven columns, or on Linux the code's eight and ``available``."""
    if platform is not Platform.LINUX:
        values = " ".join(f"{format_size(v, 'M'):>{KMEM_WIDTH}}" for v in kmem_values(kmem))
        out.write(f"{KMEM_HEADER}\n{values}\n")
        return
    available = kmem.available_bytes
    cells = [format_size(v, "M") for v in (*kmem_values(kmem), kmem.other_bytes)]
    cells.append("-" if available is None else format_size(available, "M"))
    values = " ".join(f"{c:>{LINUX_KMEM_WIDTH}}" for c in cells)
    out.write(f"{LINUX_KMEM_HEADER}\n{values}\n")


class CpuRow(NamedTuple):
    cpu_number: int  # -1 for the whole system's row
    load_hundredths: int  # busy share of the interval in 1/100 percent: 10000 is 100.00%
    # Counter changes, in CPU_COUNTERS order; None where the source has no such counter.
    counts: tuple[int | None, ...]


_ZERO_CPU = CpuStats(cpu_number=0, busy_ns=0, idle_ns=0)


def _change(cur: int | None, prev: int | None) -> int | None:
    if cur is None or prev is None:
        return None
    # A counter that went backwards (a CPU reset) shows 0, not C's wrapped 2**64 - n.
    return max(cur - prev, 0)


def cpu_row(prev: CpuStats, cur: CpuStats) -> CpuRow:
    """What one CPU (or the whole system) did between two samples."""
    busy = cur.busy_ns - prev.busy_ns
    interval = busy + cur.idle_ns - prev.idle_ns
    # Integer hundredths, truncated, as kstats.c computed busy * 10000 / delay.
    load = min(max(busy, 0) * 10000 // interval, 10000) if interval > 0 else 0
    counts = tuple(_change(getattr(cur, name), getattr(prev, name)) for name, _ in CPU_COUNTERS)
    return CpuRow(cur.cpu_number, load, counts)


def cpu_rows(before: Sequence[CpuStats], after: Sequence[CpuStats]) -> list[CpuRow]:
    """One row per CPU of ``after``: what it did since ``before``. A CPU missing from
    ``before`` (brought online since) counts from boot."""
    earlier = {c.cpu_number: c for c in before}
    return [cpu_row(earlier.get(cur.cpu_number, _ZERO_CPU), cur) for cur in after]


def write_cpu(rows: Sequence[CpuRow], out: TextIO) -> None:
    """The header and the rows: ``%3zu %3u.%02u%%`` for cpu and load, then the counts;
    ``-`` for a counter the source does not keep, ``all`` for the whole system's row."""
    lines = [CPU_HEADER]
    for row in rows:
        whole, hundredths = divmod(row.load_hundredths, 100)
        counts = "".join(
            f" {'-' if n is None else n:>{width}}"
            for n, (_, width) in zip(row.counts, CPU_COUNTERS, strict=True)
        )
        cpu = "all" if row.cpu_number < 0 else f"{row.cpu_number:3}"
        lines.append(f"{cpu} {whole:3}.{hundredths:02}%{counts}")
    out.write("\n".join(lines) + "\n")


def timestamp_line(when: datetime) -> str:
    """kstats -t's separator: a blank line, then ``--- 2017-06-07T05:51:08.021Z ---``
    (UTC, milliseconds truncated)."""
    utc = when.astimezone(UTC)
    return f"\n--- {utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03}Z ---\n"
