"""``treemap``: memgraph records as a zoomable treemap page (spec §7, ``treemap.py``).

Three pure steps, each testable on its own:

1. :func:`parse_memgraph` checks the structure of decoded memgraph JSON (spec §6) and keeps
   what the treemap needs; every problem is one line naming the record and the field.
2. :func:`memory_tree` builds the tree with treemap.py's rules: physical memory, its kernel
   parts, the job tree under ``kernel/vmo``, each process's VMOs, and the
   ``unknown (kernel & unmapped)`` remainder.
3. :func:`fold_tree` keeps the largest nodes (a budget for the whole page, a cap for each
   parent) and folds the rest into ``other (n)`` boxes, so that a graph of a million VMOs
   still opens in a browser; :func:`treemap_html` then fills the page template with the
   tree as JSON that is safe inside ``<script>``.

Where this differs from treemap.py, on purpose:

- ``unknown (kernel & unmapped)`` = vmo_bytes - root job area is clamped at 0 (treemap.py
  let it go negative, which breaks the layout); the page says by how much it was negative,
  and ``VMOs/processes`` is shown as the sum of its parts. Any kernel node whose parts add
  up to more than its own figure is handled the same way; one whose parts add up to less
  gets a ``not itemized`` part, so every box's children fill it exactly.
- A node's area is always the sum of its children's (treemap.py asserted it for the job
  tree): kernel parents are reconciled as above rather than trusted.
- Areas use integer division (``committed // share_count``): treemap.py's
  ``int(committed / share_count)`` goes through a float and is wrong above 2**53.
- A share count of 0 (which the kernel never reports) divides as 1 instead of failing.
- Input without kernel records (a source without kernel figures: the root job's parent is
  ``""``) gives a tree rooted at the root job.

Exact attribution (issue 6): input from ``memgraph --attribution=exact`` (its ``__META``
record has an ``attribution`` object) makes :func:`exact_tree` instead: all physical
memory = the job tree, each process sized by its ``attributed_bytes`` and split into its
VMOs (with ``-v``: its exact share of each, named and aggregated as above) or else
private / shared, then its kernel kinds / estimated, + one node per category of unowned
memory (free, wired, kernel heap, unreferenced VMOs...) + a ``residual`` node only when
the residual is positive. It never has an ``unknown`` node nor a negative one; the residual
is always stated in words (:func:`attribution_text`).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import NamedTuple, TypeGuard

from mxmem.errors import MxmemError
from mxmem.render.jsonout import JsonValue
from mxmem.render.units import format_size

__all__ = [
    "DEFAULT_MAX_CHILDREN",
    "DEFAULT_MAX_NODES",
    "NO_KOID_NAME",
    "RESIDUAL_NAME",
    "ExactMeta",
    "FoldedTree",
    "JobRecord",
    "KernelRecord",
    "MemGraph",
    "MemoryTree",
    "Node",
    "NodeType",
    "ProcessRecord",
    "TreemapInputError",
    "VmoEntry",
    "VmoRef",
    "attribution_text",
    "exact_tree",
    "exact_vmo_children",
    "fold_tree",
    "memory_tree",
    "page_data",
    "parse_memgraph",
    "script_json",
    "tree_json",
    "treemap_html",
]

# Real job trees are a few levels deep; a deeper input is malformed, and the bound keeps
# every recursive walk (here, in json.dumps and in the page's script) far from any limit.
MAX_JOB_DEPTH = 256

# Enough nodes that a 10k-process system shows every process and its largest VMOs
# (measured on scale:10000: all 10,000 processes, 29k of the 91k VMOs), few enough that
# the page stays a few MB and opens in about a second.
DEFAULT_MAX_NODES = 50_000
# More boxes than this side by side are unreadable slivers, and a table of them is noise.
DEFAULT_MAX_CHILDREN = 200

UNKNOWN_NAME = "unknown (kernel & unmapped)"
RESIDUAL_NAME = "residual"
ROOT_NAME = "All physical memory"
# The boxes of a process in an exact tree, by the field of its "attributed" object.
EXACT_PARTS = (("private_bytes", "private"), ("shared_bytes", "shared"))
ESTIMATED_NAME = "estimated (not page-level)"
# The box of an exact share of koid 0: memory reached through no VMO with a user koid.
NO_KOID_NAME = "<no VMO koid>"
# Private + shared bytes an exact input's "attributed.vmos" do not hold (hand-made input).
VMOS_NOT_ITEMIZED_NAME = "VMOs (not itemized)"
KERNEL_NAME = "kernel"
NOT_ITEMIZED_NAME = "not itemized"
UNNAMED = "<unnamed>"
# treemap.py's renames, by record id (the root job is renamed wherever it sits).
RENAMES = {"kernel/physmem": "All physical memory", "kernel/vmo": "VMOs/processes"}
ROOT_JOB_NAME = "root job"


class TreemapInputError(MxmemError):
    """The input is not memgraph JSON the treemap can use; the message is one line."""


# --- 1. parsing -------------------------------------------------------------------------


class KernelRecord(NamedTuple):
    id: str
    parent: str
    name: str
    size_bytes: int


class JobRecord(NamedTuple):
    id: str
    parent: str
    koid: int
    name: str


class VmoEntry(NamedTuple):
    """The fields of a ``vmos`` entry the treemap uses."""

    koid: int
    name: str
    committed_bytes: int
    share_count: int


class VmoRef(NamedTuple):
    vmo_koid: int
    via: tuple[str, ...]


class ProcessRecord(NamedTuple):
    """A process record. The size fields are ``None`` when memgraph could not read them
    (it omits them then); ``vmos``/``vmo_refs`` are empty without ``-v``.
    ``attributed_bytes`` and ``attributed`` (its parts as ``(box name, bytes)``, swap
    left out as it is not RAM; private and shared first, see :data:`EXACT_PARTS`) come
    with ``--attribution=exact``, and ``attributed_vmos`` (its exact share of each VMO as
    ``(vmo koid, bytes)``; ``None`` when the input has none) with ``-v`` too."""

    id: str
    parent: str
    koid: int
    name: str
    private_bytes: int | None
    pss_bytes: int | None
    vmos: tuple[VmoEntry, ...]
    vmo_refs: tuple[VmoRef, ...]
    attributed_bytes: int | None = None
    attributed: tuple[tuple[str, int], ...] = ()
    attributed_vmos: tuple[tuple[int, int], ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExactMeta:
    """The ``attribution`` object of an exact memgraph's ``__META`` record."""

    exact: bool
    total_bytes: int
    processes_bytes: int
    categories: tuple[tuple[str, int], ...]
    residual_bytes: int
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MemGraph:
    """The records of one memgraph run that the treemap reads, in input order."""

    kernel: tuple[KernelRecord, ...]
    jobs: tuple[JobRecord, ...]
    processes: tuple[ProcessRecord, ...]
    threads: int = 0
    timestamp: str | None = None
    attribution: ExactMeta | None = None


