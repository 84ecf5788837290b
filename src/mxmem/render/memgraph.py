"""``memgraph``: the whole system as JSON records, in the August 2017 format (spec §6).

:func:`memgraph_view` builds the records from a snapshot and its figures — the kernel's
memory split, the job tree in walker order, then the ``__META`` record — and
:func:`write_memgraph` prints them as ``memgraph.cpp`` did: a JSON array with one record
per line, each indented two spaces, a process's ``vmos``/``vmo_refs`` entries on lines of
their own indented six. The wire format is ``schemas/memgraph.schema.json``.

Where this differs from the 2017 tool, on purpose:

- Every string is JSON-escaped (memgraph.cpp printed names raw, a TODO in its source), and
  the escaping also writes ``<``, ``>`` and ``&`` as ``\\u003c``/``\\u003e``/``\\u0026`` and
  every non-ASCII or control character as ``\\uXXXX``: a hostile name can neither break
  the JSON, nor a page that embeds it verbatim (treemap.py pastes memgraph output into
  HTML), nor a terminal it is printed to. ``json.loads`` gives back the exact name.
- ``kernel/ipc`` (later Zircon's ``ipc_bytes``) appears, before ``kernel/other``, when the
  source reports IPC memory, so the children of ``kernel/physmem`` still sum to it.
- ``handle_rights`` lists every right the handle has, in the order of the ``vmos`` tool
  (READ, WRITE, EXECUTE, MAP, DUPLICATE, TRANSFER, then GET_PROPERTY, SET_PROPERTY): the
  2017 tool printed only the first six, which a reader of captures could not undo.
- Without kernel figures (a source that has none) there are no kernel records and the
  root job's parent is ``""`` rather than a ``kernel/vmo`` record that is not there.
- A job whose source reports its own memory charge (a Linux cgroup's) has
  ``charge_bytes``: optional, and not the sum of its processes' PSS.
- ``__META`` has ``platform`` (``linux``, ``fuchsia``) when the system is not Magenta, so
  that a reader knows what the objects are (a Linux job is a cgroup, a handle a file
  descriptor); a Magenta system's record is the 2017 one.
- ``memgraph --attribution=exact`` (issue 6) keeps every 2017 field and adds, from
  :mod:`mxmem.accounting.exact`: ``attributed_bytes`` and an ``attributed`` breakdown on
  each process, ``attributed_bytes`` (the subtree's sum) on each job, and an
  ``attribution`` object in ``__META`` (total, categories of unowned memory, residual,
  notes). With ``-v`` too, ``attributed.vmos`` says where a process's private and shared
  bytes are: ``[vmo_koid, bytes]`` pairs, its exact share of each VMO it reaches. The
  whole bytes, which add up, come from :mod:`mxmem.accounting.figures`.

memgraph.cpp left out the VMOs of its own process (they change while it reads them); a
snapshot is taken before any rendering and has no memgraph process, so nothing is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from mxmem.accounting.figures import Figures, vmo_shares
from mxmem.model import (
    Handle,
    Job,
    KernelMemory,
    ObjType,
    Platform,
    Process,
    Snapshot,
    Thread,
)
from mxmem.render.jsonout import JsonValue
from mxmem.render.vmos import VmoRow, rights_names, vmos_rows

__all__ = [
    "HANDLE_TYPE_ORDER",
    "MemgraphView",
    "Record",
    "exact_meta",
    "exact_record",
    "handle_stats",
    "kernel_records",
    "memgraph_timestamp",
    "memgraph_view",
    "write_memgraph",
]

Record = dict[str, JsonValue]

# The keys whose values memgraph.cpp printed on lines of their own after the record's
# scalar fields (",\n   \"vmos\": [" ...), in the order they appear.
_BLOCK_KEYS = ("handle_stats", "vmos", "vmo_refs")

# handle_stats lists types in later Zircon's ZX_OBJ_TYPE_* order (process = 1, thread = 2,
# vmo = 3, channel = 4, event = 5, port = 6, interrupt = 9, log = 12, socket = 14,
# resource = 15, eventpair = 16, job = 17, vmar = 18, fifo = 19, timer = 22) with the
# names its memgraph.cc printed; "other" (any type the model does not name) comes last.
HANDLE_TYPE_ORDER = (
    ObjType.PROCESS,
    ObjType.THREAD,
    ObjType.VMO,
    ObjType.CHANNEL,
    ObjType.EVENT,
    ObjType.PORT,
    ObjType.INTERRUPT,
    ObjType.LOG,
    ObjType.SOCKET,
    ObjType.RESOURCE,
    ObjType.EVENTPAIR,
    ObjType.JOB,
    ObjType.VMAR,
    ObjType.FIFO,
    ObjType.TIMER,
    ObjType.OTHER,
)
_HANDLE_RANK = {t: i for i, t in enumerate(HANDLE_TYPE_ORDER)}

_ENCODER = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(", ", ": "))


def _encode(value: JsonValue) -> str:
    # json.dumps never leaves <, > or & escaped, and outside strings JSON has none of
    # them, so replacing them anywhere in the text only touches string contents.
    text = _ENCODER.encode(value)
    if "<" in text or ">" in text or "&" in text:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text


@dataclass(frozen=True, slots=True, kw_only=True)
class MemgraphView:
    """The records in output order, and what the output could not include.

    ``missing_vmo_refs`` counts VMO references whose VMO the snapshot lacked (left out of
    ``vmos``/``vmo_refs``); ``unknown_processes`` counts processes whose figures are
    unknown (their records have no size fields).
    """

    records: list[Record]
    missing_vmo_refs: int = 0
    unknown_processes: int = 0


def exact_record(snapshot: Snapshot, exact: Figures, process: Process, *, vmos: bool) -> Record:
    """The fields ``--attribution=exact`` adds to a process record: ``attributed_bytes``
    and its parts (``attributed``), from the exact rule's rounded figures (a process
    whose figures are unknown gets zeros; a kernel figure the source cannot tell, 0
    with no kinds). ``vmos`` (``-v``) adds ``attributed.vmos``: where its private +
    shared bytes are (:func:`~mxmem.accounting.figures.vmo_shares`)."""
    figs = exact.processes.get(process.koid)
    parts: Record = {"private_bytes": 0, "shared_bytes": 0, "kernel_bytes": 0}
    kinds: dict[str, JsonValue] = {}
    total = estimated = swap = 0
    if figs is not None:
        total = figs.total
        parts = {
            "private_bytes": figs.private,
            "shared_bytes": figs.shared,
            "kernel_bytes": figs.kernel or 0,
        }
        kinds = dict(figs.kernel_by_kind)
        estimated, swap = figs.estimated, figs.swap
    parts |= {"kernel_by_kind": kinds, "estimated_bytes": estimated, "swap_bytes": swap}
    if vmos:
        parts["vmos"] = [[k, v] for k, v in vmo_shares(snapshot, exact, process)]
    return {"attributed_bytes": total, "attributed": parts}


def exact_meta(exact: Figures) -> Record:
    """The ``attribution`` object of the ``__META`` record: the whole system's figures."""
    system = exact.system
    assert system is not None, "the exact rule's figures"
    return {
        "mode": "exact",
        "exact": system.exact,
        "total_bytes": system.total_bytes,
        "processes_bytes": system.processes_bytes,
        "categories": dict[str, JsonValue](system.categories),
        "residual_bytes": system.residual_bytes,
        "notes": list[JsonValue](system.notes),
    }


