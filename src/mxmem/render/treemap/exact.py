"""The treemap of an exact attribution (issue 6): every byte of physical memory once.

All physical memory = the root job (jobs are the sums of their subtrees, processes the
sums of their parts: the process's exact share of each VMO it reaches, else private and
shared; then each kind of kernel memory it causes, and estimated bytes) + one box per
category of unowned memory (free, wired, kernel heap, unreferenced VMOs...) + a
``residual`` box only when the residual is positive. There is no ``unknown`` box and no
negative one; the residual is always stated in words (:func:`attribution_text`).

The figures are the exact rule's, rounded once in accounting
(:func:`~mxmem.accounting.figures.figures`), the same that every tool prints: a
process's box is its ``attributed_bytes``, its VMO boxes add up to its private + shared
bytes (:func:`~mxmem.accounting.figures.vmo_bytes`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mxmem.accounting.figures import Figures, vmo_bytes
from mxmem.model import Process, Snapshot
from mxmem.render.exact import signed_size
from mxmem.render.memgraph import memgraph_timestamp
from mxmem.render.treemap.tree import (
    FREE_NAME,
    ROOT_NAME,
    UNNAMED,
    MemoryTree,
    Node,
    NodeType,
    aggregated,
    by_size,
    job_nodes,
)
from mxmem.render.units import format_size
from mxmem.render.vmos import vmos_rows

__all__ = [
    "ESTIMATED_NAME",
    "NO_KOID_NAME",
    "RESIDUAL_NAME",
    "ExactMeta",
    "attribution_details",
    "attribution_summary",
    "attribution_text",
    "exact_tree",
    "exact_vmo_children",
]

RESIDUAL_NAME = "residual"
KERNEL_NAME = "kernel"
ESTIMATED_NAME = "estimated (not page-level)"
# The box of an exact share of koid 0: memory reached through no VMO the snapshot has.
NO_KOID_NAME = "<no VMO koid>"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExactMeta:
    """The whole attribution as the tree shows it: ``residual_bytes`` is what the boxes
    leave of ``total_bytes``."""

    exact: bool
    total_bytes: int
    processes_bytes: int
    categories: tuple[tuple[str, int], ...]
    residual_bytes: int
    notes: tuple[str, ...] = ()


def exact_vmo_children(shares: Iterable[tuple[int, int]], name: Callable[[int], str]) -> list[Node]:
    """A process's boxes for its exact shares of VMOs (``(koid, bytes)``), named by
    ``name`` and aggregated like the 2017 tree's: a box is the process's exact share of
    that VMO (of those VMOs, for a ``name[n]`` box), not the VMO's size."""
    by_name: dict[str, list[Node]] = {}
    for koid, size in shares:
        if size > 0:
            vmo_name = name(koid)
            by_name.setdefault(vmo_name, []).append(Node(vmo_name, NodeType.VMO, size, koid))
    return aggregated(by_name)


def _process_node(process: Process, snapshot: Snapshot, figures: Figures) -> Node:
    name = process.name or UNNAMED
    figs = figures.processes.get(process.koid)
    if figs is None:  # unknown: no made-up boxes
        return Node(name, NodeType.PROCESS, 0, process.koid)
    children: list[Node] = []
    shares = vmo_bytes(figures, process.koid)
    if shares:
        vmos = snapshot.vmos

        def vmo_name(koid: int) -> str:
            vmo = vmos.get(koid)
            if vmo is None:
                return NO_KOID_NAME if koid == 0 else f"<VMO koid {koid}>"
            return vmo.name or UNNAMED

        ordered = sorted(shares.items(), key=lambda item: (-item[1], item[0]))
        for node in exact_vmo_children(ordered, vmo_name):
            # A box's koid is the one the tools print (0 for a VMO without a user koid).
            vmo = None if node.koid is None else vmos.get(node.koid)
            children.append(node if vmo is None else node._replace(koid=vmo.user_koid))
        left = figs.private + figs.shared - sum(shares.values())
        if left > 0:  # vmo_bytes adds up to private + shared; kept should it not
            children.append(Node("private + shared", NodeType.MEMORY, left))
    else:
        children.append(Node("private", NodeType.MEMORY, figs.private))
        children.append(Node("shared", NodeType.MEMORY, figs.shared))
    children.extend(Node(kind, NodeType.MEMORY, size) for kind, size in figs.kernel_by_kind)
    itemized = sum(size for _, size in figs.kernel_by_kind)
    if figs.kernel is not None and figs.kernel > itemized:
        label = KERNEL_NAME if not figs.kernel_by_kind else f"{KERNEL_NAME} (not itemized)"
        children.append(Node(label, NodeType.MEMORY, figs.kernel - itemized))
    children.append(Node(ESTIMATED_NAME, NodeType.MEMORY, figs.estimated))
    kept = [c for c in children if c.size_bytes > 0]
    size = sum(c.size_bytes for c in kept)
    return Node(name, NodeType.PROCESS, size, process.koid, by_size(kept))


