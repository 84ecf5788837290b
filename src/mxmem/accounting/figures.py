"""The figures every tool prints, computed once: per process, per job and for the whole
system, by the attribution rule asked for (issue 10).

Three rules, one result type:

- ``"2017"``: the Magenta kernel's PSS / PRIVATE / SHARED (:mod:`.magenta2017`);
- ``"fuchsia"``: Fuchsia's Summary (:mod:`.fuchsia`), the rule of a capture that
  carries each process's VMO list (a Fuchsia memory_monitor capture), where the 2017
  rule has no mappings to work on: PSS = scaled, PRIVATE = private, SHARED = total -
  private;
- ``"exact"``: every page once (:mod:`.exact`), rounded to whole bytes here, with the
  whole system's figures (memory no process is blamed for, by kind; the residual).

:func:`rule_for` picks the rule from the ``--attribution`` value and the snapshot;
:func:`figures` computes them. Rounding happens once, here: all the exact parts of the
system (each listed process's private, shared, estimated and per-kind kernel bytes, and
each category) in one largest-remainder call (:func:`~.rounding.integer_parts`; ties go
to processes before categories, then by koid, then by column), so a process's total is
the sum of its printed parts, a job's the sum of its subtree's processes, and the
system's lines add up to its total. Job roll-ups happen once, here, the same way for
every rule: a job sums every process of its subtree whose figures are known; a job
with processes below it none of which is known is :attr:`TaskFigures.all_unknown`
(printed ``?``), never a made-up zero.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

from mxmem.accounting.magenta2017 import process_stats, share_counts
from mxmem.errors import MxmemError
from mxmem.model import Level, Process, Snapshot, TaskStats

if TYPE_CHECKING:
    from fractions import Fraction

    from mxmem.accounting.exact import Attribution

# The exact and fuchsia rules' modules (and fractions) are imported where those rules
# run: the 2017 rule, what `ps` on a live host uses, needs none of them (start-up cost).

__all__ = [
    "EXITED_CATEGORY",
    "RULES",
    "Figures",
    "NoPageFacts",
    "SystemFigures",
    "TaskFigures",
    "carries_vmo_lists",
    "exact_figures",
    "figures",
    "level_for",
    "no_page_facts",
    "rule_for",
    "stats_figures",
    "vmo_bytes",
    "vmo_shares",
]

#: The rules :func:`figures` applies.
RULES = ("2017", "fuchsia", "exact")
# Memory the attribution gives to a process the task tree does not list (on a live
# host, one that exited between the page reads and the task walk): a named category,
# so that the figures still add up to the total.
EXITED_CATEGORY = "processes not in the task tree"


def no_page_facts(source: str) -> str:
    """The one wording of "exact attribution asked of a source without page facts"."""
    return f"--attribution=exact: the source {source} has no page-level facts to attribute"


class NoPageFacts(MxmemError):
    """Exact attribution was asked of a snapshot without page facts (exit 1). Tools
    report it with :func:`no_page_facts` of the source's name as the user gave it."""

    def __init__(self, source: str) -> None:
        super().__init__(no_page_facts(source))


def carries_vmo_lists(snapshot: Snapshot) -> bool:
    """Whether the snapshot's processes come with a VMO list and no address space (a
    Fuchsia memory_monitor capture, or an mxmem capture of one)."""
    return any(
        p.vmo_koids is not None and p.aspace is None for p in snapshot.processes.values()
    )


def level_for(attribution: str, level: Level) -> Level:
    """The snapshot level a tool needs: ``level`` for the 2017 rule, page facts for
    exact attribution."""
    return Level.PAGES if attribution == "exact" else level


def rule_for(snapshot: Snapshot, attribution: str) -> str:
    """The rule for ``--attribution=attribution`` on ``snapshot``: ``"exact"``, or the
    2017 rule, which on a capture of VMO lists is Fuchsia's Summary."""
    if attribution == "exact":
        return "exact"
    return "fuchsia" if carries_vmo_lists(snapshot) else "2017"


