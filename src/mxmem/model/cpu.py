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
    """

    cpu_number: int
    busy_ns: int
    idle_ns: int
    context_switches: int = 0
    yields: int = 0  # explicit yields by a running thread
    preempts: int = 0  # a thread's time slice ran out with another thread waiting
    irq_preempts: int = 0  # a thread was preempted on the way out of an interrupt
    exceptions: int = 0  # CPU exceptions other than page faults (bad access, undefined op)
    page_faults: int = 0
    syscalls: int = 0
    interrupts: int = 0  # device (hardware) interrupts; timer interrupts are separate
    timer_interrupts: int = 0
    timer_callbacks: int = 0  # kernel timers that fired
    reschedule_ipis: int = 0  # received from another CPU to make this one reschedule
    generic_ipis: int = 0  # other inter-processor interrupts received (TLB shootdowns...)
