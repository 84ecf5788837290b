"""The simulated kernel's CPUs: per-CPU counters, the clock, and a scheduler model.

Two things move the counters.

Kernel operations, as they happen (the hooks in ``kernel.py``):

* every operation a world or a test calls is one system call, run on the *current CPU*.
  The current CPU is chosen round-robin, one CPU per outermost operation, so the k-th
  operation since boot runs on CPU ``k % cpus``; an operation that calls another (a
  channel creates two endpoints, killing a process closes its handles) is still one
  system call. Reading the kernel (snapshots, ``kmem``) is not an operation: looking
  must not change what is seen.
* ``vmo_write`` counts one page fault per page it commits (it stands for a thread
  touching memory as much as for the ``mx_vmo_write`` call itself);
* a thread that starts or stops running (start, block, suspend, exception, death) is a
  context switch on its own CPU (``koid % cpus``); when that is not the current CPU, the
  current one sends it a reschedule IPI. A thread entering an exception counts an
  exception there too;
* removing or re-protecting mappings (unmap, protect, destroying a VMAR, killing a
  process) shoots the TLBs down: one generic IPI to every other CPU.

Time, when :meth:`Scheduler.run` advances the clock by an interval. Per interval, with
``R`` running threads, ``B`` blocked threads and ``n`` CPUs:

* every CPU takes a timer interrupt per tick (1000 Hz; ticks are counted on the
  absolute clock, so intervals add up exactly);
* the running threads keep ``min(R, n)`` CPUs busy, spread evenly over all CPUs (a
  scheduler migrates them), so each CPU's load is ``min(1, R/n)``. While a CPU runs
  user threads they make system calls, page faults, explicit yields and TLB shootdowns
  at fixed rates per busy second, and the time-slice timer fires on every busy tick;
* with more running threads than CPUs, ``min(R - n, n)`` CPUs are contended on each
  tick: each contended tick is a preemption and a context switch, and yields switch too;
* blocked threads wake now and then (on average ``WAKEUPS_PER_SECOND`` each, times a
  seeded random factor), run for ``WAKEUP_RUN_NS`` and block again: two context
  switches and a system call each. The wakeups are, in turn, by a kernel timer, by a
  device interrupt (which preempts the running thread if the CPU is busy) and by
  another CPU (a reschedule IPI, on a machine with more than one CPU). They do not
  change any thread's state: a snapshot still sees the thread blocked.

Counts derived from busy time are differences of ``floor(cumulative busy * rate)``, so
short intervals lose nothing. ``run`` costs O(cpus + threads) whatever the interval, and
a kernel driven by the same operations and intervals always has the same counters.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Iterable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from mxmem.errors import KernelError
from mxmem.model import CpuStats, ThreadState

__all__ = [
    "MAX_CPUS",
    "TICK_NS",
    "Scheduler",
    "SimCpu",
    "shootdown_syscall",
    "syscall",
]

NS_PER_SECOND = 1_000_000_000
TICK_HZ = 1000
TICK_NS = NS_PER_SECOND // TICK_HZ
# Magenta's kstats kept room for 1024 CPUs; a world file asking for more is a typo.
MAX_CPUS = 1024

# What one CPU does per second it spends running user threads. Invented but plausible
# for the 2017 system (a microkernel makes many small system calls).
SYSCALLS_PER_SECOND = 2000
PAGE_FAULTS_PER_SECOND = 20
YIELDS_PER_SECOND = 10
SHOOTDOWNS_PER_SECOND = 2
# How often a blocked thread wakes, on average, and how long it then runs.
WAKEUPS_PER_SECOND = 2
WAKEUP_RUN_NS = 20_000
SEED = 2017


class SimCpu:
    """One CPU's live counters (see :class:`~mxmem.model.CpuStats` for their meaning)."""

    __slots__ = (
        "busy_ns",
        "context_switches",
        "exceptions",
        "generic_ipis",
        "idle_ns",
        "interrupts",
        "irq_preempts",
        "number",
        "page_faults",
        "preempts",
        "reschedule_ipis",
        "run_ns",
        "syscalls",
        "timer_callbacks",
        "timer_interrupts",
        "yields",
    )

    def __init__(self, number: int) -> None:
        self.number = number
        self.busy_ns = 0
        self.idle_ns = 0
        # The part of busy_ns spent running the running threads: the rates apply to it.
        self.run_ns = 0
        self.context_switches = 0
        self.yields = 0
        self.preempts = 0
        self.irq_preempts = 0
        self.exceptions = 0
        self.page_faults = 0
        self.syscalls = 0  # those of the scheduler model; operations are counted apart
        self.interrupts = 0
        self.timer_interrupts = 0
        self.timer_callbacks = 0
        self.reschedule_ipis = 0
        self.generic_ipis = 0

    def stats(self, operations: int) -> CpuStats:
        """The counters, with ``operations`` system calls made by kernel operations."""
        return CpuStats(
            cpu_number=self.number,
            busy_ns=self.busy_ns,
            idle_ns=self.idle_ns,
            context_switches=self.context_switches,
            yields=self.yields,
            preempts=self.preempts,
            irq_preempts=self.irq_preempts,
            exceptions=self.exceptions,
            page_faults=self.page_faults,
            syscalls=self.syscalls + operations,
            interrupts=self.interrupts,
            timer_interrupts=self.timer_interrupts,
            timer_callbacks=self.timer_callbacks,
            reschedule_ipis=self.reschedule_ipis,
            generic_ipis=self.generic_ipis,
        )