class TaskFigures(NamedTuple):
    """One process's or job's figures, in whole bytes.

    ``total`` is the rule's headline: PSS (2017, fuchsia: private + scaled shared) or
    ATTRIB (exact: private + shared + kernel + estimated). ``shared``: the bytes of
    shared VMOs (2017, fuchsia; a job's is a sum tools leave blank) or the share of
    pages others use too (exact). ``kernel``: kernel memory it causes (exact; ``None``
    where the source cannot tell). ``swap``: SwapPss (2017) or its share of swap
    (exact); not in ``total``. ``unknown`` (jobs): processes below whose figures are
    unknown, left out of the sums; ``known``: those whose figures are in them.

    A named tuple, not a dataclass: one is made per process, and a frozen dataclass's
    initialiser costs several times a tuple's.
    """

    total: int = 0
    private: int = 0
    shared: int = 0
    kernel: int | None = None
    kernel_by_kind: tuple[tuple[str, int], ...] = ()
    estimated: int = 0
    swap: int = 0
    unknown: int = 0
    known: int = 0

    @property
    def all_unknown(self) -> bool:
        """A job with processes below whose figures are all unknown: its sums are
        unknown too (printed ``?``), not 0."""
        return self.unknown > 0 and self.known == 0


ZERO = TaskFigures()


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemFigures:
    """The whole system's exact figures, in whole bytes.

    ``processes_bytes + Σ categories + residual_bytes == total_bytes`` always (the
    residual is what the rounded lines leave of the total: 0 on a source that sees
    every page). ``categories``: memory no process is blamed for, by kind, largest first
    (ties by name), none of 0 bytes. ``has_residual``: the attribution does not add up
    (shown even when it rounds to 0 bytes). ``exact``: False when not every figure is
    page-level; ``notes`` say why, and what the rounding had to do beyond rounding.
    ``kernel_known``: the source tells each process's kernel memory.
    """

    total_bytes: int
    processes_bytes: int
    categories: tuple[tuple[str, int], ...] = ()
    residual_bytes: int = 0
    has_residual: bool = False
    swap_bytes: int = 0
    uses_estimates: bool = False
    kernel_known: bool = True
    exact: bool = True
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    """Every process's and job's figures by one rule (``None``: unknown), and, for the
    exact rule, the whole system's and the attribution they were rounded from."""

    rule: str
    processes: Mapping[int, TaskFigures | None]
    jobs: Mapping[int, TaskFigures]
    system: SystemFigures | None = None
    attribution: Attribution | None = None
    # Processes with figures of their own (not the zeros of a dead process or of a
    # kernel thread the rule has nothing for): tools leave the others' cells blank.
    measured: frozenset[int] = field(default_factory=frozenset)
    # The source reports swap per process (the Linux host's SwapPss).
    reports_swap: bool = False


def figures(snapshot: Snapshot, rule: str) -> Figures:
    """The figures of ``snapshot`` by ``rule`` (one of :data:`RULES`; see
    :func:`rule_for`). The exact rule needs page facts (:class:`NoPageFacts`)."""
    if rule == "exact":
        return _exact(snapshot)
    if rule == "fuchsia":
        return _fuchsia(snapshot)
    if rule == "2017":
        return _magenta2017(snapshot)
    raise ValueError(f"unknown rule {rule!r}")


