"""Every built-in world builds exactly the kernel it built before the world loaders were
merged into one (sources/sim/worlds/program.py): the whole kernel object graph, every
page bitmap, koid, address, handle value, heap byte and CPU counter, is pinned by a
digest. A change that moves any of them changes what every tool prints for that world;
if it is meant, update the digest in the same commit and say why."""

from __future__ import annotations

import hashlib
import random
import tomllib
from collections.abc import Callable
from enum import Enum
from typing import Any

import pytest
from paths import REPO

from mxmem.sources.sim import KERNEL, Kernel
from mxmem.sources.sim.kernel import KObject, SimProcess, SimVmar
from mxmem.sources.sim.worlds import build, doc, program, scale
from mxmem.sources.sim.worlds.program import HandleRef, Machine

EXAMPLE = REPO / "examples" / "worlds" / "small-system.toml"


def fingerprint(kernel: Kernel) -> str:
    """A digest of everything reachable from the kernel, in a canonical order (objects
    numbered as first met, so no address or ``id()`` leaks in)."""
    seen: dict[int, int] = {}
    out: list[str] = []
    stack: list[object] = [kernel]
    while stack:
        obj = stack.pop()
        if isinstance(obj, str):
            out.append(f"{obj!r};")
            continue
        if isinstance(obj, int) and not isinstance(obj, bool | Enum):
            out.append(f"{obj:x};")  # page bitmaps are too long for decimal
            continue
        if obj is None or isinstance(obj, bool | float | Enum):
            out.append(f"{obj!r};")
            continue
        if isinstance(obj, random.Random):
            out.append(f"rng{obj.getstate()!r};")
            continue
        key = id(obj)
        if key in seen:
            out.append(f"@{seen[key]};")
            continue
        seen[key] = len(seen)
        if isinstance(obj, list | tuple):
            out.append(f"{type(obj).__name__}[{len(obj)}]")
            stack.extend(reversed(obj))
            continue
        if isinstance(obj, dict):
            out.append(f"dict[{len(obj)}]")
            for k, v in reversed(list(obj.items())):
                stack.append(v)
                stack.append(k)
            continue
        if isinstance(obj, set):
            raise TypeError("sets have no canonical order")
        fields: dict[str, object] = {}
        for cls in type(obj).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if hasattr(obj, slot):
                    fields[slot] = getattr(obj, slot)
        fields.update(getattr(obj, "__dict__", {}))
        out.append(f"{type(obj).__name__}{{{','.join(sorted(fields))}}}")
        for name in reversed(sorted(fields)):
            stack.append(fields[name])
    return hashlib.sha256("".join(out).encode()).hexdigest()


PINS = {
    "doc": "e403060977ab927ee604bbf28f482e24d9d2bde9b864f8bd3ec4bfef96b00690",
    "doc-vmaps": "d0cc7aa0403f3f7e167ab819cd69774c7daa214479dfd3d3587d1ce5ea2b2f41",
    "doc-vmos": "4a31b801230a9b0a5f18060cfcf3bd837bb9cde8a5e039b69abdf75c31895e40",
    "scale:1": "2e9ada20fa026fe4e40a709675805683453d3704824bed07d7772740abd79928",
    "scale:300": "ebdbee709968ac066adbb339aba8218454702406ab928ad937f6f8ea20068fd1",
    "scale:300:7": "3acf4bf13e4df3fbbcd306d6aaacf493f8e3bdf0ac9ccf6b6587bf3115db5d42",
    str(EXAMPLE): "5eb683bc7976d52ad0f80c89c2af678dad4e40b69b9ef9ed1a5902e0417bc7f2",
}


@pytest.mark.parametrize("spec", list(PINS))
def test_world_builds_the_pinned_kernel(spec: str) -> None:
    assert fingerprint(build(spec)) == PINS[spec]


# --------------------------------------------------------------------------- one loader


Recording = tuple[list[tuple[str, tuple[object, ...], object]], dict[int, int]]


def _replay(recording: Recording, original: Kernel, kernel: Kernel) -> Kernel:
    """Run recorded ops again on ``kernel``, each old result standing for the new one (and
    the root job and each process's root VMAR, which the kernel makes, for theirs)."""
    ops, roots = recording
    new: dict[int, object] = {id(KERNEL): KERNEL, id(original.root_job): kernel.root_job}
    machine = Machine(kernel)

    def remap(arg: object) -> object:
        if isinstance(arg, tuple):
            return tuple(remap(a) for a in arg)
        if isinstance(arg, HandleRef):
            process = remap(arg.process)
            assert isinstance(process, SimProcess)
            return HandleRef(process, arg.value)
        if isinstance(arg, KObject | SimVmar):
            return new[id(arg)]
        return arg

    for kind, args, result in ops:
        got = machine(kind, *(remap(a) for a in args))
        if isinstance(result, tuple) and isinstance(got, tuple):
            new.update(zip((id(r) for r in result), got, strict=True))
        elif result is not None:
            new[id(result)] = got
        if isinstance(got, SimProcess):
            assert got.aspace is not None
            new[roots[id(result)]] = got.aspace.root
    return kernel


def _record(
    monkeypatch: pytest.MonkeyPatch, build_world: Callable[[], Kernel]
) -> tuple[Kernel, Recording]:
    """Build a world, recording every op the one interpreter (program.Machine) runs, and
    the root VMAR of each process it made (ids: the objects stay alive in the ops)."""
    ops: list[tuple[str, tuple[object, ...], object]] = []
    roots: dict[int, int] = {}
    for kind, handler in list(program.RUN.items()):

        def recorded(k: Kernel, *args: object, _kind: str = kind, _run: Any = handler) -> object:
            result = _run(k, *args)
            ops.append((_kind, args, result))
            if isinstance(result, SimProcess) and result.aspace is not None:
                roots[id(result)] = id(result.aspace.root)
            return result

        monkeypatch.setitem(program.RUN, kind, recorded)
    kernel = build_world()
    monkeypatch.undo()
    return kernel, (ops, roots)


@pytest.mark.parametrize("spec", ["doc", "doc-vmaps", "doc-vmos", "scale:40"])
def test_every_world_is_its_program_of_ops(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    # Every built-in world drives the kernel only through program.Machine: the ops it
    # ran, replayed on a freshly booted kernel of the same settings, build the same kernel.
    original, recording = _record(monkeypatch, lambda: build(spec))
    assert recording[0]
    if spec.startswith("scale:"):
        fresh = Kernel(scale.memory_for(40), wired_bytes=scale.WIRED_BYTES)
    else:
        fresh = Kernel(doc.MEMORY_BYTES, wired_bytes=doc.WIRED_BYTES, first_koid=doc.ROOT_JOB)
    assert fingerprint(_replay(recording, original, fresh)) == fingerprint(original)


def test_a_world_file_runs_through_the_same_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each op of the file is one op of the machine, of the same kind.
    world = tomllib.loads(EXAMPLE.read_text())
    original, recording = _record(monkeypatch, lambda: build(str(EXAMPLE)))
    assert [kind for kind, _, _ in recording[0]] == [op["op"] for op in world["ops"]]
    fresh = Kernel(256 << 20, wired_bytes=16 << 20, first_koid=1024)
    assert fingerprint(_replay(recording, original, fresh)) == fingerprint(original)