def _show(value: object) -> str:
    """A short, one-line rendering of a JSON value for an error message."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = f"<{_kind(value)}>"
    return text if len(text) <= 40 else text[:37] + "..."


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if type(value) in (int, float):
        return "a number"
    return _JSON_TYPES.get(type(value), type(value).__name__)


class _Fields:
    """Typed access to one record's fields; errors name the record and the field."""

    def __init__(self, record: Mapping[str, object], where: str) -> None:
        self.record = record
        self.where = where

    def fail(self, message: str) -> TreemapInputError:
        return TreemapInputError(f"{self.where}: {message}")

    def text(self, key: str) -> str:
        value = self.record.get(key)
        if type(value) is not str:
            raise self.missing(key, "a string", value)
        return value

    def uint(self, key: str) -> int:
        value = self.record.get(key)
        if not _is_uint(value):
            raise self.missing(key, "a non-negative integer", value)
        return value

    def opt_uint(self, key: str) -> int | None:
        return None if key not in self.record else self.uint(key)

    def integer(self, key: str) -> int:
        value = self.record.get(key)
        if type(value) is not int:
            raise self.missing(key, "an integer", value)
        return value

    def boolean(self, key: str) -> bool:
        value = self.record.get(key)
        if type(value) is not bool:
            raise self.missing(key, "true or false", value)
        return value

    def obj(self, key: str) -> dict[str, object]:
        value = self.record.get(key)
        if type(value) is not dict:
            raise self.missing(key, "an object", value)
        return value

    def sizes(self, key: str, minimum: int = 0) -> tuple[tuple[str, int], ...]:
        """An object of name -> size (an integer of at least ``minimum``), in order."""
        out: list[tuple[str, int]] = []
        for name, value in self.obj(key).items():
            if not _is_uint(value) or value < minimum:
                expected = "a non-negative integer" if minimum == 0 else "a positive integer"
                raise self.fail(f'"{key}"[{_show(name)}] must be {expected}, not {_show(value)}')
            out.append((name, value))
        return tuple(out)

    def array(self, key: str) -> list[object]:
        """The array at ``key``; an absent key is an empty array."""
        value = self.record.get(key, [])
        if type(value) is not list:
            raise self.missing(key, "an array", value)
        return value

    def missing(self, key: str, expected: str, value: object) -> TreemapInputError:
        if key not in self.record:
            return self.fail(f'"{key}" is missing (expected {expected})')
        return self.fail(f'"{key}" must be {expected}, not {_show(value)}')


def _is_uint(value: object) -> TypeGuard[int]:
    # bool is an int subclass in Python, not a number in JSON.
    return type(value) is int and value >= 0


