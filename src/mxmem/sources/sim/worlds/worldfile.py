"""World files: a simulated Magenta system written down as a script of kernel operations.

A world file (TOML, or JSON with the same structure) has an optional ``[kernel]`` table
with the machine's settings and an ordered ``[[ops]]`` list; each op names one
:class:`~mxmem.sources.sim.kernel.Kernel` operation in ``op`` and its arguments in the
other keys. Objects an op creates are named with ``as`` and referred to by that name
later; ``root`` (the root job) and ``kernel`` (the kernel as a VMO owner) are predefined.
``docs/worlds.md`` documents every op with an example.

Every mistake in a file — bad syntax, an unknown op or key, a name that was never
defined, a bad size, or a kernel operation that fails — is a :class:`SourceError` with one
line naming the file and the op (numbered from 1 in file order).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mxmem.errors import KernelError, SourceError
from mxmem.model import ObjType, Perm, Rights, ThreadState
from mxmem.sizes import parse_size
from mxmem.sources.sim.kernel import (
    KERNEL,
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
from mxmem.sources.sim.kernel import (
    Kernel as SimKernel,
)

__all__ = ["OPS", "load", "loads"]


class _Bad(Exception):
    """A mistake in the op being run; :func:`loads` adds the file and op to the message."""


class HandleRef:
    """A handle named with ``as``: a value in one process's handle table."""

    __slots__ = ("process", "value")

    def __init__(self, process: SimProcess, value: int) -> None:
        self.process = process
        self.value = value


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
_THREAD_STATES = {s.value: s for s in ThreadState} | {s.name.lower(): s for s in ThreadState}
# Objects that have their own op (or are channels, which come in pairs) are not "object"s.
_OBJECT_TYPES = {
    t.value: t
    for t in ObjType
    if t not in (ObjType.JOB, ObjType.PROCESS, ObjType.THREAD, ObjType.VMO, ObjType.VMAR)
    and t is not ObjType.CHANNEL
}