def exact_tree(snapshot: Snapshot, figures: Figures) -> MemoryTree:
    """The exact attribution's tree of ``snapshot`` from its exact figures
    (``figures(snapshot, "exact")``; see the module's docstring).

    The residual is what the boxes leave of the total; a negative one (a live source's
    figures adding up to more than its total) makes the root that much larger than the
    total, and is said in words like any other (:func:`attribution_text`).
    """
    system = figures.system
    if system is None:
        raise ValueError("exact_tree needs the exact rule's figures")
    process_node: dict[int, Node] = {}
    vmo_count = 0
    for _depth, kind, process in snapshot.walk():
        if kind != "p":
            continue
        assert isinstance(process, Process)
        process_node[process.koid] = _process_node(process, snapshot, figures)
        # VMOs counted as in the 2017 tree: those the process maps or holds.
        rows, _missing = vmos_rows(process, snapshot.vmos)
        vmo_count += len({row.vmo.koid for row in rows})
    job_tree, jobs, processes = job_nodes(snapshot, process_node)
    boxes = [] if job_tree is None else [job_tree]
    boxes.extend(
        Node(name, NodeType.CATEGORY, size, free=name == FREE_NAME)
        for name, size in system.categories
        if size
    )
    if system.residual_bytes > 0:
        boxes.append(Node(RESIDUAL_NAME, NodeType.CATEGORY, system.residual_bytes))
    root = Node(ROOT_NAME, NodeType.KERNEL, sum(b.size_bytes for b in boxes), None, by_size(boxes))
    meta = ExactMeta(
        exact=system.exact,
        total_bytes=system.total_bytes,
        processes_bytes=system.processes_bytes,
        categories=system.categories,
        residual_bytes=system.residual_bytes,
        notes=system.notes,
    )
    return MemoryTree(
        root=root,
        jobs=jobs,
        processes=processes,
        vmos=vmo_count,
        timestamp=memgraph_timestamp(snapshot.timestamp),
        source=snapshot.source,
        attribution=meta,
    )


def attribution_summary(meta: ExactMeta) -> str:
    """One short line: the attribution, exact or approximate, and its residual (never
    hidden). The page shows it first; :func:`attribution_details` on demand."""
    head = "Exact attribution" if meta.exact else "Approximate attribution"
    head += f" of {format_size(meta.total_bytes)}"
    r = meta.residual_bytes
    residual = f"residual {signed_size(r)}"
    if r > 0:
        residual += f' (the "{RESIDUAL_NAME}" box)'
    elif r < 0:
        residual += " (the parts add up to more than the total)"
    return f"{head} · {residual}"


def attribution_details(meta: ExactMeta) -> list[str]:
    """What the summary line leaves out, one line each: what "approximate" means, the
    residual in bytes and what it is, and the notes (a residual's likely causes)."""
    lines: list[str] = []
    if not meta.exact:
        lines.append("Not every figure is page-level: the notes below say what is estimated.")
    r = meta.residual_bytes
    if r == 0:
        if meta.exact:
            lines.append("Residual 0: every byte is a process's or a named category's.")
    elif r > 0:
        lines.append(
            f"Residual {r} bytes: not accounted for by the processes and named categories,"
            f' shown as the "{RESIDUAL_NAME}" box.'
        )
    else:
        lines.append(
            f"Residual {r} bytes: the processes and named categories add up to more than"
            " the total; the map is that much larger."
        )
    if meta.notes:
        lines.append("Likely causes:" if r else "Notes:")
        lines.extend(meta.notes)
    return lines


def attribution_text(meta: ExactMeta) -> str:
    """The summary and its details as one line (``treemap --json``)."""
    details = attribution_details(meta)
    return attribution_summary(meta) + (" — " + " ".join(details) if details else "")
