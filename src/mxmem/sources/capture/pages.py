"""Page facts derived from a capture that has no page-level data (issue 6).

memgraph JSON, a Fuchsia memory_monitor capture and an mxmem snapshot file saved without
page facts record VMOs, not pages: each VMO's committed bytes and which processes map or
hold it. :func:`derive_page_facts` describes physical memory "as far as the data allows"
in the model's :class:`~mxmem.model.PageFacts`, so exact attribution runs on them, and
says in ``notes`` which rules it could not apply and why (``exact`` is False):

- Counts are bytes (``page_size`` 1): a capture knows committed bytes, not pages.
- The users of a VMO are the processes that map it or hold a handle to it (memgraph's
  ``MAPPING``/``HANDLE`` refs, Fuchsia's per-process VMO lists), each once: "a page
  counted once per process" holds at VMO granularity. Which pages each mapping covers is
  unknown, so every user of a VMO is a user of all of its committed bytes.
- Copy-on-write: which of a parent's pages each clone still reaches is unknown, so a
  VMO's committed bytes are taken as reachable from it and from every descendant clone
  in the capture. The two-step rule then splits them among those that some process uses.
- VMO memory no process reaches is "unreferenced VMOs": the capture's kernel ``vmo``
  figure less the committed bytes of the VMOs that reach a process (clamped at 0, with a
  note, when the capture's VMOs commit more than its kernel figure).
- Kernel memory by kind comes from the capture's kernel figures: free, wired, kernel
  heap (allocated and free), page tables, ipc, other. Per-process kernel memory is not in
  these captures.
- A capture without VMO records (memgraph without ``-v``) gives each process its PSS as a
  per-process estimate.

With consistent kernel figures (their parts add up to the total) the attribution adds up
to the total; otherwise the difference is left as the residual, and a note says so.
"""

from __future__ import annotations

from mxmem.errors import SourceError
from mxmem.model import ObjType, PageFacts, PageKey, PageUse, Snapshot

UNREFERENCED = "unreferenced VMOs"  # the name mxmem.accounting.exact gives it too
NOT_IN_PSS = "VMO memory in no process's PSS"
# Each VMO's page pattern lists its clones below it, so a clone chain of depth d costs
# d²/2 entries; real systems nest clones a few deep (the Fuchsia fixture: 2). A file that
# needs more than this many is damage, refused rather than left to exhaust memory.
MAX_PATTERN_ENTRIES = 10_000_000

NOTE_VMO_LEVEL = (
    "page-level data not in this capture: figures are committed VMO bytes, and every"
    " process that maps or holds a VMO shares all of its committed bytes (which pages each"
    " mapping covers is not recorded)"
)
NOTE_ONCE_PER_PROCESS = (
    "a page counted once per process: applied per VMO (a VMO a process maps or holds"
    " several times counts once for it)"
)
NOTE_COW = (
    "copy-on-write split approximated: the capture cannot tell which of a parent VMO's"
    " pages each clone still reaches, so a parent's committed bytes are split as if the"
    " parent and all its live descendant clones reach them all"
)
NOTE_PROCESS_KERNEL = (
    "kernel memory per process (page tables, kernel stacks, kernel objects) could not be"
    " applied: the capture has only system-wide kernel figures, shown as kernel categories"
)
NOTE_NO_VMOS = (
    "the capture has no VMO records: each process's figure is its PSS from the capture,"
    " not page-level (copy-on-write and handle-held VMOs cannot be told apart)"
)
NOTE_NO_KERNEL = (
    "the capture has no kernel figures: the total is only what its processes reach;"
    " free, kernel and unreferenced memory are unknown"
)


def _users(snapshot: Snapshot) -> tuple[dict[int, set[int]], set[int]]:
    """The processes that map or hold each VMO, and the VMOs the kernel maps."""
    users: dict[int, set[int]] = {}
    for pid, process in snapshot.processes.items():
        koids: set[int] = set(process.vmo_koids or ())
        for handle in process.handles or ():
            if handle.type is ObjType.VMO:
                koids.add(handle.koid)
        if process.aspace is not None:
            koids.update(m.vmo_koid for m in process.aspace.mappings())
        for koid in koids:
            if koid in snapshot.vmos:
                users.setdefault(koid, set()).add(pid)
    kernel: set[int] = set()
    if snapshot.kernel_aspace is not None:
        kernel = {m.vmo_koid for m in snapshot.kernel_aspace.mappings()}
    return users, kernel


def _used_descendants(
    children: dict[int, list[int]], users: dict[int, set[int]], koid: int
) -> list[int]:
    """The clones below ``koid`` that some process uses (the others take no share of a
    page under the two-step rule); a visited set, so a damaged parent cycle ends."""
    out: list[int] = []
    seen = {koid}
    stack = list(children.get(koid, ()))
    while stack:
        child = stack.pop()
        if child in seen:
            continue
        seen.add(child)
        if child in users:
            out.append(child)
        stack.extend(children.get(child, ()))
    return out


