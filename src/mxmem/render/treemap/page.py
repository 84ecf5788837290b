"""The page: the folded tree as JSON for the page's script, the whole tree as JSON for
``treemap --json``, and the HTML with its Content-Security-Policy.

Names only ever reach the page as text: the data is JSON inside
``<script type="application/json">`` with ``<``, ``>`` and ``&`` escaped
(:func:`script_json`), and the template's script puts names in with ``textContent``.
The policy forbids every request and allows only the template's own style and script.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping

from mxmem.render.jsonout import JsonValue
from mxmem.render.treemap.exact import (
    ExactMeta,
    attribution_details,
    attribution_summary,
    attribution_text,
)
from mxmem.render.treemap.fold import FoldedTree
from mxmem.render.treemap.tree import MemoryTree, Node, NodeType

__all__ = [
    "CSP_MARKER",
    "DATA_MARKER",
    "content_security_policy",
    "page_data",
    "script_json",
    "tree_json",
    "treemap_html",
]

_TYPE_LETTERS = {
    NodeType.KERNEL: "k",
    NodeType.JOB: "j",
    NodeType.PROCESS: "p",
    NodeType.VMO: "v",
    NodeType.MEMORY: "m",
    NodeType.OTHER: "o",
    NodeType.CATEGORY: "c",
}
# Above this JSON numbers lose precision in JavaScript; such sizes travel as strings.
_JS_SAFE_INT = 2**53 - 1


def _node_json(node: Node) -> dict[str, object]:
    out: dict[str, object] = {
        "n": node.name,
        "t": _TYPE_LETTERS[node.type],
        "s": node.size_bytes if node.size_bytes <= _JS_SAFE_INT else str(node.size_bytes),
    }
    if node.koid is not None:
        out["k"] = node.koid if node.koid <= _JS_SAFE_INT else str(node.koid)
    if node.members:
        out["m"] = node.members
    if node.folded:
        out["f"] = node.folded
    if node.free:
        out["x"] = 1  # free memory: hidden until the page is asked to show it
    if node.children:
        out["c"] = [_node_json(c) for c in node.children]
    return out


def page_data(tree: MemoryTree, folded: FoldedTree) -> dict[str, object]:
    """What the page's script reads: the folded tree and the page's notes and counts."""
    return {
        "tree": _node_json(folded.root),
        "notes": list(tree.notes),
        "total": folded.total,
        "shown": folded.shown,
        "folded": folded.folded,
        "counts": {"jobs": tree.jobs, "processes": tree.processes, "vmos": tree.vmos},
        "timestamp": tree.timestamp,
        "source": tree.source,
        "unknownClampedBytes": str(tree.unknown_clamped_bytes),
        "attribution": None if tree.attribution is None else _attribution_page(tree.attribution),
    }


def _attribution_page(meta: ExactMeta) -> dict[str, object]:
    return {
        "exact": meta.exact,
        "residual": str(meta.residual_bytes),
        "summary": attribution_summary(meta),
        "details": attribution_details(meta),
    }


def tree_json(tree: MemoryTree) -> JsonValue:
    """The whole tree (nothing folded) for ``treemap --json``: each node has ``name``,
    ``type``, ``size_bytes`` and, where they apply, ``koid``, ``members`` (the VMOs of a
    ``name[n]`` box) and ``children``, largest first. An exact tree adds ``attribution``:
    its mode, whether it is exact, the total, the residual its boxes leave, the notes
    and the line the page shows (:func:`attribution_text`)."""

    def node_json(node: Node) -> JsonValue:
        out: dict[str, JsonValue] = {
            "name": node.name,
            "type": node.type.value,
            "size_bytes": node.size_bytes,
        }
        if node.koid is not None:
            out["koid"] = node.koid
        if node.members:
            out["members"] = node.members
        if node.free:
            out["free"] = True
        if node.children:
            out["children"] = [node_json(c) for c in node.children]
        return out

    out: dict[str, JsonValue] = {
        "tree": node_json(tree.root),
        "notes": list[JsonValue](tree.notes),
        "unknown_clamped_bytes": tree.unknown_clamped_bytes,
        "counts": {"jobs": tree.jobs, "processes": tree.processes, "vmos": tree.vmos},
        "timestamp": tree.timestamp,
        "source": tree.source,
    }
    meta = tree.attribution
    if meta is not None:
        # The exact tree's own figures: residual_bytes is what its boxes leave.
        out["attribution"] = {
            "mode": "exact",
            "exact": meta.exact,
            "total_bytes": meta.total_bytes,
            "residual_bytes": meta.residual_bytes,
            "notes": list[JsonValue](meta.notes),
            "text": attribution_text(meta),
        }
    return out


_SCRIPT_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def script_json(value: object) -> str:
    """``value`` as JSON that can sit inside ``<script type="application/json">``.

    ``ensure_ascii`` writes every non-ASCII character (U+2028/9 included) as ``\\uXXXX``;
    ``<``, ``>`` and ``&`` are written the same way, so no string can close the script
    element or open a comment, and ``JSON.parse`` gives back the exact strings. Outside
    strings JSON has none of these characters, so replacing them anywhere is safe.
    """
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    for raw, escaped in _SCRIPT_ESCAPES.items():
        if raw in text:
            text = text.replace(raw, escaped)
    return text


DATA_MARKER = "@@TREEMAP_DATA@@"
CSP_MARKER = "@@CSP@@"


def _element_text(html: str, open_tag: str, close_tag: str) -> str:
    start = html.index(open_tag) + len(open_tag)
    return html[start : html.index(close_tag, start)]


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def content_security_policy(template: str) -> str:
    """The page's policy: nothing may be fetched, and only the template's own style and
    script (by hash) may run, so even a name that got into the markup could do nothing."""
    style = _element_text(template, "<style>", "</style>")
    script = _element_text(template, "<script>", "</script>")
    return (
        f"default-src 'none'; style-src '{_sha256(style)}'; script-src '{_sha256(script)}';"
        " base-uri 'none'; form-action 'none'"
    )


def treemap_html(data: Mapping[str, object], template: str) -> str:
    """The page: ``template`` with its policy and ``data`` (see :func:`page_data`) filled
    in. The template holds one ``<style>``, one plain ``<script>`` and the markers."""
    if template.count(DATA_MARKER) != 1 or template.count(CSP_MARKER) != 1:
        raise ValueError("the treemap template must hold each marker exactly once")
    page = template.replace(CSP_MARKER, content_security_policy(template))
    # Last, so that nothing in the data is ever taken for a marker.
    return page.replace(DATA_MARKER, script_json(dict(data)))