class _Args:
    """The keys of one op, read with conversion and checked against what the op takes."""

    def __init__(self, op: Mapping[str, Any], names: dict[str, object]) -> None:
        self.op = op
        self.names = names

    def has(self, key: str) -> bool:
        return key in self.op

    def raw(self, key: str) -> Any:
        if key not in self.op:
            raise _Bad(f"missing {key!r}")
        return self.op[key]

    def text(self, key: str, default: str | None = None) -> str:
        if key not in self.op and default is not None:
            return default
        value = self.raw(key)
        if not isinstance(value, str):
            raise _Bad(f"{key!r} must be a string, not {value!r}")
        return value

    def number(self, key: str, default: int | None = None) -> int:
        """A byte count, offset or address: an integer, ``"4k"``/``"2M"``, or ``"0x..."``."""
        if key not in self.op and default is not None:
            return default
        value = self.raw(key)
        if isinstance(value, bool):
            raise _Bad(f"{key!r}: expected a number or a size, not {value!r}")
        if isinstance(value, int):
            number = value
        elif isinstance(value, str):
            try:
                if value.strip().lower().startswith("0x"):
                    number = int(value.strip(), 16)
                else:
                    number = parse_size(value)
            except ValueError as err:
                raise _Bad(f"{key!r}: {err}") from None
        else:
            raise _Bad(f"{key!r}: expected a number or a size, not {value!r}")
        if number < 0:
            raise _Bad(f"{key!r} must not be negative, not {number}")
        return number

    def opt_number(self, key: str) -> int | None:
        return self.number(key) if key in self.op else None

    def obj(self, key: str, *types: type, default: str | None = None) -> object:
        """The named thing ``key`` refers to, which must be one of ``types``."""
        name = self.text(key, default)
        if name not in self.names:
            raise _Bad(f"{key!r}: unknown name {name!r}")
        obj = self.names[name]
        if not isinstance(obj, types):
            wanted = " or ".join(_kind_of_type(t) for t in types)
            raise _Bad(f"{key!r}: {name!r} is {_article(_kind(obj))}, not {_article(wanted)}")
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
                raise _Bad(f"{key!r}: process {self.op[key]!r} has no address space (dead)")
            return obj.aspace.root
        assert isinstance(obj, SimVmar)
        return obj

    def mapping(self, key: str = "mapping") -> SimMapping:
        obj = self.obj(key, SimMapping)
        assert isinstance(obj, SimMapping)
        if not obj.alive:
            raise _Bad(f"{key!r}: mapping {self.op[key]!r} was unmapped")
        return obj

    def owner(self) -> Owner:
        """``owner`` names a process or ``kernel``; ``kernel_only = true`` instead makes a
        VMO only the kernel knows (no koid)."""
        if self.flag("kernel_only"):
            if "owner" in self.op:
                raise _Bad("give either 'owner' or 'kernel_only', not both")
            return None
        obj = self.obj("owner", SimProcess, KernelRef)
        assert isinstance(obj, SimProcess | KernelRef)
        return obj

    def flag(self, key: str) -> bool:
        value = self.op.get(key, False)
        if not isinstance(value, bool):
            raise _Bad(f"{key!r} must be true or false, not {value!r}")
        return value

    def koid(self) -> int | None:
        if "koid" not in self.op:
            return None
        value = self.op["koid"]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise _Bad(f"'koid' must be a positive integer, not {value!r}")
        return value

    def rights(self, key: str = "rights", default: int | None = None) -> int:
        if key not in self.op and default is not None:
            return default
        return parse_rights(self.raw(key), key)

    def perms(self, key: str = "perms", default: str | None = None) -> int:
        return parse_perms(self.text(key, default), key)

    def handle(self) -> tuple[SimProcess, int]:
        """A handle: ``handle`` (named with ``as``), or ``process`` and ``object`` (that
        process's first handle to the object)."""
        if "handle" in self.op:
            if "object" in self.op:
                raise _Bad("give either 'handle' or 'process' and 'object', not both")
            ref = self.obj("handle", HandleRef)
            assert isinstance(ref, HandleRef)
            return ref.process, ref.value
        process = self.process()
        target = self.obj("object", KObject)
        assert isinstance(target, KObject)
        for value, handle in process.handles.items():
            if handle.obj is target:
                return process, value
        raise _Bad(f"process {self.op['process']!r} has no handle to {self.op['object']!r}")


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
        raise _Bad(f"{key!r}: expected rights, not {value!r}")
    if isinstance(value, int):
        if value < 0 or value & ~int(Rights.DEFAULT_VMO):
            raise _Bad(f"{key!r}: {value:#x} is not a set of rights")
        return value
    if isinstance(value, str):
        rights = 0
        for letter in value:
            if letter == "-":
                continue
            bit = _RIGHT_LETTERS.get(letter)
            if bit is None:
                raise _Bad(f"{key!r}: unknown right {letter!r} in {value!r} (letters: rwxmdt)")
            rights |= bit
        return rights
    if isinstance(value, list):
        rights = 0
        for name in value:
            member = Rights.__members__.get(str(name).upper())
            if member is None:
                known = ", ".join(n.lower() for n in Rights.__members__)
                raise _Bad(f"{key!r}: unknown right {name!r} (names: {known})")
            rights |= member
        return rights
    raise _Bad(f"{key!r}: expected rights, not {value!r}")


def parse_perms(value: str, key: str = "perms") -> int:
    """Mapping permissions as ``vmaps`` prints them: ``"r-x"``, ``"rw-"``, ``"r--"``."""
    perms = 0
    for letter in value:
        if letter == "-":
            continue
        bit = _PERM_LETTERS.get(letter)
        if bit is None or perms & bit:
            raise _Bad(f"{key!r}: bad permissions {value!r} (expected e.g. 'r-x' or 'rw-')")
        perms |= bit
    return perms


# --------------------------------------------------------------------------- the ops

Result = object  # what ``as`` names: a kernel object, a handle, a pair of channel ends
Handler = Callable[[SimKernel, _Args], Result]


def _job(k: SimKernel, a: _Args) -> Result:
    return k.job_create(a.job("parent", "root"), a.text("name"), koid=a.koid())


