"""The treemap's tree by treemap.py's rules (spec §7), from a snapshot and its figures.

All physical memory and its kernel parts (the kernel's memory split, as memgraph prints
it), the job tree under ``VMOs/processes``, each process's VMOs, and the ``unknown
(kernel & unmapped)`` remainder. The tree is built from the snapshot, whatever the
source (a live host, the simulated kernel, a capture of any format), never from memgraph
records: a memgraph file is read by the capture source like any other capture.

Where this differs from treemap.py, on purpose:

- ``unknown (kernel & unmapped)`` = vmo_bytes - root job area is clamped at 0 (treemap.py
  let it go negative, which breaks the layout); the page says by how much it was negative,
  and ``VMOs/processes`` is shown as the sum of its parts. Any kernel node whose parts add
  up to more than its own figure is handled the same way; one whose parts add up to less
  gets a ``not itemized`` part, so every box's children fill it exactly.
- A node's area is always the sum of its children's (treemap.py asserted it for the job
  tree).
- Areas use integer division (``committed // share_count``): treemap.py's
  ``int(committed / share_count)`` goes through a float and is wrong above 2**53.
- A share count of 0 (which the kernel never reports) divides as 1 instead of failing.
- A snapshot without kernel figures gives a tree rooted at the root job.
- VMOs are told apart by their identity in the snapshot (treemap.py by the koid memgraph
  printed, which is 0 for every VMO the kernel made without a user koid).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from mxmem.accounting.figures import Figures
from mxmem.accounting.rounding import scaled_to_fit
from mxmem.model import Job, KernelMemory, ObjType, Platform, Process, Snapshot, Vmo
from mxmem.render.memgraph import memgraph_timestamp
from mxmem.render.units import format_size

if TYPE_CHECKING:
    from mxmem.render.treemap.exact import ExactMeta

__all__ = [
    "FREE_NAME",
    "NOT_ITEMIZED_NAME",
    "ROOT_NAME",
    "UNKNOWN_NAME",
    "UNNAMED",
    "MemoryTree",
    "Node",
    "NodeType",
    "aggregated",
    "by_size",
    "job_nodes",
    "memory_tree",
    "process_children",
]

UNKNOWN_NAME = "unknown (kernel & unmapped)"
ROOT_NAME = "All physical memory"
VMO_PARENT_NAME = "VMOs/processes"
ROOT_JOB_NAME = "root job"
NOT_ITEMIZED_NAME = "not itemized"
UNNAMED = "<unnamed>"
#: The box of free memory (a kernel part, or an unowned category in an exact tree): the
#: page hides it until asked, so that it opens on the memory in use.
FREE_NAME = "free"


class NodeType(StrEnum):
    """What a box stands for. ``MEMORY`` is a process's Private or Proportional shared
    figure (no VMO list) or, in an exact tree, a kind of its memory; ``OTHER`` is a fold
    of small siblings."""

    KERNEL = "kernel"
    JOB = "job"
    PROCESS = "process"
    VMO = "vmo"
    MEMORY = "memory"
    OTHER = "other"
    # Exact attribution: memory no process is blamed for, by kind, and the residual.
    CATEGORY = "category"


class Node(NamedTuple):
    """A box: its area is ``size_bytes``, which for a node with children is their sum.

    ``members`` counts what an aggregate stands for (the VMOs of a ``name[n]`` box, the
    siblings of an ``other (n)`` box); ``folded`` counts the nodes of the full tree that
    this box hides (see :func:`~mxmem.render.treemap.fold.fold_tree`); ``free`` marks the
    box of free memory. A NamedTuple, as a million VMOs make a million nodes.
    """

    name: str
    type: NodeType
    size_bytes: int
    koid: int | None = None
    children: tuple[Node, ...] = ()
    members: int = 0
    folded: int = 0
    free: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryTree:
    """The whole tree, and what the page must say about it.

    ``unknown_clamped_bytes`` is how far below 0 ``unknown (kernel & unmapped)`` was
    before it was clamped (0 if it was not); ``notes`` are one-line caveats for the page.
    ``source`` names where the snapshot came from.
    """

    root: Node
    notes: tuple[str, ...] = ()
    unknown_clamped_bytes: int = 0
    jobs: int = 0
    processes: int = 0
    vmos: int = 0
    timestamp: str | None = None
    source: str = ""
    # An exact tree's attribution, its residual as the tree shows it (total - Σ boxes).
    attribution: ExactMeta | None = None


def by_size(nodes: Iterable[Node]) -> tuple[Node, ...]:
    """Largest first, as treemap.py's table; the stable sort keeps order for ties."""
    return tuple(sorted(nodes, key=lambda n: -n.size_bytes))


def fmt_bytes(n: int) -> str:
    return f"{format_size(n)} ({n} bytes)"


