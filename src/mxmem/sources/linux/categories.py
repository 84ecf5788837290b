"""Memory no process is blamed for, by kind: the categories of the page facts, as the
differences between ``/proc/meminfo``'s counters and what was attributed (the table
is in :mod:`.pagefacts`), and what is left over."""

from __future__ import annotations

from collections.abc import Mapping

from mxmem.model import KERNEL_STACKS, PAGE_TABLES
from mxmem.sources.linux.procfs import parse_meminfo
from mxmem.sources.linux.reader import ProcReader, Unreadable


class Tally:
    """What the memory attributed adds up to (bytes), by the meminfo counter it is in."""

    def __init__(self) -> None:
        self.anon = 0
        self.file = 0
        self.shmem = 0
        self.dmabuf = 0
        self.swapcache = 0  # anonymous memory attributed that is in the swap cache too
        self.hugetlb = 0


def meminfo_categories(
    meminfo: Mapping[str, int],
    tally: Tally,
    kernel: Mapping[int, Mapping[str, int]],
    notes: list[str],
) -> dict[str, int]:
    """Memory no process is blamed for, by kind (the module docstring's table)."""
    get = meminfo.get
    stacks = sum(c.get(KERNEL_STACKS, 0) for c in kernel.values())
    tables = sum(c.get(PAGE_TABLES, 0) for c in kernel.values())
    vmalloc = get("VmallocUsed", 0)
    if vmalloc >= get("KernelStack", 0):
        vmalloc -= get("KernelStack", 0)
    # (counter, what of it is attributed to processes)
    parts = {
        "free": (get("MemFree", 0), 0),
        "page cache not mapped": (get("Cached", 0) - get("Shmem", 0), tally.file),
        "shmem/tmpfs not held": (get("Shmem", 0), tally.shmem),
        "anonymous memory not attributed": (get("AnonPages", 0), tally.anon),
        "buffers": (get("Buffers", 0), 0),
        "swap cache": (get("SwapCached", 0), tally.swapcache),
        "kernel slab (reclaimable)": (get("SReclaimable", 0), 0),
        "kernel slab (unreclaimable)": (get("SUnreclaim", 0), 0),
        "kernel stacks (not attributed)": (get("KernelStack", 0), stacks),
        "page tables (not attributed)": (get("PageTables", 0), tables),
        "secondary page tables": (get("SecPageTables", 0), 0),
        "per-cpu": (get("Percpu", 0), 0),
        "vmalloc": (vmalloc, 0),
        "hugetlb pool": (get("Hugetlb", 0), tally.hugetlb),
        "zswap pool": (get("Zswap", 0), 0),
    }
    out: dict[str, int] = {}
    over: list[str] = []
    for name, (counter, attributed) in parts.items():
        value = counter - attributed
        if value < 0:
            over.append(f"{name} ({-value} bytes)")
        elif value:
            out[name] = value
    if over:
        notes.append(
            "what was attributed exceeds /proc/meminfo's counter for "
            + ", ".join(over)
            + ": the system changed between the reads; shown as 0"
        )
    return out


def residual_note(meminfo: Mapping[str, int]) -> str:
    balloon = meminfo.get("Balloon", 0)
    extra = f", balloon pages ({balloon} bytes)" if balloon else ""
    return (
        "the residual is memory the kernel allocated without"
        " a /proc/meminfo counter (drivers' alloc_pages: virtio and network rings, DMA"
        " buffers), free pages on the per-CPU lists (not in MemFree), dma-buf memory"
        f" nobody holds{extra}, and pages that changed between the reads (pagemap,"
        " kpagecount and meminfo are read at different moments);"
        " memory reserved at boot (firmware, kernel image, struct page arrays) is outside"
        " MemTotal"
    )


def read_meminfo(reader: ProcReader) -> dict[str, int]:
    try:
        return parse_meminfo(reader.read(f"{reader.proc}/meminfo"))
    except (Unreadable, ValueError):
        return {}