def _vmo_entry(item: object, where: str) -> VmoEntry:
    """The slow path of :func:`_vmo_entries`: the entry is checked field by field, and
    the first problem raised."""
    if type(item) is not dict:
        raise TreemapInputError(f"{where}: must be an object, not {_kind(item)}")
    f = _Fields(item, where)
    name = item.get("name", "")
    if type(name) is not str:
        raise f.missing("name", "a string", name)
    # share_count and committed_bytes are always printed by memgraph -v; a hand-made
    # entry without them is still usable (nothing committed, not shared).
    committed = f.uint("committed_bytes") if "committed_bytes" in item else 0
    share = f.uint("share_count") if "share_count" in item else 1
    return VmoEntry(f.uint("koid"), name, committed, share)


def _vmo_entries(items: list[object], where: str) -> tuple[VmoEntry, ...]:
    out: list[VmoEntry] = []
    # A large memgraph has a million entries: well-formed ones take this fast path.
    for i, item in enumerate(items):
        if type(item) is dict:
            koid = item.get("koid")
            name = item.get("name", "")
            committed = item.get("committed_bytes", 0)
            share = item.get("share_count", 1)
            if _is_uint(koid) and type(name) is str and _is_uint(committed) and _is_uint(share):
                out.append(VmoEntry(koid, name, committed, share))
                continue
        out.append(_vmo_entry(item, f'{where}: "vmos"[{i}]'))
    return tuple(out)


def _vmo_ref(item: object, where: str) -> VmoRef:
    if type(item) is not dict:
        raise TreemapInputError(f"{where}: must be an object, not {_kind(item)}")
    f = _Fields(item, where)
    via = item.get("via")
    if type(via) is not list or not all(type(v) is str for v in via):
        raise f.missing("via", "an array of strings", via)
    return VmoRef(f.uint("vmo_koid"), tuple(via))


def _vmo_refs(items: list[object], where: str) -> tuple[VmoRef, ...]:
    out: list[VmoRef] = []
    for i, item in enumerate(items):
        if type(item) is dict:
            koid = item.get("vmo_koid")
            via = item.get("via")
            if _is_uint(koid) and type(via) is list and all(type(v) is str for v in via):
                out.append(VmoRef(koid, tuple(via)))
                continue
        out.append(_vmo_ref(item, f'{where}: "vmo_refs"[{i}]'))
    return tuple(out)


def _process(f: _Fields, id_: str, parent: str, koid: int, name: str) -> ProcessRecord:
    private = f.opt_uint("private_bytes")
    pss = f.opt_uint("pss_bytes")
    vmos = _vmo_entries(f.array("vmos"), f.where)
    refs = _vmo_refs(f.array("vmo_refs"), f.where)
    known = {v.koid for v in vmos}
    for i, ref in enumerate(refs):
        if ref.vmo_koid not in known:
            raise f.fail(f'"vmo_refs"[{i}] refers to VMO koid {ref.vmo_koid}, not in "vmos"')
    attributed_bytes = f.opt_uint("attributed_bytes")
    parts: tuple[tuple[str, int], ...] = ()
    shares: tuple[tuple[int, int], ...] | None = None
    if "attributed" in f.record:
        exact = _Fields(f.obj("attributed"), f'{f.where}: "attributed"')
        parts = _attributed_parts(exact)
        if "vmos" in exact.record:
            shares = _attributed_vmos(exact, parts[0][1] + parts[1][1])
    return ProcessRecord(
        id_, parent, koid, name, private, pss, vmos, refs, attributed_bytes, parts, shares
    )


def _attributed_vmos(f: _Fields, in_vmos: int) -> tuple[tuple[int, int], ...]:
    """The ``vmos`` of an ``attributed`` object: ``[vmo_koid, bytes]`` pairs, each koid
    once, adding up to no more than ``in_vmos`` (private + shared)."""
    out: list[tuple[int, int]] = []
    seen: set[int] = set()
    for i, item in enumerate(f.array("vmos")):
        if type(item) is not list or len(item) != 2 or not all(_is_uint(v) for v in item):
            raise f.fail(
                f'"vmos"[{i}] must be a [vmo_koid, bytes] pair of non-negative integers,'
                f" not {_show(item)}"
            )
        koid, size = item
        if koid in seen:
            raise f.fail(f'"vmos"[{i}]: VMO koid {koid} is listed twice')
        seen.add(koid)
        out.append((koid, size))
    total = sum(size for _, size in out)
    if total > in_vmos:
        raise f.fail(
            f'"vmos" add up to {total}, more than "private_bytes" + "shared_bytes" ({in_vmos})'
        )
    return tuple(out)


def _attributed_parts(f: _Fields) -> tuple[tuple[str, int], ...]:
    """A process's boxes in an exact tree, from its ``attributed`` object: private,
    shared, each kernel kind (or one kernel box without kinds; a "kernel (not itemized)"
    box for what the kinds leave of kernel_bytes), estimated."""
    parts = [(box, f.uint(key)) for key, box in EXACT_PARTS]
    kernel = f.uint("kernel_bytes")
    kinds = f.sizes("kernel_by_kind") if "kernel_by_kind" in f.record else ()
    itemized = sum(v for _, v in kinds)
    if itemized > kernel:
        raise f.fail(f'"kernel_by_kind" adds up to {itemized}, more than "kernel_bytes" ({kernel})')
    parts.extend(kinds)
    if kernel > itemized:
        parts.append((KERNEL_NAME if not kinds else f"{KERNEL_NAME} ({NOT_ITEMIZED_NAME})",
                      kernel - itemized))  # fmt: skip
    parts.append((ESTIMATED_NAME, f.uint("estimated_bytes")))
    return tuple(parts)


