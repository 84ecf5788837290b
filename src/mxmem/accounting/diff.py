"""What changed between two snapshots (``mxmem diff``): kernel figures, jobs, processes
and VMO names, each old -> new with its delta, sorted by growth.

Pure: two :class:`~mxmem.model.Snapshot` in, a :class:`Diff` value out. The snapshots may
come from different sources (a memgraph capture against a live sim), so nothing here
relies on more than the model.

Tasks are matched by koid when the same koid has the same name on both sides; what is left
is paired by name (equal names, in koid order on each side: a restarted process keeps its
name and gets a new koid); the rest is new or gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum

from mxmem.accounting.figures import figures, rule_for
from mxmem.model import KernelMemory, Snapshot

__all__ = [
    "JOB_COLUMNS",
    "PROCESS_COLUMNS",
    "Diff",
    "FieldDelta",
    "NameDelta",
    "Status",
    "TaskDelta",
    "diff",
    "match_tasks",
]


#: The figures of a process row and of a job row, in order (jobs sum no SHARED: ps.c).
PROCESS_COLUMNS = ("pss_bytes", "private_bytes", "shared_bytes")
JOB_COLUMNS = ("pss_bytes", "private_bytes")


class Status(StrEnum):
    SAME = "same"  # matched by koid (the figures may still differ)
    RENEWED = "renewed"  # matched by name: the koid changed
    NEW = "new"
    GONE = "gone"


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldDelta:
    """One :class:`KernelMemory` field; ``None`` where that snapshot has no kernel figures."""

    name: str
    old: int | None
    new: int | None

    @property
    def delta(self) -> int:
        return (self.new or 0) - (self.old or 0)

    @property
    def changed(self) -> bool:
        return self.old != self.new


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskDelta:
    """A job or process on either side. ``old``/``new`` are its figures in the order of
    :data:`PROCESS_COLUMNS` (or :data:`JOB_COLUMNS`), ``None`` on the side where
    it does not exist. Unknown figures (an unreadable process) count as zero; the diff's
    notes say how many there were."""

    name: str
    old_koid: int | None
    new_koid: int | None
    old: tuple[int, ...] | None
    new: tuple[int, ...] | None

    @property
    def status(self) -> Status:
        if self.old_koid is None:
            return Status.NEW
        if self.new_koid is None:
            return Status.GONE
        return Status.SAME if self.old_koid == self.new_koid else Status.RENEWED

    @property
    def koid(self) -> int:
        """The koid to show: the new one, or the old one of a task that is gone."""
        koid = self.new_koid if self.new_koid is not None else self.old_koid
        assert koid is not None
        return koid

    @property
    def deltas(self) -> tuple[int, ...]:
        old = self.old or (0,) * len(self.new or ())
        new = self.new or (0,) * len(old)
        return tuple(n - o for o, n in zip(old, new, strict=True))

    @property
    def changed(self) -> bool:
        return self.status is not Status.SAME or self.old != self.new


@dataclass(frozen=True, slots=True, kw_only=True)
class NameDelta:
    """Committed bytes of all VMOs of one name, and how many VMOs had it."""

    name: str
    old_bytes: int
    new_bytes: int
    old_count: int
    new_count: int

    @property
    def delta(self) -> int:
        return self.new_bytes - self.old_bytes

    @property
    def changed(self) -> bool:
        # By bytes only: an uncommitted VMO appearing (a memgraph capture lists no VMOs
        # without mappings) is not a change of memory.
        return self.delta != 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Diff:
    """Every row, changed or not, each list sorted by growth (the first figure's delta,
    descending; ties by name, then koid)."""

    old_source: str
    new_source: str
    kernel: tuple[FieldDelta, ...]
    jobs: tuple[TaskDelta, ...]
    processes: tuple[TaskDelta, ...]
    vmo_names: tuple[NameDelta, ...]
    notes: tuple[str, ...] = ()


def match_tasks(
    old: Mapping[int, str], new: Mapping[int, str]
) -> list[tuple[int | None, int | None]]:
    """Pairs ``(old koid, new koid)`` from two ``koid -> name`` maps; ``None`` on the side
    a task is missing from. Same koid and name first; then equal names in koid order."""
    pairs: list[tuple[int | None, int | None]] = []
    left_old: dict[str, list[int]] = {}
    left_new: dict[str, list[int]] = {}
    for koid in sorted(old):
        if new.get(koid) == old[koid]:
            pairs.append((koid, koid))
        else:
            left_old.setdefault(old[koid], []).append(koid)
    for koid in sorted(new):
        if old.get(koid) != new[koid]:
            left_new.setdefault(new[koid], []).append(koid)
    for name in sorted(left_old.keys() | left_new.keys()):
        olds, news = left_old.get(name, []), left_new.get(name, [])
        for i in range(max(len(olds), len(news))):
            pairs.append((olds[i] if i < len(olds) else None, news[i] if i < len(news) else None))
    return pairs


def _kernel(old: KernelMemory | None, new: KernelMemory | None) -> tuple[FieldDelta, ...]:
    if old is None and new is None:
        return ()
    return tuple(
        FieldDelta(
            name=f.name,
            old=None if old is None else getattr(old, f.name),
            new=None if new is None else getattr(new, f.name),
        )
        for f in fields(KernelMemory)
    )


def _tasks(
    old_names: Mapping[int, str],
    new_names: Mapping[int, str],
    old_figures: Mapping[int, tuple[int, ...]],
    new_figures: Mapping[int, tuple[int, ...]],
) -> tuple[TaskDelta, ...]:
    rows = [
        TaskDelta(
            name=old_names[o] if o is not None else new_names[n] if n is not None else "",
            old_koid=o,
            new_koid=n,
            old=None if o is None else old_figures[o],
            new=None if n is None else new_figures[n],
        )
        for o, n in match_tasks(old_names, new_names)
    ]
    rows.sort(key=lambda r: (-r.deltas[0], r.name, r.koid))
    return tuple(rows)


def _vmo_names(old: Snapshot, new: Snapshot) -> tuple[NameDelta, ...]:
    def totals(snapshot: Snapshot) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for vmo in snapshot.vmos.values():
            entry = out.setdefault(vmo.name, [0, 0])
            entry[0] += vmo.committed_bytes
            entry[1] += 1
        return out

    a, b = totals(old), totals(new)
    rows = [
        NameDelta(
            name=name,
            old_bytes=a.get(name, [0, 0])[0],
            new_bytes=b.get(name, [0, 0])[0],
            old_count=a.get(name, [0, 0])[1],
            new_count=b.get(name, [0, 0])[1],
        )
        for name in a.keys() | b.keys()
    ]
    rows.sort(key=lambda r: (-r.delta, r.name))
    return tuple(rows)


def diff(
    old: Snapshot, new: Snapshot, *, old_label: str | None = None, new_label: str | None = None
) -> Diff:
    """Everything that differs between ``old`` and ``new`` (and everything that does not).

    The labels name the two sides in the output (default: each snapshot's source; a
    capture keeps the name of the source it was taken from, so the CLI passes the file)."""
    notes: list[str] = []
    sides = []
    for label, snapshot in (("old", old), ("new", new)):
        # The 2017 figures (Fuchsia's Summary for a capture of VMO lists), as ps shows them.
        memory = figures(snapshot, rule_for(snapshot, "2017"))
        procs: dict[int, tuple[int, ...]] = {}
        unknown = 0
        for koid, mine in memory.processes.items():
            if mine is None:
                unknown += 1
                procs[koid] = (0, 0, 0)
            else:
                procs[koid] = (mine.total, mine.private, mine.shared)
        if unknown:
            notes.append(f"{label}: {unknown} processes have unknown figures (counted as 0)")
        jobs = {k: (t.total, t.private) for k, t in memory.jobs.items()}
        sides.append((procs, jobs))
    (old_procs, old_jobs), (new_procs, new_jobs) = sides
    if old.kernel is None or new.kernel is None:
        missing = " and ".join(s for s, snap in (("old", old), ("new", new)) if snap.kernel is None)
        notes.append(f"{missing}: no kernel memory figures")
    return Diff(
        old_source=old.source if old_label is None else old_label,
        new_source=new.source if new_label is None else new_label,
        kernel=_kernel(old.kernel, new.kernel),
        jobs=_tasks(
            {k: j.name for k, j in old.jobs.items()},
            {k: j.name for k, j in new.jobs.items()},
            old_jobs,
            new_jobs,
        ),
        processes=_tasks(
            {k: p.name for k, p in old.processes.items()},
            {k: p.name for k, p in new.processes.items()},
            old_procs,
            new_procs,
        ),
        vmo_names=_vmo_names(old, new),
        notes=tuple(notes),
    )
