"""Exact attribution: every byte of physical memory counted exactly once (issue 6).

The rules, applied to a source's :class:`~mxmem.model.PageFacts`, page pattern by page
pattern:

1. a page is counted once per process, however many times that process maps it (a
   process is one user of a page through a VMO, whatever its mappings);
2. a VMO held only by handles is attributed to the processes holding it, shared equally
   (holders are users of every page of the VMO);
3. copy-on-write, RFC-0254's two-step rule: a page is split first equally among the VMOs
   that can reach it and that some process uses, then each VMO's share equally among that
   VMO's users. VMOs no process uses take no share, so a page kept alive for a clone is
   blamed on the clone's users rather than left unexplained;
4. kernel memory a process causes (page tables, kernel stacks, kernel objects) is that
   process's, where the source can tell (``PageFacts.process_kernel``);
5. memory no process can be blamed for is shown by kind: the source's categories (free,
   kernel heap, page cache not mapped...), plus "kernel VMOs" (pages only the kernel
   reaches) and "unreferenced VMOs" (pages no one maps or holds).

Shares are exact fractions, so on a source that sees every page the invariant
Σ processes + Σ categories = total holds to the byte; :mod:`mxmem.accounting.figures`
rounds for display so that the rounded parts still add up to the rounded total. A live source's
figures come from reads at slightly different moments, so its ``residual`` (total -
accounted) can be nonzero; it is reported, never folded into a category.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from math import lcm

from mxmem.model import PageFacts, Snapshot

UNREFERENCED = "unreferenced VMOs"
KERNEL_VMOS = "kernel VMOs"

_ZERO = Fraction(0)


@dataclass(frozen=True)
class ProcessShare:
    """One process's attribution, in (fractional) bytes of RAM, plus its swap apart."""

    private: Fraction = _ZERO  # pages no other process uses
    shared: Fraction = _ZERO  # its share of pages other processes use too
    kernel: Mapping[str, Fraction] = field(default_factory=dict)
    estimated: Fraction = _ZERO  # a per-process figure, not page-level (approximate)
    swap: Fraction = _ZERO  # swapped out: not RAM, not in ``total``
    # private + shared, by the VMO the pages were reached through (koid 0: no VMO).
    by_vmo: Mapping[int, Fraction] = field(default_factory=dict)

    @property
    def kernel_total(self) -> Fraction:
        return sum(self.kernel.values(), _ZERO)

    @property
    def total(self) -> Fraction:
        """The RAM attributed to the process."""
        return self.private + self.shared + self.estimated + self.kernel_total


@dataclass(frozen=True)
class Attribution:
    total_bytes: int
    processes: Mapping[int, ProcessShare] = field(default_factory=dict)
    # What the processes' pages add up to through each VMO (the VMO's own bytes, each
    # page once), by VMO koid.
    vmos: Mapping[int, Fraction] = field(default_factory=dict)
    categories: Mapping[str, Fraction] = field(default_factory=dict)
    exact: bool = True
    notes: tuple[str, ...] = ()

    def processes_total(self) -> Fraction:
        return sum((p.total for p in self.processes.values()), _ZERO)

    def accounted(self) -> Fraction:
        """Σ processes + Σ categories: equals ``total_bytes`` exactly when residual is 0."""
        return self.processes_total() + sum(self.categories.values(), _ZERO)

    @property
    def residual(self) -> Fraction:
        """total - accounted: 0 on a source that sees every page; a live host's is the
        difference between its page-level reads and the kernel's own totals."""
        return self.total_bytes - self.accounted()


# Sums of fractions kept as {denominator: numerator}: shares only ever have a handful of
# distinct denominators (VMOs reaching a page x users of the VMO), so adding integers per
# denominator and making one Fraction at the end is exact and far cheaper than adding
# thousands of Fractions (each addition normalises with a gcd).
_Sum = dict[int, int]


def _add(sums: dict[int, _Sum], key: int, numerator: int, denominator: int) -> None:
    by_denominator = sums.get(key)
    if by_denominator is None:
        sums[key] = {denominator: numerator}
    else:
        by_denominator[denominator] = by_denominator.get(denominator, 0) + numerator


def _value(by_denominator: _Sum | None) -> Fraction:
    if not by_denominator:
        return _ZERO
    if len(by_denominator) == 1:
        ((d, n),) = by_denominator.items()
        return Fraction(n, d)
    common = lcm(*by_denominator)  # one Fraction, not one addition per denominator
    return Fraction(sum(n * (common // d) for d, n in by_denominator.items()), common)


def attribute(facts: PageFacts) -> Attribution:
    """Apply the rules above to ``facts``."""
    page = facts.page_size
    private: dict[int, _Sum] = {}
    shared: dict[int, _Sum] = {}
    vmos: dict[int, _Sum] = {}
    by_vmo: dict[int, dict[int, _Sum]] = {}
    categories: dict[str, Fraction] = {k: Fraction(v) for k, v in facts.categories.items()}
    for key, count in facts.pages.items():
        used = [use for use in key if use.users]
        if not used:
            kind = KERNEL_VMOS if any(use.kernel for use in key) else UNREFERENCED
            categories[kind] = categories.get(kind, _ZERO) + count * page
            continue
        nbytes, reachers = count * page, len(used)
        if reachers == 1 and len(used[0].users) == 1:
            bucket = private  # the common case: one process, one VMO
        else:
            everyone = {pid for use in used for pid in use.users}
            bucket = private if len(everyone) == 1 else shared
        for use in used:
            _add(vmos, use.vmo_koid, nbytes, reachers)
            # Each user's share of this VMO's share: nbytes / (reachers x users).
            denominator = reachers * len(use.users)
            for pid in use.users:
                _add(bucket, pid, nbytes, denominator)
                _add(by_vmo.setdefault(pid, {}), use.vmo_koid, nbytes, denominator)
    koids = (
        set(private)
        | set(shared)
        | set(facts.process_kernel)
        | set(facts.process_estimated)
        | set(facts.process_swap)
    )
    processes = {
        pid: ProcessShare(
            private=_value(private.get(pid)),
            shared=_value(shared.get(pid)),
            kernel={k: Fraction(v) for k, v in facts.process_kernel.get(pid, {}).items() if v},
            estimated=Fraction(facts.process_estimated.get(pid, 0)),
            swap=Fraction(facts.process_swap.get(pid, 0)),
            by_vmo={v: _value(sums) for v, sums in by_vmo.get(pid, {}).items()},
        )
        for pid in sorted(koids)
    }
    return Attribution(
        facts.total_bytes,
        processes,
        {v: _value(sums) for v, sums in vmos.items()},
        {k: v for k, v in categories.items() if v},
        exact=facts.exact,
        notes=facts.notes,
    )


def attribute_snapshot(snapshot: Snapshot) -> Attribution:
    """The attribution of a snapshot taken at ``Level.PAGES``."""
    if snapshot.pages is None:
        raise ValueError("snapshot has no page facts (take it at Level.PAGES)")
    return attribute(snapshot.pages)