def _exact_meta(record: Mapping[str, object], where: str) -> ExactMeta:
    f = _Fields(record, f'{where}: "attribution"')
    mode = f.text("mode")
    if mode != "exact":
        raise f.fail(f'unknown "mode" {_show(mode)} (expected "exact")')
    notes = f.array("notes")
    for i, note in enumerate(notes):
        if type(note) is not str:
            raise f.fail(f'"notes"[{i}] must be a string, not {_kind(note)}')
    return ExactMeta(
        exact=f.boolean("exact"),
        total_bytes=f.uint("total_bytes"),
        processes_bytes=f.uint("processes_bytes"),
        categories=f.sizes("categories"),
        residual_bytes=f.integer("residual_bytes"),
        notes=tuple(str(n) for n in notes),
    )


def parse_memgraph(value: object) -> MemGraph:
    """The records of decoded memgraph JSON (spec §6), checked.

    Kernel, job and process records are kept; thread and ``__META`` records are counted
    and read for the timestamp. Raises :class:`TreemapInputError` with a one-line message
    that names the record (by position and id) and the problem. The tree's shape (one
    root, parents present, no cycles) is checked by :func:`memory_tree`.
    """
    if type(value) is not list:
        raise TreemapInputError(
            f"expected a JSON array of memgraph records, not {_kind(value)}"
            " (is this the output of `memgraph -v`?)"
        )
    kernel: list[KernelRecord] = []
    jobs: list[JobRecord] = []
    processes: list[ProcessRecord] = []
    threads = 0
    timestamp: str | None = None
    attribution: ExactMeta | None = None
    seen: dict[str, int] = {}
    for index, record in enumerate(value, start=1):
        where = f"record {index}"
        if type(record) is not dict:
            raise TreemapInputError(f"{where}: must be an object, not {_kind(record)}")
        f = _Fields(record, where)
        type_ = f.text("type")
        if type_.startswith("__"):
            if type_ == "__META" and type(record.get("timestamp")) is str:
                timestamp = str(record["timestamp"])
            if type_ == "__META" and "attribution" in record:
                f.where = f"{where} (__META)"
                attribution = _exact_meta(f.obj("attribution"), f.where)
            continue
        if type_ not in ("kernel", "j", "p", "t"):
            raise f.fail(f'unknown "type" {_show(type_)} (expected kernel, j, p, t or __META)')
        id_ = f.text("id")
        f.where = where = f"record {index} ({_show(id_)})"
        if id_ in seen:
            raise f.fail(f"the same id as record {seen[id_]}")
        seen[id_] = index
        if type_ == "t":
            threads += 1
            continue
        parent = f.text("parent")
        name = f.text("name")
        if type_ == "kernel":
            kernel.append(KernelRecord(id_, parent, name, f.uint("size_bytes")))
        elif type_ == "j":
            jobs.append(JobRecord(id_, parent, f.uint("koid"), name))
        else:
            processes.append(_process(f, id_, parent, f.uint("koid"), name))
    return MemGraph(
        kernel=tuple(kernel),
        jobs=tuple(jobs),
        processes=tuple(processes),
        threads=threads,
        timestamp=timestamp,
        attribution=attribution,
    )


# --- 2. the tree ------------------------------------------------------------------------


