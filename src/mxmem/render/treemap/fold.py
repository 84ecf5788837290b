"""Folding: the largest boxes of a tree, the rest folded into ``other (n)`` boxes, so that
a graph of a million VMOs still opens in a browser."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

from mxmem.render.treemap.tree import Node, NodeType, by_size

__all__ = ["DEFAULT_MAX_CHILDREN", "DEFAULT_MAX_NODES", "FoldedTree", "fold_tree", "walk"]

# Enough nodes that a 10k-process system shows every process and its largest VMOs
# (measured on scale:10000: all 10,000 processes, 29k of the 91k VMOs), few enough that
# the page stays a few MB and opens in about a second.
DEFAULT_MAX_NODES = 50_000
# More boxes than this side by side are unreadable slivers, and a table of them is noise.
DEFAULT_MAX_CHILDREN = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class FoldedTree:
    """The tree the page shows: ``shown`` nodes (``other (n)`` boxes included) stand for
    all ``total`` nodes of the full tree; ``folded`` of those are not shown one by one."""

    root: Node
    total: int
    shown: int
    folded: int


def _descendants(root: Node) -> dict[int, int]:
    """Number of descendants of every node with children, keyed by ``id(node)`` (a leaf,
    most of a large tree, is not in it: it has 0)."""
    counts: dict[int, int] = {}
    order: list[Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.children:
            order.append(node)
            stack.extend(node.children)
    get = counts.get
    for node in reversed(order):
        children = node.children
        counts[id(node)] = len(children) + sum([get(id(c), 0) for c in children])
    return counts


def fold_tree(
    root: Node,
    *,
    max_nodes: int = DEFAULT_MAX_NODES,
    max_children: int = DEFAULT_MAX_CHILDREN,
) -> FoldedTree:
    """Show at most ``max_nodes`` nodes, the largest ones, and fold the rest.

    Nodes are taken largest first over the whole tree (a node only after its parent), and
    at most ``max_children`` of a node's children are taken. The siblings left out of a
    node that keeps some children become one ``other (n)`` box of their total size; a
    node none of whose children were kept becomes a leaf of its own size. Either way
    ``folded`` says how many nodes the box hides. A single left-out sibling is shown
    itself rather than as ``other (1)`` (as a leaf, folded if it has children). A tree
    within both limits comes back unchanged (the same object). ``max_nodes`` must be at
    least 2 (the root and one box for all of its children), ``max_children`` at least 1.
    """
    if max_nodes < 2 or max_children < 1:
        raise ValueError("fold_tree needs max_nodes >= 2 and max_children >= 1")
    descendants = _descendants(root)
    total = descendants.get(id(root), 0) + 1
    if total <= max_nodes and all(len(n.children) <= max_children for n in walk(root)):
        return FoldedTree(root=root, total=total, shown=total, folded=0)
    taken: set[int] = {id(root)}
    heap: list[tuple[int, int, Node]] = []
    seq = 0

    def offer(node: Node) -> None:
        nonlocal seq
        for child in node.children[:max_children]:
            heapq.heappush(heap, (-child.size_bytes, seq, child))
            seq += 1

    # A taken node with children may need one more box for what is left of them (an
    # "other (n)" box or a single left-out sibling): its slot is reserved with it.
    def cost(node: Node) -> int:
        return 2 if node.children else 1

    used = cost(root)
    offer(root)
    while heap:
        _, _, node = heapq.heappop(heap)
        used += cost(node)
        if used > max_nodes:
            break  # what is left is smaller: it all folds
        taken.add(id(node))
        offer(node)

    def rebuild(node: Node) -> Node:
        if not node.children:
            return node
        if id(node) not in taken:
            return node._replace(children=(), folded=descendants[id(node)])
        kept = [c for c in node.children if id(c) in taken]
        left = [c for c in node.children if id(c) not in taken]
        if len(left) == 1:
            kept, left = [*kept, left[0]], []  # taken children come first: order holds
        if not kept:
            return node._replace(children=(), folded=descendants[id(node)])
        children = [rebuild(c) for c in kept]
        if not left:
            if all(new is old for new, old in zip(children, node.children, strict=True)):
                return node  # nothing below changed: no copy
            return node._replace(children=tuple(children))  # still largest first
        children.append(
            Node(
                f"other ({len(left)})",
                NodeType.OTHER,
                sum(c.size_bytes for c in left),
                members=len(left),
                folded=len(left) + sum([descendants.get(id(c), 0) for c in left]),
            )
        )
        return node._replace(children=by_size(children))

    folded_root = rebuild(root)
    shown = others = 0
    for node in walk(folded_root):
        shown += 1
        others += node.type is NodeType.OTHER
    # Every shown node but the other (n) boxes is a node of the full tree.
    return FoldedTree(root=folded_root, total=total, shown=shown, folded=total - shown + others)


def walk(root: Node) -> Iterable[Node]:
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children)