def _process(k: SimKernel, a: _Args) -> Result:
    return k.process_create(a.job("job"), a.text("name"), koid=a.koid())


def _thread(k: SimKernel, a: _Args) -> Result:
    return k.thread_create(a.process(), a.text("name", ""), koid=a.koid())


def _start(k: SimKernel, a: _Args) -> Result:
    if a.has("process"):
        k.process_start(a.process(), a.thread() if a.has("thread") else None)
    else:
        k.thread_start(a.thread())
    return None


def _kill(k: SimKernel, a: _Args) -> Result:
    k.process_kill(a.process())
    return None


def _thread_state(k: SimKernel, a: _Args) -> Result:
    name = a.text("state")
    state = _THREAD_STATES.get(name.lower())
    if state is None:
        raise _Bad(f"'state': unknown thread state {name!r} ({', '.join(s for s in ThreadState)})")
    k.thread_set_state(a.thread(), state)
    return None


def _vmo(k: SimKernel, a: _Args) -> Result:
    owner = a.owner()
    return k.vmo_create(
        a.number("size"),
        a.text("name", ""),
        owner=owner,
        koid=a.koid(),
        rights=a.rights(default=Rights.DEFAULT_VMO),
    )


def _physical(k: SimKernel, a: _Args) -> Result:
    owner = a.owner()
    return k.vmo_create_physical(
        a.number("paddr"),
        a.number("size"),
        a.text("name", ""),
        owner=owner,
        koid=a.koid(),
        rights=a.rights(default=Rights.DEFAULT_VMO),
    )


def _clone(k: SimKernel, a: _Args) -> Result:
    parent = a.vmo()
    offset = a.number("offset", 0)
    owner = a.owner()
    return k.vmo_clone(
        parent,
        offset,
        a.number("size", max(0, parent.size - offset)),
        a.text("name") if a.has("name") else None,
        owner=owner,
        koid=a.koid(),
        rights=a.rights(default=Rights.DEFAULT_VMO),
    )


def _range(a: _Args, vmo: SimVmo) -> tuple[int, int]:
    offset = a.number("offset", 0)
    return offset, a.number("size", max(0, vmo.size - offset))


def _write(k: SimKernel, a: _Args) -> Result:
    vmo = a.vmo()
    k.vmo_write(vmo, *_range(a, vmo))
    return None


def _decommit(k: SimKernel, a: _Args) -> Result:
    vmo = a.vmo()
    k.vmo_decommit(vmo, *_range(a, vmo))
    return None


def _resize(k: SimKernel, a: _Args) -> Result:
    k.vmo_set_size(a.vmo(), a.number("size"))
    return None


def _rename(k: SimKernel, a: _Args) -> Result:
    k.vmo_set_name(a.vmo(), a.text("name"))
    return None


def _release(k: SimKernel, a: _Args) -> Result:
    k.kernel_release(a.vmo())
    return None


def _vmar(k: SimKernel, a: _Args) -> Result:
    return k.vmar_allocate(
        a.vmar("parent"),
        a.number("size"),
        addr=a.opt_number("addr"),
        name=a.text("name", "useralloc"),
        koid=a.koid(),
    )


def _vmar_destroy(k: SimKernel, a: _Args) -> Result:
    obj = a.obj("vmar", SimVmar)
    assert isinstance(obj, SimVmar)
    k.vmar_destroy(obj)
    return None


def _map(k: SimKernel, a: _Args) -> Result:
    return k.vmar_map(
        a.vmar(),
        a.vmo(),
        vmo_offset=a.number("offset", 0),
        size=a.opt_number("size"),
        perms=a.perms(default="rw-"),
        addr=a.opt_number("addr"),
    )


def _region(a: _Args) -> tuple[SimVmar, int, int]:
    """The range an unmap/protect works on: a named ``mapping`` (all of it), or ``vmar``
    with ``addr`` and ``size``."""
    if a.has("mapping"):
        if a.has("vmar"):
            raise _Bad("give either 'mapping' or 'vmar', 'addr' and 'size', not both")
        mapping = a.mapping()
        return mapping.vmar, mapping.base, mapping.size
    return a.vmar(), a.number("addr"), a.number("size")


