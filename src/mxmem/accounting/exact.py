"""Exact attribution: every byte of physical memory counted exactly once (issue 6).

The rules, applied page by page:

- a page is counted once per process, however many times that process maps it;
- a VMO held only by handles is attributed to the processes holding it, shared equally;
- copy-on-write (RFC-0254's two-step rule): a page is split first equally among the VMOs
  that can reach it and that some process maps or holds, then each VMO's share equally
  among those processes. VMOs no process uses take no share, so a page kept alive for a
  clone is blamed on the clone's users rather than left unexplained;
- a page no process uses is shown by kind: "kernel VMOs" if the kernel holds a reaching
  VMO, else "unreferenced VMOs";
- a process's own page tables are attributed to it; the rest of memory is named by kind.

Shares are exact fractions, so the invariant Σ processes + Σ categories = total holds to
the byte; only display rounds (:meth:`Attribution.rounded`).

The facts come from a source (``mxmem.sources.sim.pages.sim_page_facts`` for the simulated
kernel); accounting may not import sources, so :class:`PageFacts` is a protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol

# Per reaching VMO: the koids of the processes using the page through it, and whether
# the kernel holds that VMO.
Reacher = tuple[tuple[int, ...], bool]
PageKey = tuple[Reacher, ...]

UNREFERENCED = "unreferenced VMOs"
KERNEL_VMOS = "kernel VMOs"


class PageFacts(Protocol):
    @property
    def total_bytes(self) -> int: ...
    @property
    def page_size(self) -> int: ...
    @property
    def pages(self) -> Mapping[PageKey, int]: ...
    @property
    def process_mmu_bytes(self) -> Mapping[int, int]: ...
    @property
    def unowned_bytes(self) -> Mapping[str, int]: ...


@dataclass(frozen=True)
class ProcessShare:
    """One process's exact attribution, in (fractional) bytes."""

    vmo_bytes: Fraction = Fraction(0)
    mmu_bytes: Fraction = Fraction(0)

    @property
    def total(self) -> Fraction:
        return self.vmo_bytes + self.mmu_bytes


@dataclass(frozen=True)
class Attribution:
    total_bytes: int
    processes: Mapping[int, ProcessShare] = field(default_factory=dict)
    categories: Mapping[str, Fraction] = field(default_factory=dict)

    def accounted(self) -> Fraction:
        """Σ processes + Σ categories: equals ``total_bytes`` exactly."""
        return sum((p.total for p in self.processes.values()), Fraction(0)) + sum(
            self.categories.values(), Fraction(0)
        )

    def rounded(self, koid: int) -> int:
        """A process's total rounded to whole bytes, for display only."""
        share = self.processes.get(koid)
        return 0 if share is None else round(share.total)


def attribute(facts: PageFacts) -> Attribution:
    """Apply the rules above to ``facts``."""
    page = facts.page_size
    vmo: dict[int, Fraction] = {}
    categories: dict[str, Fraction] = {k: Fraction(v) for k, v in facts.unowned_bytes.items()}
    for key, count in facts.pages.items():
        users = [pids for pids, _ in key if pids]
        if not users:
            kind = KERNEL_VMOS if any(k for _, k in key) else UNREFERENCED
            categories[kind] = categories.get(kind, Fraction(0)) + count * page
            continue
        per_vmo = Fraction(count * page, len(users))
        for pids in users:
            # A process appears once per reaching VMO, however many mappings it has.
            each = per_vmo / len(pids)
            for pid in pids:
                vmo[pid] = vmo.get(pid, Fraction(0)) + each
    koids = set(vmo) | set(facts.process_mmu_bytes)
    processes = {
        pid: ProcessShare(
            vmo_bytes=vmo.get(pid, Fraction(0)),
            mmu_bytes=Fraction(facts.process_mmu_bytes.get(pid, 0)),
        )
        for pid in sorted(koids)
    }
    return Attribution(facts.total_bytes, processes, categories)
