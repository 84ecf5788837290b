"""Exact attribution for display: whole bytes that add up, and the summary text.

An :class:`~mxmem.accounting.exact.Attribution` holds exact fractions (a page shared by
three processes gives each a third of 4096 bytes). A display needs whole bytes, and the
reader checks a table by adding it up, so :func:`shown_attribution` rounds every part of
the whole system at once with :func:`~mxmem.accounting.exact.integer_parts`: each
process's private, shared, estimated and kernel bytes and each category. The rounded
parts then add up to the rounded sum, which is the total physical memory exactly when the
attribution has no residual, so a process's ATTRIB is the sum of its columns, a job's the
sum of its processes, and the summary's lines the total, to the byte.

Used by ``ps --attribution=exact``. The stderr notes of exact mode have two wordings
here, side by side: :func:`attribution_notes` (ps, digest: "approximate attribution:"
on each note) and :func:`exact_notes` (memgraph, treemap: one "approximate" line and a
"residual" line). They say the same things; making them one wording would change what
two of the tools print, so it is left for a change of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from mxmem.accounting.exact import Attribution, integer_parts
from mxmem.render.text import safe_text
from mxmem.render.units import format_size

__all__ = [
    "APPROXIMATE",
    "ShownAttribution",
    "ShownShare",
    "attribution_notes",
    "exact_notes",
    "shown_attribution",
    "signed_size",
    "summary_lines",
]

#: The word every approximate attribution's notes start with.
APPROXIMATE = "approximate attribution"


@dataclass(frozen=True, slots=True)
class ShownShare:
    """One process's attribution in whole bytes (rounded so that displays add up)."""

    private: int = 0
    shared: int = 0
    kernel: int = 0
    estimated: int = 0  # a per-process figure, not page-level (approximate sources)
    swap: int = 0  # not RAM: never in ``total``

    @property
    def total(self) -> int:
        """The RAM attributed to the process: the sum of its RAM columns."""
        return self.private + self.shared + self.kernel + self.estimated

    def __add__(self, other: ShownShare) -> ShownShare:
        return ShownShare(
            self.private + other.private,
            self.shared + other.shared,
            self.kernel + other.kernel,
            self.estimated + other.estimated,
            self.swap + other.swap,
        )


@dataclass(frozen=True, slots=True)
class ShownAttribution:
    """The whole system's attribution in whole bytes.

    ``processes_bytes + Σ categories + residual_bytes == total_bytes`` always (the
    residual is what the rounded lines leave of the total: 0 on a source that sees every
    page). ``categories`` are largest first (ties by name).
    """

    total_bytes: int
    processes: Mapping[int, ShownShare] = field(default_factory=dict)
    categories: tuple[tuple[str, int], ...] = ()
    residual_bytes: int = 0
    # The attribution's own residual was not 0 (it can round to 0 bytes and still be
    # shown: a residual is never hidden).
    has_residual: bool = False
    exact: bool = True
    notes: tuple[str, ...] = ()

    @property
    def processes_bytes(self) -> int:
        return sum(share.total for share in self.processes.values())

    @property
    def swap_bytes(self) -> int:
        return sum(share.swap for share in self.processes.values())

    @property
    def uses_estimates(self) -> bool:
        return any(share.estimated for share in self.processes.values())


_COLUMNS = ("private", "shared", "kernel", "estimated")


def shown_attribution(attribution: Attribution) -> ShownAttribution:
    """Round ``attribution`` to whole bytes so that every displayed sum adds up."""
    parts: list[tuple[str, Fraction]] = []
    for pid, share in attribution.processes.items():
        values = (share.private, share.shared, share.kernel_total, share.estimated)
        parts.extend((f"{pid}:{col}", v) for col, v in zip(_COLUMNS, values, strict=True))
    parts.extend((f"c:{name}", v) for name, v in attribution.categories.items())
    whole = integer_parts(parts)
    swaps = integer_parts((str(pid), share.swap) for pid, share in attribution.processes.items())
    processes = {
        pid: ShownShare(
            private=whole.get(f"{pid}:private", 0),
            shared=whole.get(f"{pid}:shared", 0),
            kernel=whole.get(f"{pid}:kernel", 0),
            estimated=whole.get(f"{pid}:estimated", 0),
            swap=swaps.get(str(pid), 0),
        )
        for pid in attribution.processes
    }
    categories = sorted(
        ((name, whole[f"c:{name}"]) for name, v in attribution.categories.items() if v),
        key=lambda item: (-item[1], item[0]),
    )
    accounted = sum(whole.values())
    return ShownAttribution(
        total_bytes=attribution.total_bytes,
        processes=processes,
        categories=tuple(categories),
        residual_bytes=attribution.total_bytes - accounted,
        has_residual=attribution.residual != 0,
        exact=attribution.exact,
        notes=attribution.notes,
    )


def signed_size(n: int, units: str = "") -> str:
    """``format_size`` for a value that can be negative (a residual)."""
    return f"-{format_size(-n, units)}" if n < 0 else format_size(n, units)


def attribution_notes(
    source_notes: Iterable[str],
    attribution: Attribution | ShownAttribution,
    *,
    in_output: bool = False,
) -> list[str]:
    """The notes an exact tool prints to stderr after its output: the source's, then the
    attribution's. An approximate attribution says so in every one of its notes (and
    with a note of its own if the source gave none), always; an exact one's notes are
    left out when ``in_output`` (the output already shows them: a residual's likely
    causes under its line, a JSON document's ``notes``)."""
    notes = list(source_notes)
    extra = [n for n in attribution.notes if n not in notes]
    if attribution.exact:
        return notes if in_output else notes + extra
    if not extra:
        extra = ["the source has no page-level facts for every page"]
    # A source's own "approximate: ..." note needs no second "approximate".
    return notes + [
        n if n.lower().startswith("approximate") else f"{APPROXIMATE}: {n}" for n in extra
    ]


def exact_notes(exact: bool, notes: Sequence[str], residual_bytes: int) -> list[str]:
    """What ``--attribution=exact`` must say on standard error: "approximate" when not
    every figure is page-level, the attribution's notes, and a nonzero residual with its
    likely causes (the notes) — never hidden."""
    out: list[str] = []
    if not exact:
        out.append("approximate: not every figure of the exact attribution is page-level")
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


def summary_lines(shown: ShownAttribution, *, units: str = "", scope: str = "") -> list[str]:
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
