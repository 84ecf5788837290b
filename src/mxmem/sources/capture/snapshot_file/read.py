"""Loading: a version-1 mxmem snapshot file, every field checked (the format: the package doc)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NoReturn

from mxmem.model import (
    ASPACE_NOTE,
    Aspace,
    CpuStats,
    Handle,
    Job,
    KernelMemory,
    Level,
    Mapping,
    ObjType,
    PageFacts,
    PageKey,
    PageUse,
    Platform,
    Process,
    ProcessState,
    Snapshot,
    TaskStats,
    Thread,
    ThreadState,
    Vmar,
    Vmo,
)
from mxmem.sources.capture._check import Checker, describe
from mxmem.sources.capture.memgraph import NO_MAPPINGS_NOTE
from mxmem.sources.capture.snapshot_file.wire import (
    CHARGE_KEYS,
    CHARGED_PAGES,
    CPU_FIELDS,
    FORMAT,
    KERNEL_FIELDS,
    MAX_VMAR_DEPTH,
    VERSION,
    VMO_KERNEL_ONLY,
    VMO_PHYSICAL,
)

# --- loading -----------------------------------------------------------------------------


class _Loader(Checker):
    def stats(self, value: object, place: str) -> TaskStats:
        items = self.list_(value, place, 5)
        mapped, private, shared, scaled, swap = (
            self.int_(x, f"{place}[{i}]") for i, x in enumerate(items)
        )
        return TaskStats(
            mapped_bytes=mapped,
            private_bytes=private,
            shared_bytes=shared,
            scaled_shared_bytes=scaled,
            swap_pss_bytes=swap,
        )

    def mapping(self, items: list[object], place: str) -> Mapping:
        if len(items) not in (8, 9):
            self.fail(place, f"expected 8 or 9 elements, got {len(items)}")
        ints = [self.int_(items[i], f"{place}[{i}]") for i in (1, 2, 3, 4, 5, 6)]
        base, size, perms, vmo_koid, vmo_offset, committed = ints
        if perms > 7:
            self.fail(f"{place}[3]", f"{perms} is not a permission set (0-7)")
        name = self.str_(items[7], f"{place}[7]")
        stats = self.stats(items[8], f"{place}[8]") if len(items) == 9 else None
        return Mapping(base, size, perms, vmo_koid, vmo_offset, committed, name, stats)

    def vmar(self, value: object, place: str, depth: int = 0) -> Vmar:
        if depth > MAX_VMAR_DEPTH:
            self.fail(place, f"VMARs nested more than {MAX_VMAR_DEPTH} deep")
        items = self.list_(value, place, 6)
        if items[0] != "R":
            self.fail(f"{place}[0]", 'expected "R" (a VMAR)')
        koid = self.int_(items[1], f"{place}[1]")
        name = self.str_(items[2], f"{place}[2]")
        base = self.int_(items[3], f"{place}[3]")
        size = self.int_(items[4], f"{place}[4]")
        children: list[Vmar | Mapping] = []
        for i, child in enumerate(self.list_(items[5], f"{place}[5]")):
            where = f"{place}[5][{i}]"
            entry = self.list_(child, where)
            tag = entry[0] if entry else None
            if tag == "R":
                children.append(self.vmar(entry, where, depth + 1))
            elif tag == "M":
                children.append(self.mapping(entry, where))
            else:
                self.fail(f"{where}[0]", 'expected "R" (a VMAR) or "M" (a mapping)')
        return Vmar(koid=koid, name=name, base=base, size=size, children=tuple(children))

    def aspace(self, value: object, place: str) -> Aspace | None:
        if value is None:
            return None
        obj = self.dict_(value, place)
        return Aspace(
            name=self.str_(obj.get("n"), f"{place}.n"),
            base=self.int_(obj.get("b"), f"{place}.b"),
            size=self.int_(obj.get("s"), f"{place}.s"),
            root=self.vmar(obj.get("r"), f"{place}.r"),
        )

    def cpu(self, value: object, place: str) -> CpuStats:
        obj = self.dict_(value, place)
        values: dict[str, Any] = {}
        for name in CPU_FIELDS:
            if name not in obj:
                self.fail(place, f"missing {name!r}")
            if name == "cpu_number":
                # The whole system's counters are CPU -1.
                values[name] = self.int_(obj[name], f"{place}.{name}", low=-1)
            elif name in ("busy_ns", "idle_ns"):
                values[name] = self.int_(obj[name], f"{place}.{name}")
            else:
                values[name] = self.opt_int(obj[name], f"{place}.{name}")
        return CpuStats(**values)

    def enum_value(self, enum: Any, value: object, place: str) -> Any:
        text = self.str_(value, place)
        try:
            return enum(text)
        except ValueError:
            self.fail(place, f"unknown {enum.__name__} {text!r}")

    def process(self, value: object, place: str) -> Process:
        obj = self.dict_(value, place)
        threads: list[Thread] = []
        for i, t in enumerate(self.list_(obj.get("t", []), f"{place}.t")):
            where = f"{place}.t[{i}]"
            items = self.list_(t, where, 3)
            threads.append(
                Thread(
                    koid=self.int_(items[0], f"{where}[0]"),
                    name=self.str_(items[1], f"{where}[1]"),
                    state=self.enum_value(ThreadState, items[2], f"{where}[2]"),
                )
            )
        handles: list[Handle] | None = None
        if obj.get("h") is not None:
            handles = []
            for i, h in enumerate(self.list_(obj["h"], f"{place}.h")):
                where = f"{place}.h[{i}]"
                items = self.list_(h, where, 4)
                handles.append(
                    Handle(
                        self.int_(items[0], f"{where}[0]"),
                        self.int_(items[1], f"{where}[1]"),
                        self.enum_value(ObjType, items[2], f"{where}[2]"),
                        self.int_(items[3], f"{where}[3]", high=2**32),
                    )
                )
        return Process(
            koid=self.int_(obj.get("k"), f"{place}.k"),
            job_koid=self.int_(obj.get("j"), f"{place}.j"),
            name=self.str_(obj.get("n"), f"{place}.n"),
            state=self.enum_value(ProcessState, obj.get("s"), f"{place}.s"),
            threads=tuple(threads),
            handles=None if handles is None else tuple(handles),
            aspace=self.aspace(obj.get("a"), f"{place}.a"),
            stats=None if obj.get("st") is None else self.stats(obj["st"], f"{place}.st"),
            unreadable=self.opt_str(obj.get("u"), f"{place}.u"),
            kernel_thread=self.bool_(obj.get("kt", False), f"{place}.kt"),
            vmo_koids=None if obj.get("v") is None else self.koids(obj["v"], f"{place}.v"),
        )

    def job(self, value: object, place: str) -> Job:
        items = self.list_(value, place, 6)
        charge: int | None = None
        pages: int | None = None
        for i, pair in enumerate(self.list_(items[5], f"{place}[5]")):
            where = f"{place}[5][{i}]"
            kv = self.list_(pair, where, 2)
            key = self.str_(kv[0], f"{where}[0]")
            amount = self.int_(kv[1], f"{where}[1]")
            # Another key (none has been written) names nothing the model holds.
            if key in CHARGE_KEYS:
                charge = amount
            elif key == CHARGED_PAGES:
                pages = amount
        return Job(
            koid=self.int_(items[0], f"{place}[0]"),
            parent_koid=self.opt_int(items[1], f"{place}[1]"),
            name=self.str_(items[2], f"{place}[2]"),
            process_koids=self.koids(items[3], f"{place}[3]"),
            child_koids=self.koids(items[4], f"{place}[4]"),
            charge_bytes=charge,
            charged_pages_bytes=pages,
        )

    def koids(self, value: object, place: str) -> tuple[int, ...]:
        return tuple(self.int_(k, f"{place}[{i}]") for i, k in enumerate(self.list_(value, place)))

    def vmo(self, value: object, place: str) -> Vmo:
        items = self.list_(value, place, 10)
        ints = [self.int_(items[i], f"{place}[{i}]") for i in (0, 2, 3, 4, 5, 6, 7, 8, 9)]
        koid, size, committed, parent, children, mappings, share, flags, phys_base = ints
        if flags > VMO_PHYSICAL | VMO_KERNEL_ONLY:
            self.fail(f"{place}[8]", f"unknown VMO flags {flags}")
        return Vmo(
            koid=koid,
            name=self.str_(items[1], f"{place}[1]"),
            size_bytes=size,
            committed_bytes=committed,
            parent_koid=parent or None,  # 0: no parent
            num_children=children,
            num_mappings=mappings,
            share_count=share,
            physical=bool(flags & VMO_PHYSICAL),
            kernel_only=bool(flags & VMO_KERNEL_ONLY),
            phys_base=phys_base,
        )

    def timestamp(self, value: object, place: str) -> datetime:
        text = self.str_(value, place)
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            self.fail(place, "not an ISO 8601 date and time")

    def level(self, value: object, place: str) -> Level:
        text = self.str_(value, place)
        if text not in Level.__members__:
            self.fail(place, f"unknown level {text!r} (KMEM, TASKS, FULL or PAGES)")
        return Level[text]

    def page_use(self, value: object, place: str) -> PageUse:
        items = self.list_(value, place)
        if len(items) not in (2, 3):
            self.fail(place, f"expected 2 or 3 elements, got {len(items)}")
        vmo = self.int_(items[0], f"{place}[0]")
        users = self.koids(items[1], f"{place}[1]")
        for n in range(1, len(users)):
            # Sorted, each once (PageUse's contract): a pattern has one spelling.
            if users[n] <= users[n - 1]:
                self.fail(f"{place}[1][{n}]", "users must be in ascending order, each once")
        kernel = self.bool_(items[2], f"{place}[2]") if len(items) == 3 else False
        return PageUse(vmo, users, kernel)

    def page_key(self, value: object, place: str) -> PageKey:
        items = self.list_(value, place)
        if not items:
            self.fail(place, "a page pattern needs at least one VMO")
        key = tuple(self.page_use(u, f"{place}[{i}]") for i, u in enumerate(items))
        for n in range(1, len(key)):
            # The canonical (sorted) order, so a pattern has one spelling; and a VMO
            # reaches a page once, so no koid twice.
            if key[n].vmo_koid <= key[n - 1].vmo_koid:
                self.fail(f"{place}[{n}][0]", "VMOs must be in ascending koid order, each once")
        return key

    def sizes(self, value: object, place: str, what: str) -> dict[Any, int]:
        """``[[key, bytes], ...]`` with integer keys (koids) for ``what`` = "koid", string
        keys (names, kinds) otherwise; a key given twice is damage."""
        out: dict[Any, int] = {}
        for i, pair in enumerate(self.list_(value, place)):
            where = f"{place}[{i}]"
            kv = self.list_(pair, where, 2)
            if what == "koid":
                key: Any = self.int_(kv[0], f"{where}[0]")
            else:
                key = self.str_(kv[0], f"{where}[0]")
            if key in out:
                shown = str(key) if what == "koid" else json.dumps(key)[:60]
                self.fail(f"{where}[0]", f"duplicate {what} {shown}")
            out[key] = self.int_(kv[1], f"{where}[1]")
        return out

    def page_facts(self, value: object, place: str) -> PageFacts:
        obj = self.dict_(value, place)
        pages: dict[PageKey, int] = {}
        for i, entry in enumerate(self.list_(obj.get("pages"), f"{place}.pages")):
            where = f"{place}.pages[{i}]"
            items = self.list_(entry, where, 2)
            key = self.page_key(items[0], f"{where}[0]")
            if key in pages:
                self.fail(f"{where}[0]", "duplicate page pattern")
            pages[key] = self.int_(items[1], f"{where}[1]")
        kernel: dict[int, dict[str, int]] = {}
        for i, entry in enumerate(self.list_(obj.get("process_kernel"), f"{place}.process_kernel")):
            where = f"{place}.process_kernel[{i}]"
            items = self.list_(entry, where, 2)
            pid = self.int_(items[0], f"{where}[0]")
            if pid in kernel:
                self.fail(f"{where}[0]", f"duplicate koid {pid}")
            kernel[pid] = self.sizes(items[1], f"{where}[1]", "kind")
        return PageFacts(
            total_bytes=self.int_(obj.get("total_bytes"), f"{place}.total_bytes"),
            page_size=self.int_(obj.get("page_size"), f"{place}.page_size", low=1),
            pages=pages,
            process_kernel=kernel,
            process_estimated=self.sizes(
                obj.get("process_estimated"), f"{place}.process_estimated", "koid"
            ),
            process_swap=self.sizes(obj.get("process_swap"), f"{place}.process_swap", "koid"),
            categories=self.sizes(obj.get("categories"), f"{place}.categories", "category"),
            exact=self.bool_(obj.get("exact"), f"{place}.exact"),
            notes=tuple(
                self.str_(n, f"{place}.notes[{i}]")
                for i, n in enumerate(self.list_(obj.get("notes"), f"{place}.notes"))
            ),
        )


def _unique(
    loader: _Loader, koids: Iterable[int], what: str, place: str
) -> None:  # place holds "{}" for the index
    seen: set[int] = set()
    for i, koid in enumerate(koids):
        if koid in seen:
            loader.fail(place.format(i), f"duplicate {what} koid {koid}")
        seen.add(koid)


def _check_references(loader: _Loader, snap: Snapshot) -> None:
    """Every koid a snapshot refers to names an object in it (but for processes a job
    lists and VMO parents: see below), each job and process is listed by its parent, and
    parent chains end at the root (VMO clone chains: have no cycle)."""
    jobs, processes, vmos = snap.jobs, snap.processes, snap.vmos
    if snap.root_job_koid is not None and snap.root_job_koid not in jobs:
        loader.fail("$.root_job", f"job {snap.root_job_koid} is not in $.jobs")
    if jobs and snap.root_job_koid is None:
        loader.fail("$.root_job", "null, but there are jobs")
    for i, job in enumerate(jobs.values()):
        place = f"$.jobs[{i}]"
        if job.parent_koid is None:
            if job.koid != snap.root_job_koid:
                loader.fail(f"{place}[1]", f"job {job.koid} has no parent but is not the root")
        elif job.parent_koid not in jobs:
            loader.fail(f"{place}[1]", f"parent job {job.parent_koid} is not in $.jobs")
        elif job.koid not in jobs[job.parent_koid].child_koids:
            loader.fail(f"{place}[1]", f"parent job {job.parent_koid} does not list job {job.koid}")
        for n, child in enumerate(job.child_koids):
            if child not in jobs or jobs[child].parent_koid != job.koid:
                loader.fail(f"{place}[4][{n}]", f"job {child} is not a child job of {job.koid}")
        for n, pkoid in enumerate(job.process_koids):
            # A live source may list a process that exited before it was read (the walk
            # skips it); one that is there must belong to this job.
            if pkoid in processes and processes[pkoid].job_koid != job.koid:
                loader.fail(f"{place}[3][{n}]", f"process {pkoid} is not a process of {job.koid}")
    # Parent chains: a job reaches the root in fewer steps than there are jobs.
    rooted: set[int] = set()
    for i, job in enumerate(jobs.values()):
        chain: list[int] = []
        koid: int | None = job.koid
        while koid is not None and koid not in rooted:
            chain.append(koid)
            if len(chain) > len(jobs):
                loader.fail(f"$.jobs[{i}][1]", f"job {job.koid}'s parent chain is a cycle")
            koid = jobs[koid].parent_koid
        rooted.update(chain)
    for i, process in enumerate(processes.values()):
        place = f"$.processes[{i}]"
        if process.job_koid not in jobs:
            loader.fail(f"{place}.j", f"job {process.job_koid} is not in $.jobs")
        if process.koid not in jobs[process.job_koid].process_koids:
            loader.fail(f"{place}.j", f"job {process.job_koid} does not list the process")
        for n, handle in enumerate(process.handles or ()):
            if handle.type is ObjType.VMO and handle.koid not in vmos:
                loader.fail(f"{place}.h[{n}][1]", f"VMO {handle.koid} is not in $.vmos")
        for n, vkoid in enumerate(process.vmo_koids or ()):
            if vkoid not in vmos:
                loader.fail(f"{place}.v[{n}]", f"VMO {vkoid} is not in $.vmos")
        if process.aspace is not None:
            for mapping in process.aspace.mappings():
                if mapping.vmo_koid not in vmos:
                    loader.fail(
                        f"{place}.a", f"a mapping's VMO {mapping.vmo_koid} is not in $.vmos"
                    )
    for i, vmo in enumerate(vmos.values()):
        steps = 0
        parent = vmo.parent_koid
        # A parent missing from $.vmos ends the chain: memgraph and Fuchsia captures list
        # only the VMOs processes reference, and a snapshot of one is saved as it is.
        while parent is not None and parent in vmos:
            steps += 1
            if steps > len(vmos):
                loader.fail(f"$.vmos[{i}][4]", f"VMO {vmo.koid}'s parent chain is a cycle")
            parent = vmos[parent].parent_koid


def _platform_of(source: str) -> Platform:
    """The platform of a file written before ``platform`` was: its source's name tells
    it (the host source is ``host`` or ``host:ROOT``; a Fuchsia capture ``fuchsia:F``)."""
    if source == "host" or source.startswith("host:"):
        return Platform.LINUX
    if source.startswith("fuchsia:"):
        return Platform.FUCHSIA
    return Platform.MAGENTA


def from_json(document: object, where: str) -> Snapshot:
    """Rebuild a snapshot from its parsed JSON; ``where`` names the file in errors."""
    loader = _Loader(where)
    top = loader.dict_(document, "$")
    if top.get("format") != FORMAT:
        loader.fail("$.format", f"not an mxmem snapshot (expected {FORMAT!r})")
    version = top.get("version")
    if version != VERSION or isinstance(version, bool):
        loader.fail("$.version", f"unsupported version {describe(version)} (this mxmem reads 1)")
    kernel = None
    if top.get("kernel") is not None:
        obj = loader.dict_(top["kernel"], "$.kernel")
        kernel = KernelMemory(
            **{n: loader.int_(obj.get(n), f"$.kernel.{n}") for n in KERNEL_FIELDS},
            available_bytes=loader.opt_int(obj.get("available_bytes"), "$.kernel.available_bytes"),
        )
    cpus = tuple(
        loader.cpu(c, f"$.cpus[{i}]") for i, c in enumerate(loader.list_(top.get("cpus"), "$.cpus"))
    )
    cpu_total = (
        None if top.get("cpu_total") is None else loader.cpu(top["cpu_total"], "$.cpu_total")
    )
    jobs = [
        loader.job(j, f"$.jobs[{i}]") for i, j in enumerate(loader.list_(top.get("jobs"), "$.jobs"))
    ]
    processes = [
        loader.process(p, f"$.processes[{i}]")
        for i, p in enumerate(loader.list_(top.get("processes"), "$.processes"))
    ]
    vmos = [
        loader.vmo(v, f"$.vmos[{i}]") for i, v in enumerate(loader.list_(top.get("vmos"), "$.vmos"))
    ]
    _unique(loader, (j.koid for j in jobs), "job", "$.jobs[{}][0]")
    _unique(loader, (p.koid for p in processes), "process", "$.processes[{}].k")
    _unique(loader, (v.koid for v in vmos), "VMO", "$.vmos[{}][0]")
    notes = tuple(
        loader.str_(n, f"$.notes[{i}]")
        for i, n in enumerate(loader.list_(top.get("notes"), "$.notes"))
    )
    source = loader.str_(top.get("source"), "$.source")
    if "platform" in top:
        platform = loader.enum_value(Platform, top["platform"], "$.platform")
    else:
        platform = _platform_of(source)
    if "has_mappings" in top:
        has_mappings = loader.bool_(top["has_mappings"], "$.has_mappings")
    else:
        has_mappings = NO_MAPPINGS_NOTE not in notes
    snapshot = Snapshot(
        source=source,
        platform=platform,
        level=loader.level(top.get("level"), "$.level"),
        timestamp=loader.timestamp(top.get("timestamp"), "$.timestamp"),
        kernel=kernel,
        root_job_koid=loader.opt_int(top.get("root_job"), "$.root_job"),
        jobs={j.koid: j for j in jobs},
        processes={p.koid: p for p in processes},
        vmos={v.koid: v for v in vmos},
        kernel_aspace=loader.aspace(top.get("kernel_aspace"), "$.kernel_aspace"),
        notes=tuple(n for n in notes if not n.startswith(ASPACE_NOTE)),
        kernel_aspace_notes=tuple(n for n in notes if n.startswith(ASPACE_NOTE)),
        has_mappings=has_mappings,
        cpus=cpus,
        cpu_total=cpu_total,
        pages=None if top.get("pages") is None else loader.page_facts(top["pages"], "$.pages"),
    )
    _check_references(loader, snapshot)
    return snapshot


def loads(text: str | bytes, where: str) -> Snapshot:
    """Parse a snapshot file's text (see :func:`from_json`)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise_bad_json(where, err)
    except (RecursionError, ValueError) as err:
        # Nesting deeper than the parser's recursion limit, bytes that are not UTF-8, an
        # integer of more digits than Python converts.
        Checker(where).fail("$", f"not valid JSON ({type(err).__name__})")
    return from_json(document, where)


def raise_bad_json(where: str, err: json.JSONDecodeError) -> NoReturn:
    """A JSON syntax error (a truncated or damaged file) as a one-line SourceError."""
    Checker(where).fail(f"line {err.lineno} column {err.colno}", f"not valid JSON: {err.msg}")
