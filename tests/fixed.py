"""A source that always hands out one snapshot: for tests of figures no kernel gives."""

from __future__ import annotations

from collections.abc import Collection

from mxmem.model import Level, Snapshot


class FixedSource:
    """Hands out ``snapshot`` whatever level or processes are asked for, and remembers
    the levels asked for (``levels``)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self.levels: list[Level] = []

    @property
    def name(self) -> str:
        return "fixed"

    def snapshot(
        self, level: Level = Level.FULL, processes: Collection[int] | None = None
    ) -> Snapshot:
        self.levels.append(level)
        return self._snapshot
