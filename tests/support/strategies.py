"""Hypothesis strategies for the simulated kernel: random worlds built by random operations.

A world is a :class:`Boot` configuration plus a list of :class:`Op` run against a fresh
:class:`~mxmem.sources.sim.kernel.Kernel`. An op is a kind and a few small integers
("digits", 0-15); each digit is an index, taken modulo the length of whatever it picks
from (the live processes, a table of sizes...). So every op list is valid and replays to
the same world, and shrinking digits towards 0 moves towards the simplest valid choice:
index 0 of every table below is an ordinary, valid value.

Targets are picked mostly among live objects, but dead ones (killed processes, destroyed
VMARs, freed VMOs) stay candidates on purpose: operations on them must fail cleanly.
One flat integer per op, rather than a strategy per argument, keeps generation about
three times cheaper (measured: 150 worlds in 1.0 s instead of 2.9 s).

:class:`World` runs ops and keeps the registry of everything they created (the kernel has
no global list of processes or handles); :func:`state_digest` captures the whole model so a
test can check that a failed op changed nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from hypothesis import strategies as st

from mxmem.errors import KernelError
from mxmem.model import ObjType, ProcessState, Rights, ThreadState
from mxmem.sources.sim.kernel import (
    KERNEL,
    PAGE_SIZE,
    Kernel,
    KObject,
    Owner,
    SimAspace,
    SimJob,
    SimMapping,
    SimProcess,
    SimThread,
    SimVmar,
    SimVmo,
)

P = PAGE_SIZE


class Boot(NamedTuple):
    memory_bytes: int
    wired_bytes: int
    other_bytes: int


# Mostly a roomy machine; the tiny ones run out of memory within a few ops, so the
# ERR_NO_MEMORY paths (and their all-or-nothing promise) get exercised.
BOOTS = (
    Boot(2 << 30, 72 << 20, 0),
    Boot(2 << 30, 72 << 20, 0),
    Boot(128 * P, 16 * P, 2 * P),
    Boot(256 * P, 32 * P, 0),
)
boots = st.sampled_from(BOOTS)


class Op(NamedTuple):
    """One kernel operation: a kind and its digits (see ``World._op_<name>``)."""

    name: str
    args: tuple[int, ...]


# Outcome of an op that found nothing to act on (e.g. no process exists yet).
SKIPPED = "skipped"

# Sizes and offsets around page edges; 600 pages crosses a 2 MiB page-table block.
# Invalid values come last so that shrinking leaves them.
VMO_SIZES = (4 * P, 16 * P, P, 5000, 2 * P, 3 * P, 600 * P, 1, 0)
LENGTHS = (P, 2 * P, 0, 1, P - 1, P + 1, 3 * P, 16 * P, 600 * P)
SUB_PAGE = (0, 0, 1, P - 1)  # added to a page-aligned offset
VMAR_SIZES = (16 * P, 4 * P, P, 1024 * P, 0, 5000)
MAP_SIZES: tuple[int | None, ...] = (None, None, P, 2 * P, 3 * P, 4 * P, 513 * P, 0, 5000)
MAP_OFFSETS = (0, 0, P, 2 * P, 100)
# Addresses: None (lowest free gap), a few pages into the VMAR, or absolute addresses
# just below 2 MiB, 1 GiB and 512 GiB boundaries (page-table edges).
ADDR_REL = (None, None, None, 0, 2 * P, 4 * P)
ABS_ADDRS = (0x1000000, 0x11FE000, 0x3FFFE000, 0x7FFFFFE000)
PHYS_ADDRS = (0xFE000000, 0xFED01000, 0xFE000000, 0xFED01000, 100)
PHYS_SIZES = (P, 16 * P, P, 16 * P, 0)
RIGHTS = (
    int(Rights.DEFAULT_VMO),
    int(Rights.READ | Rights.MAP | Rights.DUPLICATE),
    int(Rights.READ),
    int(Rights.READ | Rights.TRANSFER | Rights.DUPLICATE),
    0,
)
DUP_RIGHTS: tuple[int | None, ...] = (None, *RIGHTS, int(Rights.READ | Rights.WRITE), 0xFF)
THREAD_STATES = tuple(s for s in ThreadState if s is not ThreadState.NEW)
OTHER_TYPES = (ObjType.EVENT, ObjType.PORT, ObjType.SOCKET, ObjType.TIMER, ObjType.FIFO)
# None takes the next koid; a number asks for an explicit koid relative to the next one:
# a past koid must be refused, a future one skips ahead.
KOID_DELTAS: tuple[int | None, ...] = (None,) * 11 + (-3, -1, 0, 2, None)
PERMS = (3, 1, 5, 0, 2, 4, 6, 7)

# Each kind with its number of digits. Writes, maps and unmaps appear twice: they are
# what make memory interesting.
ARITY: dict[str, int] = {
    "process_create": 3,
    "vmo_create": 3,
    "vmar_map": 6,
    "vmo_write": 4,
    "vmo_decommit": 4,
    "vmo_set_size": 2,
    "vmo_clone": 5,
    "vmo_create_physical": 3,
    "kernel_release": 1,
    "vmar_allocate": 4,
    "vmar_destroy": 1,
    "vmar_unmap": 4,
    "vmar_protect": 5,
    "handle_grant": 4,
    "handle_duplicate": 3,
    "handle_transfer": 3,
    "handle_close": 2,
    "process_start": 1,
    "process_kill": 1,
    "job_create": 2,
    "thread_create": 2,
    "thread_start": 1,
    "thread_set_state": 2,
    "object_create": 3,
    "channel_create": 2,
}
KINDS = (*ARITY, "vmar_map", "vmo_write", "vmar_unmap")


def _decode(name: str, digits: int) -> Op:
    return Op(name, tuple((digits >> (4 * i)) & 15 for i in range(ARITY[name])))


# ``map`` rather than ``builds``, so a failure report prints plain ``Op(...)`` values.
ops = st.tuples(st.sampled_from(KINDS), st.integers(0, (1 << 24) - 1)).map(lambda t: _decode(*t))

# A job with two running processes (one thread each) and a VMO held by each: without it
# most early ops would find nothing to act on. It is part of the op list, so a world
# still replays from its list alone.
PRELUDE = (
    Op("job_create", (0, 0)),
    Op("process_create", (1, 0, 0)),
    Op("process_create", (1, 0, 0)),
    Op("thread_create", (0, 0)),
    Op("thread_create", (1, 0)),
    Op("vmo_create", (0, VMO_SIZES.index(16 * P), 0)),
    Op("vmo_create", (1, VMO_SIZES.index(4 * P), 0)),
)


def op_lists(max_size: int = 60) -> st.SearchStrategy[list[Op]]:
    """Random op lists, most of them after :data:`PRELUDE`."""
    return st.tuples(
        st.sampled_from((PRELUDE, PRELUDE, PRELUDE, ())),
        st.lists(ops, min_size=10, max_size=max_size),
    ).map(lambda t: [*t[0], *t[1]])


def _at(table: tuple[Any, ...], i: int) -> Any:
    return table[i % len(table)]


def _pick(seq: list[Any], i: int, fit: Callable[[Any], bool] | None = None) -> Any:
    """``seq[i]`` (modulo its length), or ``None`` if ``seq`` is empty. With ``fit``, the
    low three quarters of digits choose among the fitting candidates (live objects, say)
    so most ops can succeed; the rest choose among all, dead ones included."""
    if fit is not None and i < 12:
        fitting = [x for x in seq if fit(x)]
        if fitting:
            return fitting[i % len(fitting)]
    return seq[i % len(seq)] if seq else None


def _running(p: SimProcess) -> bool:
    return p.state is not ProcessState.DEAD


def _alive(obj: Any) -> bool:
    return bool(obj.alive)


class World:
    """A kernel plus the registry of every object its ops created, live or dead."""

    def __init__(self, boot: Boot) -> None:
        self.boot = boot
        self.kernel = Kernel(
            boot.memory_bytes, wired_bytes=boot.wired_bytes, other_bytes=boot.other_bytes
        )
        self.jobs: list[SimJob] = [self.kernel.root_job]
        self.processes: list[SimProcess] = []
        self.threads: list[SimThread] = []
        self.vmos: list[SimVmo] = []
        self.vmars: list[SimVmar] = []
        self.others: list[KObject] = []
        # The kernel call the last op made, as (method name, positional args): lets a test
        # check an op's effect against its own model of what the call should do.
        self.last_call: tuple[str, tuple[Any, ...]] | None = None

    @classmethod
    def build(cls, boot: Boot, op_list: list[Op]) -> World:
        world = cls(boot)
        for op in op_list:
            world.apply(op)
        return world

    def apply(self, op: Op) -> str | None:
        """Run ``op``: ``None`` if it succeeded, else the KernelError status or SKIPPED."""
        self.last_call = None
        handler: Callable[..., Any] = getattr(self, f"_op_{op.name}")
        try:
            if handler(*op.args) is SKIPPED:
                return SKIPPED
        except KernelError as err:
            return err.status
        return None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self.last_call = (method, args)
        return getattr(self.kernel, method)(*args, **kwargs)

    # ------------------------------------------------------------------ resolution

    def _koid(self, d: int) -> int | None:
        delta = _at(KOID_DELTAS, d)
        return None if delta is None else self.kernel.next_koid + delta

    def _owner(self, d: int) -> Owner:
        """Mostly a live process; digit 8 the kernel, 9 nobody (a kernel-only VMO)."""
        if d % 10 == 9:
            return None
        if d % 10 == 8 or not self.processes:
            return KERNEL
        return _pick(self.processes, d, _running)  # type: ignore[no-any-return]

    @staticmethod
    def _addr(vmar: SimVmar, d: int) -> int | None:
        d %= len(ADDR_REL) + len(ABS_ADDRS)
        if d < len(ADDR_REL):
            rel = ADDR_REL[d]
            return None if rel is None else vmar.base + rel
        return ABS_ADDRS[d - len(ADDR_REL)]

    def _handle(self, pd: int, hd: int) -> tuple[SimProcess, int] | None:
        process = _pick(self.processes, pd, lambda p: bool(p.handles))
        if process is None or not process.handles:
            return None
        return process, _pick(list(process.handles), hd)

    @staticmethod
    def _range(vmar: SimVmar, md: int, start: int, npages: int) -> tuple[int, int]:
        """A range around one of ``vmar``'s mappings: from one page before it to three
        pages in, one to three pages long or the whole mapping (digit 0)."""
        start, npages = start % 5 - 1, npages % 4
        mappings = [c for c in vmar.children if isinstance(c, SimMapping)]
        m = _pick(mappings, md)
        if m is None:
            return vmar.base, max(npages, 1) * P
        if not npages:
            return m.base, m.size
        return m.base + start * P, npages * P

    # ------------------------------------------------------------------ tasks

    def _op_job_create(self, jd: int, kd: int) -> None:
        job = self._call("job_create", _pick(self.jobs, jd), "job", koid=self._koid(kd))
        self.jobs.append(job)

    def _op_process_create(self, jd: int, new: int, kd: int) -> None:
        p = self._call("process_create", _pick(self.jobs, jd), "proc", koid=self._koid(kd))
        self.processes.append(p)
        self.vmars.append(p.aspace.root)
        if new % 4 != 3:  # a quarter stay NEW (not started)
            self.kernel.process_start(p)

    def _op_process_start(self, pd: int) -> str | None:
        p = _pick(self.processes, pd, lambda p: p.state is ProcessState.NEW)
        if p is None:
            return SKIPPED
        self._call("process_start", p)
        return None

    def _op_process_kill(self, pd: int) -> str | None:
        p = _pick(self.processes, pd, _running)
        if p is None:
            return SKIPPED
        self._call("process_kill", p)
        return None

    def _op_thread_create(self, pd: int, kd: int) -> str | None:
        p = _pick(self.processes, pd, _running)
        if p is None:
            return SKIPPED
        self.threads.append(self._call("thread_create", p, "thread", koid=self._koid(kd)))
        return None

    def _op_thread_start(self, td: int) -> str | None:
        t = _pick(self.threads, td, lambda t: t.state is ThreadState.NEW)
        if t is None:
            return SKIPPED
        self._call("thread_start", t)
        return None

    def _op_thread_set_state(self, td: int, sd: int) -> str | None:
        t = _pick(self.threads, td, lambda t: t.state not in (ThreadState.NEW, ThreadState.DEAD))
        if t is None:
            return SKIPPED
        self._call("thread_set_state", t, _at(THREAD_STATES, sd))
        return None

    # ------------------------------------------------------------------ VMOs

    def _op_vmo_create(self, od: int, sd: int, kd: int) -> None:
        owner = self._owner(od)
        size = _at(VMO_SIZES, sd)
        self.vmos.append(self._call("vmo_create", size, "vmo", owner=owner, koid=self._koid(kd)))

    def _op_vmo_create_physical(self, od: int, ad: int, sd: int) -> None:
        args = (_at(PHYS_ADDRS, ad), _at(PHYS_SIZES, sd), "phys")
        self.vmos.append(self._call("vmo_create_physical", *args, owner=self._owner(od)))

    def _op_vmo_clone(self, vd: int, page: int, sd: int, od: int, kd: int) -> str | None:
        parent = _pick(self.vmos, vd, _alive)
        if parent is None:
            return SKIPPED
        owner, koid = self._owner(od), self._koid(kd)
        args = (parent, page % 4 * P, _at(VMO_SIZES, sd))
        self.vmos.append(self._call("vmo_clone", *args, owner=owner, koid=koid))
        return None

    def _op_vmo_write(self, vd: int, page: int, sub: int, ld: int) -> str | None:
        vmo = _pick(self.vmos, vd, _alive)
        if vmo is None:
            return SKIPPED
        self._call("vmo_write", vmo, page % 6 * P + _at(SUB_PAGE, sub), _at(LENGTHS, ld))
        return None

    def _op_vmo_decommit(self, vd: int, page: int, sub: int, ld: int) -> str | None:
        vmo = _pick(self.vmos, vd, _alive)
        if vmo is None:
            return SKIPPED
        self._call("vmo_decommit", vmo, page % 6 * P + _at(SUB_PAGE, sub), _at(LENGTHS, ld))
        return None

    def _op_vmo_set_size(self, vd: int, sd: int) -> str | None:
        vmo = _pick(self.vmos, vd, _alive)
        if vmo is None:
            return SKIPPED
        self._call("vmo_set_size", vmo, _at(VMO_SIZES, sd))
        return None

    def _op_kernel_release(self, vd: int) -> str | None:
        vmo = _pick(self.vmos, vd, lambda v: v.kernel_refs > 0)
        if vmo is None:
            return SKIPPED
        self._call("kernel_release", vmo)
        return None

    # ------------------------------------------------------------------ VMARs

    def _op_vmar_allocate(self, rd: int, sd: int, ad: int, kd: int) -> str | None:
        parent = _pick(self.vmars, rd, _alive)
        if parent is None:
            return SKIPPED
        size, addr, koid = _at(VMAR_SIZES, sd), self._addr(parent, ad), self._koid(kd)
        self.vmars.append(self._call("vmar_allocate", parent, size, addr=addr, koid=koid))
        return None

    def _op_vmar_destroy(self, rd: int) -> str | None:
        vmar = _pick(self.vmars, rd, lambda v: v.alive and v.parent is not None)
        if vmar is None:
            return SKIPPED
        self._call("vmar_destroy", vmar)
        return None

    def _op_vmar_map(self, rd: int, vd: int, od: int, sd: int, pd: int, ad: int) -> str | None:
        vmar = _pick(self.vmars, rd, _alive)
        vmo = _pick(self.vmos, vd, _alive)
        if vmar is None or vmo is None:
            return SKIPPED
        self._call(
            "vmar_map",
            vmar,
            vmo,
            vmo_offset=_at(MAP_OFFSETS, od),
            size=_at(MAP_SIZES, sd),
            perms=_at(PERMS, pd),
            addr=self._addr(vmar, ad),
        )
        return None

    def _op_vmar_unmap(self, rd: int, md: int, start: int, npages: int) -> str | None:
        vmar = _pick(self.vmars, rd, _alive)
        if vmar is None:
            return SKIPPED
        self._call("vmar_unmap", vmar, *self._range(vmar, md, start, npages))
        return None

    def _op_vmar_protect(self, rd: int, md: int, start: int, npages: int, pd: int) -> str | None:
        vmar = _pick(self.vmars, rd, _alive)
        if vmar is None:
            return SKIPPED
        rng = self._range(vmar, md, start, npages)
        self._call("vmar_protect", vmar, *rng, _at(PERMS, pd))
        return None

    # ------------------------------------------------------------------ handles

    def _op_handle_grant(self, pd: int, kind: int, od: int, rd: int) -> str | None:
        process = _pick(self.processes, pd, _running)
        pools: tuple[list[Any], ...] = (
            self.vmos,
            self.processes,
            self.jobs,
            self.threads,
            self.vmars,
            self.others,
        )
        obj = _pick(_at(pools, kind), od)
        if process is None or obj is None:
            return SKIPPED
        self._call("handle_grant", process, obj, _at(RIGHTS, rd))
        return None

    def _op_handle_duplicate(self, pd: int, hd: int, rd: int) -> str | None:
        found = self._handle(pd, hd)
        if found is None:
            return SKIPPED
        self._call("handle_duplicate", *found, _at(DUP_RIGHTS, rd))
        return None

    def _op_handle_transfer(self, pd: int, hd: int, dd: int) -> str | None:
        found = self._handle(pd, hd)
        if found is None:
            return SKIPPED
        self._call("handle_transfer", *found, _pick(self.processes, dd, _running))
        return None

    def _op_handle_close(self, pd: int, hd: int) -> str | None:
        found = self._handle(pd, hd)
        if found is None:
            return SKIPPED
        self._call("handle_close", *found)
        return None

    def _op_object_create(self, pd: int, td: int, kd: int) -> str | None:
        p = _pick(self.processes, pd, _running)
        if p is None:
            return SKIPPED
        self.others.append(
            self._call("object_create", p, _at(OTHER_TYPES, td), koid=self._koid(kd))
        )
        return None

    def _op_channel_create(self, ad: int, bd: int) -> str | None:
        a = _pick(self.processes, ad, _running)
        if a is None:
            return SKIPPED
        self.others.extend(self._call("channel_create", a, _pick(self.processes, bd, _running)))
        return None


# --------------------------------------------------------------------------- digests


def _vmar_digest(vmar: SimVmar) -> tuple[Any, ...]:
    children: list[tuple[Any, ...]] = []
    for c in vmar.children:
        if isinstance(c, SimVmar):
            children.append(_vmar_digest(c))
        else:
            children.append(("m", c.base, c.size, c.perms, c.vmo.koid, c.vmo_offset, c.alive))
    return (
        vmar.koid,
        vmar.base,
        vmar.size,
        vmar.name,
        vmar.alive,
        vmar.handle_count,
        tuple(vmar.starts),
        tuple(children),
    )


def _aspace_digest(aspace: SimAspace | None) -> tuple[Any, ...] | None:
    if aspace is None:
        return None
    assert aspace.root is not None
    tables = tuple(tuple(sorted(level.items())) for level in aspace.tables)
    return (aspace.name, aspace.mmu_pages, tables, _vmar_digest(aspace.root))


def _vmo_digest(v: SimVmo) -> tuple[Any, ...]:
    return (
        v.koid,
        v.name,
        v.size,
        v.pages,
        int(v.page_state),
        v.alive,
        v.handle_count,
        v.kernel_refs,
        v.parent.koid if v.parent is not None else None,
        v.parent_offset,
        v.paddr,
        v.kernel_only,
        tuple(c.koid for c in v.children),
        tuple((m.aspace.name, m.base, m.size, m.perms, m.vmo_offset) for m in v.mappings),
    )


def _process_digest(p: SimProcess) -> tuple[Any, ...]:
    return (
        p.koid,
        p.state,
        p.handle_count,
        p.handle_serial,
        tuple((h.value, h.obj.koid, h.obj.type, h.rights) for h in p.handles.values()),
        tuple((t.koid, t.name, t.state, t.handle_count) for t in p.threads),
        _aspace_digest(p.aspace),
    )


def state_digest(world: World) -> tuple[Any, ...]:
    """Everything observable about the kernel and the objects the world created."""
    k = world.kernel
    vmos = {id(v): v for v in [*k.vmos, *world.vmos]}
    return (
        tuple(k.pmm.counts),
        k.next_koid,
        k.next_kernel_id,
        k.heap_allocated,
        k.heap_pages,
        tuple(v.koid for v in k.vmos),
        tuple(_vmo_digest(v) for v in vmos.values()),
        tuple(
            (
                j.koid,
                j.handle_count,
                tuple(p.koid for p in j.processes),
                tuple(c.koid for c in j.jobs),
            )
            for j in world.jobs
        ),
        tuple(_process_digest(p) for p in world.processes),
        tuple(_vmar_digest(v) for v in world.vmars),
        tuple((o.koid, o.type, o.alive, o.handle_count) for o in world.others),
        _aspace_digest(k.kernel_aspace),
    )


# --------------------------------------------------------------------------- walks


def vmar_tree(vmar: SimVmar) -> list[SimVmar]:
    """``vmar`` and every VMAR below it, in pre-order."""
    out = [vmar]
    for c in vmar.children:
        if isinstance(c, SimVmar):
            out.extend(vmar_tree(c))
    return out


def aspace_mappings(aspace: SimAspace) -> list[SimMapping]:
    assert aspace.root is not None
    return [c for v in vmar_tree(aspace.root) for c in v.children if isinstance(c, SimMapping)]


def live_aspaces(world: World) -> list[SimAspace]:
    """The kernel aspace and the aspace of every process not yet killed."""
    user = [p.aspace for p in world.processes if p.aspace is not None]
    return [world.kernel.kernel_aspace, *user]


def json_paths(value: object, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON document (keys and indexes from the root), the root's
    ``()`` first: where a fuzz test may damage it."""
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += json_paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += json_paths(v, (*path, i))
    return out