def _roll_up(
    snapshot: Snapshot, processes: Mapping[int, TaskFigures | None]
) -> dict[int, TaskFigures]:
    """Each job's sums over its subtree's known processes; ``unknown`` and ``known``
    count the processes left out and summed. ``kernel`` stays ``None`` where no process
    below tells it."""
    # Plain integer sums per job (total, private, shared, kernel, kernel told, estimated,
    # swap, unknown, known): one TaskFigures per job at the end, not one per addition.
    own: dict[int, list[int]] = {}
    for koid, process in snapshot.processes.items():
        if koid not in processes:
            continue
        figs = processes[koid]
        sums = own.get(process.job_koid)
        if sums is None:
            sums = own[process.job_koid] = [0] * 9
        if figs is None:
            sums[7] += 1
            continue
        sums[0] += figs.total
        sums[1] += figs.private
        sums[2] += figs.shared
        if figs.kernel is not None:
            sums[3] += figs.kernel
            sums[4] = 1
        sums[5] += figs.estimated
        sums[6] += figs.swap
        sums[8] += 1
    return _job_figures(snapshot, own)


def _job_figures(snapshot: Snapshot, own: Mapping[int, list[int]]) -> dict[int, TaskFigures]:
    """Each job's figures from the sums of its own processes (``own``, by job koid: total,
    private, shared, kernel, kernel told, estimated, swap, unknown, known)."""
    totals: dict[int, list[int]] = {koid: [0] * 9 for koid in snapshot.jobs}
    # Each job's own sums are added to it and its ancestors: the same totals as adding
    # every process to every ancestor, for a fraction of the work.
    for job_koid, sums in own.items():
        for ancestor in snapshot.ancestors(job_koid):
            into = totals[ancestor]
            for i in range(9):
                into[i] += sums[i]  # into[4] > 0: some process below tells its kernel
    return {
        koid: TaskFigures(
            total=t[0],
            private=t[1],
            shared=t[2],
            kernel=t[3] if t[4] else None,
            estimated=t[5],
            swap=t[6],
            unknown=t[7],
            known=t[8],
        )
        for koid, t in totals.items()
    }


def _magenta2017(snapshot: Snapshot) -> Figures:
    shares = share_counts(snapshot.vmos)
    # Each process's stats and figures in one pass over the processes: a second pass
    # over 10k processes, after their mappings were walked, cost ps 10% more at scale:10000.
    return _stats_figures(snapshot, partial(process_stats, snapshot, shares=shares))


def stats_figures(snapshot: Snapshot, stats: Mapping[int, TaskStats | None]) -> Figures:
    """The 2017 rule's figures from each process's :class:`TaskStats` (``None``:
    unknown), with the job roll-ups (:func:`.magenta2017.task_memory` uses them too)."""
    return _stats_figures(snapshot, lambda process: stats.get(process.koid))


def _stats_figures(
    snapshot: Snapshot, stats_of: Callable[[Process], TaskStats | None]
) -> Figures:
    processes: dict[int, TaskFigures | None] = {}
    measured: list[int] = []
    reports_swap = False
    # Each job's own sums as in _roll_up, made in the same pass (this runs once per
    # process, on every ps): total, private, shared, -, -, -, swap, unknown, known.
    own: dict[int, list[int]] = {}
    get_sums = own.get
    for koid, process in snapshot.processes.items():
        mine = stats_of(process)
        sums = get_sums(process.job_koid)
        if sums is None:
            sums = own[process.job_koid] = [0] * 9
        if mine is None:
            processes[koid] = None
            sums[7] += 1
            continue
        if process.stats is not None:
            reports_swap = True
        if not process.kernel_thread:
            measured.append(koid)
        private = mine.private_bytes
        total = private + mine.scaled_shared_bytes
        shared = mine.shared_bytes
        swap = mine.swap_pss_bytes
        processes[koid] = TaskFigures(total, private, shared, None, (), 0, swap)
        sums[0] += total
        sums[1] += private
        sums[2] += shared
        sums[6] += swap
        sums[8] += 1
    return Figures(
        rule="2017",
        processes=processes,
        jobs=_job_figures(snapshot, own),
        measured=frozenset(measured),
        reports_swap=reports_swap,
    )


