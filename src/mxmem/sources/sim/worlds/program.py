"""Worlds as programs: the one way a world drives the simulated kernel.

Every world is a program: a sequence of *ops*, each one kernel operation written as data,
a tuple ``(kind, *args)``. The same vocabulary serves every kind of world:

* world files (``worldfile.py``) read each ``[[ops]]`` table, check it and turn it into
  an op, resolving the names ``as`` gave;
* the doc's worlds (``doc.py``) are world-file ops too, plus ``spawn``, which runs the
  2017 program loader (``launchpad.py``), itself a stream of these ops;
* the scale worlds (``scale.py``) generate theirs from a seed, and a second interpreter
  (``scale.Counter``) adds up the memory the same stream will need before it runs.

:class:`Machine` runs ops on a kernel and returns what each made, so that later ops can
refer to it: ``machine("vmo", 4096, "buf", process)``, or ``machine(*op)``. The kinds
and their arguments (``None`` where a default applies):

==============  ===============================================================
``job``         parent job, name, koid
``process``     job, name, koid
``thread``      process, name, koid
``start``       process or None, thread or None (start the process, and/or the thread)
``thread_state`` thread, ThreadState
``kill``        process
``vmo``         size, name, owner (a process, ``KERNEL``, or None: kernel-only), koid,
                rights
``physical``    paddr, size, name, owner, koid, rights
``clone``       parent VMO, offset, size, name (None: the parent's), owner, koid, rights
``write``       VMO, offset, length (``commit`` is the same)
``decommit``    VMO, offset, length
``resize``      VMO, size
``rename``      VMO, name
``release``     VMO (drop the kernel's reference)
``vmar``        parent VMAR (or a process: its root VMAR), size, addr, name, koid
``vmar_destroy`` VMAR
``map``         VMAR or process, VMO, offset, size, perms, addr
``unmap``       VMAR, addr, size
``protect``     VMAR, addr, size, perms
``object``      process, ObjType, koid
``channel``     process, peer process (None: the same)
``grant``       process, object, rights
``duplicate``   handle, rights (None: the same)
``transfer``    handle, process to move it to
``close``       handle
==============  ===============================================================

A *handle* is a :class:`HandleRef` (what ``grant``, ``duplicate`` and ``transfer``
return) or a pair ``(process, object)``: that process's first handle to the object.
Trailing arguments may be left out where the table's defaults apply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mxmem.model import ObjType, Perm, Rights
from mxmem.sources.sim.kernel import (
    Kernel,
    KObject,
    Owner,
    SimJob,
    SimProcess,
    SimThread,
    SimVmar,
    SimVmo,
)

__all__ = ["RUN", "HandleRef", "Machine", "Op"]

Op = tuple[Any, ...]  # (kind, *args): see the module docstring


class HandleRef:
    """A handle an op made: a value in one process's handle table."""

    __slots__ = ("process", "value")

    def __init__(self, process: SimProcess, value: int) -> None:
        self.process = process
        self.value = value


Handle = HandleRef | tuple[SimProcess, KObject]


def _handle(k: Kernel, handle: Handle) -> tuple[SimProcess, int]:
    if isinstance(handle, HandleRef):
        return handle.process, handle.value
    process, obj = handle
    return process, k.handle_of(process, obj)


def _vmar(target: SimVmar | SimProcess) -> SimVmar:
    """A VMAR, or a process standing for its root VMAR."""
    if isinstance(target, SimProcess):
        aspace = target.aspace
        assert aspace is not None and aspace.root is not None, "a dead process has no VMAR"
        return aspace.root
    return target


# --------------------------------------------------------------------------- the ops


def _job(k: Kernel, parent: SimJob, name: str, koid: int | None = None) -> SimJob:
    return k.job_create(parent, name, koid=koid)


def _process(k: Kernel, job: SimJob, name: str, koid: int | None = None) -> SimProcess:
    return k.process_create(job, name, koid=koid)


def _thread(k: Kernel, process: SimProcess, name: str, koid: int | None = None) -> SimThread:
    return k.thread_create(process, name, koid=koid)


def _start(k: Kernel, process: SimProcess | None, thread: SimThread | None = None) -> None:
    if process is not None:
        k.process_start(process, thread)
    else:
        assert thread is not None
        k.thread_start(thread)