def aggregated(by_name: Mapping[str, list[Node]]) -> list[Node]:
    """One process's VMO boxes, grouped by name: same-named VMOs (except ``<unnamed>``)
    merged into one ``name[n]`` box of their total, as treemap.py did."""
    nodes: list[Node] = []
    for name, group in by_name.items():
        if len(group) == 1 or name == UNNAMED:
            nodes.extend(group)
        else:
            total = sum(n.size_bytes for n in group)
            nodes.append(Node(f"{name}[{len(group)}]", NodeType.VMO, total, members=len(group)))
    return nodes


def process_children(
    process: Process, snapshot: Snapshot, figures: Figures
) -> tuple[list[Node], int]:
    """A process's boxes by treemap.py's rules, and the number of distinct VMOs.

    With VMOs (a snapshot at ``Level.FULL``): one box per VMO the process maps or holds,
    each once, same-named VMOs (except ``<unnamed>``) merged into one ``name[n]`` box. A
    mapped VMO counts ``committed // share_count``, one only held by handles
    ``committed // (share_count + 1)`` (treemap.py counts the holder as one more sharer).
    Without: ``Private`` and ``Proportional shared`` boxes from the process's figures
    (``figures``: the 2017 rule's, or Fuchsia's Summary for a Fuchsia capture), each
    only if non-zero. On Linux, where the process's figure is the kernel's PSS, the
    mapped VMOs' boxes are scaled down to add up to no more than it.
    """
    # The VMOs vmos would list (:func:`~mxmem.render.vmos.vmos_rows`: the handles', then
    # the mappings'; those missing from the snapshot left out), read here without making
    # its rows: this runs for every process of the tree.
    known = snapshot.vmos
    listed: list[Vmo] = []
    mapped: set[int] = set()
    for handle in process.handles or ():
        if handle.type is ObjType.VMO and (vmo := known.get(handle.koid)) is not None:
            listed.append(vmo)
    if process.aspace is not None:
        for mapping in process.aspace.mappings():
            if (vmo := known.get(mapping.vmo_koid)) is not None:
                listed.append(vmo)
                mapped.add(vmo.koid)
    if not listed:
        nodes: list[Node] = []
        figs = figures.processes.get(process.koid)
        if figs is not None:
            if figs.private > 0:
                nodes.append(Node("Private", NodeType.MEMORY, figs.private))
            shared = max(0, figs.total - figs.private)
            if shared > 0:
                nodes.append(Node("Proportional shared", NodeType.MEMORY, shared))
        return nodes, 0
    vmos: dict[int, Vmo] = {}
    areas: dict[int, int] = {}  # mapped VMOs' boxes
    held: dict[int, int] = {}  # boxes of VMOs only held by handles
    for vmo in listed:
        if vmo.koid in vmos:
            continue
        vmos[vmo.koid] = vmo
        if vmo.koid in mapped:
            areas[vmo.koid] = vmo.committed_bytes // max(vmo.share_count, 1)
        else:
            held[vmo.koid] = vmo.committed_bytes // (vmo.share_count + 1)
    figs = figures.processes.get(process.koid)
    if snapshot.platform is Platform.LINUX and process.stats is not None and figs is not None:
        # A Linux VMO's committed bytes are its resident pages, and pages a forked child
        # still shares copy-on-write are resident in the parent's VMO and the child's
        # alike: one box per process would count them once per process. The kernel's
        # PSS (the process's figure) splits them; the mapped boxes add up to no more.
        areas = scaled_to_fit(areas, figs.total)
    by_name: dict[str, list[Node]] = {}
    for koid, vmo in vmos.items():
        area = areas[koid] if koid in areas else held[koid]
        name = vmo.name or UNNAMED
        by_name.setdefault(name, []).append(Node(name, NodeType.VMO, area, vmo.user_koid))
    return aggregated(by_name), len(vmos)


def job_nodes(
    snapshot: Snapshot, process_node: Mapping[int, Node]
) -> tuple[Node | None, int, int]:
    """The root job's node (``None`` without a root job): jobs are the sums of their
    processes (``process_node``, by koid) and child jobs, largest first; the root job is
    named "root job". Also the numbers of jobs and processes in the tree."""
    order: list[Job] = []
    processes = 0
    for _depth, kind, obj in snapshot.walk():
        if kind == "j":
            assert isinstance(obj, Job)
            order.append(obj)
        else:
            processes += 1
    built: dict[int, Node] = {}
    for job in reversed(order):  # children before parents
        children = [process_node[p] for p in job.process_koids if p in process_node]
        children.extend(built.pop(c) for c in job.child_koids if c in built)
        name = ROOT_JOB_NAME if job.koid == snapshot.root_job_koid else job.name or UNNAMED
        size = sum(c.size_bytes for c in children)
        built[job.koid] = Node(name, NodeType.JOB, size, job.koid, by_size(children))
    root = None if snapshot.root_job_koid is None else built.get(snapshot.root_job_koid)
    return root, len(order), processes


