"""Physical memory of the simulated kernel: pages, their states, and the PMM's counts.

Every page of physical memory is in exactly one state (free, wired, heap, object, mmu,
other), so the kernel's memory figures always sum to the total.
"""

from __future__ import annotations

from enum import IntEnum

from mxmem.errors import KernelError

__all__ = ["PAGE_SIZE", "PageState", "Pmm", "pages_for"]

PAGE_SIZE = 4096


class PageState(IntEnum):
    """The PMM page states of ``kernel/include/kernel/vm/page.h``; ALLOC is "other"."""

    FREE = 0
    WIRED = 1
    HEAP = 2
    OBJECT = 3
    MMU = 4
    ALLOC = 5


def pages_for(nbytes: int) -> int:
    return -(-nbytes // PAGE_SIZE)


class Pmm:
    """The physical memory manager: counts of pages in each state."""

    def __init__(self, total_pages: int) -> None:
        self.total_pages = total_pages
        self.counts = [0] * len(PageState)
        self.counts[PageState.FREE] = total_pages

    @property
    def free_pages(self) -> int:
        return self.counts[PageState.FREE]

    def check(self, npages: int) -> None:
        if npages > self.counts[PageState.FREE]:
            raise KernelError(
                "ERR_NO_MEMORY", f"need {npages} pages, {self.counts[PageState.FREE]} free"
            )

    def alloc(self, state: PageState, npages: int) -> None:
        self.check(npages)
        self.counts[PageState.FREE] -= npages
        self.counts[state] += npages

    def release(self, state: PageState, npages: int) -> None:
        assert self.counts[state] >= npages, (state, npages, self.counts)
        self.counts[state] -= npages
        self.counts[PageState.FREE] += npages
