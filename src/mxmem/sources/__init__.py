"""Sources: where snapshots come from. Each turns its system into a :class:`Snapshot`.

A source is asked for a :class:`~mxmem.model.Level` (and optionally only some processes),
so cheap tools stay cheap. Sources never import renderers.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol, runtime_checkable

from mxmem.model import Level, Snapshot


class Source(Protocol):
    """Anything that can produce snapshots."""

    @property
    def name(self) -> str: ...

    def snapshot(
        self, level: Level = Level.FULL, processes: Collection[int] | None = None
    ) -> Snapshot:
        """A snapshot at ``level``; with ``processes``, only those processes need be
        complete (the rest may be omitted)."""
        ...


@runtime_checkable
class Advancing(Protocol):
    """A source whose time passes only when told: a simulated kernel.

    A tool that samples over time (``kstats``) sleeps the interval and then calls
    ``advance`` with it when ``isinstance(source, Advancing)``; the system behind any
    other source (a live host) moves on by itself while the tool sleeps. Kept apart from
    :class:`Source` so live sources need no do-nothing method.
    """

    def advance(self, seconds: float) -> None: ...


def open_source(spec: str) -> Source:
    """Open a source from its command-line spelling.

    ``sim`` / ``sim:WORLD`` / ``sim:scale:N`` / ``sim:PATH.toml|json`` — the simulated kernel.
    ``host`` — the running Linux system; ``host:ROOT`` — a tree with ``ROOT/proc`` and
    ``ROOT/sys`` (a fixture). ``capture:PATH`` — a capture file: an mxmem snapshot
    (``mxmem capture``), memgraph JSON or a Fuchsia memory_monitor capture, gzipped or not.
    """
    kind, _, arg = spec.partition(":")
    if kind == "sim":
        from mxmem.sources.sim import open_sim

        return open_sim(arg or "doc")
    if kind == "host":
        from mxmem.sources.linux import open_host

        return open_host(arg)
    if kind == "capture":
        from mxmem.sources.capture import open_capture

        return open_capture(arg)
    from mxmem.errors import SourceError

    raise SourceError(f"unknown source {spec!r}")
