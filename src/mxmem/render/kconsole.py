"""The kernel console's ``k mx ...`` commands (spec §10; Magenta 2017
``kernel/lib/magenta/diagnostics.cpp``), rendered from a snapshot.

Each ``write_*`` function prints what one console command printed, line for line:

* :func:`write_ps` / :func:`write_ps_key` — ``mx ps [help]``, handle counts by object type;
* :func:`write_jobs` — ``mx jobs``;
* :func:`write_handles` — ``mx ht <pid>``;
* :func:`write_all_vmos` — ``mx vmos all|hidden``;
* :func:`write_process_vmos` — ``mx vmos <pid>``;
* :func:`write_aspace` — ``mx asd kernel|<pid>``, the VMAR/mapping/VMO tree.

Where the spec gives a format it is followed exactly; where it does not (the ``jobs``
header, ``ht``'s type names, the handle column of ``vmos <pid>``, ``htinfo``) the format
is our reconstruction in the same printf style, and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from collections.abc import Mapping as MappingOf
from typing import NamedTuple, TextIO

from mxmem.model import (
    Aspace,
    Mapping,
    ObjType,
    Perm,
    Process,
    Snapshot,
    Vmar,
    Vmo,
    rights_string,
)
from mxmem.render.text import safe_text
from mxmem.render.units import format_size

__all__ = [
    "PS_HEADER",
    "PS_KEY",
    "USAGE",
    "VMO_HANDLE_HEADER",
    "VMO_HEADER",
    "HandleCounts",
    "handle_counts",
    "hidden_vmos",
    "kernel_pointer",
    "user_mapped_vmo_koids",
    "write_all_vmos",
    "write_aspace",
    "write_handles",
    "write_jobs",
    "write_process_vmos",
    "write_ps",
    "write_ps_key",
]

PAGE_SIZE = 4096

# diagnostics.cpp's usage, printed with argv[0] = "mx".
USAGE = """\
mx ps                : list processes
mx jobs              : list jobs
mx mwd  <mb>         : memory watchdog
mx ht   <pid>        : dump process handles
mx hwd  <count>      : handle watchdog
mx vmos <pid>|all|hidden [-u?]
                     : dump process/all/hidden VMOs
                 -u? : fix all sizes to the named unit
                       where ? is one of [BkMGTPE]
