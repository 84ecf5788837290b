"""Memory figures of a process or a mapping."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStats:
    """A process's memory figures (``mx_info_task_stats_t``), in bytes.

    ``scaled_shared_bytes`` is the process's proportional part of its shared bytes, so
    PSS = private + scaled_shared. A source that computes these itself (the Linux kernel's
    ``smaps_rollup``) hands them over; otherwise accounting derives them from mappings.
    """

    mapped_bytes: int
    private_bytes: int
    shared_bytes: int
    scaled_shared_bytes: int
    swap_pss_bytes: int = 0

    @property
    def pss_bytes(self) -> int:
        return self.private_bytes + self.scaled_shared_bytes


ZERO_STATS = TaskStats(mapped_bytes=0, private_bytes=0, shared_bytes=0, scaled_shared_bytes=0)