def _kernel(name: str, parent: str, size_bytes: int) -> Record:
    return {
        "id": f"kernel/{name}",
        "type": "kernel",
        "parent": f"kernel/{parent}" if parent else "",
        "name": name,
        "size_bytes": size_bytes,
    }


def kernel_records(kernel: KernelMemory) -> list[Record]:
    """The kernel records, in memgraph.cpp's order. The children of ``kernel/physmem``
    are disjoint uses that sum to its size for a consistent source; ``kernel/heap`` is
    split into its allocated and free parts."""
    records = [
        _kernel("physmem", "", kernel.total_bytes),
        _kernel("free", "physmem", kernel.free_bytes),
        _kernel("vmo", "physmem", kernel.vmo_bytes),
        _kernel("heap", "physmem", kernel.heap_total_bytes),
        _kernel("heap/allocated", "heap", kernel.heap_allocated_bytes),
        _kernel("heap/free", "heap", kernel.heap_free_bytes),
        _kernel("wired", "physmem", kernel.wired_bytes),
        _kernel("mmu", "physmem", kernel.mmu_bytes),
    ]
    if kernel.ipc_bytes > 0:
        records.append(_kernel("ipc", "physmem", kernel.ipc_bytes))
    records.append(_kernel("other", "physmem", kernel.other_bytes))
    return records