mx kill <pid>        : kill process
mx asd  <pid>|kernel : dump process/kernel address space
mx htinfo            : handle table info
"""

# ------------------------------------------------------------------------- mx ps

PS_HEADER = f"{'id':>7}  #h:  #jb #pr #th #vo #vm #ch #ev #po #so #tm #fi [name]\n"

# DumpProcessListKeyMap, including its one line without a space before the colon.
PS_KEY = """\
id  : process id number
#h  : total number of handles
#jb : number of job handles
#pr : number of process handles
#th : number of thread handles
#vo : number of vmo handles
#vm : number of virtual memory address region handles
#ch : number of channel handles
#ev : number of event and event pair handles
#po : number of port handles
#so: number of sockets
#tm : number of timers
#fi : number of fifos
"""

# The per-type columns of ``mx ps`` in order; events and event pairs share one. Handles
# to other types (interrupts, resources, logs) count only in the total.
_PS_COLUMNS: tuple[tuple[ObjType, ...], ...] = (
    (ObjType.JOB,),
    (ObjType.PROCESS,),
    (ObjType.THREAD,),
    (ObjType.VMO,),
    (ObjType.VMAR,),
    (ObjType.CHANNEL,),
    (ObjType.EVENT, ObjType.EVENTPAIR),
    (ObjType.PORT,),
    (ObjType.SOCKET,),
    (ObjType.TIMER,),
    (ObjType.FIFO,),
)


class HandleCounts(NamedTuple):
    total: int
    columns: tuple[int, ...]  # one per _PS_COLUMNS entry: #jb #pr #th ... #fi


def handle_counts(process: Process) -> HandleCounts:
    """How many handles ``process`` holds, in all and per ``mx ps`` column."""
    by_type: dict[ObjType, int] = {}
    handles = process.handles or ()
    for handle in handles:
        by_type[handle.type] = by_type.get(handle.type, 0) + 1
    columns = tuple(sum(by_type.get(t, 0) for t in types) for types in _PS_COLUMNS)
    return HandleCounts(len(handles), columns)


def write_ps(snapshot: Snapshot, out: TextIO) -> None:
    """``mx ps``: every process, in the job walk (a job's processes before its child
    jobs), with its handle counts. The header is printed once, before the rows."""
    lines = [PS_HEADER]
    for entry in snapshot.walk():
        process = entry.obj
        if entry.kind != "p" or not isinstance(process, Process):
            continue
        counts = handle_counts(process)
        cells = " ".join(f"{n:3d}" for n in counts.columns)
        # "%7llu" "%4u: %3u ... %3u" " [%s]": the row is one column left of the header
        # after "#h:" (the header has two spaces before #jb, the row one), as in Magenta.
        lines.append(f"{process.koid:7d}{counts.total:4d}: {cells} [{safe_text(process.name)}]\n")
    out.write("".join(lines))


def write_ps_key(out: TextIO) -> None:
    """``mx ps help``: what the columns mean."""
    out.write(PS_KEY)


# ------------------------------------------------------------------------- mx jobs


def write_jobs(snapshot: Snapshot, out: TextIO) -> None:
    """``mx jobs``: every job, root first, in walk order.

    Our reconstruction: the spec gives only ``All jobs:`` and ``%7llu '%s'`` rows; the
    header ``%7s %s`` ("koid", "name") puts "koid" over the numbers.
    """
    lines = ["All jobs:\n", f"{'koid':>7} name\n"]
    for entry in snapshot.walk():
        if entry.kind == "j":
            lines.append(f"{entry.obj.koid:7d} '{safe_text(entry.obj.name)}'\n")
    out.write("".join(lines))


# ------------------------------------------------------------------------- mx ht

# Our reconstruction of ObjectTypeToString: upper-case names after the MX_OBJ_TYPE_*
# constants.
_TYPE_NAMES = {
    ObjType.JOB: "JOB",
    ObjType.PROCESS: "PROCESS",
    ObjType.THREAD: "THREAD",
    ObjType.VMO: "VMO",
    ObjType.VMAR: "VMAR",
    ObjType.CHANNEL: "CHANNEL",
    ObjType.EVENT: "EVENT",
    ObjType.EVENTPAIR: "EVENT_PAIR",
    ObjType.PORT: "PORT",
    ObjType.SOCKET: "SOCKET",
    ObjType.TIMER: "TIMER",
    ObjType.FIFO: "FIFO",
    ObjType.INTERRUPT: "INTERRUPT",
    ObjType.RESOURCE: "RESOURCE",
    ObjType.LOG: "LOG",
    ObjType.OTHER: "UNKNOWN",
}


def write_handles(process: Process, out: TextIO) -> None:
    """``mx ht <pid>``: the process's handle table, in table order."""
    handles = process.handles or ()
    # The koid column is %7u, widened to the widest koid (a Linux host's are 16 digits).
    width = max([7, *(len(str(h.koid)) for h in handles)])
    lines = [f"process [{process.koid}] handles :\n", f"handle{' ' * width}koid : type\n"]
    for h in handles:
        # Types Magenta did not have (a Linux host's descriptor kinds): their own names.
        name = _TYPE_NAMES.get(h.type, h.type.name)
        lines.append(f"{h.value:9x}  {h.koid:{width}d} : {name}\n")
    lines.append(f"total: {len(handles)} handles\n")
    out.write("".join(lines))


# ------------------------------------------------------------------------- mx vmos

# The handle and rights columns are 20 characters: "      handle rights " when the rows
# are a process's handles, dashes standing in for them otherwise. The koid and parent
# columns are %5llu and %6s, widened to the widest koid of the command's output (a Linux
# host's are 16 digits).
VMO_HEADER = "           -      -  koid parent #chld #map #shr    size   alloc name\n"
VMO_HANDLE_HEADER = "      handle rights  koid parent #chld #map #shr    size   alloc name\n"


class _Widths(NamedTuple):
    koid: int = 5
    parent: int = 6

    def header(self, handle: str = "-", rights: str = "-") -> str:
        return (
            f"  {handle:>10} {rights:>6} {'koid':>{self.koid}} {'parent':>{self.parent}}"
            " #chld #map #shr    size   alloc name\n"
        )