def _vmo(
    k: Kernel,
    size: int,
    name: str,
    owner: Owner,
    koid: int | None = None,
    rights: int = Rights.DEFAULT_VMO,
) -> SimVmo:
    return k.vmo_create(size, name, owner=owner, koid=koid, rights=rights)


def _physical(
    k: Kernel,
    paddr: int,
    size: int,
    name: str,
    owner: Owner,
    koid: int | None = None,
    rights: int = Rights.DEFAULT_VMO,
) -> SimVmo:
    return k.vmo_create_physical(paddr, size, name, owner=owner, koid=koid, rights=rights)


def _clone(
    k: Kernel,
    vmo: SimVmo,
    offset: int,
    size: int,
    name: str | None,
    owner: Owner,
    koid: int | None = None,
    rights: int = Rights.DEFAULT_VMO,
) -> SimVmo:
    return k.vmo_clone(vmo, offset, size, name, owner=owner, koid=koid, rights=rights)







def _new_vmar(
    k: Kernel,
    parent: SimVmar | SimProcess,
    size: int,
    addr: int | None = None,
    name: str = "useralloc",
    koid: int | None = None,
) -> SimVmar:
    return k.vmar_allocate(_vmar(parent), size, addr=addr, name=name, koid=koid)



def _map(
    k: Kernel,
    vmar: SimVmar | SimProcess,
    vmo: SimVmo,
    offset: int = 0,
    size: int | None = None,
    perms: int = Perm.READ | Perm.WRITE,
    addr: int | None = None,
) -> object:
    if isinstance(vmar, SimProcess):
        vmar = _vmar(vmar)
    return k.vmar_map(vmar, vmo, vmo_offset=offset, size=size, perms=perms, addr=addr)




def _object(k: Kernel, process: SimProcess, type: ObjType, koid: int | None = None) -> KObject:
    return k.object_create(process, type, koid=koid)



def _grant(k: Kernel, process: SimProcess, obj: KObject, rights: int) -> HandleRef:
    return HandleRef(process, k.handle_grant(process, obj, rights))


def _duplicate(k: Kernel, handle: Handle, rights: int | None = None) -> HandleRef:
    process, value = _handle(k, handle)
    return HandleRef(process, k.handle_duplicate(process, value, rights))


def _transfer(k: Kernel, handle: Handle, to: SimProcess) -> HandleRef:
    process, value = _handle(k, handle)
    return HandleRef(to, k.handle_transfer(process, value, to))


def _close(k: Kernel, handle: Handle) -> None:
    k.handle_close(*_handle(k, handle))


#: What each kind of op does to a kernel. Where an op is exactly a kernel operation, it is
#: that operation, with no call in between (scale worlds run millions of ops).
RUN: dict[str, Callable[..., object]] = {
    "job": _job,
    "process": _process,
    "thread": _thread,
    "start": _start,
    "thread_state": Kernel.thread_set_state,
    "kill": Kernel.process_kill,
    "vmo": _vmo,
    "physical": _physical,
    "clone": _clone,
    "write": Kernel.vmo_write,
    "commit": Kernel.vmo_write,
    "decommit": Kernel.vmo_decommit,
    "resize": Kernel.vmo_set_size,
    "rename": Kernel.vmo_set_name,
    "release": Kernel.kernel_release,
    "vmar": _new_vmar,
    "vmar_destroy": Kernel.vmar_destroy,
    "map": _map,
    "unmap": Kernel.vmar_unmap,
    "protect": Kernel.vmar_protect,
    "object": _object,
    "channel": Kernel.channel_create,
    "grant": _grant,
    "duplicate": _duplicate,
    "transfer": _transfer,
    "close": _close,
}


class Machine:
    """Runs a program's ops on a kernel, one at a time, returning what each made."""

    __slots__ = ("kernel", "root_job")

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.root_job: object = kernel.root_job

    def __call__(self, kind: str, *args: Any) -> Any:
        """Run the op ``(kind, *args)``; a stored op runs as ``machine(*op)``. (Taking the
        op spread out spares every op a tuple and a slice: scale worlds run millions.)"""
        return RUN[kind](self.kernel, *args)