def _fuchsia(snapshot: Snapshot) -> Figures:
    from mxmem.accounting.fuchsia import snapshot_summary

    sizes = snapshot_summary(snapshot)
    processes: dict[int, TaskFigures | None] = {}
    for koid, process in snapshot.processes.items():
        size = sizes.get(koid)
        if process.unreadable is not None or size is None:
            processes[koid] = None
            continue
        processes[koid] = TaskFigures(
            total=size.scaled_bytes,
            private=size.private_bytes,
            shared=size.total_bytes - size.private_bytes,
        )
    measured = frozenset(k for k, v in processes.items() if v is not None)
    return Figures(
        rule="fuchsia",
        processes=processes,
        jobs=_roll_up(snapshot, processes),
        measured=measured,
        # As when the loader gave these figures as the processes' own (Linux-like)
        # stats: ps --json keeps its swap_pss_bytes column (0: Fuchsia has no swap).
        reports_swap=True,
    )


def _listed(snapshot: Snapshot) -> set[int]:
    """The processes the task walk reaches: exactly those the tools print."""
    return {obj.koid for _depth, kind, obj in snapshot.walk() if kind == "p"}


# Rounding keys: (group, koid, column, kind). Processes (group 0) come before categories
# (group 1) on equal remainders, then by koid, then by column.
_Key = tuple[int, int, int, str]
_PRIVATE, _SHARED, _ESTIMATED, _KERNEL = range(4)


def _exact(snapshot: Snapshot) -> Figures:
    if snapshot.pages is None:
        raise NoPageFacts(snapshot.source)
    from mxmem.accounting.exact import attribute

    return exact_figures(snapshot, attribute(snapshot.pages))


def exact_figures(snapshot: Snapshot, attribution: Attribution) -> Figures:
    """The exact rule's figures of ``snapshot`` from its ``attribution`` (what
    ``figures(snapshot, "exact")`` gives, for an attribution made otherwise)."""
    from fractions import Fraction

    from mxmem.accounting.rounding import exact_sum, integer_parts

    zero = Fraction(0)
    listed = _listed(snapshot)
    notes: list[str] = []
    parts: list[tuple[_Key, Fraction]] = []
    exited = zero
    exited_count = 0

    def part(key: _Key, value: Fraction, what: str) -> None:
        if value < 0:
            notes.append(
                f"{what} was negative ({round(value)} bytes): counted as 0, so it is"
                " part of the residual"
            )
            value = zero
        parts.append((key, value))

    for pid, share in attribution.processes.items():
        if pid not in listed:
            exited += share.total
            exited_count += 1
            continue
        what = f"the attribution of process {pid}"
        part((0, pid, _PRIVATE, ""), share.private, f"{what} (private)")
        part((0, pid, _SHARED, ""), share.shared, f"{what} (shared)")
        part((0, pid, _ESTIMATED, ""), share.estimated, f"{what} (estimated)")
        for kind, value in share.kernel.items():
            part((0, pid, _KERNEL, kind), value, f"{what} ({kind})")
    categories = dict(attribution.categories)
    if exited_count:
        categories[EXITED_CATEGORY] = categories.get(EXITED_CATEGORY, zero) + exited
        plural = "es" if exited_count != 1 else ""
        notes.append(
            f"{exited_count} process{plural} with attributed memory are not in the task"
            f' tree (exited while it was read): their memory is the "{EXITED_CATEGORY}"'
            " category"
        )
    for name, value in categories.items():
        part((1, 0, 0, name), value, f'the category "{name}"')
    whole = integer_parts(parts)
    swaps = integer_parts(
        (pid, max(share.swap, zero))
        for pid, share in attribution.processes.items()
        if pid in listed
    )
    kernel_known = any(share.kernel for share in attribution.processes.values()) or not any(
        share.total for share in attribution.processes.values()
    )
    processes: dict[int, TaskFigures | None] = {}
    for koid, process in snapshot.processes.items():
        mine = attribution.processes.get(koid)
        if mine is None or koid not in listed:
            # Not in the attribution: unknown if the source could not read it;
            # otherwise nothing is attributed to it (a dead process, a kernel thread).
            unread = process.unreadable is not None
            processes[koid] = None if unread else _nothing(kernel_known)
            continue
        kinds = tuple((kind, whole[(0, koid, _KERNEL, kind)]) for kind in mine.kernel)
        private = whole[(0, koid, _PRIVATE, "")]
        shared = whole[(0, koid, _SHARED, "")]
        estimated = whole[(0, koid, _ESTIMATED, "")]
        kernel = sum(size for _, size in kinds)
        processes[koid] = TaskFigures(
            total=private + shared + kernel + estimated,
            private=private,
            shared=shared,
            kernel=kernel if kernel_known else None,
            kernel_by_kind=kinds,
            estimated=estimated,
            swap=swaps.get(koid, 0),
        )
    unowned = sorted(
        ((name, whole[(1, 0, 0, name)]) for name in categories),
        key=lambda item: (-item[1], item[0]),
    )
    processes_bytes = sum(f.total for f in processes.values() if f is not None)
    residual = attribution.total_bytes - processes_bytes - sum(size for _, size in unowned)
    system = SystemFigures(
        total_bytes=attribution.total_bytes,
        processes_bytes=processes_bytes,
        categories=tuple(item for item in unowned if item[1]),
        residual_bytes=residual,
        # The exact parts' own residual, which can round to 0 bytes and is still shown.
        has_residual=residual != 0 or exact_sum(v for _, v in parts) != attribution.total_bytes,
        swap_bytes=sum(f.swap for f in processes.values() if f is not None),
        uses_estimates=any(f.estimated for f in processes.values() if f is not None),
        kernel_known=kernel_known,
        exact=attribution.exact,
        notes=(*attribution.notes, *notes),
    )
    measured = frozenset(k for k in attribution.processes if k in listed)
    jobs = _roll_up(snapshot, processes)
    if kernel_known:  # a job with no process below caused no kernel memory
        jobs = {k: j if j.kernel is not None else j._replace(kernel=0) for k, j in jobs.items()}
    return Figures(
        rule="exact",
        processes=processes,
        jobs=jobs,
        system=system,
        attribution=attribution,
        measured=measured,
        reports_swap=True,
    )


