"""``mxmem diff`` output: sections of old -> new with signed deltas in Magenta sizes, or
JSON with exact bytes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO, TypeVar

from mxmem.accounting.diff import (
    JOB_COLUMNS,
    PROCESS_COLUMNS,
    Diff,
    FieldDelta,
    NameDelta,
    Status,
    TaskDelta,
)
from mxmem.render.jsonout import JsonValue, write_json
from mxmem.render.text import safe_text
from mxmem.render.units import format_size

__all__ = ["signed_size", "write_diff_json", "write_diff_text"]

_Row = TypeVar("_Row", FieldDelta, TaskDelta, NameDelta)


def signed_size(delta: int) -> str:
    """A delta as a Magenta size with its sign: ``+1.5M``, ``-4k``, ``0``."""
    if delta == 0:
        return "0"
    return ("+" if delta > 0 else "-") + format_size(abs(delta))


def _size(value: int | None) -> str:
    return "-" if value is None else format_size(value)


def _table(out: TextIO, title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A section: the title line, then right-aligned columns but for the last (a name)."""
    out.write(f"{title}:\n")
    if not rows:
        out.write("  (no changes)\n")
        return
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        cells = [f"{c:>{w}}" for c, w in zip(row, widths, strict=False)]
        out.write(" " + "  ".join([*cells, row[-1]]).rstrip() + "\n")


def _kernel_rows(rows: Sequence[FieldDelta]) -> list[list[str]]:
    return [[_size(r.old), _size(r.new), signed_size(r.delta), r.name] for r in rows]


def _koid(row: TaskDelta) -> str:
    if row.status is Status.RENEWED:
        return f"{row.old_koid}>{row.new_koid}"
    return str(row.koid)


def _task_rows(rows: Sequence[TaskDelta]) -> list[list[str]]:
    out: list[list[str]] = []
    for r in rows:
        # A gone task shows what it had; any other its current figures.
        shown = r.new if r.new is not None else r.old
        assert shown is not None
        cells = [_koid(r)]
        for value, delta in zip(shown, r.deltas, strict=True):
            cells += [format_size(value), signed_size(delta)]
        status = "" if r.status in (Status.SAME, Status.RENEWED) else r.status.value
        out.append([*cells, status, safe_text(r.name)])
    return out


def _name_rows(rows: Sequence[NameDelta]) -> list[list[str]]:
    return [
        [
            format_size(r.old_bytes),
            format_size(r.new_bytes),
            signed_size(r.delta),
            safe_text(r.name),
        ]
        for r in rows
    ]


def _select(rows: Sequence[_Row], all_rows: bool) -> list[_Row]:
    return [r for r in rows if all_rows or r.changed]


def write_diff_text(diff: Diff, out: TextIO, *, all_rows: bool = False) -> None:
    out.write(f"old: {safe_text(diff.old_source)}\nnew: {safe_text(diff.new_source)}\n\n")
    _table(
        out,
        "Kernel memory",
        ["OLD", "NEW", "DELTA", "FIELD"],
        _kernel_rows(_select(diff.kernel, all_rows)),
    )
    for title, rows, columns in (
        ("Jobs", diff.jobs, ("PSS", "+/-", "PRIVATE", "+/-")),
        ("Processes", diff.processes, ("PSS", "+/-", "PRIVATE", "+/-", "SHARED", "+/-")),
    ):
        out.write("\n")
        _table(
            out,
            title,
            ["KOID", *columns, "", "NAME"],
            _task_rows(_select(rows, all_rows)),
        )
    out.write("\n")
    _table(
        out,
        "VMO names (committed bytes)",
        ["OLD", "NEW", "DELTA", "NAME"],
        _name_rows(_select(diff.vmo_names, all_rows)),
    )


def _task_json(row: TaskDelta, columns: Sequence[str]) -> JsonValue:
    def figures(values: Sequence[int] | None) -> JsonValue:
        return None if values is None else dict(zip(columns, values, strict=True))

    return {
        "name": row.name,
        "status": row.status.value,
        "old_koid": row.old_koid,
        "new_koid": row.new_koid,
        "old": figures(row.old),
        "new": figures(row.new),
        "delta": figures(row.deltas),
    }


def write_diff_json(diff: Diff, out: TextIO, *, all_rows: bool = False) -> None:
    kernel: list[JsonValue] = [
        {"field": r.name, "old": r.old, "new": r.new, "delta": r.delta}
        for r in _select(diff.kernel, all_rows)
    ]
    jobs: list[JsonValue] = [_task_json(r, JOB_COLUMNS) for r in _select(diff.jobs, all_rows)]
    processes: list[JsonValue] = [
        _task_json(r, PROCESS_COLUMNS) for r in _select(diff.processes, all_rows)
    ]
    names: list[JsonValue] = [
        {
            "name": r.name,
            "old_bytes": r.old_bytes,
            "new_bytes": r.new_bytes,
            "delta_bytes": r.delta,
            "old_count": r.old_count,
            "new_count": r.new_count,
        }
        for r in _select(diff.vmo_names, all_rows)
    ]
    notes: list[JsonValue] = list(diff.notes)
    write_json(
        {
            "old": diff.old_source,
            "new": diff.new_source,
            "kernel": kernel,
            "jobs": jobs,
            "processes": processes,
            "vmo_names": names,
            "notes": notes,
        },
        out,
    )
