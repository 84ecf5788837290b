"""``ps``: the job/process/thread tree with its memory (spec §2), for every rule.

:func:`ps_rows` builds the view from a snapshot and its figures
(:mod:`mxmem.accounting.figures`); :func:`ps_columns` picks the columns for the rule;
:func:`write_ps` prints the table byte for byte as Magenta's ``ps.c`` did (then, for
the exact rule, the whole system's summary), :func:`ps_json` the JSON (the wire format
is ``schemas/ps.schema.json``). There is one row type and one writer: exact mode
(``--attribution=exact``, issue 6) is another set of columns plus a summary.

Columns by rule: PSS, PRIVATE, SHARED (2017, and Fuchsia's Summary; a job's SHARED is
blank, as a sum of shared bytes means little); ATTRIB = PRIVATE + SHARED + KERNEL (+
ESTIM, present only when the source has per-process figures that are not page-level)
for the exact rule, where SWAP (``--swap``) is a column apart, not RAM. With the 2017
rule ``--swap`` adds each process's SwapPss to PSS instead.

Two Linux figures have no column in the 2017 table: a process's ``SwapPss`` (its share
of swapped-out memory: never ``Swap``, which counts a shared swap entry once per sharer)
is ``swap_pss_bytes`` in JSON; a job's own memory charge (its cgroup's) is
``cgroup_charge_bytes`` in JSON: it is not the sum of its processes' PSS (it also holds
page cache, kernel memory and the memory of processes that have exited, and counts each
page once, whole, to one cgroup).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TextIO

from mxmem.accounting.figures import Figures, SystemFigures, TaskFigures
from mxmem.model import Job, Process, Snapshot, Thread
from mxmem.render.exact import summary_lines
from mxmem.render.jsonout import JsonValue
from mxmem.render.text import safe_text
from mxmem.render.units import format_size

__all__ = [
    "Column",
    "PsRow",
    "ps_columns",
    "ps_json",
    "ps_rows",
    "write_ps",
]

class Column(NamedTuple):
    """A size column: its header, its JSON key, its value from a row's figures.
    ``jobs`` False: blank (JSON null) on job rows; ``kinds``: the row types whose JSON
    objects have the key at all."""

    header: str
    key: str
    value: Callable[[TaskFigures], int | None]
    jobs: bool = True
    kinds: str = "jpt"


PSS = Column("PSS", "pss_bytes", lambda f: f.total)
PSS_SWAP = Column("PSS", "pss_bytes", lambda f: f.total + f.swap)
PRIVATE = Column("PRIVATE", "private_bytes", lambda f: f.private)
SHARED_2017 = Column("SHARED", "shared_bytes", lambda f: f.shared, jobs=False)
SWAP_PSS = Column("SWAP", "swap_pss_bytes", lambda f: f.swap, kinds="p")
ATTRIB = Column("ATTRIB", "attributed_bytes", lambda f: f.total)
SHARED = Column("SHARED", "shared_bytes", lambda f: f.shared)
KERNEL = Column("KERNEL", "kernel_bytes", lambda f: f.kernel)
ESTIM = Column("ESTIM", "estimated_bytes", lambda f: f.estimated)
SWAP = Column("SWAP", "swap_bytes", lambda f: f.swap)


def ps_columns(figs: Figures, *, swap: bool = False, json: bool = False) -> tuple[Column, ...]:
    """The size columns of ``ps`` for ``figs``'s rule: in the table, or (``json``) in
    the JSON rows, which always have every figure of the rule."""
    if figs.system is None:
        cols = (PSS_SWAP if swap else PSS, PRIVATE, SHARED_2017)
        return cols + (SWAP_PSS,) * (json and figs.reports_swap)
    estimated = json or figs.system.uses_estimates
    return (ATTRIB, PRIVATE, SHARED, KERNEL) + (ESTIM,) * estimated + (SWAP,) * (json or swap)


class PsRow(NamedTuple):
    """One line of ``ps``. ``figures`` is ``None`` for a thread and where the figures are
    unknown (an unreadable process; a job whose processes are all unreadable shows
    ``?`` too, through :attr:`TaskFigures.all_unknown`). ``blank``: a Linux kernel
    thread the rule has no figures for (blank cells, as in the 2017 table)."""

    depth: int
    type: str  # "j", "p" or "t"
    koid: int
    parent_koid: int | None
    name: str
    figures: TaskFigures | None
    state: str | None = None  # threads only
    blank: bool = False
    # Jobs only, when the source reports them (Linux cgroups): the cgroup's own charge,
    # and the bytes of the mapped pages charged to it (kpagecgroup, at Level.PAGES).
    charge_bytes: int | None = None
    charged_pages_bytes: int | None = None


def ps_rows(
    snapshot: Snapshot,
    figs: Figures,
    job_koid: int | None = None,
    *,
    threads: bool = False,
    jobs_only: bool = False,
) -> list[PsRow]:
    """The rows of ``ps`` for the tree under ``job_koid`` (default: the root job), in
    Magenta's walk order with depth 0 at the starting job."""
    rows: list[PsRow] = []
    process_koid = 0  # the walk yields a process's threads right after it
    for depth, kind, obj in snapshot.walk(job_koid, threads=threads and not jobs_only):
        if isinstance(obj, Job):
            job = figs.jobs.get(obj.koid)
            rows.append(
                PsRow(
                    depth,
                    "j",
                    obj.koid,
                    obj.parent_koid,
                    obj.name,
                    None if job is None or job.all_unknown else job,
                    charge_bytes=obj.charge_bytes,
                    # A page-level figure: exact mode's column (the 2017 rows' schema has
                    # none, and a live host read for 2017 has none to give).
                    charged_pages_bytes=obj.charged_pages_bytes if figs.rule == "exact" else None,
                )
            )
        elif jobs_only:
            continue
        elif isinstance(obj, Process):
            process_koid = obj.koid
            rows.append(
                PsRow(
                    depth,
                    "p",
                    obj.koid,
                    obj.job_koid,
                    obj.name,
                    figs.processes.get(obj.koid),
                    blank=obj.kernel_thread and obj.koid not in figs.measured,
                )
            )
        else:
            assert isinstance(obj, Thread) and kind == "t"
            rows.append(PsRow(depth, "t", obj.koid, process_koid, obj.name, None, obj.state.value))
    return rows


