"""Every built-in world builds exactly the kernel it built before the world loaders were
merged into one (sources/sim/worlds/program.py): the whole kernel object graph, every
page bitmap, koid, address, handle value, heap byte and CPU counter, is pinned by a
digest. A change that moves any of them changes what every tool prints for that world;
if it is meant, update the digest in the same commit and say why."""

from __future__ import annotations

import hashlib
import random
from enum import Enum
from pathlib import Path

import pytest

from mxmem.sources.sim import Kernel
from mxmem.sources.sim.worlds import build

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "worlds" / "small-system.toml"


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
            out.append(f"rng{hash(obj.getstate())};")
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
    "doc": "1ba363c3c68fc1358527f91ab7032e1f89841a98080eba735395e505847dee60",
    "doc-vmaps": "70eb30febffacad5e14432120313192c07e418211839e5fed6c9754387fd4348",
    "doc-vmos": "17748c9d3257bf2c870a2ac624da4aba59c0204793576ed47ddf7a0c47d29636",
    "scale:1": "ec50e0f9191cb8a60c657f7495d219d35c9503f3269fa5533b3dd32cf6b930c8",
    "scale:300": "201ee4d7b81282fde01860a0bd9bb82cb96f5392ab6d4009fa2b2bcd02221aea",
    "scale:300:7": "d177ba8fdeed74f4f1cf45cf7e85bb8320ed5b113a58891741c175dc473d8d70",
    str(EXAMPLE): "47f64213bc94c85da960977a4b1ac7a0967555fc931a526cc6cbf657c6a4fd38",
}


@pytest.mark.parametrize("spec", list(PINS))
def test_world_builds_the_pinned_kernel(spec: str) -> None:
    assert fingerprint(build(spec)) == PINS[spec]