def _widths(vmos: Iterable[Vmo], every: MappingOf[int, Vmo]) -> _Widths:
    koid, parent = 5, 6
    for vmo in vmos:
        koid = max(koid, len(str(vmo.user_koid)))
        parent = max(parent, len(_parent(vmo, every)))
    return _Widths(koid, parent)


def _parent(vmo: Vmo, vmos: MappingOf[int, Vmo]) -> str:
    if not vmo.parent_koid:
        return "-"
    # The parent's user koid: 0 when the parent is kernel-only.
    parent_vmo = vmos.get(vmo.parent_koid)
    return str(parent_vmo.user_koid if parent_vmo is not None else vmo.parent_koid)


def user_mapped_vmo_koids(snapshot: Snapshot) -> set[int]:
    """Koids of the VMOs some user address space maps (the kernel's ``IsMappedByUser``),
    derived from the processes' address spaces."""
    koids: set[int] = set()
    for process in snapshot.processes.values():
        if process.aspace is not None:
            koids.update(m.vmo_koid for m in process.aspace.mappings())
    return koids


def hidden_vmos(snapshot: Snapshot) -> list[Vmo]:
    """The VMOs no user address space maps, oldest first: those held only by handles,
    mapped only by the kernel, or known only to the kernel."""
    mapped = user_mapped_vmo_koids(snapshot)
    return [v for v in snapshot.vmos.values() if v.koid not in mapped]


def _vmo_row(
    vmo: Vmo,
    vmos: MappingOf[int, Vmo],
    unit: str,
    widths: _Widths,
    handle: str = "-",
    rights: str = "-",
) -> str:
    """DumpVmObject: ``"  %10s %6s %5llu %6s %5u %4u %4u %7s %7s %s"`` (koid and parent
    as wide as ``widths`` says)."""
    alloc = "phys" if vmo.physical else format_size(vmo.committed_bytes, unit)
    name = safe_text(vmo.name) if vmo.name else "-"
    return (
        f"  {handle:>10} {rights:>6} {vmo.user_koid:{widths.koid}d}"
        f" {_parent(vmo, vmos):>{widths.parent}} {vmo.num_children:5d}"
        f" {vmo.num_mappings:4d} {vmo.share_count:4d} {format_size(vmo.size_bytes, unit):>7}"
        f" {alloc:>7} {name}\n"
    )


def write_all_vmos(snapshot: Snapshot, out: TextIO, *, hidden_only: bool, unit: str = "") -> None:
    """``mx vmos all`` / ``mx vmos hidden``: the global VMO list, oldest to newest (a
    snapshot's ``vmos`` are in creation order), with the header before and after."""
    chosen = hidden_vmos(snapshot) if hidden_only else list(snapshot.vmos.values())
    widths = _widths(chosen, snapshot.vmos)
    title = '"Hidden" VMOs' if hidden_only else "All VMOs"
    lines = [f"{title}, oldest to newest:\n", widths.header()]
    lines.extend(_vmo_row(v, snapshot.vmos, unit, widths) for v in chosen)
    lines.append(widths.header())
    out.write("".join(lines))


def write_process_vmos(
    process: Process, vmos: MappingOf[int, Vmo], out: TextIO, unit: str = ""
) -> None:
    """``mx vmos <pid>``: the VMOs the process holds handles to (with the handle value,
    decimal as ``%u``, and rights; the totals count a VMO once per handle, as the kernel
    did), then one row per mapping in address order.

    A VMO missing from ``vmos`` (a source that lost it) has no row.
    """
    held = [
        (handle, vmo)
        for handle in process.handles or ()
        if handle.type is ObjType.VMO and (vmo := vmos.get(handle.koid)) is not None
    ]
    mapped = [
        vmo
        for mapping in (process.aspace.mappings() if process.aspace is not None else ())
        if (vmo := vmos.get(mapping.vmo_koid)) is not None
    ]
    widths = _widths([*(vmo for _, vmo in held), *mapped], vmos)
    lines = [f"process [{process.koid}]:\n", "Handles to VMOs:\n"]
    lines.append(widths.header("handle", "rights"))
    count = size = alloc = 0
    for handle, vmo in held:
        rights = rights_string(handle.rights)
        lines.append(_vmo_row(vmo, vmos, unit, widths, str(handle.value), rights))
        count += 1
        size += vmo.size_bytes
        alloc += 0 if vmo.physical else vmo.committed_bytes
    lines.append(
        f"  total: {count} VMOs, size {format_size(size, unit)}, alloc {format_size(alloc, unit)}\n"
    )
    lines.extend(["Mapped VMOs:\n", widths.header()])
    lines.extend(_vmo_row(vmo, vmos, unit, widths) for vmo in mapped)
    lines.append(widths.header())
    out.write("".join(lines))