def _cells(row: PsRow, columns: tuple[Column, ...], units: str) -> list[str]:
    figs = row.figures
    if row.type == "p" and figs is not None and not row.blank:  # most rows
        return [
            "?" if (v := col.value(figs)) is None else format_size(v, units) for col in columns
        ]
    if row.type == "t" or row.blank:
        return [""] * len(columns)
    if figs is None:
        # Unknown (e.g. unreadable), not zero; a job's blank columns stay blank.
        return ["?" if col.jobs or row.type != "j" else "" for col in columns]
    return [
        "" if not col.jobs else "?" if (v := col.value(figs)) is None else format_size(v, units)
        for col in columns
    ]


def write_ps(
    rows: list[PsRow],
    columns: tuple[Column, ...],
    out: TextIO,
    *,
    units: str = "",
    threads: bool = False,
    system: SystemFigures | None = None,
    scope: str = "",
) -> None:
    """Print the table as ``ps.c`` does, with the header before and after it; then,
    with the exact rule's ``system`` figures, a blank line and the whole system's
    summary (:func:`~mxmem.render.exact.summary_lines`; ``scope`` adds to its heading).

    ``units`` is ``""`` for natural units or the ``--units`` letter. ``threads`` adds
    the STATE column (``-T``); job and process rows leave it blank.
    """
    # ps.c: the ID column is as wide as the widest "<indent><type>:<koid>" cell; every
    # other cell is "%7s".
    id_w = max((2 * r.depth + 2 + len(str(r.koid)) for r in rows), default=0)
    names = [col.header for col in columns] + ["STATE"] * threads
    header = f"{'TASK':<{id_w}} " + "".join([f"{n:>7} " for n in names]) + "NAME\n"
    lines = [header]
    for row in rows:
        cells = _cells(row, columns, units)
        if threads:
            cells.append(row.state or "")
        cell = " " * (2 * row.depth) + f"{row.type}:{row.koid}"
        sizes = "".join([f"{c:>7} " for c in cells])
        lines.append(f"{cell:<{id_w}} {sizes}{safe_text(row.name)}\n")
    lines.append(header)
    if system is not None:
        lines.append("\n")
        lines.extend(f"{text}\n" for text in summary_lines(system, units=units, scope=scope))
    out.write("".join(lines))


def _row_json(row: PsRow, columns: tuple[Column, ...]) -> dict[str, JsonValue]:
    obj: dict[str, JsonValue] = {
        "type": row.type,
        "koid": row.koid,
        "parent_koid": row.parent_koid,
        "depth": row.depth,
        "name": row.name,
    }
    for col in columns:
        if row.type not in col.kinds:
            continue
        blank = row.figures is None or (row.type == "j" and not col.jobs)
        obj[col.key] = None if blank or row.figures is None else col.value(row.figures)
    if row.type == "t":
        obj["state"] = row.state
    elif row.type == "j":
        if row.charge_bytes is not None:
            obj["cgroup_charge_bytes"] = row.charge_bytes
        if row.charged_pages_bytes is not None:
            obj["cgroup_pages_bytes"] = row.charged_pages_bytes
    return obj


def ps_json(
    rows: list[PsRow],
    columns: tuple[Column, ...],
    *,
    system: SystemFigures | None = None,
    job_koid: int | None = None,
) -> JsonValue:
    """The rows as JSON (``schemas/ps.schema.json``): sizes in bytes, ``null`` where the
    text table has a blank or ``?`` cell (a kernel thread's figures are given). With
    the exact rule's ``system`` figures, one object of ``rows`` and the whole system's
    ``summary``, in which ``processes_bytes + Σ categories + residual_bytes ==
    total_bytes``; otherwise the array of rows."""
    out_rows: list[JsonValue] = [_row_json(row, columns) for row in rows]
    if system is None:
        return out_rows
    categories: list[JsonValue] = [{"name": n, "bytes": b} for n, b in system.categories]
    notes: list[JsonValue] = list(system.notes)
    return {
        "attribution": "exact",
        "exact": system.exact,
        "notes": notes,
        "job_koid": job_koid,
        "rows": out_rows,
        "summary": {
            "scope": "system",
            "total_bytes": system.total_bytes,
            "processes_bytes": system.processes_bytes,
            "categories": categories,
            "residual_bytes": system.residual_bytes,
            "swap_bytes": system.swap_bytes,
        },
    }
