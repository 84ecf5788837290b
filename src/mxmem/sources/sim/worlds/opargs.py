"""Reading the arguments of a world file's op: names, sizes, addresses, rights, perms.

An op's keys are read with conversion (``"4k"``, ``"0x47e1ab874000"``, ``"r-x"``,
``"r-xmdt"``...) and checked, and a name is looked up among those earlier ops gave with
``as``; every mistake is a :class:`BadOp` with a message saying which key and why.
Values may also be given as what they stand for (an integer, a kernel object), as the
doc's worlds, written in Python, do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mxmem.model import ObjType, Perm, Rights, ThreadState
from mxmem.sizes import parse_size
from mxmem.sources.sim.kernel import (
    KernelRef,
    KObject,
    Owner,
    SimJob,
    SimMapping,
    SimProcess,
    SimThread,
    SimVmar,
    SimVmo,
)
from mxmem.sources.sim.worlds.program import HandleRef

__all__ = ["OBJECT_TYPES", "THREAD_STATES", "BadOp", "OpArgs", "parse_perms", "parse_rights"]


class BadOp(Exception):
    """A mistake in the op being run; the world file's loader adds the file and op to the
    message."""


# What each kind of named thing is called in messages.
_KINDS: tuple[tuple[type, str], ...] = (
    (SimJob, "job"),
    (SimProcess, "process"),
    (SimThread, "thread"),
    (SimVmo, "VMO"),
    (SimVmar, "VMAR"),
    (SimMapping, "mapping"),
    (HandleRef, "handle"),
    (KernelRef, "the kernel"),
    (KObject, "object"),
)


def _kind(obj: object) -> str:
    for cls, name in _KINDS:
        if isinstance(obj, cls):
            return name
    return type(obj).__name__


_RIGHT_LETTERS = {
    "r": Rights.READ,
    "w": Rights.WRITE,
    "x": Rights.EXECUTE,
    "m": Rights.MAP,
    "d": Rights.DUPLICATE,
    "t": Rights.TRANSFER,
}
_PERM_LETTERS = {"r": Perm.READ, "w": Perm.WRITE, "x": Perm.EXECUTE}
THREAD_STATES = {s.value: s for s in ThreadState} | {s.name.lower(): s for s in ThreadState}
# Objects that have their own op (or are channels, which come in pairs) are not "object"s.
OBJECT_TYPES = {
    t.value: t
    for t in ObjType
    if t not in (ObjType.JOB, ObjType.PROCESS, ObjType.THREAD, ObjType.VMO, ObjType.VMAR)
    and t is not ObjType.CHANNEL
}


class OpArgs:
    """The keys of one op, read with conversion and checked against what the op takes."""

    def __init__(self, op: Mapping[str, Any], names: dict[str, object]) -> None:
        self.op = op
        self.names = names

    def has(self, key: str) -> bool:
        return key in self.op

    def raw(self, key: str) -> Any:
        if key not in self.op:
            raise BadOp(f"missing {key!r}")
        return self.op[key]

    def text(self, key: str, default: str | None = None) -> str:
        if key not in self.op and default is not None:
            return default
        value = self.raw(key)
        if not isinstance(value, str):
            raise BadOp(f"{key!r} must be a string, not {value!r}")
        return value

    def number(self, key: str, default: int | None = None) -> int:
        """A byte count, offset or address: an integer, ``"4k"``/``"2M"``, or ``"0x..."``."""
        if key not in self.op and default is not None:
            return default
        value = self.raw(key)
        if isinstance(value, bool):
            raise BadOp(f"{key!r}: expected a number or a size, not {value!r}")
        if isinstance(value, int):
            number = value
        elif isinstance(value, str):
            try:
                if value.strip().lower().startswith("0x"):
                    number = int(value.strip(), 16)
                else:
                    number = parse_size(value)
            except ValueError as err:
                raise BadOp(f"{key!r}: {err}") from None
        else:
            raise BadOp(f"{key!r}: expected a number or a size, not {value!r}")
        if number < 0:
            raise BadOp(f"{key!r} must not be negative, not {number}")
        return number

    def opt_number(self, key: str) -> int | None:
        return self.number(key) if key in self.op else None

    def obj(self, key: str, *types: type, default: str | None = None) -> object:
        """The named thing ``key`` refers to, which must be one of ``types``."""
        name = self.text(key, default)
        if name not in self.names:
            raise BadOp(f"{key!r}: unknown name {name!r}")
        obj = self.names[name]
        if not isinstance(obj, types):
            wanted = " or ".join(_kind_of_type(t) for t in types)
            raise BadOp(f"{key!r}: {name!r} is {_article(_kind(obj))}, not {_article(wanted)}")
        return obj

    def job(self, key: str, default: str | None = None) -> SimJob:
        obj = self.obj(key, SimJob, default=default)
        assert isinstance(obj, SimJob)
        return obj

    def process(self, key: str = "process") -> SimProcess:
        obj = self.obj(key, SimProcess)
        assert isinstance(obj, SimProcess)
        return obj

    def thread(self, key: str = "thread") -> SimThread:
        obj = self.obj(key, SimThread)
        assert isinstance(obj, SimThread)
        return obj

    def vmo(self, key: str = "vmo") -> SimVmo:
        obj = self.obj(key, SimVmo)
        assert isinstance(obj, SimVmo)
        return obj

    def vmar(self, key: str = "vmar") -> SimVmar:
        """A VMAR, or a process standing for its root VMAR."""
        obj = self.obj(key, SimVmar, SimProcess)
        if isinstance(obj, SimProcess):
            if obj.aspace is None or obj.aspace.root is None:
                raise BadOp(f"{key!r}: process {self.op[key]!r} has no address space (dead)")
            return obj.aspace.root
        assert isinstance(obj, SimVmar)
        return obj

    def mapping(self, key: str = "mapping") -> SimMapping:
        obj = self.obj(key, SimMapping)
        assert isinstance(obj, SimMapping)
        if not obj.alive:
            raise BadOp(f"{key!r}: mapping {self.op[key]!r} was unmapped")
        return obj

    def owner(self) -> Owner:
        """``owner`` names a process or ``kernel``; ``kernel_only = true`` instead makes a
        VMO only the kernel knows (no koid)."""
        if self.flag("kernel_only"):
            if "owner" in self.op:
                raise BadOp("give either 'owner' or 'kernel_only', not both")
            return None
        obj = self.obj("owner", SimProcess, KernelRef)
        assert isinstance(obj, SimProcess | KernelRef)
        return obj

    def flag(self, key: str) -> bool:
        value = self.op.get(key, False)
        if not isinstance(value, bool):
            raise BadOp(f"{key!r} must be true or false, not {value!r}")
        return value

    def koid(self) -> int | None:
        if "koid" not in self.op:
            return None
        value = self.op["koid"]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise BadOp(f"'koid' must be a positive integer, not {value!r}")
        return value

    def rights(self, key: str = "rights", default: int | None = None) -> int:
        if key not in self.op and default is not None:
            return default
        return parse_rights(self.raw(key), key)

    def perms(self, key: str = "perms", default: str | None = None) -> int:
        return parse_perms(self.text(key, default), key)

    def handle(self) -> HandleRef:
        """A handle: ``handle`` (named with ``as``), or ``process`` and ``object`` (that
        process's first handle to the object)."""
        if "handle" in self.op:
            if "object" in self.op:
                raise BadOp("give either 'handle' or 'process' and 'object', not both")
            ref = self.obj("handle", HandleRef)
            assert isinstance(ref, HandleRef)
            return ref
        process = self.process()
        target = self.obj("object", KObject)
        assert isinstance(target, KObject)
        for value, handle in process.handles.items():
            if handle.obj is target:
                return HandleRef(process, value)
        raise BadOp(f"process {self.op['process']!r} has no handle to {self.op['object']!r}")


def _article(noun: str) -> str:
    if noun.startswith("the "):
        return noun
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _kind_of_type(cls: type) -> str:
    for known, name in _KINDS:
        if cls is known:
            return name
    return cls.__name__


def parse_rights(value: object, key: str = "rights") -> int:
    """Handle rights: letters from ``rwxmdt`` (``-`` allowed, as ``vmos`` prints them), a
    list of right names (``["read", "map", "get_property"]``) or an integer."""
    if isinstance(value, bool):
        raise BadOp(f"{key!r}: expected rights, not {value!r}")
    if isinstance(value, int):
        if value < 0 or value & ~int(Rights.DEFAULT_VMO):
            raise BadOp(f"{key!r}: {value:#x} is not a set of rights")
        return value
    if isinstance(value, str):
        rights = 0
        for letter in value:
            if letter == "-":
                continue
            bit = _RIGHT_LETTERS.get(letter)
            if bit is None:
                raise BadOp(f"{key!r}: unknown right {letter!r} in {value!r} (letters: rwxmdt)")
            rights |= bit
        return rights
    if isinstance(value, list):
        rights = 0
        for name in value:
            member = Rights.__members__.get(str(name).upper())
            if member is None:
                known = ", ".join(n.lower() for n in Rights.__members__)
                raise BadOp(f"{key!r}: unknown right {name!r} (names: {known})")
            rights |= member
        return rights
    raise BadOp(f"{key!r}: expected rights, not {value!r}")


def parse_perms(value: str, key: str = "perms") -> int:
    """Mapping permissions as ``vmaps`` prints them: ``"r-x"``, ``"rw-"``, ``"r--"``."""
    perms = 0
    for letter in value:
        if letter == "-":
            continue
        bit = _PERM_LETTERS.get(letter)
        if bit is None or perms & bit:
            raise BadOp(f"{key!r}: bad permissions {value!r} (expected e.g. 'r-x' or 'rw-')")
        perms |= bit
    return perms
