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


def share_counts(vmos: Mapping[int, Vmo]) -> dict[int, int]:
    """The share count of each VMO the rule treats as shared (count above 1), by koid.

    Every mapping of a system looks its VMO up; a small plain dict of the shared ones is
    much cheaper to probe than the snapshot's read-only view of all VMOs."""
    return {koid: vmo.share_count for koid, vmo in vmos.items() if vmo.share_count > 1}


def mapping_stats(
    mappings: Iterable[VmMapping],
    vmos: Mapping[int, Vmo],
    *,
    shares: Mapping[int, int] | None = None,
) -> TaskStats:
    """Sum the 2017 rule over ``mappings``; a VMO missing from ``vmos`` counts as unshared.

    ``shares`` is :func:`share_counts` of ``vmos``, for callers that sum many processes.
    """
    if shares is None:
        mappings = list(mappings)
        shares = share_counts(
            {m.vmo_koid: vmos[m.vmo_koid] for m in mappings if m.vmo_koid in vmos}
        )
    share_of = shares.get
    mapped = private = shared = scaled = 0
    for m in mappings:
        mapped += m.size
        share = share_of(m.vmo_koid)
        if share is None:
            private += m.committed_bytes
        else:
            committed = m.committed_bytes
            shared += committed
            scaled += committed // share
    return TaskStats(
        mapped_bytes=mapped, private_bytes=private, shared_bytes=shared, scaled_shared_bytes=scaled
    )


def process_stats(
    snapshot: Snapshot, process: Process, *, shares: Mapping[int, int] | None = None
) -> TaskStats | None:
    """A process's figures, or ``None`` when they are unknown (unreadable, not collected).

    A process that is not running reports zeros (the kernel answers BAD_STATE and ``ps``
    prints 0). The source's own figures win over derived ones. ``shares`` is
    :func:`share_counts` of the snapshot's VMOs, for callers that sum many processes.
    """
    if process.unreadable is not None:
        return None
    if process.state is not ProcessState.RUNNING:
        return ZERO_STATS
    if process.stats is not None:
        return process.stats
    if process.aspace is None:
        return None
    return mapping_stats(process.aspace.mappings(), snapshot.vmos, shares=shares)


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
    """Per-process figures and per-job roll-ups for the whole job tree (the roll-ups are
    :mod:`mxmem.accounting.figures`'s, the one place jobs are summed)."""
    from mxmem.accounting.figures import stats_figures  # figures imports this module

    shares = share_counts(snapshot.vmos)
    processes = {
        koid: process_stats(snapshot, process, shares=shares)
        for koid, process in snapshot.processes.items()
    }
    figs = stats_figures(snapshot, processes)
    jobs = {
        koid: JobTotals(pss_bytes=job.total, private_bytes=job.private, unknown=job.unknown)
        for koid, job in figs.jobs.items()
    }
    return TaskMemory(processes=processes, jobs=jobs)