def spread(total: int, n: int, start: int = 0) -> list[int]:
    """``total`` split over ``n`` CPUs as evenly as integers allow; the ``total % n``
    CPUs from ``start`` on (wrapping) get one more."""
    share, extra = divmod(total, n)
    out = [share] * n
    for i in range(extra):
        out[(start + i) % n] += 1
    return out


def _rate_delta(before_ns: int, after_ns: int, per_second: int) -> int:
    """Events at ``per_second`` between two cumulative times: floor differences, so the
    counts of consecutive intervals add up to the count of their union."""
    return after_ns * per_second // NS_PER_SECOND - before_ns * per_second // NS_PER_SECOND


class Scheduler:
    """The CPUs of a simulated kernel, its clock (ns since boot) and the current CPU."""

    def __init__(self, cpus: int) -> None:
        if not 1 <= cpus <= MAX_CPUS:
            raise KernelError("ERR_INVALID_ARGS", f"cpus must be 1..{MAX_CPUS}, not {cpus}")
        self.cpus = [SimCpu(i) for i in range(cpus)]
        self.clock_ns = 0
        # Operations since boot. The k-th (from 0) runs on CPU k % cpus, so the per-CPU
        # system call counts follow from this one number: the decorators, which run for
        # every operation, only add 1 here.
        self.operations = 0
        self.depth = 0  # > 0 while an operation runs: the calls it makes are not counted
        self._rng = random.Random(SEED)
        self._wake_carry = 0  # wakeups owed, times the rate's denominator
        self._wake_serial = 0  # wakeups so far: the next one's kind and CPU

    # ----------------------------------------------------------------- operation hooks

    @property
    def current(self) -> int:
        """The CPU running the current (or the last) operation; 0 before the first."""
        return (self.operations - 1) % len(self.cpus) if self.operations else 0

    def page_faults(self, count: int) -> None:
        self.cpus[self.current].page_faults += count

    def thread_state(self, koid: int, old: ThreadState, new: ThreadState) -> None:
        """A thread moves from ``old`` to ``new`` (hooked before the change)."""
        if old is new:
            return
        cpu = self.cpus[koid % len(self.cpus)]
        if (old is ThreadState.RUNNING) != (new is ThreadState.RUNNING):
            cpu.context_switches += 1
            if cpu.number != self.current:
                cpu.reschedule_ipis += 1
        if new is ThreadState.EXCEPTION:
            cpu.exceptions += 1

    def shootdown(self) -> None:
        """A TLB shootdown from the current CPU: a generic IPI to each of the others."""
        current = self.current
        for cpu in self.cpus:
            if cpu.number != current:
                cpu.generic_ipis += 1

    # ----------------------------------------------------------------- time

    def run(self, seconds: float, thread_states: Iterable[ThreadState]) -> None:
        """Advance the clock by ``seconds`` with the given threads (the kernel's live
        threads) running or blocked, and count what the CPUs did meanwhile."""
        if not (seconds >= 0 and math.isfinite(seconds)):  # NaN fails the comparison
            raise KernelError("ERR_INVALID_ARGS", f"cannot run for {seconds} seconds")
        interval = round(seconds * NS_PER_SECOND)
        running = blocked = 0
        for state in thread_states:
            if state is ThreadState.RUNNING:
                running += 1
            elif state is ThreadState.BLOCKED:
                blocked += 1
        n = len(self.cpus)
        start = self.clock_ns
        self.clock_ns += interval
        ticks = self.clock_ns // TICK_NS - start // TICK_NS
        run_shares = spread(min(running, n) * interval, n)
        contended = spread(min(max(running - n, 0), n) * ticks, n)
        kinds = self._wakeups(blocked, interval, n)
        shootdowns = [0] * n

        for cpu, run_ns, preempts in zip(self.cpus, run_shares, contended, strict=True):
            before = cpu.run_ns
            cpu.run_ns += run_ns
            after = cpu.run_ns
            syscalls = _rate_delta(before, after, SYSCALLS_PER_SECOND)
            yields = _rate_delta(before, after, YIELDS_PER_SECOND)
            busy_ticks = after // TICK_NS - before // TICK_NS
            by_timer, by_irq, by_ipi = (k[cpu.number] for k in kinds)
            wakeups = by_timer + by_irq + by_ipi

            busy = min(run_ns + wakeups * WAKEUP_RUN_NS, interval)
            cpu.busy_ns += busy
            cpu.idle_ns += interval - busy
            cpu.timer_interrupts += ticks
            cpu.timer_callbacks += busy_ticks + by_timer
            cpu.interrupts += by_irq
            cpu.irq_preempts += by_irq if run_ns else 0
            cpu.reschedule_ipis += by_ipi if n > 1 else 0
            cpu.preempts += preempts
            cpu.yields += yields
            cpu.context_switches += preempts + (yields if running > n else 0) + 2 * wakeups
            cpu.syscalls += syscalls + wakeups
            cpu.page_faults += _rate_delta(before, after, PAGE_FAULTS_PER_SECOND)
            shootdowns[cpu.number] = _rate_delta(before, after, SHOOTDOWNS_PER_SECOND)

        total = sum(shootdowns)
        for cpu, own in zip(self.cpus, shootdowns, strict=True):
            cpu.generic_ipis += total - own

    def _wakeups(self, blocked: int, interval: int, n: int) -> list[list[int]]:
        """Per-CPU wakeups in this interval by kind: [by timer, by interrupt, by IPI]."""
        denominator = 1000 * NS_PER_SECOND
        # The seeded factor is drawn on every call, so the draws do not depend on whether
        # threads happened to be blocked.
        factor = self._rng.randrange(500, 1500)  # per mille
        owed = self._wake_carry + blocked * WAKEUPS_PER_SECOND * interval * factor
        count, self._wake_carry = divmod(owed, denominator)
        # Wakeup s (counting from boot) is of kind s % 3, on CPU (s // 3) % n.
        first = self._wake_serial
        self._wake_serial += count
        kinds = [[0] * n for _ in range(3)]
        for kind in range(3):
            # The serials of this kind, s = first_k + 3j for j < m, take CPUs c0 + j.
            first_k = first + (kind - first) % 3
            m = len(range(first_k, first + count, 3))
            kinds[kind] = spread(m, n, (first_k // 3) % n)
        return kinds

    def stats(self) -> tuple[CpuStats, ...]:
        n = len(self.cpus)
        # CPU i ran operations i, i + n, i + 2n...: ceil((operations - i) / n) of them.
        return tuple(cpu.stats((self.operations - cpu.number + n - 1) // n) for cpu in self.cpus)


# --------------------------------------------------------------------------- decorators


class HasScheduler(Protocol):
    sched: Scheduler


K = TypeVar("K", bound=HasScheduler)
P = ParamSpec("P")
R = TypeVar("R")


def syscall(op: Callable[Concatenate[K, P], R]) -> Callable[Concatenate[K, P], R]:
    """Mark a kernel method as an operation: an outermost call is one system call on
    the next CPU; the operations it calls in turn are part of it."""

    # Kept lean: it runs for every operation a world makes (millions for scale worlds).
    @functools.wraps(op)
    def counted(kernel: K, /, *args: P.args, **kwargs: P.kwargs) -> R:
        sched = kernel.sched
        if sched.depth:
            return op(kernel, *args, **kwargs)
        sched.operations += 1
        sched.depth = 1
        try:
            return op(kernel, *args, **kwargs)
        finally:
            sched.depth = 0

    return counted


def shootdown_syscall(op: Callable[Concatenate[K, P], R]) -> Callable[Concatenate[K, P], R]:
    """An operation that removes or re-protects mappings, and so shoots TLBs down: once
    per outermost call that succeeds (a failed operation changed nothing)."""

    @functools.wraps(op)
    def counted(kernel: K, /, *args: P.args, **kwargs: P.kwargs) -> R:
        sched = kernel.sched
        if sched.depth:
            return op(kernel, *args, **kwargs)
        sched.operations += 1
        sched.depth = 1
        try:
            result = op(kernel, *args, **kwargs)
        finally:
            sched.depth = 0
        sched.shootdown()
        return result

    return counted