class NodeType(StrEnum):
    """What a box stands for. ``MEMORY`` is a process's Private or Proportional shared
    figure (memgraph without ``-v``); ``OTHER`` is a fold of small siblings."""

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
    this box hides (see :func:`fold_tree`). A NamedTuple, as a million VMOs make a million
    nodes (see :mod:`mxmem.model.vm`).
    """

    name: str
    type: NodeType
    size_bytes: int
    koid: int | None = None
    children: tuple[Node, ...] = ()
    members: int = 0
    folded: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryTree:
    """The whole tree, and what the page must say about it.

    ``unknown_clamped_bytes`` is how far below 0 ``unknown (kernel & unmapped)`` was
    before it was clamped (0 if it was not); ``notes`` are one-line caveats for the page.
    """

    root: Node
    notes: tuple[str, ...] = ()
    unknown_clamped_bytes: int = 0
    jobs: int = 0
    processes: int = 0
    vmos: int = 0
    timestamp: str | None = None
    # An exact tree's attribution, its residual as the tree shows it (total - Σ boxes).
    attribution: ExactMeta | None = None


def _mapping_area(committed: int, share_count: int) -> int:
    # Mapped: the process's proportional part (the kernel's share count is the number of
    # address spaces mapping it; 0 never occurs but must not divide by zero).
    return committed // max(share_count, 1)


def _handle_area(committed: int, share_count: int) -> int:
    # Held only by a handle: treemap.py counts the holder as one more sharer.
    return committed // (share_count + 1)


def process_children(process: ProcessRecord) -> tuple[list[Node], int]:
    """A process's boxes by treemap.py's rules, and the number of distinct VMOs.

    With ``vmo_refs``: one box per VMO (de-duplicated by koid, as memgraph repeats a VMO
    for each mapping and handle), same-named VMOs (except ``<unnamed>``) merged into one
    ``name[n]`` box. Without: ``Private`` and ``Proportional shared`` boxes from the
    process's figures, each only if non-zero.
    """
    if not process.vmo_refs:
        nodes: list[Node] = []
        if process.private_bytes is not None and process.private_bytes > 0:
            nodes.append(Node("Private", NodeType.MEMORY, process.private_bytes))
        if process.private_bytes is not None and process.pss_bytes is not None:
            shared = max(0, process.pss_bytes - process.private_bytes)
            if shared > 0:
                nodes.append(Node("Proportional shared", NodeType.MEMORY, shared))
        return nodes, 0
    mapped = {ref.vmo_koid for ref in process.vmo_refs if "MAPPING" in ref.via}
    unique: dict[int, VmoEntry] = {}
    for vmo in process.vmos:
        unique.setdefault(vmo.koid, vmo)
    by_name: dict[str, list[Node]] = {}
    for vmo in unique.values():
        if vmo.koid in mapped:
            area = _mapping_area(vmo.committed_bytes, vmo.share_count)
        else:
            area = _handle_area(vmo.committed_bytes, vmo.share_count)
        name = vmo.name or UNNAMED
        by_name.setdefault(name, []).append(Node(name, NodeType.VMO, area, vmo.koid))
    return _aggregated(by_name), len(unique)


def _aggregated(by_name: Mapping[str, list[Node]]) -> list[Node]:
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


class _VmoNames:
    """The name of a VMO koid for a process's exact VMO boxes: from the process's own
    ``vmos`` entries, else from any process's (a page shared copy-on-write can be counted
    through a VMO another process maps), else ``<VMO koid N>`` (:data:`NO_KOID_NAME` for
    koid 0). The index of every process's entries is made only when a koid is not in the
    process's own."""

    def __init__(self, processes: Iterable[ProcessRecord]) -> None:
        self._processes = processes
        self._everyone: dict[int, str] | None = None

    def of(self, process: ProcessRecord) -> Callable[[int], str]:
        own: dict[int, str] = {}
        for vmo in process.vmos:
            own.setdefault(vmo.koid, vmo.name)
        # Koid 0 is every VMO without a user koid: named only when those are one name.
        if 0 in own and len({v.name for v in process.vmos if v.koid == 0}) > 1:
            del own[0]

        def name(koid: int) -> str:
            found = own.get(koid)
            if found is None and koid:
                found = self._all().get(koid)
            if found is None:
                return NO_KOID_NAME if koid == 0 else f"<VMO koid {koid}>"
            return found or UNNAMED

        return name

    def _all(self) -> dict[int, str]:
        if self._everyone is None:
            self._everyone = {}
            for process in self._processes:
                for vmo in process.vmos:
                    self._everyone.setdefault(vmo.koid, vmo.name)
        return self._everyone


def exact_vmo_children(shares: Iterable[tuple[int, int]], name: Callable[[int], str]) -> list[Node]:
    """A process's boxes for its exact shares of VMOs (``(koid, bytes)``), named by
    ``name`` and aggregated like :func:`process_children`'s: a box is the process's exact
    share of that VMO (of those VMOs, for a ``name[n]`` box), not the VMO's size."""
    by_name: dict[str, list[Node]] = {}
    for koid, size in shares:
        if size > 0:
            vmo_name = name(koid)
            by_name.setdefault(vmo_name, []).append(Node(vmo_name, NodeType.VMO, size, koid))
    return _aggregated(by_name)


class _Draft:
    """A node while the tree is assembled (children are attached in input order)."""

    __slots__ = ("children", "id", "koid", "name", "own", "type")

    def __init__(
        self, id_: str, type_: NodeType, name: str, koid: int | None, own: int = 0
    ) -> None:
        self.id = id_
        self.type = type_
        self.name = name
        self.koid = koid
        self.own = own  # a kernel record's size_bytes
        self.children: list[_Draft | Node] = []


def _by_size(nodes: Iterable[Node]) -> tuple[Node, ...]:
    # Largest first, as treemap.py's table; the stable sort keeps input order for ties.
    return tuple(sorted(nodes, key=lambda n: -n.size_bytes))


def _fmt(n: int) -> str:
    return f"{format_size(n)} ({n} bytes)"


