"""How much memory a world's program will need, found by running it without a kernel.

The scale worlds size their machine this way: :class:`Counter` is a second interpreter of
the same ops :class:`~mxmem.sources.sim.worlds.program.Machine` runs, which only adds up
committed pages, kernel heap (every object ever allocated: the heap never shrinks) and
page tables. It handles the ops the scale generator makes; it assumes, as the generator
guarantees, that no page is written twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mxmem.sources.sim.kernel import HEAP_CHUNK_PAGES, HEAP_COST, PAGE_SIZE, pages_for

__all__ = ["Counter"]


class _Token:
    """What :class:`Counter` hands out for what an op made: a program never looks inside."""


_PROCESS = _Token()
_OTHER = _Token()


def _table_pages(base: int, size: int) -> int:
    """Page-table pages a region can need: one per 2M, 1G and 512G block it touches.

    Regions are counted separately, so blocks they share are counted twice; with random
    placement that is rare, and it only errs towards more memory."""
    last = base + size - 1
    return (
        (last >> 21) - (base >> 21) + (last >> 30) - (base >> 30) + (last >> 39) - (base >> 39) + 3
    )


class Counter:
    """Runs ops without a kernel, adding up the pages they need."""

    def __init__(self) -> None:
        self.vmo_pages = 0
        self.heap_bytes = HEAP_COST["job"]  # the root job
        self.mmu_pages = 0
        self.root_job: object = _OTHER
        self._run: dict[str, Callable[..., object]] = {
            "job": self._job,
            "process": self._process,
            "thread": self._thread,
            "start": self._nothing,
            "thread_state": self._nothing,
            "kill": self._nothing,
            "close": self._nothing,
            "vmo": self._vmo,
            "physical": self._vmo,
            "clone": self._vmo,
            "write": self._write,
            "grant": self._handle,
            "duplicate": self._handle,
            "transfer": self._handle,
            "vmar": self._vmar,
            "map": self._map,
            "channel": self._channel,
        }

    def __call__(self, kind: str, *args: Any) -> Any:
        return self._run[kind](*args)

    def total_pages(self) -> int:
        chunks = -(-self.heap_bytes // (HEAP_CHUNK_PAGES * PAGE_SIZE)) + 1
        return self.vmo_pages + chunks * HEAP_CHUNK_PAGES + self.mmu_pages

    def _nothing(self, *args: object) -> None:
        pass

    def _job(self, *args: object) -> object:
        self.heap_bytes += HEAP_COST["job"]
        return _OTHER

    def _process(self, *args: object) -> object:
        self.heap_bytes += HEAP_COST["process"] + HEAP_COST["aspace"] + HEAP_COST["vmar"]
        self.mmu_pages += 1  # the top-level page table
        return _PROCESS

    def _thread(self, *args: object) -> object:
        self.heap_bytes += HEAP_COST["thread"]
        return _OTHER

    def _vmo(self, *args: object) -> object:
        self.heap_bytes += HEAP_COST["vmo"] + HEAP_COST["handle"]
        return _OTHER

    def _write(self, vmo: object, offset: int, length: int) -> None:
        self.vmo_pages += pages_for(offset + length) - offset // PAGE_SIZE

    def _handle(self, *args: object) -> object:
        # A duplicate, and the handle a transfer makes (the one it closes stays counted:
        # the heap keeps what it took).
        self.heap_bytes += HEAP_COST["handle"]
        return _OTHER

    def _vmar(self, parent: object, size: int, addr: int, *args: object) -> object:
        self.heap_bytes += HEAP_COST["vmar"]
        self.mmu_pages += _table_pages(addr, size)
        return _OTHER

    def _map(
        self, where: object, vmo: object, offset: int, size: int, perms: int, addr: int
    ) -> None:
        self.heap_bytes += HEAP_COST["mapping"]
        if where is _PROCESS:
            # Mappings inside a sub-VMAR use the tables its region was counted for.
            self.mmu_pages += _table_pages(addr, size)

    def _channel(self, *args: object) -> None:
        self.heap_bytes += 2 * (HEAP_COST["other"] + HEAP_COST["handle"])