def _nothing(kernel_known: bool) -> TaskFigures:
    return ZERO if not kernel_known else TaskFigures(kernel=0)


def vmo_bytes(figs: Figures, koid: int) -> dict[int, int]:
    """Exact rule: where process ``koid``'s ``private + shared`` bytes are, by the
    koid of the VMO they were reached through (0: no VMO), in whole bytes that add up
    to exactly its printed ``private + shared``, each within a byte of its exact share
    where possible (:func:`~.rounding.parts_to_target`); no zeros."""
    from mxmem.accounting.rounding import parts_to_target

    mine = figs.processes.get(koid)
    if figs.attribution is None or mine is None:
        return {}
    share = figs.attribution.processes.get(koid)
    by_vmo = {} if share is None else share.by_vmo
    return parts_to_target(by_vmo, mine.private + mine.shared, 0)


def vmo_shares(snapshot: Snapshot, figs: Figures, process: Process) -> list[tuple[int, int]]:
    """:func:`vmo_bytes` as the tools print it: by the koids of the ``vmos`` entries
    (``Vmo.user_koid``: 0 for a VMO the kernel made without a user koid, so such VMOs
    add up under 0, as does memory reached through no VMO), largest first, then by
    koid."""
    wire: dict[int, int] = {}
    for koid, nbytes in vmo_bytes(figs, process.koid).items():
        vmo = snapshot.vmos.get(koid)
        key = koid if vmo is None else vmo.user_koid
        wire[key] = wire.get(key, 0) + nbytes
    return sorted(wire.items(), key=lambda item: (-item[1], item[0]))
