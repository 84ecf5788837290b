"""The immutable snapshot of one system, and the job-tree walk every tool shares."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import NamedTuple

from mxmem.model.cpu import CpuStats
from mxmem.model.kernel import KernelMemory
from mxmem.model.pages import PageFacts
from mxmem.model.tasks import Job, Process, Thread
from mxmem.model.vm import Aspace, Vmo

#: The wording every note about the kernel address space starts with (what a source could
#: not read of it); such notes are kept apart, in :attr:`Snapshot.kernel_aspace_notes`.
ASPACE_NOTE = "kernel address space: "


class Platform(StrEnum):
    """The kind of system a snapshot describes: what its objects mean (a Linux "handle"
    is a file descriptor, a Magenta one a kernel handle), whatever source read it.
    A capture file of a system has that system's platform, not its own."""

    MAGENTA = "magenta"  # the simulated kernel, and memgraph JSON of a Magenta system
    LINUX = "linux"  # the live host (jobs are cgroups, handles file descriptors)
    FUCHSIA = "fuchsia"  # a Fuchsia memory_monitor capture


class Level(IntEnum):
    """How much a source is asked to collect; each level includes the ones below.

    Tools ask for the least they need, so cheap tools stay cheap (Fuchsia's
    ``CaptureLevel``): ``kstats -m`` needs only KMEM, ``ps`` needs TASKS.
    """

    KMEM = 0  # kernel memory figures only
    TASKS = 1  # + jobs, processes, threads and per-process memory figures
    FULL = 2  # + address spaces, handles, VMOs and the kernel address space
    PAGES = 3  # + page-level facts for exact attribution (``Snapshot.pages``)


class WalkEntry(NamedTuple):
    depth: int
    kind: str  # "j", "p" or "t"
    obj: Job | Process | Thread


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """One system at one moment, whatever the source.

    Objects refer to each other by koid; the ``jobs``/``processes``/``vmos`` maps are
    read-only views. ``notes`` carries one-line accuracy caveats for the tools to print;
    ``kernel_aspace_notes`` those about the kernel address space (only the tool that
    shows it prints them). ``timestamp`` is when the source took the snapshot (a
    simulated kernel's own clock).
    """

    source: str
    platform: Platform
    level: Level
    timestamp: datetime
    kernel: KernelMemory | None
    root_job_koid: int | None
    jobs: Mapping[int, Job] = field(default_factory=dict)
    processes: Mapping[int, Process] = field(default_factory=dict)
    vmos: Mapping[int, Vmo] = field(default_factory=dict)
    kernel_aspace: Aspace | None = None
    notes: tuple[str, ...] = ()
    kernel_aspace_notes: tuple[str, ...] = ()
    # False when the source knows which VMOs each process maps but not where (memgraph
    # JSON): address spaces then hold placeholder mappings at address 0, and tools that
    # need real addresses refuse the snapshot.
    has_mappings: bool = True
    # Per-CPU counters, cumulative since boot, in CPU number order; () if the source has
    # none. Every level carries them (they are as cheap as the kernel memory figures).
    cpus: tuple[CpuStats, ...] = ()
    # The whole system's counters (``cpu_number`` -1), for a source that keeps some of
    # them only system-wide (Linux: context switches, page faults); None otherwise.
    cpu_total: CpuStats | None = None
    # Page-level facts for exact attribution: present at Level.PAGES (None otherwise).
    pages: PageFacts | None = None

    def __post_init__(self) -> None:
        for name in ("jobs", "processes", "vmos"):
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(value)))

    def walk(self, job_koid: int | None = None, *, threads: bool = False) -> Iterator[WalkEntry]:
        """Magenta's task walker order: a job, then its processes (each followed by its
        threads when asked), then its child jobs recursively, all in creation order."""
        start = self.root_job_koid if job_koid is None else job_koid
        if start is None or start not in self.jobs:
            return
        stack: list[tuple[int, int]] = [(start, 0)]
        while stack:
            koid, depth = stack.pop()
            job = self.jobs[koid]
            yield WalkEntry(depth, "j", job)
            for pkoid in job.process_koids:
                process = self.processes.get(pkoid)
                if process is None:
                    continue
                yield WalkEntry(depth + 1, "p", process)
                if threads:
                    for thread in process.threads:
                        yield WalkEntry(depth + 2, "t", thread)
            stack.extend((c, depth + 1) for c in reversed(job.child_koids) if c in self.jobs)

    def ancestors(self, job_koid: int) -> list[int]:
        """Koids of ``job_koid`` and its ancestors, nearest first."""
        out: list[int] = []
        koid: int | None = job_koid
        while koid is not None and koid in self.jobs and koid not in out:
            out.append(koid)
            koid = self.jobs[koid].parent_koid
        return out
