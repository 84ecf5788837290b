"""Per-CPU activity counters (Magenta's ``mx_info_cpu_stats_t``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class CpuStats:
    """One CPU's counters, cumulative since boot; tools print differences of two samples.

    ``busy_ns + idle_ns`` is the time the CPU has been up, so a load figure needs no
    clock of its own: load = busy delta / (busy delta + idle delta). Magenta reported
    only ``idle_time`` and kstats took the interval from its own sleep; keeping both
    times lets a source whose snapshots are not exactly ``delay`` apart still be right.

    A counter is ``None`` when the source has no such counter for this CPU (Linux counts
    no system calls at all, and page faults only system-wide); tools print ``-``, never
    a made-up 0.
    """

    cpu_number: int
    busy_ns: int
    idle_ns: int
    context_switches: int | None = 0
    yields: int | None = 0  # explicit yields by a running thread
    preempts: int | None = 0  # a thread's time slice ran out with another thread waiting
    irq_preempts: int | None = 0  # a thread was preempted on the way out of an interrupt
    exceptions: int | None = 0  # CPU exceptions other than page faults (bad access, undefined op)
    page_faults: int | None = 0
    syscalls: int | None = 0
    interrupts: int | None = 0  # device (hardware) interrupts; timer interrupts are separate
    timer_interrupts: int | None = 0
    timer_callbacks: int | None = 0  # kernel timers that fired
    reschedule_ipis: int | None = 0  # received from another CPU to make this one reschedule
    generic_ipis: int | None = 0  # other inter-processor interrupts received (TLB shootdowns...)
