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

Each op is checked and read (``opargs.py``), then run as a program op by the one
interpreter every world uses (``program.Machine``). :func:`run` also takes *macros*: ops
of a world written in Python that stand for many (the doc's worlds ``spawn`` a process
through the 2017 loader this way).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mxmem.errors import KernelError, SourceError
from mxmem.model import Rights, ThreadState
from mxmem.sources.sim.kernel import KERNEL, KObject, SimVmar, SimVmo
from mxmem.sources.sim.kernel import Kernel as SimKernel
from mxmem.sources.sim.worlds.opargs import OBJECT_TYPES, THREAD_STATES, BadOp, OpArgs
from mxmem.sources.sim.worlds.program import Machine, Op

__all__ = ["OPS", "Macro", "load", "loads", "run"]


# --------------------------------------------------------------------------- the ops

# Each op of a file is read into a program op (program.py), which the machine runs.
Compile = Callable[[OpArgs], Op]
Result = object  # what ``as`` names: a kernel object, a handle, a pair of channel ends
# An op that stands for many, given the machine to run them on.
Macro = Callable[[Machine, OpArgs], Result]


def _job(a: OpArgs) -> Op:
    return ("job", a.job("parent", "root"), a.text("name"), a.koid())


def _process(a: OpArgs) -> Op:
    return ("process", a.job("job"), a.text("name"), a.koid())


def _thread(a: OpArgs) -> Op:
    return ("thread", a.process(), a.text("name", ""), a.koid())


def _start(a: OpArgs) -> Op:
    if a.has("process"):
        return ("start", a.process(), a.thread() if a.has("thread") else None)
    return ("start", None, a.thread())


def _kill(a: OpArgs) -> Op:
    return ("kill", a.process())


def _thread_state(a: OpArgs) -> Op:
    name = a.text("state")
    state = THREAD_STATES.get(name.lower())
    if state is None:
        raise BadOp(f"'state': unknown thread state {name!r} ({', '.join(s for s in ThreadState)})")
    return ("thread_state", a.thread(), state)


def _vmo(a: OpArgs) -> Op:
    owner = a.owner()
    return (
        "vmo",
        a.number("size"),
        a.text("name", ""),
        owner,
        a.koid(),
        a.rights(default=Rights.DEFAULT_VMO),
    )


def _physical(a: OpArgs) -> Op:
    owner = a.owner()
    return (
        "physical",
        a.number("paddr"),
        a.number("size"),
        a.text("name", ""),
        owner,
        a.koid(),
        a.rights(default=Rights.DEFAULT_VMO),
    )


def _clone(a: OpArgs) -> Op:
    parent = a.vmo()
    offset = a.number("offset", 0)
    owner = a.owner()
    return (
        "clone",
        parent,
        offset,
        a.number("size", max(0, parent.size - offset)),
        a.text("name") if a.has("name") else None,
        owner,
        a.koid(),
        a.rights(default=Rights.DEFAULT_VMO),
    )


def _range(a: OpArgs, vmo: SimVmo) -> tuple[int, int]:
    offset = a.number("offset", 0)
    return offset, a.number("size", max(0, vmo.size - offset))


def _write(a: OpArgs) -> Op:
    vmo = a.vmo()
    return ("write", vmo, *_range(a, vmo))


def _decommit(a: OpArgs) -> Op:
    vmo = a.vmo()
    return ("decommit", vmo, *_range(a, vmo))


def _resize(a: OpArgs) -> Op:
    return ("resize", a.vmo(), a.number("size"))


def _rename(a: OpArgs) -> Op:
    return ("rename", a.vmo(), a.text("name"))


def _release(a: OpArgs) -> Op:
    return ("release", a.vmo())


def _vmar(a: OpArgs) -> Op:
    return (
        "vmar",
        a.vmar("parent"),
        a.number("size"),
        a.opt_number("addr"),
        a.text("name", "useralloc"),
        a.koid(),
    )


def _vmar_destroy(a: OpArgs) -> Op:
    return ("vmar_destroy", a.obj("vmar", SimVmar))


def _map(a: OpArgs) -> Op:
    return (
        "map",
        a.vmar(),
        a.vmo(),
        a.number("offset", 0),
        a.opt_number("size"),
        a.perms(default="rw-"),
        a.opt_number("addr"),
    )


def _region(a: OpArgs) -> tuple[SimVmar, int, int]:
    """The range an unmap/protect works on: a named ``mapping`` (all of it), or ``vmar``
    with ``addr`` and ``size``."""
    if a.has("mapping"):
        if a.has("vmar"):
            raise BadOp("give either 'mapping' or 'vmar', 'addr' and 'size', not both")
        mapping = a.mapping()
        return mapping.vmar, mapping.base, mapping.size
    return a.vmar(), a.number("addr"), a.number("size")


def _unmap(a: OpArgs) -> Op:
    return ("unmap", *_region(a))


def _protect(a: OpArgs) -> Op:
    return ("protect", *_region(a), a.perms())


def _object(a: OpArgs) -> Op:
    name = a.text("type")
    kind = OBJECT_TYPES.get(name)
    if kind is None:
        raise BadOp(f"'type': unknown object type {name!r} ({', '.join(OBJECT_TYPES)})")
    return ("object", a.process(), kind, a.koid())


