"""The treemap of an exact attribution (issue 6): every byte of physical memory once.

All physical memory = the root job (jobs are the sums of their subtrees, processes the
sums of their parts: the process's exact share of each VMO it reaches, else private and
shared; then each kind of kernel memory it causes, and estimated bytes) + one box per
category of unowned memory (free, wired, kernel heap, unreferenced VMOs...) + a
``residual`` box only when the residual is positive. There is no ``unknown`` box and no
negative one; the residual is always stated in words (:func:`attribution_text`).

The figures are the attribution's, rounded once, as ``memgraph --attribution=exact``
prints them (:func:`~mxmem.render.memgraph.exact_figures`): a process's box is its
printed ``attributed_bytes``, its VMO boxes add up to its printed private + shared bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from mxmem.accounting.exact import Attribution
from mxmem.model import Process, Snapshot
from mxmem.render.memgraph import exact_figures, memgraph_timestamp, vmo_parts
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


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _process_node(
    process: Process, snapshot: Snapshot, attribution: Attribution, record: Mapping[str, object]
) -> Node:
    parts = record["attributed"]
    assert isinstance(parts, dict)
    private, shared = _int(parts["private_bytes"]), _int(parts["shared_bytes"])
    kinds = parts["kernel_by_kind"]
    assert isinstance(kinds, dict)
    children: list[Node] = []
    share = attribution.processes.get(process.koid)
    if share is not None and share.by_vmo:
        vmos = snapshot.vmos

        def name(koid: int) -> str:
            vmo = vmos.get(koid)
            if vmo is None:
                return NO_KOID_NAME if koid == 0 else f"<VMO koid {koid}>"
            return vmo.name or UNNAMED

        pairs = vmo_parts(share.by_vmo, private + shared)
        shown = [(vmos[k].user_koid if k in vmos else k, k, size) for k, size in pairs]
        nodes = exact_vmo_children(((k, size) for _, k, size in shown), name)
        # The box's koid is the one the tools print (0 for a VMO without a user koid).
        wire = {k: w for w, k, _ in shown}
        children.extend(n._replace(koid=wire.get(n.koid, n.koid)) if n.koid else n for n in nodes)
    else:
        children.append(Node("private", NodeType.MEMORY, private))
        children.append(Node("shared", NodeType.MEMORY, shared))
    children.extend(Node(str(kind), NodeType.MEMORY, _int(size)) for kind, size in kinds.items())
    children.append(Node(ESTIMATED_NAME, NodeType.MEMORY, _int(parts["estimated_bytes"])))
    kept = [c for c in children if c.size_bytes > 0]
    size = sum(c.size_bytes for c in kept)
    return Node(process.name or UNNAMED, NodeType.PROCESS, size, process.koid, by_size(kept))


def exact_tree(snapshot: Snapshot, attribution: Attribution) -> MemoryTree:
    """The exact attribution's tree of ``snapshot`` (see the module's docstring).

    The residual is what the boxes leave of the total; a negative one (a live source's
    figures adding up to more than its total) makes the root that much larger than the
    total, and is said in words like any other (:func:`attribution_text`).
    """
    figures = exact_figures(snapshot, attribution, vmos=False)
    process_node: dict[int, Node] = {}
    vmo_count = 0
    for _depth, kind, process in snapshot.walk():
        if kind != "p":
            continue
        assert isinstance(process, Process)
        node = _process_node(process, snapshot, attribution, figures.processes[process.koid])
        process_node[process.koid] = node
        # VMOs counted as in the 2017 tree: those the process maps or holds.
        rows, _missing = vmos_rows(process, snapshot.vmos)
        vmo_count += len({row.vmo.koid for row in rows})
    job_tree, jobs, processes = job_nodes(snapshot, process_node)
    boxes = [] if job_tree is None else [job_tree]
    meta = figures.meta
    categories = meta["categories"]
    assert isinstance(categories, dict)
    boxes.extend(
        Node(str(name), NodeType.CATEGORY, _int(size), free=name == FREE_NAME)
        for name, size in categories.items()
        if size
    )
    residual = figures.residual_bytes
    if residual > 0:
        boxes.append(Node(RESIDUAL_NAME, NodeType.CATEGORY, residual))
    root = Node(ROOT_NAME, NodeType.KERNEL, sum(b.size_bytes for b in boxes), None, by_size(boxes))
    notes = meta["notes"]
    assert isinstance(notes, list)
    exact_meta = ExactMeta(
        exact=attribution.exact,
        total_bytes=attribution.total_bytes,
        processes_bytes=_int(meta["processes_bytes"]),
        categories=tuple((str(n), _int(s)) for n, s in categories.items()),
        residual_bytes=residual,
        notes=tuple(str(n) for n in notes),
    )
    return MemoryTree(
        root=root,
        jobs=jobs,
        processes=processes,
        vmos=vmo_count,
        timestamp=memgraph_timestamp(snapshot.timestamp),
        source=snapshot.source,
        attribution=exact_meta,
    )


def _signed_size(n: int) -> str:
    return f"-{format_size(-n)}" if n < 0 else format_size(n)


def attribution_summary(meta: ExactMeta) -> str:
    """One short line: the attribution, exact or approximate, and its residual (never
    hidden). The page shows it first; :func:`attribution_details` on demand."""
    head = "Exact attribution" if meta.exact else "Approximate attribution"
    head += f" of {format_size(meta.total_bytes)}"
    r = meta.residual_bytes
    residual = f"residual {_signed_size(r)}"
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
