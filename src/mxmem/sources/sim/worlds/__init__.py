"""Built-in worlds of the simulated kernel, world files, and the scale generator.

A world boots a :class:`Kernel` and drives it with ordinary kernel operations; nothing is
canned output. Every world is a program of ops in one vocabulary, run by one interpreter
(``program.py``): world files (``worldfile.py``) and the doc's worlds (``doc.py``, with
the 2017 loader in ``launchpad.py``) through the world-file loader, scale worlds
(``scale.py``) straight from their generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mxmem.sources.sim.kernel import Kernel


@dataclass(frozen=True, slots=True)
class World:
    name: str
    description: str
    build: Callable[[], Kernel]


def _registry() -> dict[str, World]:
    from mxmem.sources.sim.worlds import doc

    return {w.name: w for w in doc.WORLDS}


def worlds() -> list[World]:
    """The built-in worlds, in the order ``mxmem scenarios`` lists them."""
    return list(_registry().values())


def build(spec: str) -> Kernel:
    """Build a world from its spec: a built-in name, ``scale:N[:SEED]``, or a file path.

    Raises ``KeyError`` with a one-line message for an unknown spec.
    """
    if spec.startswith("scale:"):  # first: a scale world needs none of the doc's loader
        from mxmem.sources.sim.worlds import scale

        return scale.build_spec(spec)
    registry = _registry()
    if spec in registry:
        return registry[spec].build()
    path = Path(spec)
    if path.suffix.lower() in (".toml", ".json") or path.exists():
        from mxmem.sources.sim.worlds import worldfile

        return worldfile.load(path)
    raise KeyError(f"unknown world {spec!r}; `mxmem scenarios` lists the built-in worlds")