def _unmap(k: SimKernel, a: _Args) -> Result:
    k.vmar_unmap(*_region(a))
    return None


def _protect(k: SimKernel, a: _Args) -> Result:
    vmar, addr, size = _region(a)
    k.vmar_protect(vmar, addr, size, a.perms())
    return None


def _object(k: SimKernel, a: _Args) -> Result:
    name = a.text("type")
    kind = _OBJECT_TYPES.get(name)
    if kind is None:
        raise _Bad(f"'type': unknown object type {name!r} ({', '.join(_OBJECT_TYPES)})")
    return k.object_create(a.process(), kind, koid=a.koid())


def _channel(k: SimKernel, a: _Args) -> Result:
    peer = a.process("peer") if a.has("peer") else None
    return k.channel_create(a.process(), peer)


def _grant(k: SimKernel, a: _Args) -> Result:
    process = a.process()
    target = a.obj("object", KObject)
    assert isinstance(target, KObject)
    return HandleRef(process, k.handle_grant(process, target, a.rights()))


def _duplicate(k: SimKernel, a: _Args) -> Result:
    process, value = a.handle()
    rights = a.rights() if a.has("rights") else None
    return HandleRef(process, k.handle_duplicate(process, value, rights))


def _transfer(k: SimKernel, a: _Args) -> Result:
    process, value = a.handle()
    to = a.process("to")
    return HandleRef(to, k.handle_transfer(process, value, to))


def _close(k: SimKernel, a: _Args) -> Result:
    k.handle_close(*a.handle())
    return None


_CREATE = ("koid", "as")
_OWNED = ("owner", "kernel_only", "rights", *_CREATE)
_HANDLE = ("handle", "process", "object")

#: Every op: its handler, the keys it takes, and whether ``as`` names a result.
OPS: dict[str, tuple[Handler, tuple[str, ...]]] = {
    "job": (_job, ("parent", "name", *_CREATE)),
    "process": (_process, ("job", "name", *_CREATE)),
    "thread": (_thread, ("process", "name", *_CREATE)),
    "start": (_start, ("process", "thread")),
    "kill": (_kill, ("process",)),
    "thread_state": (_thread_state, ("thread", "state")),
    "vmo": (_vmo, ("size", "name", *_OWNED)),
    "physical": (_physical, ("paddr", "size", "name", *_OWNED)),
    "clone": (_clone, ("vmo", "offset", "size", "name", *_OWNED)),
    "write": (_write, ("vmo", "offset", "size")),
    "commit": (_write, ("vmo", "offset", "size")),
    "decommit": (_decommit, ("vmo", "offset", "size")),
    "resize": (_resize, ("vmo", "size")),
    "rename": (_rename, ("vmo", "name")),
    "release": (_release, ("vmo",)),
    "vmar": (_vmar, ("parent", "size", "addr", "name", *_CREATE)),
    "vmar_destroy": (_vmar_destroy, ("vmar",)),
    "map": (_map, ("vmar", "vmo", "offset", "size", "perms", "addr", "as")),
    "unmap": (_unmap, ("mapping", "vmar", "addr", "size")),
    "protect": (_protect, ("mapping", "vmar", "addr", "size", "perms")),
    "object": (_object, ("process", "type", *_CREATE)),
    "channel": (_channel, ("process", "peer", "as")),
    "grant": (_grant, ("process", "object", "rights", "as")),
    "duplicate": (_duplicate, (*_HANDLE, "rights", "as")),
    "transfer": (_transfer, (*_HANDLE, "to", "as")),
    "close": (_close, _HANDLE),
}

_KERNEL_KEYS = {"memory": "memory_bytes", "wired": "wired_bytes", "other": "other_bytes"}
_TOP_KEYS = ("description", "kernel", "ops")


# --------------------------------------------------------------------------- loading


