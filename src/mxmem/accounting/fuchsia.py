"""Fuchsia's per-process attribution (memory_monitor ``summary.cc``, spec §11.3).

A process's VMO set is the VMOs it references plus all their ancestors (the
``parent_koid`` chain of copy-on-write clones; a parent missing from the snapshot ends
the chain). A VMO's share count is the number of processes whose set holds it. For each
VMO of a process's set: ``total += committed``; ``scaled += committed // share``; and if
``share == 1``, ``private += committed``. All integer, as in Fuchsia.

Which VMOs a process references: a capture says so itself (``Process.vmo_koids``);
otherwise (the simulated kernel, the Linux host) they are the VMOs of its handles and of
its mappings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from mxmem.model import ObjType, Process, Snapshot, Vmo


class Sizes(NamedTuple):
    """Fuchsia's P,S,T triplet, in bytes: ``private <= scaled <= total``."""

    private_bytes: int
    scaled_bytes: int
    total_bytes: int


def process_vmo_koids(process: Process) -> tuple[int, ...]:
    """The VMOs ``process`` references, each once, in first-seen order."""
    if process.vmo_koids is not None:
        return tuple(dict.fromkeys(process.vmo_koids))
    seen: dict[int, None] = {}
    for handle in process.handles or ():
        if handle.type is ObjType.VMO:
            seen[handle.koid] = None
    if process.aspace is not None:
        for mapping in process.aspace.mappings():
            seen[mapping.vmo_koid] = None
    return tuple(seen)


def with_ancestors(koids: Iterable[int], vmos: Mapping[int, Vmo]) -> dict[int, None]:
    """``koids`` and all their ancestors present in ``vmos``, as an ordered set.

    A koid missing from ``vmos`` is dropped (its committed bytes are unknown). A parent
    cycle (which a consistent source never has) stops at the first repeated VMO instead
    of looping."""
    out: dict[int, None] = {}
    for koid in koids:
        current: int | None = koid
        while current is not None and current in vmos and current not in out:
            out[current] = None
            current = vmos[current].parent_koid
    return out


def summary_sizes(
    process_vmos: Mapping[int, Iterable[int]], vmos: Mapping[int, Vmo]
) -> dict[int, Sizes]:
    """Sizes of each process (by koid) from the VMOs it references, by Fuchsia's rule."""
    sets = {pkoid: with_ancestors(koids, vmos) for pkoid, koids in process_vmos.items()}
    share: dict[int, int] = {}
    for vmo_set in sets.values():
        for vkoid in vmo_set:
            share[vkoid] = share.get(vkoid, 0) + 1
    out: dict[int, Sizes] = {}
    for pkoid, vmo_set in sets.items():
        private = scaled = total = 0
        for vkoid in vmo_set:
            committed = vmos[vkoid].committed_bytes
            count = share[vkoid]
            total += committed
            scaled += committed // count
            if count == 1:
                private += committed
        out[pkoid] = Sizes(private, scaled, total)
    return out


def snapshot_summary(snapshot: Snapshot) -> dict[int, Sizes]:
    """Fuchsia's sizes for every process of ``snapshot``, whatever its source."""
    return summary_sizes(
        {koid: process_vmo_koids(p) for koid, p in snapshot.processes.items()}, snapshot.vmos
    )
