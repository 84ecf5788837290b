"""The Linux kernel's own figures, as Magenta's tools show a kernel: memory by use
(``kstats -m``, memgraph's ``kernel/*`` records) and per-CPU counters (``kstats -c``).
The kernel address space (``k mx asd kernel``) and kernel-only memory objects (koid 0
rows of ``k mx vmos hidden|all``) are :mod:`.kernelspace`'s.

Kernel memory
=============

:func:`kernel_memory` maps ``/proc/meminfo`` (and ``/proc/slabinfo``) onto
:class:`~mxmem.model.KernelMemory`. The parts are disjoint and ``other`` is what they
leave of the total, so they always sum to ``total`` (unless the kernel's counters
overlap more than documented below: then ``other`` is 0 and a note says by how much the
parts exceed the total).

==============  =======================================================================
field           Linux source (``/proc/meminfo`` unless said otherwise)
==============  =======================================================================
total           ``MemTotal``: the RAM the page allocator manages (firmware-reserved
                memory, the kernel image and ``struct page`` arrays are not in it).
free            ``MemFree``.
vmo             ``AnonPages + Cached + Buffers``: memory of user memory objects —
                anonymous pages mapped by processes, the page cache including
                shmem/tmpfs/memfd/SysV (``Cached`` includes ``Shmem`` and leaves
                ``SwapCached`` out) and block-device buffers. ``SwapCached`` is not
                added: its mapped pages are already in ``AnonPages``.
heap_total      ``Slab`` (= ``SReclaimable + SUnreclaim``, the kmalloc/kmem_cache heap)
                + vmalloc'd memory: ``VmallocUsed - KernelStack`` when
                ``VmallocUsed >= KernelStack`` (CONFIG_VMAP_STACK, the x86-64/arm64
                default, allocates kernel stacks with vmalloc and ``KernelStack``
                counts them too), else ``VmallocUsed``.
heap_free       ``/proc/slabinfo`` (root only): Σ (num_objs - active_objs) * objsize,
                the free objects inside allocated slabs, capped at ``Slab``; 0 with a
                note when slabinfo cannot be read. vmalloc has no free part.
wired           ``KernelStack + Percpu + Hugetlb``: kernel stacks, per-CPU areas and the
                hugetlb pool (reserved whether used or not; not in ``Cached``).
mmu             ``PageTables + SecPageTables`` (secondary: KVM/IOMMU page tables).
ipc             0: socket buffers come from slab and page fragments counted elsewhere,
                and Linux has no separate counter for them.
other           ``total`` minus all of the above: pages drivers allocate without a
                counter, unmapped swap-cache pages, balloon pages (when counted in
                ``MemTotal``), pages in flight. Never negative.
==============  =======================================================================

CPU counters
============

:func:`cpu_stats`: per CPU, ``busy`` = user + nice + system + irq + softirq + steal and
``idle`` = idle + iowait from the ``cpuN`` lines of ``/proc/stat``; from
``/proc/interrupts``: ``interrupts`` = the numbered (device) IRQ lines except timers,
``timer_interrupts`` = the local timer (x86 ``LOC``) and numbered timer IRQs,
``reschedule_ipis`` = ``RES``, ``generic_ipis`` = ``CAL + TLB`` (arm64/riscv: the other
``IPIn`` lines); from ``/proc/schedstat`` when the kernel has CONFIG_SCHEDSTATS:
``context_switches`` = pcount (tasks switched in) and ``yields`` = yld_count. Linux
keeps no per-CPU page-fault, system-call, preemption, exception or timer-callback
counts: those are ``None``. The whole-system row (``Snapshot.cpu_total``) adds
``ctxt`` of ``/proc/stat`` and ``pgfault`` of ``/proc/vmstat``.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

from mxmem.model import CpuStats, KernelMemory
from mxmem.sources.linux.procfs import parse_meminfo, parse_slab_free
from mxmem.sources.linux.reader import AccessDenied, ProcReader, Unreadable, Vanished
from mxmem.sources.linux.sysfiles import (
    Interrupts,
    SchedCpu,
    SystemStat,
    parse_interrupts,
    parse_schedstat,
    parse_system_stat,
    parse_vmstat,
)

__all__ = [
    "KernelFigures",
    "cpu_stats",
    "kernel_memory",
    "memory_notes",
    "read_cpus",
    "read_kernel_memory",
    "unreadable_why",
]


# --- kernel memory -------------------------------------------------------------------------


def _vmalloc_heap(meminfo: dict[str, int]) -> int:
    used = meminfo.get("VmallocUsed", 0)
    stacks = meminfo.get("KernelStack", 0)
    # With CONFIG_VMAP_STACK the stacks are vmalloc'd and in both counters; without it
    # VmallocUsed is usually still larger (then stacks are counted twice nowhere, and
    # this undercounts the heap by them, which lands in "other": never double counted).
    return used - stacks if used >= stacks else used


def kernel_memory(meminfo: dict[str, int], slab_free: int = 0) -> KernelMemory:
    """The kernel memory figures of ``/proc/meminfo`` (bytes), as the module's table
    says; ``slab_free`` is :func:`~.procfs.parse_slab_free` of ``/proc/slabinfo``."""
    get = meminfo.get
    total = get("MemTotal", 0)
    free = get("MemFree", 0)
    slab = get("Slab", get("SReclaimable", 0) + get("SUnreclaim", 0))
    heap_total = slab + _vmalloc_heap(meminfo)
    heap_free = min(max(slab_free, 0), slab)
    vmo = get("AnonPages", 0) + get("Cached", 0) + get("Buffers", 0)
    wired = get("KernelStack", 0) + get("Percpu", 0) + get("Hugetlb", 0)
    mmu = get("PageTables", 0) + get("SecPageTables", 0)
    other = max(0, total - (free + vmo + heap_total + wired + mmu))
    return KernelMemory(
        total_bytes=total,
        free_bytes=free,
        wired_bytes=wired,
        heap_total_bytes=heap_total,
        heap_free_bytes=heap_free,
        vmo_bytes=vmo,
        mmu_bytes=mmu,
        ipc_bytes=0,
        other_bytes=other,
        available_bytes=get("MemAvailable"),
    )


def memory_notes(kmem: KernelMemory) -> list[str]:
    """What a reader of :func:`kernel_memory`'s figures must know: only that the parts
    exceed the total when they do (the counters overlapped more than documented)."""
    excess = kmem.parts_sum() - kmem.total_bytes
    if excess <= 0:
        return []
    return [
        f"the kernel's memory counters add up to {excess} bytes more than MemTotal"
        " (they overlap); kernel/other is shown as 0"
    ]


class KernelFigures(NamedTuple):
    memory: KernelMemory
    meminfo: dict[str, int]
    notes: tuple[str, ...]


def read_kernel_memory(reader: ProcReader, *, slab: bool) -> KernelFigures | None:
    """:func:`kernel_memory` of the host; ``slab`` reads ``/proc/slabinfo`` for the heap's
    free part (root only, ~0.5 ms). ``None`` without a readable ``/proc/meminfo``."""
    try:
        meminfo = parse_meminfo(reader.read(f"{reader.proc}/meminfo"))
    except (Unreadable, ValueError):
        return None
    notes: list[str] = []
    slab_free = 0
    if slab:
        try:
            slab_free = parse_slab_free(reader.read_all(f"{reader.proc}/slabinfo"))
        except (Unreadable, ValueError) as err:
            notes.append(
                "the kernel heap's free part (kfree, kernel/heap/free) is unknown and shown"
                f" as 0: /proc/slabinfo {unreadable_why(err)}"
            )
    kmem = kernel_memory(meminfo, slab_free)
    notes.extend(memory_notes(kmem))
    return KernelFigures(kmem, meminfo, tuple(notes))


def unreadable_why(err: Exception) -> str:
    """Why a system-wide file could not be used, to end "/proc/NAME ..." in a note."""
    if isinstance(err, AccessDenied):
        return "is readable by root only"
    if isinstance(err, Vanished):
        return "does not exist on this kernel"
    if isinstance(err, Unreadable):
        return f"cannot be read: {err.reason}"
    return "is not in a format mxmem knows"


# --- CPU counters --------------------------------------------------------------------------


def _ns(ticks: int, clock_ticks: int) -> int:
    return ticks * 1_000_000_000 // clock_ticks


def cpu_stats(
    stat: SystemStat,
    interrupts: Interrupts | None,
    schedstat: dict[int, SchedCpu],
    vmstat: dict[str, int],
    clock_ticks: int,
) -> tuple[tuple[CpuStats, ...], CpuStats]:
    """Per-CPU counters and the whole system's (``cpu_number`` -1), as the module
    docstring maps them."""
    column = {cpu: i for i, cpu in enumerate(interrupts.cpus)} if interrupts else {}

    def irq(counts: tuple[int, ...] | None, cpu: int) -> int | None:
        i = column.get(cpu)
        return None if counts is None or i is None else counts[i]

    cpus: list[CpuStats] = []
    for times in stat.cpus:
        sched = schedstat.get(times.cpu)
        cpus.append(
            CpuStats(
                cpu_number=times.cpu,
                busy_ns=_ns(times.busy, clock_ticks),
                idle_ns=_ns(times.idle, clock_ticks),
                context_switches=sched.switches if sched else None,
                yields=sched.yields if sched else None,
                preempts=None,
                irq_preempts=None,
                exceptions=None,
                page_faults=None,
                syscalls=None,
                interrupts=irq(interrupts.device if interrupts else None, times.cpu),
                timer_interrupts=irq(interrupts.timer if interrupts else None, times.cpu),
                timer_callbacks=None,
                reschedule_ipis=irq(interrupts.reschedule if interrupts else None, times.cpu),
                generic_ipis=irq(interrupts.generic if interrupts else None, times.cpu),
            )
        )
    total = CpuStats(
        cpu_number=-1,
        busy_ns=_ns(stat.total.busy, clock_ticks),
        idle_ns=_ns(stat.total.idle, clock_ticks),
        context_switches=stat.context_switches,
        yields=sum(s.yields for s in schedstat.values()) if schedstat else None,
        preempts=None,
        irq_preempts=None,
        exceptions=None,
        page_faults=vmstat.get("pgfault"),
        syscalls=None,
        interrupts=sum(interrupts.device) if interrupts else None,
        timer_interrupts=sum(interrupts.timer) if interrupts else None,
        timer_callbacks=None,
        reschedule_ipis=sum(interrupts.reschedule) if interrupts else None,
        generic_ipis=sum(interrupts.generic) if interrupts else None,
    )
    return tuple(cpus), total


def read_cpus(reader: ProcReader) -> tuple[tuple[CpuStats, ...], CpuStats | None]:
    """:func:`cpu_stats` of the host (four world-readable files, ~0.3 ms); ``((), None)``
    without a readable ``/proc/stat``. Files with one line per record are read to their
    end (a ``read`` of a seq_file returns about a page of records)."""
    proc = reader.proc
    try:
        stat = parse_system_stat(reader.read(f"{proc}/stat"))
    except (Unreadable, ValueError):
        return (), None
    interrupts: Interrupts | None = None
    with contextlib.suppress(Unreadable, ValueError):
        interrupts = parse_interrupts(reader.read_all(f"{proc}/interrupts"))
    schedstat: dict[int, SchedCpu] = {}
    with contextlib.suppress(Unreadable, ValueError):
        schedstat = parse_schedstat(reader.read_all(f"{proc}/schedstat"))  # CONFIG_SCHEDSTATS
    vmstat: dict[str, int] = {}
    with contextlib.suppress(Unreadable, ValueError):
        vmstat = parse_vmstat(reader.read_all(f"{proc}/vmstat"))
    return cpu_stats(stat, interrupts, schedstat, vmstat, reader.clock_ticks())