# ------------------------------------------------------------------------- mx asd

# A snapshot has no kernel pointers, so ``%p`` values are synthesized: a hash of the
# object's identity (its kind and koid, or for a mapping its address space and base)
# picks a 16-byte-aligned address. Heap objects land in the physmap's first RAM, where
# the 2017 kernel heap lived (the doc shows 0xffffff80015f89a0); the kernel address
# space and its root VMAR are statics in the kernel image (the doc: 0xffffffff80252b20).
# The same object gets the same pointer in every dump; they are not real addresses.
_HEAP_WINDOW = (0xFFFFFF8001000000, 0x4000000)
_STATIC_WINDOW = (0xFFFFFFFF80200000, 0x100000)
_M64 = (1 << 64) - 1

# Pointer kinds, mixed into the hash so different objects with equal ids differ.
_AS, _VMAR, _MAP, _VMO = 1, 2, 3, 4


def _mix(x: int) -> int:
    """splitmix64's finalizer: a bijection on 64-bit values that scatters them."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def kernel_pointer(kind: int, *ident: int, static: bool = False) -> int:
    """A stable, plausible kernel address for the object ``(kind, *ident)``."""
    h = _mix(kind)
    for part in ident:
        h = _mix(h ^ (part & _M64))
    base, span = _STATIC_WINDOW if static else _HEAP_WINDOW
    return base + (h % (span // 16)) * 16


def _x(n: int) -> str:
    """C's ``%#x``: ``0x`` and lower-case hex, but a bare ``0`` for zero."""
    return f"{n:#x}" if n else "0"


# x86-64 arch_mmu_flags (kernel/include/arch/mmu.h): the doc's physmap shows 0x18
# (READ|WRITE), its HPET 0x1a (READ|WRITE|UNCACHED_DEVICE).
MMU_UNCACHED_DEVICE = 0x2
MMU_PERM_USER = 0x4
MMU_PERM_READ = 0x8
MMU_PERM_WRITE = 0x10
MMU_PERM_EXECUTE = 0x20

# VmAspace flags: TYPE_USER is 0, TYPE_KERNEL 1 (the doc's kernel aspace shows fl 0x1).
ASPACE_TYPE_KERNEL = 0x1


def _mmu_flags(mapping: Mapping, vmo: Vmo | None, *, user: bool, ram_bytes: int) -> int:
    flags = MMU_PERM_USER if user else 0
    if mapping.perms & Perm.READ:
        flags |= MMU_PERM_READ
    if mapping.perms & Perm.WRITE:
        flags |= MMU_PERM_WRITE
    if mapping.perms & Perm.EXECUTE:
        flags |= MMU_PERM_EXECUTE
    # The model keeps no cache policy. A physical range beyond RAM is a device's
    # registers and is mapped uncached, as the kernel mapped the HPET; RAM (the physmap)
    # stays cached.
    if vmo is not None and vmo.physical and vmo.phys_base >= ram_bytes:
        flags |= MMU_UNCACHED_DEVICE
    return flags


class _AsdContext(NamedTuple):
    vmos: MappingOf[int, Vmo]
    handled: frozenset[int]  # koids of objects some process holds a handle to
    aspace_id: int  # the owning process's koid; 0 for the kernel
    user: bool
    ram_bytes: int


def _nodes(vmar: Vmar) -> int:
    return 1 + sum(_nodes(c) if isinstance(c, Vmar) else 1 for c in vmar.children)


def _vmo_ref(vmo: Vmo, ctx: _AsdContext) -> int:
    # Each mapping and each clone holds a reference; all handles to a VMO share one
    # dispatcher, which holds one more. A reference the kernel keeps for itself is not
    # in a snapshot.
    return vmo.num_mappings + vmo.num_children + (vmo.koid in ctx.handled)


