"""The records, in order: kernel, jobs, processes, threads and ``__META``; then the
snapshot they describe."""

from __future__ import annotations

import json
from datetime import UTC, datetime

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
    Snapshot,
    TaskStats,
    Thread,
    ThreadState,
    Vmar,
    Vmo,
)
from mxmem.sources.capture._check import U64_LIMIT
from mxmem.sources.capture.memgraph.reader import (
    KERNEL_NAMES,
    NO_MAPPINGS_NOTE,
    PLATFORMS,
    SIZE_FIELDS,
    Place,
    RawProcess,
    Reader,
    Where,
    place_of,
)
from mxmem.sources.capture.memgraph.vmos import read_vmos


def from_records(document: object, where: str) -> Snapshot:
    """Rebuild a snapshot from parsed memgraph JSON; ``where`` names the file in errors."""
    reader = Reader(where)
    records = reader.list_(document, "$")
    kernel: dict[str, int] = {}
    heap_allocated: int | None = None
    # koid -> parent, name, place, charge
    jobs: dict[int, tuple[int | None, str, Where, int | None]] = {}
    processes: dict[int, RawProcess] = {}
    thread_parents: list[tuple[int, Thread, Where]] = []
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
                fast_place = Place(i, rid)
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
                            read_vmos(
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
            place = place_of(i, rid)
            if rid in seen_ids:
                reader.fail(place, "duplicate id")
            seen_ids.add(rid)
        kind = reader.str_(rec.get("type"), f"{place}.type")
        if kind.startswith("__"):
            if kind == "__META" and "platform" in rec:
                # mxmem writes it for a system that is not Magenta; absent, Magenta.
                name = reader.str_(rec["platform"], f"{place}.platform")
                if name not in PLATFORMS:
                    reader.fail(f"{place}.platform", f"not one of {', '.join(PLATFORMS)}")
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
            elif short in KERNEL_NAMES:
                kernel[KERNEL_NAMES[short]] = size
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
                read_vmos(reader, rec, place, process, raw_vmos, rights_of, mapping_of)
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
    :meth:`Reader.task_ref` then says what is wrong)."""
    digits = text[len(prefix) :]
    if text.startswith(prefix) and digits.isdigit() and digits.isascii():
        koid = int(digits)
        if koid < U64_LIMIT:
            return koid
    return None


def _fast_process(
    rec: dict[str, object], koid: int, name: str, parent: str, place: Where
) -> RawProcess | None:
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
    return RawProcess(koid, job, name, place, stats, None)


def _process(
    reader: Reader, rec: dict[str, object], koid: int, name: str, place: str
) -> RawProcess:
    job = reader.task_ref(rec.get("parent"), "j/", f"{place}.parent")
    present = [f for f in SIZE_FIELDS if f in rec]
    stats = None
    if present:
        if len(present) != len(SIZE_FIELDS):
            missing = next(f for f in SIZE_FIELDS if f not in rec)
            reader.fail(place, f"has {present[0]} but no {missing}")
        private, shared, pss = (reader.int_(rec[f], f"{place}.{f}") for f in SIZE_FIELDS)
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
    return RawProcess(koid, job, name, place, stats, handle_stats)


def _build(
    reader: Reader,
    where: str,
    kernel_fields: dict[str, int],
    heap_allocated: int | None,
    jobs_raw: dict[int, tuple[int | None, str, Where, int | None]],
    processes_raw: dict[int, RawProcess],
    thread_parents: list[tuple[int, Thread, Where]],
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
        for name, attr in KERNEL_NAMES.items():
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
