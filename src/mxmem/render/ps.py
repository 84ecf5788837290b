"""``ps``: the job/process/thread tree with PSS, PRIVATE and SHARED (spec §2).

:func:`ps_rows` builds the view from a snapshot and its figures; :func:`write_ps` prints
it byte for byte as Magenta's ``ps.c`` did, :func:`ps_json` as JSON rows (the wire
format is ``schemas/ps.schema.json``).
"""

from __future__ import annotations

from typing import NamedTuple, TextIO

from mxmem.accounting.magenta2017 import TaskMemory
from mxmem.model import Job, Process, Snapshot, Thread
from mxmem.render.jsonout import JsonValue
from mxmem.render.text import safe_text
from mxmem.render.units import format_size

__all__ = ["PsRow", "ps_json", "ps_rows", "write_ps"]


class PsRow(NamedTuple):
    """One line of ``ps``. Sizes are ``None`` where the cell is blank or unknown: a job's
    SHARED is always blank, a thread has no sizes, a process without figures is unknown."""

    depth: int
    type: str  # "j", "p" or "t"
    koid: int
    parent_koid: int | None
    name: str
    pss_bytes: int | None
    private_bytes: int | None
    shared_bytes: int | None
    state: str | None  # threads only


def ps_rows(
    snapshot: Snapshot,
    memory: TaskMemory,
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
            totals = memory.jobs.get(obj.koid)
            rows.append(
                PsRow(
                    depth,
                    "j",
                    obj.koid,
                    obj.parent_koid,
                    obj.name,
                    totals.pss_bytes if totals is not None else None,
                    totals.private_bytes if totals is not None else None,
                    None,
                    None,
                )
            )
        elif jobs_only:
            continue
        elif isinstance(obj, Process):
            process_koid = obj.koid
            stats = memory.processes.get(obj.koid)
            rows.append(
                PsRow(
                    depth,
                    "p",
                    obj.koid,
                    obj.job_koid,
                    obj.name,
                    stats.pss_bytes if stats is not None else None,
                    stats.private_bytes if stats is not None else None,
                    stats.shared_bytes if stats is not None else None,
                    None,
                )
            )
        else:
            assert isinstance(obj, Thread) and kind == "t"
            rows.append(
                PsRow(
                    depth, "t", obj.koid, process_koid, obj.name, None, None, None, obj.state.value
                )
            )
    return rows


def _size_cells(row: PsRow, units: str) -> tuple[str, str, str]:
    if row.type == "t":
        return "", "", ""
    if row.type == "p" and row.pss_bytes is None:
        return "?", "?", "?"  # figures unknown (e.g. unreadable), not zero
    pss = "?" if row.pss_bytes is None else format_size(row.pss_bytes, units)
    private = "?" if row.private_bytes is None else format_size(row.private_bytes, units)
    # ps.c: shared bytes don't mean much as a sum, so a job's SHARED cell stays blank.
    shared = "" if row.shared_bytes is None else format_size(row.shared_bytes, units)
    return pss, private, shared


def write_ps(rows: list[PsRow], out: TextIO, *, units: str = "", threads: bool = False) -> None:
    """Print the table as ``ps.c`` does, with the header before and after it.

    ``units`` is ``""`` for natural units or the ``--units`` letter. ``threads`` adds
    the STATE column (``-T``); job and process rows leave it blank.
    """
    # ps.c: the ID column is as wide as the widest "<indent><type>:<koid>" cell.
    id_w = max((2 * r.depth + 2 + len(str(r.koid)) for r in rows), default=0)
    if threads:
        header = f"{'TASK':<{id_w}} {'PSS':>7} {'PRIVATE':>7} {'SHARED':>7} {'STATE':>7} NAME\n"
    else:
        header = f"{'TASK':<{id_w}} {'PSS':>7} {'PRIVATE':>7} {'SHARED':>7} NAME\n"
    lines = [header]
    for row in rows:
        cell = " " * (2 * row.depth) + f"{row.type}:{row.koid}"
        pss, private, shared = _size_cells(row, units)
        state = f" {row.state or '':>7}" if threads else ""
        lines.append(
            f"{cell:<{id_w}} {pss:>7} {private:>7} {shared:>7}{state} {safe_text(row.name)}\n"
        )
    lines.append(header)
    out.write("".join(lines))


def ps_json(rows: list[PsRow]) -> list[JsonValue]:
    """The rows as JSON objects (``schemas/ps.schema.json``); sizes in bytes, ``null``
    where the text table has a blank or ``?`` cell."""
    out: list[JsonValue] = []
    for row in rows:
        obj: dict[str, JsonValue] = {
            "type": row.type,
            "koid": row.koid,
            "parent_koid": row.parent_koid,
            "depth": row.depth,
            "name": row.name,
            "pss_bytes": row.pss_bytes,
            "private_bytes": row.private_bytes,
            "shared_bytes": row.shared_bytes,
        }
        if row.type == "t":
            obj["state"] = row.state
        out.append(obj)
    return out