def _dump_vmar(vmar: Vmar, depth: int, ctx: _AsdContext, static: bool) -> Iterator[str]:
    pad = "  " * depth
    ptr = kernel_pointer(_VMAR, ctx.aspace_id, depth, vmar.base, static=static)
    # One reference from the parent region (or the aspace, for the root), one from the
    # VMAR's dispatcher if a process has a handle to it.
    ref = 1 + (vmar.koid != 0 and vmar.koid in ctx.handled)
    yield (
        f"{pad}vmar {ptr:#x} [{_x(vmar.base)} {_x(vmar.end - 1)}] sz {_x(vmar.size)}"
        f" ref {ref} '{safe_text(vmar.name)}'\n"
    )
    for child in vmar.children:
        if isinstance(child, Vmar):
            yield from _dump_vmar(child, depth + 1, ctx, static=False)
        else:
            yield from _dump_mapping(child, depth + 1, ctx)


def _dump_mapping(m: Mapping, depth: int, ctx: _AsdContext) -> Iterator[str]:
    pad = "  " * depth
    vmo = ctx.vmos.get(m.vmo_koid)
    ptr = kernel_pointer(_MAP, ctx.aspace_id, m.base)
    vptr = kernel_pointer(_VMO, m.vmo_koid)
    koid = vmo.user_koid if vmo is not None else m.vmo_koid
    name = vmo.name if vmo is not None else m.name
    # AllocatedPagesInRange: a physical VMO has no pages of its own.
    pages = 0 if vmo is not None and vmo.physical else m.committed_bytes // PAGE_SIZE
    flags = _mmu_flags(m, vmo, user=ctx.user, ram_bytes=ctx.ram_bytes)
    yield (
        f"{pad}map {ptr:#x} [{_x(m.base)} {_x(m.end - 1)}] sz {_x(m.size)} mmufl {_x(flags)}"
        f" vmo {vptr:#x}/k{koid} off {_x(m.vmo_offset)} pages {pages} ref 1"
        f" '{safe_text(name)}'\n"
    )
    if vmo is None:
        return
    pad += "  "
    if vmo.physical:
        yield (
            f"{pad}object {vptr:#x} base {_x(vmo.phys_base)} size {_x(vmo.size_bytes)}"
            f" ref {_vmo_ref(vmo, ctx)}\n"
        )
        return
    parent = 0
    if vmo.parent_koid:
        parent_vmo = ctx.vmos.get(vmo.parent_koid)
        parent = parent_vmo.user_koid if parent_vmo is not None else vmo.parent_koid
    yield (
        f"{pad}vmo {vptr:#x}/k{vmo.user_koid} size {_x(vmo.size_bytes)}"
        f" pages {vmo.committed_bytes // PAGE_SIZE} ref {_vmo_ref(vmo, ctx)} parent k{parent}\n"
    )


def write_aspace(
    snapshot: Snapshot, aspace: Aspace, out: TextIO, *, process: Process | None = None
) -> None:
    """``mx asd``: ``aspace`` (the kernel's when ``process`` is None) as the kernel dumped
    it — the aspace, its root VMAR, then VMARs and mappings depth first in address order,
    each mapping followed by its VMO, two spaces of indentation per level.

    Addresses are inclusive ranges (``base + size - 1``). Reference counts are derived
    from the snapshot: an aspace is referenced by its owner and by every VMAR and mapping
    in it; a VMAR by its parent and its handle's dispatcher; a mapping by its VMAR; a VMO
    by its mappings, its clones and its handles' dispatcher.
    """
    handled = frozenset(
        h.koid for p in snapshot.processes.values() for h in (p.handles or ()) if h.koid
    )
    kernel = process is None
    aspace_id = 0 if process is None else process.koid
    ram = snapshot.kernel.total_bytes if snapshot.kernel is not None else 0
    ctx = _AsdContext(snapshot.vmos, handled, aspace_id, not kernel, ram)
    ptr = kernel_pointer(_AS, ctx.aspace_id, static=kernel)
    flags = ASPACE_TYPE_KERNEL if kernel else 0
    end = aspace.base + aspace.size - 1
    lines = [
        f"as {ptr:#x} [{_x(aspace.base)} {_x(end)}] sz {_x(aspace.size)} fl {_x(flags)}"
        f" ref {1 + _nodes(aspace.root)} '{safe_text(aspace.name)}'\n"
    ]
    lines.extend(_dump_vmar(aspace.root, 1, ctx, static=kernel))
    out.write("".join(lines))
