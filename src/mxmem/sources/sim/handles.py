"""Handles of the simulated kernel: granting, duplicating, moving and closing them.

A handle carries rights; a duplicate never gains any, and moving one needs TRANSFER.
Closing the last reference to an object destroys it (a VMO lives on while a mapping, a
clone or the kernel still refers to it).
"""

from __future__ import annotations

from mxmem.errors import KernelError
from mxmem.model import ProcessState, Rights
from mxmem.sources.sim.cpu import syscall
from mxmem.sources.sim.memory import HEAP_COST, KernelMemory
from mxmem.sources.sim.objects import KernelRef, KObject, Owner, SimHandle, SimProcess, SimVmo

__all__ = ["HandleOps"]


class HandleOps(KernelMemory):
    """The handle operations, and who holds a new object (its owner)."""

    def _check_owner(self, owner: Owner) -> None:
        if isinstance(owner, SimProcess) and owner.state is ProcessState.DEAD:
            raise KernelError("ERR_BAD_STATE", f"process {owner.koid} is dead")

    def _hold(self, obj: KObject, owner: Owner, rights: int) -> None:
        if isinstance(owner, SimProcess):
            self.handle_grant(owner, obj, rights)
        elif isinstance(owner, KernelRef) and isinstance(obj, SimVmo):
            obj.kernel_refs += 1

    @syscall
    def handle_grant(self, process: SimProcess, obj: KObject, rights: int) -> int:
        """Put a handle to ``obj`` in ``process``'s table (as receiving one would)."""
        if process.state is ProcessState.DEAD:
            raise KernelError("ERR_BAD_STATE", f"process {process.koid} is dead")
        if not obj.alive:
            raise KernelError("ERR_BAD_STATE", f"object {obj.koid} is gone")
        self._charge("handle")
        process.handle_serial += 1
        # Magenta handle values look random; this is a bijection on the serial number, so
        # values are unique within a process and deterministic.
        value = (((process.handle_serial * 0x9E3779B1) & 0x7FFFFFFF) << 1) | 1
        process.handles[value] = SimHandle(value, obj, int(rights))
        obj.handle_count += 1
        return value

    def _handle(self, process: SimProcess, value: int) -> SimHandle:
        handle = process.handles.get(value)
        if handle is None:
            raise KernelError("ERR_BAD_HANDLE", f"no handle {value:#x} in process {process.koid}")
        return handle

    def handle_of(self, process: SimProcess, obj: KObject) -> int:
        """The value of ``process``'s first handle to ``obj``."""
        for value, handle in process.handles.items():
            if handle.obj is obj:
                return value
        raise KernelError("ERR_NOT_FOUND", f"process {process.koid} has no handle to {obj.koid}")

    @syscall
    def handle_duplicate(self, process: SimProcess, value: int, rights: int | None = None) -> int:
        """Duplicate a handle, optionally with fewer rights (needs DUPLICATE)."""
        handle = self._handle(process, value)
        if not handle.rights & Rights.DUPLICATE:
            raise KernelError("ERR_ACCESS_DENIED", "handle lacks the DUPLICATE right")
        new_rights = handle.rights if rights is None else int(rights)
        if new_rights & ~handle.rights:
            raise KernelError("ERR_INVALID_ARGS", "a duplicate cannot gain rights")
        return self.handle_grant(process, handle.obj, new_rights)

    @syscall
    def handle_transfer(self, src: SimProcess, value: int, dst: SimProcess) -> int:
        """Move a handle to another process (as writing it to a channel does)."""
        handle = self._handle(src, value)
        if not handle.rights & Rights.TRANSFER:
            raise KernelError("ERR_ACCESS_DENIED", "handle lacks the TRANSFER right")
        if dst.state is ProcessState.DEAD:
            raise KernelError("ERR_BAD_STATE", f"process {dst.koid} is dead")
        new = self.handle_grant(dst, handle.obj, handle.rights)
        self.handle_close(src, value)
        return new

    @syscall
    def handle_close(self, process: SimProcess, value: int) -> None:
        handle = self._handle(process, value)
        del process.handles[value]
        self._heap_free(HEAP_COST["handle"])
        obj = handle.obj
        obj.handle_count -= 1
        if isinstance(obj, SimVmo):
            self._maybe_destroy_vmo(obj)
        elif type(obj) is KObject and obj.handle_count == 0:
            obj.alive = False
            self._heap_free(HEAP_COST["other"])