_ALLOWED_PARENTS = {
    NodeType.KERNEL: (NodeType.KERNEL,),
    NodeType.JOB: (NodeType.JOB, NodeType.KERNEL),
    NodeType.PROCESS: (NodeType.JOB,),
}


def _link(
    drafts: Mapping[str, _Draft], parents: Mapping[str, str], root: _Draft, root_job: _Draft
) -> list[_Draft]:
    """Attach every draft to its parent (checked: present, of a fitting type, only the
    root job under a kernel record) and return the drafts parents first, after checking
    that every one is reached from ``root`` within :data:`MAX_JOB_DEPTH` levels."""
    for id_, parent_id in parents.items():
        if parent_id == "":
            continue
        parent = drafts.get(parent_id)
        draft = drafts[id_]
        if parent is None:
            raise TreemapInputError(f"{_show(id_)}: its parent {_show(parent_id)} is not a record")
        if parent.type not in _ALLOWED_PARENTS[draft.type] or (
            parent.type is NodeType.KERNEL and draft.type is NodeType.JOB and draft is not root_job
        ):
            raise TreemapInputError(
                f"{_show(id_)}: a {draft.type.value} cannot be a child of {_show(parent_id)}"
                f" (a {parent.type.value})"
            )
        parent.children.append(draft)

    # Walk from the root: whatever is not reached hangs off a cycle; the depth bound keeps
    # the recursive steps below (and the browser's) safe.
    order: list[_Draft] = []
    stack: list[tuple[_Draft, int]] = [(root, 0)]
    while stack:
        draft, depth = stack.pop()
        if depth > MAX_JOB_DEPTH:
            raise TreemapInputError(
                f"{_show(draft.id)}: the tree is more than {MAX_JOB_DEPTH} levels deep"
            )
        order.append(draft)
        stack.extend((c, depth + 1) for c in draft.children if isinstance(c, _Draft))
    if len(order) != len(drafts):
        reached = {d.id for d in order}
        lost = next(id_ for id_ in drafts if id_ not in reached)
        raise TreemapInputError(
            f"{_show(lost)} is not connected to the root {_show(root.id)} (its parents form"
            " a cycle)"
        )
    return order


def _root_job(graph: MemGraph, drafts: Mapping[str, _Draft]) -> _Draft:
    """The one job whose parent is a kernel record (or ``""``), renamed "root job"."""
    kernel_ids = {k.id for k in graph.kernel}
    root_jobs = [j.id for j in graph.jobs if j.parent == "" or j.parent in kernel_ids]
    if len(root_jobs) != 1:
        found = ", ".join(_show(r) for r in root_jobs[:3]) if root_jobs else "none"
        raise TreemapInputError(
            f"expected exactly one root job (a job whose parent is a kernel record), found "
            f"{len(root_jobs)}: {found}"
        )
    root_job = drafts[root_jobs[0]]
    root_job.name = ROOT_JOB_NAME
    return root_job


def memory_tree(graph: MemGraph) -> MemoryTree:
    """The tree of :func:`parse_memgraph`'s records, by treemap.py's rules.

    Raises :class:`TreemapInputError` if the records do not form one tree: exactly one
    record with an empty parent, exactly one root job, every parent present and of a
    fitting type, no cycles.
    """
    drafts: dict[str, _Draft] = {}
    parents: dict[str, str] = {}
    for k in graph.kernel:
        drafts[k.id] = _Draft(k.id, NodeType.KERNEL, RENAMES.get(k.id, k.name), None, k.size_bytes)
        parents[k.id] = k.parent
    for j in graph.jobs:
        drafts[j.id] = _Draft(j.id, NodeType.JOB, j.name or UNNAMED, j.koid)
        parents[j.id] = j.parent
    vmo_count = 0
    for p in graph.processes:
        draft = _Draft(p.id, NodeType.PROCESS, p.name or UNNAMED, p.koid)
        leaves, distinct = process_children(p)
        draft.children.extend(leaves)
        vmo_count += distinct
        drafts[p.id] = draft
        parents[p.id] = p.parent

    roots = [id_ for id_, parent in parents.items() if parent == ""]
    if len(roots) != 1:
        found = ", ".join(_show(r) for r in roots[:3]) if roots else "none"
        raise TreemapInputError(
            f"expected exactly one record with an empty parent (kernel/physmem), found "
            f"{len(roots)}: {found}"
        )
    root = drafts[roots[0]]
    root_job = _root_job(graph, drafts)

    order = _link(drafts, parents, root, root_job)

    root_job_parent = parents[root_job.id]
    notes: list[str] = []
    clamped = 0
    built: dict[str, Node] = {}
    for draft in reversed(order):  # children before parents
        children = [c if isinstance(c, Node) else built.pop(c.id) for c in draft.children]
        total = sum(c.size_bytes for c in children)
        if draft.type is NodeType.KERNEL and (children or draft.id == root_job_parent):
            rest = draft.own - total
            if draft.id == root_job_parent:
                if rest < 0:
                    clamped = -rest
                    notes.append(
                        f'"{UNKNOWN_NAME}" = {draft.name} - root job would be'
                        f" -{_fmt(-rest)}: the processes' VMOs add up to more than the"
                        " kernel's VMO memory. It is shown as 0, so"
                        f' "{draft.name}" is {format_size(-rest)} larger than the'
                        " kernel reported."
                    )
                children.append(Node(UNKNOWN_NAME, NodeType.KERNEL, max(rest, 0)))
            elif rest > 0:
                children.append(Node(NOT_ITEMIZED_NAME, NodeType.KERNEL, rest))
            elif rest < 0:
                notes.append(
                    f'The parts of "{draft.name}" add up to {_fmt(-rest)} more than its'
                    f" own figure ({_fmt(draft.own)}); it is shown as the sum of its parts."
                )
            size = max(draft.own, total)
        elif draft.type is NodeType.KERNEL:
            size = draft.own
        else:
            size = total
        built[draft.id] = Node(draft.name, draft.type, size, draft.koid, _by_size(children))

    unknown_figures = sum(1 for p in graph.processes if p.private_bytes is None and not p.vmo_refs)
    if unknown_figures:
        notes.append(
            f"{unknown_figures} process{'es' if unknown_figures > 1 else ''} had no memory"
            " figures (memgraph could not read them) and"
            f" {'are' if unknown_figures > 1 else 'is'} shown as 0."
        )
    return MemoryTree(
        root=built[root.id],
        notes=tuple(notes),
        unknown_clamped_bytes=clamped,
        jobs=len(graph.jobs),
        processes=len(graph.processes),
        vmos=vmo_count,
        timestamp=graph.timestamp,
    )


