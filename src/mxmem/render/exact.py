"""The exact rule's words: the whole system's summary and the notes (issue 10).

The figures come rounded from :mod:`mxmem.accounting.figures`; this module only words
them. :func:`figures_notes` is the one notes renderer of every tool's exact mode, with
one wording (:func:`exact_notes`): "approximate" when not every figure is page-level,
the attribution's notes, and a nonzero residual with its likely causes — each said
once: notes the output already shows (a summary's residual block, a JSON document's
``notes``) are not repeated on standard error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mxmem.accounting.figures import SystemFigures
from mxmem.render.text import safe_text
from mxmem.render.units import format_size

__all__ = [
    "APPROXIMATE",
    "exact_notes",
    "figures_notes",
    "signed_size",
    "summary_lines",
]

#: The first note of an approximate attribution.
APPROXIMATE = "approximate: not every figure of the exact attribution is page-level"


def signed_size(n: int, units: str = "") -> str:
    """``format_size`` for a value that can be negative (a residual)."""
    return f"-{format_size(-n, units)}" if n < 0 else format_size(n, units)


def figures_notes(
    source_notes: Iterable[str], system: SystemFigures | None, *, shown_in_output: bool = False
) -> list[str]:
    """The notes a tool prints to standard error after its output: the source's, then
    (exact rule) :func:`exact_notes` of the system's figures; when the output shows
    them already (``shown_in_output``: it lists the notes and the residual itself), only
    the one line that says the attribution is approximate, if it is."""
    notes = list(source_notes)
    if system is None:
        return notes
    if shown_in_output:
        # The output lists the notes; that it is approximate is still said here, once.
        return notes + ([] if system.exact else [APPROXIMATE])
    extra = [n for n in system.notes if n not in notes]
    return notes + exact_notes(system.exact, extra, system.residual_bytes)


def exact_notes(exact: bool, notes: Sequence[str], residual_bytes: int) -> list[str]:
    """What ``--attribution=exact`` must say on standard error: "approximate" when not
    every figure is page-level, the attribution's notes, and a nonzero residual with its
    likely causes (the notes) — never hidden."""
    out: list[str] = []
    if not exact:
        out.append(APPROXIMATE)
    out.extend(notes)
    if residual_bytes != 0:
        sign = "-" if residual_bytes < 0 else ""
        causes = " (likely causes: the notes above)" if notes else ""
        out.append(
            f"residual: {sign}{format_size(abs(residual_bytes))} ({residual_bytes} bytes)"
            " of physical memory not accounted for by the processes and named"
            f" categories{causes}"
        )
    return out


def summary_lines(shown: SystemFigures, *, units: str = "", scope: str = "") -> list[str]:
    """The summary that makes the invariant visible: memory no process is blamed for,
    by kind (largest first), then the processes' sum, then the total physical memory
    they add up to; a ``residual`` line (with the notes naming its likely causes) when
    the attribution does not add up to the total. ``scope`` adds to the heading (e.g.
    that the summary covers the whole system while the table shows one job)."""
    rows: list[tuple[str, str]] = [
        *((safe_text(name), format_size(size, units)) for name, size in shown.categories),
        ("processes", format_size(shown.processes_bytes, units)),
        ("total", format_size(shown.total_bytes, units)),
    ]
    if shown.has_residual:
        rows.append(("residual", signed_size(shown.residual_bytes, units)))
    words = ["whole system"] + ([scope] if scope else [])
    if not shown.exact:
        words.append("approximate")
    heading = f"MEMORY ({', '.join(words)})"
    name_w = max(len(heading), *(len(name) for name, _ in rows))
    size_w = max(7, *(len(size) for _, size in rows))
    lines = [f"{heading:<{name_w}} {'ATTRIB':>{size_w}}"]
    lines.extend(f"{name:<{name_w}} {size:>{size_w}}" for name, size in rows)
    if shown.has_residual:
        lines[-1] += " = total - the lines above, not attributed; likely causes:"
        causes = shown.notes or ("the source gives none",)
        lines.extend(f"  - {safe_text(note)}" for note in causes)
    return lines
