"""Memory no process is blamed for, by kind: the categories of the page facts, as the
differences between ``/proc/meminfo``'s counters and what was attributed (the table
is in :mod:`.pagefacts`), and what is left over."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


# --- whether the system held still while its pages were read -----------------------------

# The counters the categories are differences with. The pages are read over a second or
# more, the counters at single moments: if memory is allocated or freed meanwhile, pages
# read before the change are compared with counters read after it, and the residual
# takes the difference (a process freeing 768 MiB mid-scan gave -333.8 MiB).
WATCHED = (
    "MemFree",
    "AnonPages",
    "Cached",
    "Shmem",
    "Buffers",
    "SwapCached",
    "SReclaimable",
    "SUnreclaim",
    "KernelStack",
    "PageTables",
)
# A counter that moved by more than this during the reads makes the scan run again: below
# the residual of a quiet machine (41-47 MiB on the development VM, see .pagefacts), so
# a scan that passes cannot have turned it negative by much; above the few MiB that
# page cache and slab drift by while a busy machine is scanned.
SETTLED_BYTES = 32 << 20
# The scans made at most: a system that keeps changing gets its last scan, with a note.
SCANS = 3

_MIB = 1 << 20


def counter_moves(readings: Sequence[Mapping[str, int]]) -> dict[str, int]:
    """How far each watched counter strayed from its first reading over ``readings``
    (taken before, during and after the page reads): the signed change to the reading
    farthest from the first, for the counters that moved by more than SETTLED_BYTES.
    Empty when the system held still (or there are fewer than two readings). The middle
    readings catch a change undone by the end (memory allocated and freed again)."""
    if len(readings) < 2:
        return {}
    first = readings[0]
    moves: dict[str, int] = {}
    for name in WATCHED:
        if name not in first:
            continue
        changes = [r[name] - first[name] for r in readings[1:] if name in r]
        far = max(changes, key=abs, default=0)
        if abs(far) > SETTLED_BYTES:
            moves[name] = far
    return moves


def _moves_text(moves: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {value / _MIB:+.1f} MiB" for name, value in moves.items())


def moved_note(moves: Mapping[str, int], earlier: Sequence[Mapping[str, int]]) -> str | None:
    """The note line of a scan whose counters moved (``moves``) or that followed scans
    whose counters did (``earlier``); None when neither."""
    if moves:
        scans = len(earlier) + 1
        return (
            f"the system changed while its pages were read ({_moves_text(moves)}"
            f"{f'; the same in {scans} scans' if scans > 1 else ''}): the pages and"
            " /proc/meminfo describe different moments, and the categories and the residual"
            " take the difference"
        )
    if earlier:
        count = len(earlier)
        first = "the first scan" if count == 1 else f"the first {count} scans"
        return (
            f"scanned {count + 1} times: the system changed while {first} read its pages"
            f" ({'' if count == 1 else 'the last: '}{_moves_text(earlier[-1])}); these"
            " figures are from a scan during which it held still"
        )
    return None