# The exact tree's root: all physical memory, as in a 2017 tree.
_TOP_ID = "kernel/physmem"


def exact_tree(graph: MemGraph) -> MemoryTree:
    """The exact attribution's tree of :func:`parse_memgraph`'s records (input made by
    ``memgraph --attribution=exact``).

    All physical memory = the root job (jobs are the sums of their subtrees, processes the
    sums of their parts: with ``attributed.vmos`` (memgraph ``-v``), the process's exact
    share of each VMO (:func:`exact_vmo_children`), else private and shared; then each
    kernel kind and estimated) + one box per category of unowned memory + ``residual``
    when the residual is positive. The residual is what the boxes leave of
    ``total_bytes``; a negative one (a live source's figures adding up to more than its
    total) makes the root that much larger than the total, and is said in words like any
    other (:func:`attribution_text`). Nothing is clamped or invented: a figure the input
    does not itemize is a ``not itemized`` box (``VMOs (not itemized)`` for private and
    shared bytes its VMO list leaves out).
    """
    meta = graph.attribution
    if meta is None:
        raise TreemapInputError(
            'the __META record has no exact "attribution" (make the input with'
            " `memgraph --attribution=exact`)"
        )
    drafts: dict[str, _Draft] = {}
    parents: dict[str, str] = {}
    notes: list[str] = []
    for j in graph.jobs:
        drafts[j.id] = _Draft(j.id, NodeType.JOB, j.name or UNNAMED, j.koid)
        parents[j.id] = j.parent
    vmo_count = 0
    names = _VmoNames(graph.processes)
    for p in graph.processes:
        if p.attributed_bytes is None:
            raise TreemapInputError(
                f'{_show(p.id)}: "attributed_bytes" is missing, and the __META record says'
                " the input carries an exact attribution"
            )
        draft = _Draft(p.id, NodeType.PROCESS, p.name or UNNAMED, p.koid)
        parts = list(p.attributed)
        itemized = sum(size for _, size in parts)
        if p.attributed_bytes > itemized:
            parts.append((NOT_ITEMIZED_NAME, p.attributed_bytes - itemized))
        elif p.attributed_bytes < itemized:
            notes.append(
                f"The parts of {_show(p.id)} add up to {_fmt(itemized - p.attributed_bytes)}"
                f' more than its "attributed_bytes" ({_fmt(p.attributed_bytes)}); it is'
                " shown as the sum of its parts."
            )
        if p.attributed_vmos is not None:
            # Private and shared are split into the VMO boxes; the other parts follow.
            draft.children.extend(exact_vmo_children(p.attributed_vmos, names.of(p)))
            private_shared = sum(size for _, size in parts[: len(EXACT_PARTS)])
            left = private_shared - sum(size for _, size in p.attributed_vmos)
            if left > 0:  # a hand-made file's VMOs may not hold every byte
                draft.children.append(Node(VMOS_NOT_ITEMIZED_NAME, NodeType.MEMORY, left))
            parts = parts[len(EXACT_PARTS) :]
        draft.children.extend(Node(n, NodeType.MEMORY, size) for n, size in parts if size > 0)
        vmo_count += len({v.koid for v in p.vmos})
        drafts[p.id] = draft
        parents[p.id] = p.parent
    root_job = _root_job(graph, drafts)
    if _TOP_ID in drafts:
        raise TreemapInputError(f"{_show(_TOP_ID)}: the id of a kernel record, not of a task")
    top = _Draft(_TOP_ID, NodeType.KERNEL, ROOT_NAME, None)
    drafts[_TOP_ID] = top
    parents[root_job.id] = _TOP_ID
    parents[_TOP_ID] = ""
    order = _link(drafts, parents, top, root_job)
    built: dict[str, Node] = {}
    for draft in reversed(order[1:]):  # children before parents; the top comes last
        children = [c if isinstance(c, Node) else built.pop(c.id) for c in draft.children]
        size = sum(c.size_bytes for c in children)
        built[draft.id] = Node(draft.name, draft.type, size, draft.koid, _by_size(children))
    job_tree = built[root_job.id]
    boxes = [job_tree]
    boxes.extend(Node(name, NodeType.CATEGORY, size) for name, size in meta.categories if size)
    residual = meta.total_bytes - sum(b.size_bytes for b in boxes)
    if residual > 0:
        boxes.append(Node(RESIDUAL_NAME, NodeType.CATEGORY, residual))
    if residual != meta.residual_bytes:
        notes.append(
            f"The input says its residual is {meta.residual_bytes} bytes, but its figures"
            f" leave {residual} bytes of the total ({meta.total_bytes} bytes): the page shows"
            " what the figures leave."
        )
    root = Node(ROOT_NAME, NodeType.KERNEL, sum(b.size_bytes for b in boxes), None, _by_size(boxes))
    return MemoryTree(
        root=root,
        notes=tuple(notes),
        jobs=len(graph.jobs),
        processes=len(graph.processes),
        vmos=vmo_count,
        timestamp=graph.timestamp,
        attribution=replace(meta, residual_bytes=residual),
    )


