"""``treemap``: a snapshot as a zoomable treemap page (spec §7, ``treemap.py``).

Three pure steps, each in its own module and testable on its own:

1. the tree: :func:`memory_tree` (:mod:`.tree`) by treemap.py's rules from a snapshot and
   its 2017 figures, or :func:`exact_tree` (:mod:`.exact`) from an exact attribution;
2. :func:`fold_tree` (:mod:`.fold`) keeps the largest nodes (a budget for the whole page,
   a cap for each parent) and folds the rest into ``other (n)`` boxes;
3. :func:`page_data` and :func:`treemap_html` (:mod:`.page`) fill the page template with
   the tree as JSON that is safe inside ``<script>``; :func:`tree_json` is ``--json``.
"""

from __future__ import annotations

from mxmem.render.treemap.exact import (
    ESTIMATED_NAME,
    NO_KOID_NAME,
    RESIDUAL_NAME,
    ExactMeta,
    attribution_details,
    attribution_summary,
    attribution_text,
    exact_tree,
    exact_vmo_children,
)
from mxmem.render.treemap.fold import (
    DEFAULT_MAX_CHILDREN,
    DEFAULT_MAX_NODES,
    FoldedTree,
    fold_tree,
)
from mxmem.render.treemap.page import (
    content_security_policy,
    page_data,
    script_json,
    tree_json,
    treemap_html,
)
from mxmem.render.treemap.tree import (
    FREE_NAME,
    ROOT_NAME,
    UNKNOWN_NAME,
    MemoryTree,
    Node,
    NodeType,
    memory_tree,
    process_children,
)

__all__ = [
    "DEFAULT_MAX_CHILDREN",
    "DEFAULT_MAX_NODES",
    "ESTIMATED_NAME",
    "FREE_NAME",
    "NO_KOID_NAME",
    "RESIDUAL_NAME",
    "ROOT_NAME",
    "UNKNOWN_NAME",
    "ExactMeta",
    "FoldedTree",
    "MemoryTree",
    "Node",
    "NodeType",
    "attribution_details",
    "attribution_summary",
    "attribution_text",
    "content_security_policy",
    "exact_tree",
    "exact_vmo_children",
    "fold_tree",
    "memory_tree",
    "page_data",
    "process_children",
    "script_json",
    "tree_json",
    "treemap_html",
]
