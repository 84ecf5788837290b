"""The 2017 Magenta kernel's PRIVATE / SHARED / PSS rule (``VmAspace::GetMemoryUsage``).

For each mapping of a process: ``committed`` = the mapped VMO's committed bytes inside the
mapped range; ``share`` = the VMO's share count. If ``share == 1`` the bytes are private,
otherwise shared, and ``committed // share`` is added to the scaled (proportional) part —
the integer division happens per mapping, as in the kernel. A page mapped twice is counted
twice; that is the rule's known blind spot, kept here for fidelity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mxmem.model import (
    ZERO_STATS,
    Process,
    ProcessState,
    Snapshot,
    TaskStats,
    Vmo,
)
from mxmem.model import (
    Mapping as VmMapping,
)


def mapping_stats(mappings: Iterable[VmMapping], vmos: Mapping[int, Vmo]) -> TaskStats:
    """Sum the 2017 rule over ``mappings``; a VMO missing from ``vmos`` counts as unshared."""
    mapped = private = shared = scaled = 0
    for m in mappings:
        mapped += m.size
        committed = m.committed_bytes
        vmo = vmos.get(m.vmo_koid)
        share = vmo.share_count if vmo is not None else 1
        if share <= 1:
            private += committed
        else:
            shared += committed
            scaled += committed // share
    return TaskStats(
        mapped_bytes=mapped, private_bytes=private, shared_bytes=shared, scaled_shared_bytes=scaled
    )


def process_stats(snapshot: Snapshot, process: Process) -> TaskStats | None:
    """A process's figures, or ``None`` when they are unknown (unreadable, not collected).

    A process that is not running reports zeros (the kernel answers BAD_STATE and ``ps``
    prints 0). The source's own figures win over derived ones.
    """
    if process.unreadable is not None:
        return None
    if process.state is not ProcessState.RUNNING:
        return ZERO_STATS
    if process.stats is not None:
        return process.stats
    if process.aspace is None:
        return None
    return mapping_stats(process.aspace.mappings(), snapshot.vmos)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobTotals:
    """A job's roll-up: PSS and PRIVATE summed over all descendant processes.

    SHARED is not summed (Magenta ps.c: shared bytes don't mean much as a sum).
    ``unknown`` counts descendant processes whose figures are unknown.
    """

    pss_bytes: int
    private_bytes: int
    unknown: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskMemory:
    """Figures for every process and job of a snapshot."""

    processes: Mapping[int, TaskStats | None]
    jobs: Mapping[int, JobTotals]


def task_memory(snapshot: Snapshot) -> TaskMemory:
    """Per-process figures and per-job roll-ups for the whole job tree."""
    processes: dict[int, TaskStats | None] = {}
    pss: dict[int, int] = dict.fromkeys(snapshot.jobs, 0)
    private: dict[int, int] = dict.fromkeys(snapshot.jobs, 0)
    unknown: dict[int, int] = dict.fromkeys(snapshot.jobs, 0)
    ancestors: dict[int, list[int]] = {}
    for koid, process in snapshot.processes.items():
        stats = process_stats(snapshot, process)
        processes[koid] = stats
        chain = ancestors.get(process.job_koid)
        if chain is None:
            chain = ancestors[process.job_koid] = snapshot.ancestors(process.job_koid)
        for job_koid in chain:
            if stats is None:
                unknown[job_koid] += 1
            else:
                pss[job_koid] += stats.pss_bytes
                private[job_koid] += stats.private_bytes
    jobs = {
        k: JobTotals(pss_bytes=pss[k], private_bytes=private[k], unknown=unknown[k])
        for k in snapshot.jobs
    }
    return TaskMemory(processes=processes, jobs=jobs)