def _signed_size(n: int) -> str:
    return f"-{format_size(-n)}" if n < 0 else format_size(n)


def attribution_text(meta: ExactMeta) -> str:
    """One line that states an exact tree's attribution and its residual, always (the
    residual is never hidden), with the source's notes as its likely causes, and says
    "approximate" when not every figure is page-level."""
    if meta.exact:
        head = "Exact attribution"
    else:
        head = "Approximate attribution (not every figure is page-level)"
    head += f" of {format_size(meta.total_bytes)} of physical memory"
    r = meta.residual_bytes
    residual = f"residual: {_signed_size(r)}"
    if r == 0:
        residual += " (every byte is a process's or a named category's)" if meta.exact else ""
    else:
        residual += f" ({r} bytes) "
        if r > 0:
            residual += "not accounted for by the processes and named categories, shown as"
            residual += f' the "{RESIDUAL_NAME}" box'
        else:
            residual += "(the processes and named categories add up to more than the total;"
            residual += " the map is that much larger)"
    text = f"{head} · {residual}"
    if meta.notes:
        text += (" — likely causes: " if r else " — ") + "; ".join(meta.notes)
    return text


# --- 3. folding -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FoldedTree:
    """The tree the page shows: ``shown`` nodes (``other (n)`` boxes included) stand for
    all ``total`` nodes of the full tree; ``folded`` of those are not shown one by one."""

    root: Node
    total: int
    shown: int
    folded: int


def _descendants(root: Node) -> dict[int, int]:
    """Number of descendants of every node, keyed by ``id(node)``."""
    counts: dict[int, int] = {}
    order: list[Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    for node in reversed(order):
        counts[id(node)] = sum(1 + counts[id(c)] for c in node.children)
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
    total = descendants[id(root)] + 1
    if total <= max_nodes and all(len(n.children) <= max_children for n in _walk(root)):
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
                folded=sum(1 + descendants[id(c)] for c in left),
            )
        )
        return node._replace(children=_by_size(children))

    folded_root = rebuild(root)
    shown = others = 0
    for node in _walk(folded_root):
        shown += 1
        others += node.type is NodeType.OTHER
    # Every shown node but the other (n) boxes is a node of the full tree.
    return FoldedTree(root=folded_root, total=total, shown=shown, folded=total - shown + others)


def _walk(root: Node) -> Iterable[Node]:
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children)


# --- 4. the page ------------------------------------------------------------------------

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
        "unknownClampedBytes": str(tree.unknown_clamped_bytes),
        "attribution": None if tree.attribution is None else _attribution_page(tree.attribution),
    }


def _attribution_page(meta: ExactMeta) -> dict[str, object]:
    return {
        "exact": meta.exact,
        "residual": str(meta.residual_bytes),
        "text": attribution_text(meta),
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
        if node.children:
            out["children"] = [node_json(c) for c in node.children]
        return out

    out: dict[str, JsonValue] = {
        "tree": node_json(tree.root),
        "notes": list[JsonValue](tree.notes),
        "unknown_clamped_bytes": tree.unknown_clamped_bytes,
        "counts": {"jobs": tree.jobs, "processes": tree.processes, "vmos": tree.vmos},
        "timestamp": tree.timestamp,
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