def _kernel_parent(
    name: str, own: int, children: list[Node], notes: list[str], *, free: bool = False
) -> Node:
    """A kernel part with parts of its own: a ``not itemized`` part for what they leave
    of its figure; parts that add up to more make it their sum, with a note."""
    total = sum(c.size_bytes for c in children)
    rest = own - total
    if rest > 0:
        children.append(Node(NOT_ITEMIZED_NAME, NodeType.KERNEL, rest))
    elif rest < 0:
        notes.append(
            f'The parts of "{name}" add up to {fmt_bytes(-rest)} more than its'
            f" own figure ({fmt_bytes(own)}); it is shown as the sum of its parts."
        )
    return Node(name, NodeType.KERNEL, max(own, total), None, by_size(children), free=free)


def kernel_tree(kernel: KernelMemory, job_tree: Node | None, notes: list[str]) -> tuple[Node, int]:
    """All physical memory with its kernel parts, the job tree under ``VMOs/processes``
    beside the ``unknown`` remainder; and how far below 0 that remainder was."""
    clamped = 0
    vmo_children = [] if job_tree is None else [job_tree]
    rest = kernel.vmo_bytes - sum(c.size_bytes for c in vmo_children)
    if rest < 0:
        clamped = -rest
        notes.append(
            f'"{UNKNOWN_NAME}" = {VMO_PARENT_NAME} - root job would be'
            f" -{fmt_bytes(-rest)}: the processes' VMOs add up to more than the"
            " kernel's VMO memory. It is shown as 0, so"
            f' "{VMO_PARENT_NAME}" is {format_size(-rest)} larger than the'
            " kernel reported."
        )
    vmo_children.append(Node(UNKNOWN_NAME, NodeType.KERNEL, max(rest, 0)))
    vmo_size = max(kernel.vmo_bytes, sum(c.size_bytes for c in vmo_children))
    heap = [
        Node("heap/allocated", NodeType.KERNEL, kernel.heap_allocated_bytes),
        Node("heap/free", NodeType.KERNEL, kernel.heap_free_bytes),
    ]
    parts = [
        Node(FREE_NAME, NodeType.KERNEL, kernel.free_bytes, free=True),
        Node(VMO_PARENT_NAME, NodeType.KERNEL, vmo_size, None, by_size(vmo_children)),
        _kernel_parent("heap", kernel.heap_total_bytes, heap, notes),
        Node("wired", NodeType.KERNEL, kernel.wired_bytes),
        Node("mmu", NodeType.KERNEL, kernel.mmu_bytes),
    ]
    if kernel.ipc_bytes > 0:
        parts.append(Node("ipc", NodeType.KERNEL, kernel.ipc_bytes))
    parts.append(Node("other", NodeType.KERNEL, kernel.other_bytes))
    return _kernel_parent(ROOT_NAME, kernel.total_bytes, parts, notes), clamped


def memory_tree(snapshot: Snapshot, figures: Figures) -> MemoryTree:
    """The tree of ``snapshot`` by treemap.py's rules; ``figures`` are its figures by the
    2017 rule (:func:`~mxmem.accounting.figures.figures` with
    :func:`~mxmem.accounting.figures.rule_for`), used for processes without a VMO list."""
    notes: list[str] = []
    process_node: dict[int, Node] = {}
    vmo_count = unknown_figures = 0
    for _depth, kind, process in snapshot.walk():
        if kind != "p":
            continue
        assert isinstance(process, Process)
        koid = process.koid
        leaves, distinct = process_children(process, snapshot, figures)
        vmo_count += distinct
        if not distinct and figures.processes.get(koid) is None:
            unknown_figures += 1
        size = sum(n.size_bytes for n in leaves)
        process_node[koid] = Node(
            process.name or UNNAMED, NodeType.PROCESS, size, koid, by_size(leaves)
        )
    job_tree, jobs, processes = job_nodes(snapshot, process_node)
    clamped = 0
    if snapshot.kernel is not None:
        root, clamped = kernel_tree(snapshot.kernel, job_tree, notes)
    elif job_tree is not None:
        root = job_tree
    else:
        root = Node(ROOT_NAME, NodeType.KERNEL, 0)
    if unknown_figures:
        plural = unknown_figures > 1
        notes.append(
            f"{unknown_figures} process{'es' if plural else ''} had no memory figures (the"
            f" source could not read {'them' if plural else 'it'}) and"
            f" {'are' if plural else 'is'} shown as 0."
        )
    return MemoryTree(
        root=root,
        notes=tuple(notes),
        unknown_clamped_bytes=clamped,
        jobs=jobs,
        processes=processes,
        vmos=vmo_count,
        timestamp=memgraph_timestamp(snapshot.timestamp),
        source=snapshot.source,
    )