def _kernel(settings: object) -> SimKernel:
    if not isinstance(settings, dict):
        raise _Bad("'kernel' must be a table")
    kwargs: dict[str, int] = {}
    args = _Args(settings, {})
    for key in settings:
        if key in _KERNEL_KEYS:
            kwargs[_KERNEL_KEYS[key]] = args.number(key)
        elif key in ("first_koid", "cpus"):
            value = settings[key]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise _Bad(f"{key!r} must be a positive integer, not {value!r}")
            kwargs[key] = value
        else:
            known = ", ".join([*_KERNEL_KEYS, "first_koid", "cpus"])
            raise _Bad(f"unknown key {key!r} (expected {known})")
    memory = kwargs.pop("memory_bytes", 2 << 30)
    return SimKernel(memory, **kwargs)


def _new_names(kind: str, op: Mapping[str, Any], taken: Mapping[str, object]) -> list[str]:
    """The names ``as`` gives the op's results, checked before the op runs so that a
    failing op changes nothing."""
    if "as" not in op:
        return []
    value = op["as"]
    if kind == "channel":
        if not (isinstance(value, list) and len(value) == 2):
            raise _Bad(
                f'\'as\' of a channel names both ends, e.g. as = ["c0", "c1"]; not {value!r}'
            )
        new = value
    else:
        new = [value]
    for name in new:
        if not isinstance(name, str) or not name:
            raise _Bad(f"'as' must be a non-empty string, not {name!r}")
        if name in taken or new.count(name) > 1:
            raise _Bad(f"'as': the name {name!r} is already taken")
    return new


def _run_op(k: SimKernel, op: object, names: dict[str, object]) -> None:
    if not isinstance(op, dict):
        raise _Bad(f"an op must be a table, not {op!r}")
    kind = op.get("op")
    if not isinstance(kind, str):
        raise _Bad("missing 'op' (the operation to run)")
    if kind not in OPS:
        raise _Bad(f"unknown op {kind!r} (ops: {', '.join(OPS)})")
    handler, keys = OPS[kind]
    for key in op:
        if key != "op" and key not in keys:
            raise _Bad(f"unknown key {key!r} (takes: {', '.join(keys)})")
    new = _new_names(kind, op, names)
    result = handler(k, _Args(op, names))
    results = result if isinstance(result, tuple) else (result,)
    names.update(zip(new, results, strict=False))


def loads(text: str, source: str, *, json_format: bool = False) -> SimKernel:
    """Build the world described by ``text``; ``source`` names it in error messages."""
    try:
        doc: object = json.loads(text) if json_format else tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SourceError(f"{source}: invalid TOML: {err}") from None
    except json.JSONDecodeError as err:
        raise SourceError(
            f"{source}: invalid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
        ) from None
    if not isinstance(doc, dict):
        raise SourceError(f"{source}: a world file must be a table of description, kernel, ops")
    for key in doc:
        if key not in _TOP_KEYS:
            raise SourceError(
                f"{source}: unknown top-level key {key!r} (expected {', '.join(_TOP_KEYS)})"
            )
    try:
        kernel = _kernel(doc.get("kernel", {}))
    except _Bad as err:
        raise SourceError(f"{source}: kernel: {err}") from None
    except KernelError as err:
        raise SourceError(f"{source}: kernel: {err}") from None
    ops = doc.get("ops", [])
    if not isinstance(ops, list):
        raise SourceError(f"{source}: 'ops' must be a list of tables ([[ops]])")
    names: dict[str, object] = {"root": kernel.root_job, "kernel": KERNEL}
    for i, op in enumerate(ops, 1):
        try:
            _run_op(kernel, op, names)
        except (_Bad, KernelError) as err:
            kind = op.get("op") if isinstance(op, dict) else None
            label = f"op {i} ({kind})" if isinstance(kind, str) and kind in OPS else f"op {i}"
            raise SourceError(f"{source}: {label}: {err}") from None
    return kernel


def load(path: Path) -> SimKernel:
    """Build the world in the file at ``path`` (``.json`` is JSON, anything else TOML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise SourceError(f"{path}: cannot read world file: {reason}") from None
    return loads(text, str(path), json_format=path.suffix.lower() == ".json")
