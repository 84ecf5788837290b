"""Jobs, processes and threads."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mxmem.model.stats import TaskStats
from mxmem.model.vm import Aspace, Handle


class ThreadState(StrEnum):
    """Thread states, with the short names Magenta's ``ps -T`` prints."""

    NEW = "new"
    RUNNING = "running"
    SUSPENDED = "susp"
    BLOCKED = "blocked"
    DYING = "dying"
    DEAD = "dead"
    EXCEPTION = "excp"  # waiting on an exception port


class ProcessState(StrEnum):
    NEW = "new"
    RUNNING = "running"
    DYING = "dying"
    DEAD = "dead"


@dataclass(frozen=True, slots=True, kw_only=True)
class Thread:
    koid: int
    name: str
    state: ThreadState


@dataclass(frozen=True, slots=True, kw_only=True)
class Process:
    """A process. Optional parts are ``None`` when the source was not asked for them.

    ``stats`` carries the source's own per-process figures where it has them; ``aspace``
    and ``handles`` are present at :attr:`Level.FULL` (and ``aspace`` at
    :attr:`Level.TASKS` for sources without their own figures).
    """

    koid: int
    job_koid: int
    name: str
    state: ProcessState = ProcessState.RUNNING
    threads: tuple[Thread, ...] = ()
    handles: tuple[Handle, ...] | None = None
    aspace: Aspace | None = None
    stats: TaskStats | None = None
    # Set when the source could not read the process (e.g. permission denied): its
    # sizes are unknown, not zero.
    unreadable: str | None = None
    # A Linux kernel thread: a task without a user address space, listed so that
    # ``ps -T`` can show it; its memory figures are zero by definition.
    kernel_thread: bool = False
    # The VMOs a capture says the process references (a Fuchsia memory_monitor capture),
    # for sources that have no handles or mappings to derive them from; None otherwise.
    vmo_koids: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    koid: int
    parent_koid: int | None
    name: str
    process_koids: tuple[int, ...] = ()
    child_koids: tuple[int, ...] = ()
    # The job's own memory charge, where the source reports one: a Linux cgroup's
    # ``memory.current`` (v2) or ``memory.usage_in_bytes`` (v1). Not the sum of its
    # processes' figures.
    charge_bytes: int | None = None
    # The bytes of the mapped pages a source read page by page that the kernel charges to
    # the job (a Linux host's ``/proc/kpagecgroup``, at Level.PAGES); None otherwise.
    charged_pages_bytes: int | None = None