def memgraph_timestamp(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC, milliseconds truncated as memgraph.cpp's
    ``tv_usec / 1000`` did. A naive datetime is taken to be UTC already."""
    utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond // 1000:03d}Z"


def handle_stats(handles: Sequence[Handle]) -> dict[str, JsonValue]:
    """How many handles of each object type, for the types with at least one, keyed by
    the lower-case type name (``{"vmo": 3, "channel": 2}``)."""
    counts: dict[ObjType, int] = {}
    for handle in handles:
        counts[handle.type] = counts.get(handle.type, 0) + 1
    ordered = sorted(counts, key=lambda t: _HANDLE_RANK.get(t, len(_HANDLE_RANK)))
    return {str(t.value): counts[t] for t in ordered}


def _vmo_entries(rows: list[VmoRow]) -> tuple[list[JsonValue], list[JsonValue]]:
    vmos: list[JsonValue] = []
    refs: list[JsonValue] = []
    for row in rows:
        vmo = row.vmo
        vmos.append(
            {
                "koid": vmo.user_koid,
                "name": vmo.name,
                "size_bytes": vmo.size_bytes,
                # mx_info_vmo_t: 0 when the VMO is not a clone.
                "parent_koid": row.parent_koid or 0,
                "num_children": vmo.num_children,
                "num_mappings": vmo.num_mappings,
                "share_count": vmo.share_count,
                "committed_bytes": vmo.committed_bytes,
            }
        )
        ref: Record = {"vmo_koid": vmo.user_koid, "via": [row.via]}
        if row.rights is not None:
            ref["handle_rights"] = list[JsonValue](rights_names(row.rights))
        refs.append(ref)
    return vmos, refs


def memgraph_view(
    snapshot: Snapshot,
    figs: Figures,
    *,
    threads: bool = False,
    vmos: bool = False,
    handles: bool = False,
    exact: Figures | None = None,
) -> MemgraphView:
    """Every record of ``memgraph`` for ``snapshot``.

    ``threads`` adds thread records (``-t``); ``vmos`` adds each process's VMO entries in
    ``vmos`` tool order, duplicates kept (``-v``); ``handles`` adds ``handle_stats``
    (``-H``). A process that is not running reports zeros; one whose figures are unknown
    has no size fields. ``figs`` are the 2017 rule's figures (or Fuchsia's Summary's);
    ``exact`` (``--attribution=exact``), the exact rule's, adds the exact fields
    (:func:`exact_record`, :func:`exact_meta`), with ``vmos`` their ``attributed.vmos``.
    """
    records: list[Record] = []
    if snapshot.kernel is not None:
        records.extend(kernel_records(snapshot.kernel))
        root_parent = "kernel/vmo"
    else:
        root_parent = ""
    missing = unknown = 0
    process_koid = 0  # the walk yields a process's threads right after it
    for _depth, _kind, obj in snapshot.walk(threads=threads):
        if isinstance(obj, Job):
            job: Record = {
                "id": f"j/{obj.koid}",
                "type": "j",
                "koid": obj.koid,
                "parent": root_parent if obj.parent_koid is None else f"j/{obj.parent_koid}",
                "name": obj.name,
            }
            if obj.charge_bytes is not None:
                job["charge_bytes"] = obj.charge_bytes
            if exact is not None:
                job["attributed_bytes"] = exact.jobs[obj.koid].total
            records.append(job)
        elif isinstance(obj, Process):
            process_koid = obj.koid
            record: Record = {
                "id": f"p/{obj.koid}",
                "type": "p",
                "koid": obj.koid,
                "parent": f"j/{obj.job_koid}",
                "name": obj.name,
            }
            mine = figs.processes.get(obj.koid)
            if mine is None:
                unknown += 1
            else:
                record["private_bytes"] = mine.private
                record["shared_bytes"] = mine.shared
                record["pss_bytes"] = mine.total
            if exact is not None:
                record.update(exact_record(snapshot, exact, obj, vmos=vmos))
            if handles and obj.handles is not None:
                record["handle_stats"] = handle_stats(obj.handles)
            if vmos:
                rows, lost = vmos_rows(obj, snapshot.vmos)
                missing += lost
                if rows:
                    record["vmos"], record["vmo_refs"] = _vmo_entries(rows)
            records.append(record)
        else:
            assert isinstance(obj, Thread)
            records.append(
                {
                    "id": f"t/{obj.koid}",
                    "type": "t",
                    "koid": obj.koid,
                    "parent": f"p/{process_koid}",
                    "name": obj.name,
                    "state": obj.state.name,
                }
            )
    meta: Record = {"type": "__META", "timestamp": memgraph_timestamp(snapshot.timestamp)}
    if snapshot.platform is not Platform.MAGENTA:
        # What the records' objects mean (a Linux job is a cgroup): a reader of the file
        # could not tell otherwise. Magenta's own files keep the 2017 record as it was.
        meta["platform"] = snapshot.platform.value
    if exact is not None:
        meta["attribution"] = exact_meta(exact)
    records.append(meta)
    return MemgraphView(records=records, missing_vmo_refs=missing, unknown_processes=unknown)


def _record_text(record: Record) -> str:
    scalars = ", ".join(
        f"{_encode(key)}: {_encode(value)}"
        for key, value in record.items()
        if key not in _BLOCK_KEYS
    )
    parts = ["  {", scalars]
    for key in _BLOCK_KEYS:
        value = record.get(key)
        if value is None:
            continue
        parts.append(f",\n   {_encode(key)}: ")
        if isinstance(value, list):
            entries = ",\n".join(f"      {_encode(entry)}" for entry in value)
            parts.append(f"[\n{entries}\n   ]")
        else:
            parts.append(_encode(value))
    parts.append("}")
    return "".join(parts)


def write_memgraph(records: Iterable[Record], out: TextIO) -> None:
    """Print the records as memgraph.cpp did: ``[``, one record per line followed by a
    comma except the last (the ``__META`` record, there so nothing else ends the list),
    then ``]``."""
    # One write per record: a large system's output is never held whole in memory.
    separator = "[\n"
    for record in records:
        out.write(separator + _record_text(record))
        separator = ",\n"
    out.write("\n]\n")
