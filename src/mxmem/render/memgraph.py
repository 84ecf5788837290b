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
- ``memgraph --attribution=exact`` (issue 6) keeps every 2017 field and adds, from
  :mod:`mxmem.accounting.exact`: ``attributed_bytes`` and an ``attributed`` breakdown on
  each process, ``attributed_bytes`` (the subtree's sum) on each job, and an
  ``attribution`` object in ``__META`` (total, categories of unowned memory, residual,
  notes). With ``-v`` too, ``attributed.vmos`` says where a process's private and shared
  bytes are: ``[vmo_koid, bytes]`` pairs, its exact share of each VMO it reaches. See
  :func:`exact_figures` and :func:`vmo_parts` for how the fractions become whole bytes
  that add up.

memgraph.cpp left out the VMOs of its own process (they change while it reads them); a
snapshot is taken before any rendering and has no memgraph process, so nothing is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from math import floor
from typing import TextIO

from mxmem.accounting.exact import Attribution, integer_parts
from mxmem.accounting.magenta2017 import TaskMemory
from mxmem.model import Handle, Job, KernelMemory, ObjType, Process, Snapshot, Thread
from mxmem.render.jsonout import JsonValue
from mxmem.render.vmos import VmoRow, rights_names, vmos_rows

__all__ = [
    "EXITED_CATEGORY",
    "HANDLE_TYPE_ORDER",
    "ExactFigures",
    "MemgraphView",
    "Record",
    "exact_figures",
    "handle_stats",
    "kernel_records",
    "memgraph_timestamp",
    "memgraph_view",
    "vmo_parts",
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
    unknown (their records have no size fields). ``exact`` is the exact attribution's
    figures when it was asked for.
    """

    records: list[Record]
    missing_vmo_refs: int = 0
    unknown_processes: int = 0
    exact: ExactFigures | None = None


# Memory the attribution gives to a process the task tree does not list (on a live host, one
# that exited between the page reads and the task walk): kept as a named category, so that
# the records still add up to the total.
EXITED_CATEGORY = "processes not in the task tree"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExactFigures:
    """An exact attribution in whole bytes, as ``memgraph --attribution=exact`` prints it.

    ``processes``: by process koid, the fields added to its record (``attributed_bytes``
    and ``attributed``); ``jobs``: by job koid, the sum over the job's subtree; ``meta``:
    the ``__META`` record's ``attribution`` object. ``residual_bytes`` = total - Σ
    processes - Σ categories, exactly, in the rounded figures. ``notes`` say what the
    rounding step had to do beyond rounding (negative figures, processes not listed), on
    top of the source's own notes; all of them are in ``meta`` too.
    """

    processes: Mapping[int, Record] = field(default_factory=dict)
    jobs: Mapping[int, int] = field(default_factory=dict)
    meta: Record = field(default_factory=dict)
    residual_bytes: int = 0
    notes: tuple[str, ...] = ()


def _listed(snapshot: Snapshot) -> tuple[list[int], set[int]]:
    """The job koids in walk order and the process koids the walk reaches: exactly the
    tasks memgraph prints a record for."""
    jobs: list[int] = []
    processes: set[int] = set()
    for _depth, kind, obj in snapshot.walk():
        if kind == "j":
            jobs.append(obj.koid)
        else:
            processes.add(obj.koid)
    return jobs, processes


def exact_figures(
    snapshot: Snapshot, attribution: Attribution, *, vmos: bool = False
) -> ExactFigures:
    """``attribution`` rounded to whole bytes so that what is printed adds up.

    Every part — each process's private, shared, estimated and per-kind kernel bytes, and
    each category — is rounded in one :func:`~mxmem.accounting.exact.integer_parts` call,
    so a process's ``attributed_bytes`` is exactly the sum of its printed parts, a job's
    the sum of its subtree's processes, and Σ processes + Σ categories is the rounded sum
    of the exact fractions: on a source that sees every page, ``total_bytes`` to the byte
    (residual 0). A negative part (which no rule makes, but a source's figure could be) is
    never printed: it counts as 0 and so shows in the residual, with a note. A process the
    task walk does not reach has no record: its bytes go to :data:`EXITED_CATEGORY`.

    ``vmos`` (memgraph ``-v``) adds ``attributed.vmos`` to every process: its private +
    shared bytes by the VMO they were reached through (:func:`vmo_parts`), adding up to
    the printed ``private_bytes + shared_bytes`` exactly.
    """
    job_order, listed = _listed(snapshot)
    notes: list[str] = []
    parts: list[tuple[str, Fraction]] = []
    exited = Fraction(0)
    exited_count = 0

    def part(key: str, value: Fraction, what: str) -> None:
        if value < 0:
            notes.append(
                f"{what} was negative ({round(value)} bytes): counted as 0, so it is"
                " part of the residual"
            )
            value = Fraction(0)
        parts.append((key, value))

    for pid, share in attribution.processes.items():
        if pid not in listed:
            exited += share.total
            exited_count += 1
            continue
        what = f"the attribution of process {pid}"
        part(f"p{pid}/private", share.private, f"{what} (private)")
        part(f"p{pid}/shared", share.shared, f"{what} (shared)")
        part(f"p{pid}/estimated", share.estimated, f"{what} (estimated)")
        for kind, value in share.kernel.items():
            part(f"p{pid}/k/{kind}", value, f"{what} ({kind})")
    categories: dict[str, Fraction] = dict(attribution.categories)
    if exited_count:
        categories[EXITED_CATEGORY] = categories.get(EXITED_CATEGORY, Fraction(0)) + exited
        plural = "es" if exited_count != 1 else ""
        notes.append(
            f"{exited_count} process{plural} with attributed memory are not in the task"
            f' tree (exited while it was read): their memory is the "{EXITED_CATEGORY}"'
            " category"
        )
    for name, value in categories.items():
        part(f"c/{name}", value, f'the category "{name}"')
    rounded = integer_parts(parts)

    processes: dict[int, Record] = {}
    for pid in sorted(listed):
        mine = attribution.processes.get(pid)
        if mine is None:
            kinds: dict[str, int] = {}
            private = shared = estimated = swap = 0
        else:
            kinds = {kind: rounded[f"p{pid}/k/{kind}"] for kind in mine.kernel}
            private = rounded[f"p{pid}/private"]
            shared = rounded[f"p{pid}/shared"]
            estimated = rounded[f"p{pid}/estimated"]
            swap = max(round(mine.swap), 0)  # not RAM: outside the sum, rounded alone
        kernel = sum(kinds.values())
        parts_record: Record = {
            "private_bytes": private,
            "shared_bytes": shared,
            "kernel_bytes": kernel,
            "kernel_by_kind": dict[str, JsonValue](kinds),
            "estimated_bytes": estimated,
            "swap_bytes": swap,
        }
        if vmos:
            by_vmo = {} if mine is None else _wire_koids(snapshot, mine.by_vmo)
            parts_record["vmos"] = [
                [koid, size] for koid, size in vmo_parts(by_vmo, private + shared)
            ]
        processes[pid] = {
            "attributed_bytes": private + shared + kernel + estimated,
            "attributed": parts_record,
        }

    jobs: dict[int, int] = {}
    for koid in reversed(job_order):  # children before their parents
        job = snapshot.jobs[koid]
        total = sum(_attributed(processes, p) for p in job.process_koids if p in snapshot.processes)
        jobs[koid] = total + sum(jobs.get(c, 0) for c in job.child_koids)

    unowned = {name: rounded[f"c/{name}"] for name in categories}
    ordered = sorted((item for item in unowned.items() if item[1]), key=lambda i: (-i[1], i[0]))
    processes_bytes = sum(_attributed(processes, p) for p in processes)
    residual = attribution.total_bytes - processes_bytes - sum(unowned.values())
    all_notes = (*attribution.notes, *notes)
    meta: Record = {
        "mode": "exact",
        "exact": attribution.exact,
        "total_bytes": attribution.total_bytes,
        "processes_bytes": processes_bytes,
        "categories": dict[str, JsonValue](ordered),
        "residual_bytes": residual,
        "notes": list[JsonValue](all_notes),
    }
    return ExactFigures(
        processes=processes,
        jobs=jobs,
        meta=meta,
        residual_bytes=residual,
        notes=tuple(notes),
    )


def _wire_koids(snapshot: Snapshot, by_vmo: Mapping[int, Fraction]) -> dict[int, Fraction]:
    """``by_vmo`` keyed by the koids the ``vmos`` entries print (``Vmo.user_koid``: 0 for
    a VMO the kernel made without a user koid, so such VMOs add up under 0, as does
    memory the source reached through no VMO)."""
    out: dict[int, Fraction] = {}
    for koid, share in by_vmo.items():
        vmo = snapshot.vmos.get(koid)
        wire = koid if vmo is None else vmo.user_koid
        out[wire] = out[wire] + share if wire in out else share
    return out


def vmo_parts(shares: Mapping[int, Fraction], target: int) -> list[tuple[int, int]]:
    """A process's exact shares of its VMOs (``{vmo_koid: bytes}``) as whole bytes that
    add up to exactly ``target`` — its printed ``private_bytes + shared_bytes`` — as
    ``(koid, bytes)`` pairs, largest first, then by koid; VMOs of 0 bytes are left out.

    The shares are rounded with :func:`~mxmem.accounting.exact.integer_parts` (largest
    remainder; ties by koid), which makes them add up to the shares' rounded sum. The
    printed private and shared bytes were rounded among every part of the system, so
    ``target`` can differ from that sum by a byte (two at most: both were rounded the
    other way). The difference ``d`` is absorbed by continuing the same rule, so that each
    VMO stays within a byte of its exact share whenever that is possible: for ``d > 0``
    one byte more to each of the ``d`` fractional shares that were rounded down, largest
    remainder first; for ``d < 0`` one byte less from each of the ``|d|`` that were rounded
    up, smallest remainder first (ties by koid, both ways). Should there be too few such
    shares, the largest VMOs take the rest (then koid 0, "no VMO", if there is none).
    Shares of 0 or less (no rule makes them) count as nothing.
    """
    items = [(koid, share) for koid, share in shares.items() if share > 0]
    rounded = {koid: int(share) for koid, share in items if share.denominator == 1}
    fractional = {koid: share for koid, share in items if share.denominator != 1}
    rounded.update(integer_parts(fractional.items()))
    short = target - sum(rounded.values())
    if short:
        remainder = {koid: share - floor(share) for koid, share in fractional.items()}
        if short > 0:
            movable = sorted(
                (k for k, v in fractional.items() if rounded[k] == floor(v)),
                key=lambda k: (-remainder[k], k),
            )
        else:
            movable = sorted(
                (k for k, v in fractional.items() if rounded[k] > floor(v)),
                key=lambda k: (remainder[k], k),
            )
        step = 1 if short > 0 else -1
        for koid in movable[: abs(short)]:
            rounded[koid] += step
            short -= step
        for koid in sorted(rounded, key=lambda k: (-rounded[k], k)):
            if not short:
                break
            change = short if short > 0 else max(short, -rounded[koid])
            rounded[koid] += change
            short -= change
        if short > 0:
            rounded[0] = short
    return sorted(((k, v) for k, v in rounded.items() if v), key=lambda i: (-i[1], i[0]))


def _attributed(processes: Mapping[int, Record], pid: int) -> int:
    value = processes[pid]["attributed_bytes"]
    assert isinstance(value, int)
    return value


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
    memory: TaskMemory,
    *,
    threads: bool = False,
    vmos: bool = False,
    handles: bool = False,
    attribution: Attribution | None = None,
) -> MemgraphView:
    """Every record of ``memgraph`` for ``snapshot``.

    ``threads`` adds thread records (``-t``); ``vmos`` adds each process's VMO entries in
    ``vmos`` tool order, duplicates kept (``-v``); ``handles`` adds ``handle_stats``
    (``-H``). A process that is not running reports zeros; one whose figures are unknown
    has no size fields. ``attribution`` (``--attribution=exact``) adds the exact fields
    (see :func:`exact_figures`), with ``vmos`` their ``attributed.vmos`` too.
    """
    exact = None if attribution is None else exact_figures(snapshot, attribution, vmos=vmos)
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
                job["attributed_bytes"] = exact.jobs.get(obj.koid, 0)
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
            stats = memory.processes.get(obj.koid)
            if stats is None:
                unknown += 1
            else:
                record["private_bytes"] = stats.private_bytes
                record["shared_bytes"] = stats.shared_bytes
                record["pss_bytes"] = stats.pss_bytes
            if exact is not None:
                record.update(exact.processes[obj.koid])
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
    if exact is not None:
        meta["attribution"] = exact.meta
    records.append(meta)
    return MemgraphView(
        records=records, missing_vmo_refs=missing, unknown_processes=unknown, exact=exact
    )


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
