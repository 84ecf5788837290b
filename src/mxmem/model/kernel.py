"""Kernel-wide physical memory figures (Magenta's ``mx_info_kmem_stats_t``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelMemory:
    """Physical memory by use, in bytes.

    ``free + wired + heap_total + vmo + mmu + ipc + other == total`` for a consistent
    source (the Magenta kernel derives every field from page-state counts, so its figures
    always sum). ``heap_free`` is the unused part of ``heap_total``, not a separate use.
    ``available`` is not a part either: Linux's estimate (MemAvailable) of what could be
    had without swapping, free plus reclaimable; ``None`` where the kernel has no such
    figure (Magenta).
    """

    total_bytes: int
    free_bytes: int
    wired_bytes: int
    heap_total_bytes: int
    heap_free_bytes: int
    vmo_bytes: int
    mmu_bytes: int
    ipc_bytes: int = 0
    other_bytes: int = 0
    available_bytes: int | None = None

    @property
    def heap_allocated_bytes(self) -> int:
        return self.heap_total_bytes - self.heap_free_bytes

    def parts_sum(self) -> int:
        """Sum of the disjoint uses; equals ``total_bytes`` when the figures are consistent."""
        return (
            self.free_bytes
            + self.wired_bytes
            + self.heap_total_bytes
            + self.vmo_bytes
            + self.mmu_bytes
            + self.ipc_bytes
            + self.other_bytes
        )
