"""Sources for tests: one that always hands out the same snapshot (figures no kernel
gives), and a simulated kernel that records what it was asked for."""

from __future__ import annotations

from collections.abc import Collection

from mxmem.model import Level, Snapshot
from mxmem.sources.sim import Kernel, SimSource


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


class RecordingSource(SimSource):
    """A simulated kernel that records each snapshot request: ``calls`` holds
    (level, the processes asked for or None); ``levels`` just the levels."""

    def __init__(self, kernel: Kernel) -> None:
        super().__init__(kernel)
        self.calls: list[tuple[Level, list[int] | None]] = []

    @property
    def levels(self) -> list[Level]:
        return [level for level, _ in self.calls]

    def snapshot(
        self, level: Level = Level.FULL, processes: Collection[int] | None = None
    ) -> Snapshot:
        self.calls.append((level, None if processes is None else list(processes)))
        return super().snapshot(level, processes)
