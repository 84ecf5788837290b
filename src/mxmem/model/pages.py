"""Page-level facts: what exact attribution needs to know about physical memory.

A source that can see pages (the simulated kernel; a Linux host read as root through
``pagemap`` and ``kpagecount``) describes every page in use by *who uses it*; a source
that cannot (a capture of VMO figures; a Linux host without root) describes what it knows
at coarser grain and says so in ``notes``. The rules that turn facts into bytes per
process live in :mod:`mxmem.accounting.exact`.

Pages with the same pattern of use are grouped, so a million private pages of one process
are one entry with a count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple, TypeVar

# Kinds of kernel memory a process causes (PageFacts.process_kernel keys).
PAGE_TABLES = "page tables"
KERNEL_STACKS = "kernel stacks"
KERNEL_OBJECTS = "kernel objects"


class PageUse(NamedTuple):
    """One VMO through which a page can be reached, and who reaches it that way.

    ``users``: the koids of the processes that map that page of the VMO or hold a handle
    to the VMO, sorted, each once. ``kernel``: the kernel itself holds or maps the VMO.
    ``vmo_koid`` is 0 where the source has no VMO for it.
    """

    vmo_koid: int
    users: tuple[int, ...]
    kernel: bool = False


# Every VMO that can reach one page (more than one only for copy-on-write clones), in a
# canonical (sorted) order so that equal patterns group together.
PageKey = tuple[PageUse, ...]


K = TypeVar("K")
V = TypeVar("V")


def _frozen(value: Mapping[K, V]) -> Mapping[K, V]:
    return value if isinstance(value, MappingProxyType) else MappingProxyType(dict(value))


@dataclass(frozen=True, slots=True, kw_only=True)
class PageFacts:
    """Physical memory, described for exact attribution. Sizes in bytes.

    ``pages``: how many pages (of ``page_size`` bytes) have each pattern of use.
    ``process_kernel``: kernel memory each process causes, by kind (page tables, kernel
    stacks, kernel objects), where the source can tell.
    ``process_estimated``: memory known only as a per-process figure, not page by page
    (a Linux host without root: the kernel's PSS from ``smaps_rollup``).
    ``process_swap``: each process's share of swapped-out memory (not RAM; shown apart).
    ``categories``: memory no process can be blamed for, by kind, ``"free"`` included.
    ``exact``: every figure above is page-level truth; False means approximate, and
    ``notes`` say what could not be applied and why (and, for a live host, the likely
    causes of a residual against the kernel's own totals).
    """

    total_bytes: int
    page_size: int
    pages: Mapping[PageKey, int] = field(default_factory=dict)
    process_kernel: Mapping[int, Mapping[str, int]] = field(default_factory=dict)
    process_estimated: Mapping[int, int] = field(default_factory=dict)
    process_swap: Mapping[int, int] = field(default_factory=dict)
    categories: Mapping[str, int] = field(default_factory=dict)
    exact: bool = True
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in (
            "pages",
            "process_kernel",
            "process_estimated",
            "process_swap",
            "categories",
        ):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        kernel = {k: _frozen(v) for k, v in self.process_kernel.items()}
        object.__setattr__(self, "process_kernel", MappingProxyType(kernel))