def derive_page_facts(snapshot: Snapshot, where: str) -> PageFacts:
    """Page facts of a capture without page-level data (see the module doc); ``where``
    names the capture in errors."""
    notes: list[str] = []
    vmos = snapshot.vmos
    users, kernel_mapped = _users(snapshot)
    children: dict[int, list[int]] = {}
    for vmo in vmos.values():
        if vmo.parent_koid and vmo.parent_koid in vmos and vmo.parent_koid != vmo.koid:
            children.setdefault(vmo.parent_koid, []).append(vmo.koid)

    def use(koid: int) -> PageUse:
        vmo = vmos[koid]
        holders = tuple(sorted(users.get(koid, ())))
        return PageUse(koid, holders, vmo.kernel_only or koid in kernel_mapped)

    pages: dict[PageKey, int] = {}
    reached = 0  # committed bytes of the VMOs whose bytes reach some process
    entries = 0
    for vmo in vmos.values():
        # A physical VMO is device memory, not RAM in the kernel's vmo figure.
        if vmo.committed_bytes == 0 or vmo.physical:
            continue
        clones = _used_descendants(children, users, vmo.koid)
        entries += 1 + len(clones)
        if entries > MAX_PATTERN_ENTRIES:
            raise SourceError(f"{where}: copy-on-write clone chains too deep to derive page facts")
        key = tuple(sorted(use(k) for k in (vmo.koid, *clones)))
        if not any(u.users for u in key):
            # No process reaches it: part of "unreferenced VMOs" below, or of another
            # kernel figure (a kernel image or heap VMO an mxmem snapshot lists).
            continue
        pages[key] = pages.get(key, 0) + vmo.committed_bytes
        reached += vmo.committed_bytes
    if pages:
        notes += [NOTE_VMO_LEVEL, NOTE_ONCE_PER_PROCESS]
        if any(len(key) > 1 for key in pages):
            notes.append(NOTE_COW)
        cut = sum(1 for v in vmos.values() if v.parent_koid and v.parent_koid not in vmos)
        if cut:
            notes.append(
                f"copy-on-write families cut: {cut} VMOs name a parent VMO the capture does"
                " not record (a capture may list only the VMOs processes reference): what their"
                " clone ancestors commit is not shared with them (a missing parent's own"
                f" bytes are in {UNREFERENCED!r})"
            )

    estimated: dict[int, int] = {}
    if not vmos:
        for pid, process in snapshot.processes.items():
            if process.stats is not None:
                estimated[pid] = process.stats.private_bytes + process.stats.scaled_shared_bytes
        if estimated:
            notes.append(NOTE_NO_VMOS)
    in_processes = reached + sum(estimated.values())

    # Processes the capturing tool could not read and for which it recorded no VMOs:
    # their memory, if any, is in the VMO memory no process reaches.
    reaching = {pid for pids in users.values() for pid in pids} | set(estimated)
    unreadable = sum(
        1
        for pid, p in snapshot.processes.items()
        if p.unreadable is not None and pid not in reaching
    )
    categories: dict[str, int] = {}
    kmem = snapshot.kernel
    if kmem is None:
        total = in_processes
        notes.append(NOTE_NO_KERNEL)
    else:
        total = kmem.total_bytes
        heap_free = kmem.heap_free_bytes
        if heap_free > kmem.heap_total_bytes:
            notes.append(
                f"the capture's kernel heap free figure ({heap_free}) exceeds its heap"
                f" ({kmem.heap_total_bytes}): the whole heap is shown as kernel heap"
            )
            heap_free = 0
        categories = {
            "free": kmem.free_bytes,
            "wired": kmem.wired_bytes,
            "kernel heap": kmem.heap_total_bytes - heap_free,
            "kernel heap free": heap_free,
            "page tables": kmem.mmu_bytes,
            "ipc": kmem.ipc_bytes,
            "other": kmem.other_bytes,
        }
        name = NOT_IN_PSS if estimated else UNREFERENCED
        rest = kmem.vmo_bytes - in_processes
        if rest >= 0:
            categories[name] = rest
        else:
            notes.append(
                f"the capture's processes reach {in_processes} bytes of VMO memory, {-rest}"
                f" more than its kernel vmo figure ({kmem.vmo_bytes}): no {name!r} category,"
                " (the difference is in the residual)"
            )
        parts = kmem.parts_sum()
        if parts != total:
            more, why = (
                ("less", "memory the figures do not classify")
                if parts < total
                else ("more", "figures read at different moments")
            )
            notes.append(
                f"the capture's kernel figures add up to {parts} bytes, {abs(total - parts)}"
                f" {more} than its total ({total}): {why}; the difference is in the residual"
            )
        if unreadable:
            notes.append(
                f"{unreadable} process(es) had no figures in the capture (unreadable when"
                f" captured): their memory is counted in {name!r}"
            )
    if snapshot.processes:
        notes.append(NOTE_PROCESS_KERNEL)
    return PageFacts(
        total_bytes=total,
        page_size=1,
        pages=pages,
        process_estimated=estimated,
        categories={k: v for k, v in categories.items() if v},
        exact=False,
        notes=tuple(notes),
    )
