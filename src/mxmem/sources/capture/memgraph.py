"""memgraph JSON (mxmem's or a real Magenta/Zircon system's) as a :class:`Snapshot`.

The records (magenta-tools.md §6) give: kernel records -> :class:`KernelMemory`; ``j``,
``p`` and ``t`` records -> jobs, processes and threads, linked by their ``parent`` ids
in record order (the walker's creation order); a process's ``private_bytes``,
``shared_bytes`` and ``pss_bytes`` -> its ``stats`` (``scaled_shared = pss - private``;
memgraph has no mapped size, so ``mapped_bytes`` is 0). With ``-v``, each process's
``vmos`` entries become the snapshot's VMOs (one per koid; entries with koid 0, VMOs
that only the kernel knows, get koids after the largest in the file and stay
``kernel_only``), its ``HANDLE`` refs become VMO handles with the listed rights and
synthesized values 1, 2, 3... (memgraph records no handle values). With ``-H``,
``handle_stats`` adds handles of the other types (koid 0, no rights).

memgraph records no mappings: only *which* VMOs a process maps. A process's ``MAPPING``
refs are kept as zero-sized mappings at address 0 in a placeholder address space, so
``vmos`` and ``memgraph -v`` can list them, and the snapshot carries
:data:`NO_MAPPINGS_NOTE`: ``vmaps`` (and anything else that needs real addresses)
refuses such a capture rather than print made-up addresses (the snapshot's
``has_mappings`` is False).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import NamedTuple

from mxmem.model import (
    Aspace,
    Handle,
    Job,
    KernelMemory,
    Level,
    Mapping,
    ObjType,
    Platform,
    Process,
    Rights,
    Snapshot,
    TaskStats,
    Thread,
    ThreadState,
    Vmar,
    Vmo,
)
from mxmem.sources.capture._check import U64_LIMIT, Checker

__all__ = ["NO_MAPPINGS_NOTE", "from_records"]

#: The note every memgraph capture carries (its ``has_mappings`` is False), and what
#: tools that need mappings say when they refuse one.
NO_MAPPINGS_NOTE = "this capture has no address spaces (memgraph JSON records no mappings)"

_KERNEL_NAMES = {
    "physmem": "total_bytes",
    "free": "free_bytes",
    "vmo": "vmo_bytes",
    "heap": "heap_total_bytes",
    "heap/free": "heap_free_bytes",
    "wired": "wired_bytes",
    "mmu": "mmu_bytes",
    "ipc": "ipc_bytes",
    "other": "other_bytes",
}
_VMO_FIELDS = (
    "koid",
    "size_bytes",
    "parent_koid",
    "num_children",
    "num_mappings",
    "share_count",
    "committed_bytes",
)
_SIZE_FIELDS = ("private_bytes", "shared_bytes", "pss_bytes")
# The platforms a __META record may name (mxmem's memgraph writes one when not Magenta).
_PLATFORMS = tuple(p.value for p in Platform if p is not Platform.MAGENTA)
_U64_BITS = U64_LIMIT.bit_length() - 1
# A vmos entry's fields, in one call (see _vmos).
_entry_fields = itemgetter(
    "koid",
    "size_bytes",
    "parent_koid",
    "num_children",
    "num_mappings",
    "share_count",
    "committed_bytes",
    "name",
)


class _Place(NamedTuple):
    """A record's place in error messages (``record 5 ("p/1234")``), formatted only when
    an error names it: a large memgraph has tens of thousands of records, all well formed
    as a rule, and each formatting costs a ``json.dumps``."""

    number: int
    rid: str

    def __str__(self) -> str:
        return _place(self.number, self.rid)


def _place(index: int, rid: str) -> str:
    return f"record {index} ({json.dumps(rid)[:60]})"


# Where a record is: its place, or the lazy form of it.
_Where = str | _Place


@dataclass
class _RawProcess:
    koid: int
    job_koid: int
    name: str
    place: _Where
    stats: TaskStats | None
    handle_stats: dict[ObjType, int] | None
    # Its VMO handles and (placeholder) mappings, in the file's order; those of a
    # kernel-only VMO have koid 0 until its koid is given: ``later`` lists them (a
    # handle?, where in its list, the VMO).
    handles: list[Handle] = field(default_factory=list)
    mappings: list[Mapping] = field(default_factory=list)
    later: list[tuple[bool, int, Vmo]] = field(default_factory=list)
    threads: list[Thread] = field(default_factory=list)


class _Reader(Checker):
    def task_ref(self, value: object, prefix: str, place: str) -> int:
        """The koid of a ``"j/K"`` / ``"p/K"`` parent id."""
        text = self.str_(value, place)
        digits = text[len(prefix) :]
        if not text.startswith(prefix) or not digits.isdigit() or not digits.isascii():
            self.fail(place, f"parent {json.dumps(text)[:60]} is not a {prefix}<koid> id")
        return self.int_(int(digits), place)


# Names of the Rights enum that are sets of rights, not a right a handle lists.
_NOT_RIGHTS = ("NONE", "DEFAULT_VMO")


def _rights(reader: _Reader, value: object, place: str) -> int:
    rights = 0
    for i, name in enumerate(reader.list_(value, place)):
        text = reader.str_(name, f"{place}[{i}]")
        if text not in Rights.__members__ or text in _NOT_RIGHTS:
            reader.fail(f"{place}[{i}]", f"unknown right {json.dumps(text)[:40]}")
        rights |= Rights[text]
    return rights


def from_records(document: object, where: str) -> Snapshot:
    """Rebuild a snapshot from parsed memgraph JSON; ``where`` names the file in errors."""
    reader = _Reader(where)
    records = reader.list_(document, "$")
    kernel: dict[str, int] = {}
    heap_allocated: int | None = None
    # koid -> parent, name, place, charge
    jobs: dict[int, tuple[int | None, str, _Where, int | None]] = {}
    processes: dict[int, _RawProcess] = {}
    thread_parents: list[tuple[int, Thread, _Where]] = []
    raw_vmos: dict[object, Vmo] = {}
    seen_ids: set[str] = set()
    timestamp: datetime | None = None
    platform = Platform.MAGENTA
    full = False
    unknown_states = 0
    rights_of: dict[tuple[object, ...], int] = {}
    mapping_of: dict[int, Mapping] = {}
    states = ThreadState.__members__
    for i, value in enumerate(records):
        # A large memgraph has tens of thousands of task records: a well-formed one takes
        # this fast way, which checks what the checked way below checks and builds no error
        # places; anything else goes the checked way, which names the first problem.
        if type(value) is dict:
            kind = value.get("type")
            rid = value.get("id")
            koid = value.get("koid")
            name = value.get("name")
            parent = value.get("parent")
            if (
                (kind == "t" or kind == "p" or kind == "j")
                and type(koid) is int
                and 0 <= koid < U64_LIMIT
                and type(rid) is str
                and rid == f"{kind}/{koid}"
                and type(name) is str
                and type(parent) is str
                and rid not in seen_ids
            ):
                fast_place = _Place(i, rid)
                if kind == "t":
                    state_name = value.get("state")
                    state = states.get(state_name) if type(state_name) is str else None
                    ppid = _ref_koid(parent, "p/")
                    if state is not None and ppid is not None:
                        seen_ids.add(rid)
                        thread = Thread(koid=koid, name=name, state=state)
                        thread_parents.append((ppid, thread, fast_place))
                        continue
                elif kind == "p":
                    process = _fast_process(value, koid, name, parent, fast_place)
                    if process is not None:
                        seen_ids.add(rid)
                        processes[koid] = process
                        if "vmos" in value or "vmo_refs" in value:
                            full = True
                            _vmos(
                                reader, value, fast_place, process, raw_vmos, rights_of, mapping_of
                            )
                        continue
                else:
                    charge = value.get("charge_bytes")
                    if charge is None or (type(charge) is int and 0 <= charge < U64_LIMIT):
                        up = _ref_koid(parent, "j/") if parent.startswith("j/") else None
                        if up is not None or not parent.startswith("j/"):
                            seen_ids.add(rid)
                            jobs[koid] = (up, name, fast_place, charge)
                            continue
        place = f"record {i}"
        rec = reader.dict_(value, place)
        rid = rec.get("id")
        if isinstance(rid, str):
            place = _place(i, rid)
            if rid in seen_ids:
                reader.fail(place, "duplicate id")
            seen_ids.add(rid)
        kind = reader.str_(rec.get("type"), f"{place}.type")
        if kind.startswith("__"):
            if kind == "__META" and "platform" in rec:
                # mxmem writes it for a system that is not Magenta; absent, Magenta.
                name = reader.str_(rec["platform"], f"{place}.platform")
                if name not in _PLATFORMS:
                    reader.fail(f"{place}.platform", f"not one of {', '.join(_PLATFORMS)}")
                platform = Platform(name)
            if kind == "__META" and "timestamp" in rec:
                text = reader.str_(rec["timestamp"], f"{place}.timestamp")
                try:
                    timestamp = datetime.fromisoformat(text)
                except ValueError:
                    reader.fail(f"{place}.timestamp", "not an ISO 8601 date and time")
                if timestamp.tzinfo is None:
                    timestamp = timestamp.replace(tzinfo=UTC)
            continue
        if kind == "kernel":
            name = reader.str_(rid, f"{place}.id")
            size = reader.int_(rec.get("size_bytes"), f"{place}.size_bytes")
            short = name.removeprefix("kernel/")
            if short == "heap/allocated":
                heap_allocated = size
            elif short in _KERNEL_NAMES:
                kernel[_KERNEL_NAMES[short]] = size
            # Other kernel records (a later system's) have no place in KernelMemory.
            continue
        if kind not in ("j", "p", "t"):
            reader.fail(f"{place}.type", f"unknown record type {json.dumps(kind)[:40]}")
        koid = reader.int_(rec.get("koid"), f"{place}.koid")
        if rid != f"{kind}/{koid}":
            reader.fail(f"{place}.id", f'expected "{kind}/{koid}"')
        name = reader.str_(rec.get("name"), f"{place}.name")
        parent = rec.get("parent")
        if kind == "j":
            charge = rec.get("charge_bytes")
            charge_int = None if charge is None else reader.int_(charge, f"{place}.charge_bytes")
            if isinstance(parent, str) and parent.startswith("j/"):
                jobs[koid] = (
                    reader.task_ref(parent, "j/", f"{place}.parent"),
                    name,
                    place,
                    charge_int,
                )
            else:
                # The root job's parent is "kernel/vmo" (or "" without kernel figures).
                reader.str_(parent, f"{place}.parent")
                jobs[koid] = (None, name, place, charge_int)
        elif kind == "p":
            process = _process(reader, rec, koid, name, place)
            processes[koid] = process
            if "vmos" in rec or "vmo_refs" in rec:
                full = True
                _vmos(reader, rec, place, process, raw_vmos, rights_of, mapping_of)
        else:
            state_name = reader.str_(rec.get("state"), f"{place}.state")
            if state_name in ThreadState.__members__:
                state = ThreadState[state_name]
            elif state_name == "<UNKNOWN>":
                state = ThreadState.DEAD
                unknown_states += 1
            else:
                reader.fail(f"{place}.state", f"unknown thread state {json.dumps(state_name)[:40]}")
            ppid = reader.task_ref(parent, "p/", f"{place}.parent")
            thread_parents.append((ppid, Thread(koid=koid, name=name, state=state), place))
    if timestamp is None:
        reader.fail("$", "no __META record with a timestamp (truncated?)")
    return _build(
        reader,
        where,
        kernel,
        heap_allocated,
        jobs,
        processes,
        thread_parents,
        raw_vmos,
        timestamp,
        platform=platform,
        full=full,
        unknown_states=unknown_states,
    )


def _ref_koid(text: str, prefix: str) -> int | None:
    """The koid of a well-formed ``"j/K"`` / ``"p/K"`` parent id, else None (the checked
    :meth:`_Reader.task_ref` then says what is wrong)."""
    digits = text[len(prefix) :]
    if text.startswith(prefix) and digits.isdigit() and digits.isascii():
        koid = int(digits)
        if koid < U64_LIMIT:
            return koid
    return None


def _fast_process(
    rec: dict[str, object], koid: int, name: str, parent: str, place: _Where
) -> _RawProcess | None:
    """:func:`_process` of a well-formed process record without ``handle_stats``, else
    None (the caller then takes the checked way)."""
    job = _ref_koid(parent, "j/")
    if job is None or "handle_stats" in rec:
        return None
    stats = None
    if "pss_bytes" in rec:
        private, shared, pss = rec.get("private_bytes"), rec.get("shared_bytes"), rec["pss_bytes"]
        if not (
            type(private) is int
            and type(shared) is int
            and type(pss) is int
            and 0 <= private <= pss < U64_LIMIT
            and 0 <= shared < U64_LIMIT
        ):
            return None
        stats = TaskStats(
            mapped_bytes=0,
            private_bytes=private,
            shared_bytes=shared,
            scaled_shared_bytes=pss - private,
        )
    elif "private_bytes" in rec or "shared_bytes" in rec:
        return None
    return _RawProcess(koid, job, name, place, stats, None)


def _process(
    reader: _Reader, rec: dict[str, object], koid: int, name: str, place: str
) -> _RawProcess:
    job = reader.task_ref(rec.get("parent"), "j/", f"{place}.parent")
    present = [f for f in _SIZE_FIELDS if f in rec]
    stats = None
    if present:
        if len(present) != len(_SIZE_FIELDS):
            missing = next(f for f in _SIZE_FIELDS if f not in rec)
            reader.fail(place, f"has {present[0]} but no {missing}")
        private, shared, pss = (reader.int_(rec[f], f"{place}.{f}") for f in _SIZE_FIELDS)
        if pss < private:
            reader.fail(f"{place}.pss_bytes", f"{pss} is less than private_bytes {private}")
        stats = TaskStats(
            mapped_bytes=0,
            private_bytes=private,
            shared_bytes=shared,
            scaled_shared_bytes=pss - private,
        )
    handle_stats: dict[ObjType, int] | None = None
    if "handle_stats" in rec:
        handle_stats = {}
        counts = reader.dict_(rec["handle_stats"], f"{place}.handle_stats")
        for type_name, count in counts.items():
            where = f"{place}.handle_stats.{type_name}"
            try:
                obj_type = ObjType(type_name)
            except ValueError:
                obj_type = ObjType.OTHER
            n = reader.int_(count, where, high=2**24)
            handle_stats[obj_type] = handle_stats.get(obj_type, 0) + n
    return _RawProcess(koid, job, name, place, stats, handle_stats)


def _vmos(
    reader: _Reader,
    rec: dict[str, object],
    place: _Where,
    process: _RawProcess,
    raw_vmos: dict[object, Vmo],
    rights_of: dict[tuple[object, ...], int],
    mapping_of: dict[int, Mapping],
) -> None:
    """The process's ``vmos`` and ``vmo_refs``: new VMOs into ``raw_vmos``, its VMO
    handles and (placeholder) mappings into ``process``. ``rights_of`` caches the rights
    of each list of names already seen (only lists of known rights are in it);
    ``mapping_of``, the one placeholder mapping of each VMO, shared by every process that
    maps it (immutable)."""
    # (places formatted only for an error: see _Place)
    entries = rec.get("vmos")
    if type(entries) is not list:
        entries = reader.list_(entries, f"{place}.vmos")
    refs = rec.get("vmo_refs")
    if type(refs) is not list:
        refs = reader.list_(refs, f"{place}.vmo_refs")
    if len(entries) != len(refs):
        reader.fail(f"{place}.vmo_refs", f"{len(refs)} refs for {len(entries)} vmos entries")
    handles = process.handles
    mappings = process.mappings
    vmo_type = ObjType.VMO
    members = Rights.__members__
    for n, (entry, ref) in enumerate(zip(entries, refs, strict=True)):
        # A large memgraph has a million entries: a well-formed one takes this fast way
        # (these checks are the checked way's, inline: this is the reader's hottest
        # loop), which builds no error places; anything else goes the checked way below,
        # which names the first problem.
        if type(entry) is dict and type(ref) is dict:
            try:
                koid, size, parent, children, mapped, share, committed, name = _entry_fields(entry)
            except KeyError:
                koid = None  # the checked way says which
            via = ref.get("via")
            if (
                type(koid) is int
                and type(size) is int
                and type(parent) is int
                and type(children) is int
                and type(mapped) is int
                and type(share) is int
                and type(committed) is int
                and type(name) is str
                # All seven in [0, U64_LIMIT): their OR is, and a negative one makes it
                # negative (shifted, -1).
                and not (koid | size | parent | children | mapped | share | committed) >> _U64_BITS
                and ref.get("vmo_koid") == koid
                and type(ref["vmo_koid"]) is int
                and type(via) is list
                and len(via) == 1
            ):
                kind = via[0]
                rights: int | None = 0
                if kind == "HANDLE":
                    rights = None
                    names = ref.get("handle_rights", [])
                    if type(names) is list:
                        listed = tuple(names)
                        try:
                            rights = rights_of.get(listed)
                        except TypeError:  # an array or object among them
                            listed = (None,)
                        if rights is None and all(
                            type(r) is str and r in members and r not in _NOT_RIGHTS
                            for r in listed
                        ):
                            rights = 0
                            for r in listed:
                                rights |= Rights[r]
                            rights_of[listed] = rights
                elif kind != "MAPPING":
                    rights = None
                if rights is not None:
                    if koid:
                        vmo = raw_vmos.get(koid)
                        if vmo is None:  # (a VMO listed by an earlier entry is built once)
                            vmo = raw_vmos[koid] = Vmo(
                                koid, name, size, committed, parent or None, children,
                                mapped, share, False, False,
                            )  # fmt: skip
                        if kind == "HANDLE":
                            handles.append(Handle(len(handles) + 1, koid, vmo_type, rights))
                        else:
                            mapping = mapping_of.get(koid)
                            if mapping is None:
                                mapping = mapping_of[koid] = Mapping(0, 0, 0, koid, 0, 0, vmo.name)
                            mappings.append(mapping)
                        continue
                    # memgraph's "no parent" is 0; a kernel-only VMO (koid 0) is told
                    # apart by its figures.
                    vmo = Vmo(0, name, size, committed, parent or None, children, mapped,
                              share, False, True)  # fmt: skip
                    _add_kernel_only(process, raw_vmos, vmo, kind, rights)
                    continue
        where = f"{place}.vmos[{n}]"
        entry = reader.dict_(entry, where)
        ints = {f: reader.int_(entry.get(f), f"{where}.{f}") for f in _VMO_FIELDS}
        vmo = Vmo(
            koid=ints["koid"],
            name=reader.str_(entry.get("name"), f"{where}.name"),
            size_bytes=ints["size_bytes"],
            committed_bytes=ints["committed_bytes"],
            parent_koid=ints["parent_koid"] or None,  # memgraph's "no parent" is 0
            num_children=ints["num_children"],
            num_mappings=ints["num_mappings"],
            share_count=ints["share_count"],
            kernel_only=ints["koid"] == 0,
        )
        ref_place = f"{place}.vmo_refs[{n}]"
        ref = reader.dict_(ref, ref_place)
        if reader.int_(ref.get("vmo_koid"), f"{ref_place}.vmo_koid") != vmo.koid:
            reader.fail(f"{ref_place}.vmo_koid", f"does not match vmos[{n}].koid {vmo.koid}")
        via = reader.list_(ref.get("via"), f"{ref_place}.via", 1)
        if via[0] == "HANDLE":
            kind = "HANDLE"
            rights = _rights(reader, ref.get("handle_rights", []), f"{ref_place}.handle_rights")
        elif via[0] == "MAPPING":
            kind, rights = "MAPPING", 0
        else:
            reader.fail(f"{ref_place}.via[0]", 'expected "HANDLE" or "MAPPING"')
        if not vmo.koid:
            _add_kernel_only(process, raw_vmos, vmo, kind, rights)
            continue
        vmo = raw_vmos.setdefault(vmo.koid, vmo)
        if kind == "HANDLE":
            handles.append(Handle(len(handles) + 1, vmo.koid, vmo_type, rights))
        else:
            mappings.append(Mapping(0, 0, 0, vmo.koid, 0, 0, vmo.name))


def _add_kernel_only(
    process: _RawProcess, raw_vmos: dict[object, Vmo], vmo: Vmo, kind: str, rights: int
) -> None:
    """A reference to a kernel-only VMO (koid 0; the same figures are the same VMO), whose
    koid is given once the whole file is read: a handle or mapping with koid 0 for now,
    and where it is in ``process.later``."""
    vmo = raw_vmos.setdefault(vmo, vmo)
    if kind == "HANDLE":
        process.later.append((True, len(process.handles), vmo))
        process.handles.append(Handle(len(process.handles) + 1, 0, ObjType.VMO, rights))
    else:
        process.later.append((False, len(process.mappings), vmo))
        process.mappings.append(Mapping(0, 0, 0, 0, 0, 0, vmo.name))


def _build(
    reader: _Reader,
    where: str,
    kernel_fields: dict[str, int],
    heap_allocated: int | None,
    jobs_raw: dict[int, tuple[int | None, str, _Where, int | None]],
    processes_raw: dict[int, _RawProcess],
    thread_parents: list[tuple[int, Thread, _Where]],
    raw_vmos: dict[object, Vmo],
    timestamp: datetime,
    *,
    platform: Platform,
    full: bool,
    unknown_states: int,
) -> Snapshot:
    kernel = None
    if kernel_fields or heap_allocated is not None:
        if "heap_free_bytes" not in kernel_fields and heap_allocated is not None:
            heap = kernel_fields.get("heap_total_bytes", 0)
            kernel_fields["heap_free_bytes"] = max(heap - heap_allocated, 0)
        kernel_fields.setdefault("ipc_bytes", 0)
        for name, attr in _KERNEL_NAMES.items():
            if attr not in kernel_fields:
                reader.fail("$", f"no kernel/{name} record")
        kernel = KernelMemory(**kernel_fields)
    # Jobs: parents, children in record order, exactly one root, no cycles.
    roots = [k for k, (parent, *_rest) in jobs_raw.items() if parent is None]
    if jobs_raw and len(roots) != 1:
        reader.fail("$", f"{len(roots)} root jobs (records whose parent is not a job); expected 1")
    children: dict[int, list[int]] = {k: [] for k in jobs_raw}
    for koid, (parent, _name, place, _charge) in jobs_raw.items():
        if parent is not None:
            if parent not in jobs_raw:
                reader.fail(f"{place}.parent", f"job {parent} has no record")
            children[parent].append(koid)
    rooted: set[int] = set()
    for koid, (_parent, _name, place, _charge) in jobs_raw.items():
        chain: list[int] = []
        cur: int | None = koid
        while cur is not None and cur not in rooted:
            chain.append(cur)
            if len(chain) > len(jobs_raw):
                reader.fail(f"{place}.parent", f"job {koid}'s parent chain is a cycle")
            cur = jobs_raw[cur][0]
        rooted.update(chain)
    job_processes: dict[int, list[int]] = {k: [] for k in jobs_raw}
    for koid, raw in processes_raw.items():
        if raw.job_koid not in jobs_raw:
            reader.fail(f"{raw.place}.parent", f"job {raw.job_koid} has no record")
        job_processes[raw.job_koid].append(koid)
    for ppid, thread, place in thread_parents:
        if ppid not in processes_raw:
            reader.fail(f"{place}.parent", f"process {ppid} has no record")
        processes_raw[ppid].threads.append(thread)
    # VMOs: user koids as they are; kernel-only ones numbered after every koid in the file.
    vmos: dict[int, Vmo] = {}
    koid_of: dict[object, int] = {}  # kernel-only VMOs' keys (a user VMO's is its koid)
    kernel_only = [key for key in raw_vmos if type(key) is not int]
    if not kernel_only:
        vmos = raw_vmos  # type: ignore[assignment]  # every key is a koid
    else:
        used = set(jobs_raw) | set(processes_raw) | {t.koid for _p, t, _w in thread_parents}
        used |= {k for k in raw_vmos if type(k) is int}
        next_koid = max(used, default=0) + 1
        for key, vmo in raw_vmos.items():
            if type(key) is int:
                vmos[key] = vmo
            else:
                vmos[next_koid] = vmo._replace(koid=next_koid)
                koid_of[key] = next_koid
                next_koid += 1
    notes = [NO_MAPPINGS_NOTE]
    lost_handles = 0
    processes: dict[int, Process] = {}
    for koid, raw in processes_raw.items():
        handles: list[Handle] | None = None
        aspace = None
        if full or raw.handle_stats is not None:
            handles = raw.handles
        mappings: list[Vmar | Mapping] = list(raw.mappings)
        for is_handle, at, vmo in raw.later:  # kernel-only VMOs: their koids now
            if is_handle:
                raw.handles[at] = raw.handles[at]._replace(koid=koid_of[vmo])
            else:
                mappings[at] = Mapping(0, 0, 0, koid_of[vmo], 0, 0, vmo.name)
        if raw.handle_stats is not None:
            assert handles is not None
            for obj_type, count in raw.handle_stats.items():
                if obj_type is ObjType.VMO:
                    # VMO handles the capture does not list cannot name their VMO.
                    lost_handles += max(count - len(handles), 0)
                    continue
                for _ in range(count):
                    handles.append(Handle(len(handles) + 1, 0, obj_type, 0))
        if full:
            root = Vmar(koid=0, name="unknown", base=0, size=0, children=tuple(mappings))
            aspace = Aspace(name="unknown", base=0, size=0, root=root)
        processes[koid] = Process(
            koid=koid,
            job_koid=raw.job_koid,
            name=raw.name,
            threads=tuple(raw.threads),
            handles=None if handles is None else tuple(handles),
            aspace=aspace,
            stats=raw.stats,
            unreadable=None if raw.stats is not None else "memgraph recorded no sizes",
        )
    if lost_handles:
        notes.append(f"{lost_handles} VMO handles are counted in handle_stats but not listed")
    if unknown_states:
        notes.append(f"{unknown_states} threads had state <UNKNOWN>; they are shown as dead")
    jobs = {
        koid: Job(
            koid=koid,
            parent_koid=parent,
            name=name,
            process_koids=tuple(job_processes[koid]),
            child_koids=tuple(children[koid]),
            charge_bytes=charge,
        )
        for koid, (parent, name, _place, charge) in jobs_raw.items()
    }
    return Snapshot(
        source=f"capture:{where}",
        platform=platform,
        level=Level.FULL if full else Level.TASKS,
        timestamp=timestamp,
        kernel=kernel,
        root_job_koid=roots[0] if roots else None,
        jobs=jobs,
        processes=processes,
        vmos=dict(sorted(vmos.items())),
        notes=tuple(notes),
        has_mappings=False,
    )