def _channel(a: OpArgs) -> Op:
    peer = a.process("peer") if a.has("peer") else None
    return ("channel", a.process(), peer)


def _grant(a: OpArgs) -> Op:
    process = a.process()
    return ("grant", process, a.obj("object", KObject), a.rights())


def _duplicate(a: OpArgs) -> Op:
    handle = a.handle()
    return ("duplicate", handle, a.rights() if a.has("rights") else None)


def _transfer(a: OpArgs) -> Op:
    handle = a.handle()
    return ("transfer", handle, a.process("to"))


def _close(a: OpArgs) -> Op:
    return ("close", a.handle())


_CREATE = ("koid", "as")
_OWNED = ("owner", "kernel_only", "rights", *_CREATE)
_HANDLE = ("handle", "process", "object")

#: Every op: what reads it into a program op, and the keys it takes.
OPS: dict[str, tuple[Compile, tuple[str, ...]]] = {
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
        raise BadOp("'kernel' must be a table")
    kwargs: dict[str, int] = {}
    args = OpArgs(settings, {})
    for key in settings:
        if key in _KERNEL_KEYS:
            kwargs[_KERNEL_KEYS[key]] = args.number(key)
        elif key in ("first_koid", "cpus"):
            value = settings[key]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise BadOp(f"{key!r} must be a positive integer, not {value!r}")
            kwargs[key] = value
        else:
            known = ", ".join([*_KERNEL_KEYS, "first_koid", "cpus"])
            raise BadOp(f"unknown key {key!r} (expected {known})")
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
            raise BadOp(
                f'\'as\' of a channel names both ends, e.g. as = ["c0", "c1"]; not {value!r}'
            )
        new = value
    else:
        new = [value]
    for name in new:
        if not isinstance(name, str) or not name:
            raise BadOp(f"'as' must be a non-empty string, not {name!r}")
        if name in taken or new.count(name) > 1:
            raise BadOp(f"'as': the name {name!r} is already taken")
    return new


def _run_op(
    machine: Machine,
    op: object,
    names: dict[str, object],
    macros: Mapping[str, tuple[Macro, tuple[str, ...]]],
) -> None:
    if not isinstance(op, dict):
        raise BadOp(f"an op must be a table, not {op!r}")
    kind = op.get("op")
    if not isinstance(kind, str):
        raise BadOp("missing 'op' (the operation to run)")
    if kind in OPS:
        keys = OPS[kind][1]
    elif kind in macros:
        keys = macros[kind][1]
    else:
        raise BadOp(f"unknown op {kind!r} (ops: {', '.join(OPS)})")
    for key in op:
        if key != "op" and key not in keys:
            raise BadOp(f"unknown key {key!r} (takes: {', '.join(keys)})")
    new = _new_names(kind, op, names)
    args = OpArgs(op, names)
    result = machine(*OPS[kind][0](args)) if kind in OPS else macros[kind][0](machine, args)
    results = result if isinstance(result, tuple) else (result,)
    names.update(zip(new, results, strict=False))


def run(
    world: Mapping[str, object],
    source: str,
    *,
    macros: Mapping[str, tuple[Macro, tuple[str, ...]]] | None = None,
) -> SimKernel:
    """Build the world a parsed world file describes (``kernel`` settings and ``ops``);
    ``source`` names it in error messages; ``macros`` adds ops (name: the macro and the
    keys it takes)."""
    for key in world:
        if key not in _TOP_KEYS:
            raise SourceError(
                f"{source}: unknown top-level key {key!r} (expected {', '.join(_TOP_KEYS)})"
            )
    try:
        kernel = _kernel(world.get("kernel", {}))
    except (BadOp, KernelError) as err:
        raise SourceError(f"{source}: kernel: {err}") from None
    ops = world.get("ops", [])
    if not isinstance(ops, list | tuple):
        raise SourceError(f"{source}: 'ops' must be a list of tables ([[ops]])")
    names: dict[str, object] = {"root": kernel.root_job, "kernel": KERNEL}
    machine = Machine(kernel)
    extra = macros or {}
    for i, op in enumerate(ops, 1):
        try:
            _run_op(machine, op, names, extra)
        except (BadOp, KernelError) as err:
            kind = op.get("op") if isinstance(op, dict) else None
            known = isinstance(kind, str) and (kind in OPS or kind in extra)
            label = f"op {i} ({kind})" if known else f"op {i}"
            raise SourceError(f"{source}: {label}: {err}") from None
    return kernel


def loads(text: str, source: str, *, json_format: bool = False) -> SimKernel:
    """Build the world described by ``text``; ``source`` names it in error messages."""
    # Here, not at the top: the doc's worlds run through this module and parse no text.
    import json
    import tomllib

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
    return run(doc, source)


def load(path: Path) -> SimKernel:
    """Build the world in the file at ``path`` (``.json`` is JSON, anything else TOML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise SourceError(f"{path}: cannot read world file: {reason}") from None
    return loads(text, str(path), json_format=path.suffix.lower() == ".json")
