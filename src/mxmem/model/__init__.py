"""The snapshot every tool reads: an immutable object graph of one system at one moment.

Sources (the simulated Magenta kernel, the live Linux host, capture files) produce a
:class:`Snapshot`; accounting and renderers only ever read one.
"""

from mxmem.model.cpu import CpuStats
from mxmem.model.kernel import KernelMemory
from mxmem.model.pages import (
    KERNEL_OBJECTS,
    KERNEL_STACKS,
    PAGE_TABLES,
    PageFacts,
    PageKey,
    PageUse,
)
from mxmem.model.snapshot import ASPACE_NOTE, Level, Platform, Snapshot, WalkEntry
from mxmem.model.stats import ZERO_STATS, TaskStats
from mxmem.model.tasks import Job, Process, ProcessState, Thread, ThreadState
from mxmem.model.vm import (
    Aspace,
    Handle,
    Mapping,
    ObjType,
    Perm,
    Rights,
    Vmar,
    Vmo,
    perm_string,
    rights_string,
)

__all__ = [
    "ASPACE_NOTE",
    "KERNEL_OBJECTS",
    "KERNEL_STACKS",
    "PAGE_TABLES",
    "ZERO_STATS",
    "Aspace",
    "CpuStats",
    "Handle",
    "Job",
    "KernelMemory",
    "Level",
    "Mapping",
    "ObjType",
    "PageFacts",
    "PageKey",
    "PageUse",
    "Perm",
    "Platform",
    "Process",
    "ProcessState",
    "Rights",
    "Snapshot",
    "TaskStats",
    "Thread",
    "ThreadState",
    "Vmar",
    "Vmo",
    "WalkEntry",
    "perm_string",
    "rights_string",
]
