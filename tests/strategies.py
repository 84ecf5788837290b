"""Hypothesis strategies for the simulated kernel: random worlds built by random operations.

A world is a :class:`Boot` configuration plus a list of :class:`Op` run against a fresh
:class:`~mxmem.sources.sim.kernel.Kernel`. An op names its targets by index, taken modulo
the number of candidates when it runs, so every op list is valid, shrinks well and replays
to the same world. Candidates include dead objects (killed processes, destroyed VMARs,
freed VMOs) on purpose: operations on them must fail cleanly.

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
    """One kernel operation. ``args`` are indices and sizes; see ``World._op_<name>``."""

    name: str
    args: tuple[int | None, ...]


# Outcome of an op that found nothing to act on (e.g. no process exists yet).
SKIPPED = "skipped"

# Sizes and offsets around page edges; 600 pages crosses a 2 MiB page-table block.
VMO_SIZES = (4 * P, 16 * P, P, 5000, 2 * P, 3 * P, 600 * P, 1, 0)
LENGTHS = (P, 2 * P, 0, 1, P - 1, P + 1, 3 * P, P, 2 * P, 16 * P, 600 * P)
VMAR_SIZES = (16 * P, 4 * P, P, 1024 * P, 0, 5000)
MAP_SIZES: tuple[int | None, ...] = (None, None, P, 2 * P, 3 * P, 4 * P, 513 * P, 0, 5000)
MAP_OFFSETS = (0, 0, P, 2 * P, 100)
# Absolute addresses just below 2 MiB, 1 GiB and 512 GiB boundaries (page-table edges).
ABS_ADDRS = (0x1000000, 0x11FE000, 0x3FFFE000, 0x7FFFFFE000)
PADDRS = (0xFE000000, 0xFED01000, 0xFE000000, 0xFED01000, 0xFE000000, 100)
RIGHTS = (
    int(Rights.DEFAULT_VMO),
    int(Rights.READ | Rights.MAP | Rights.DUPLICATE),
    int(Rights.READ),
    int(Rights.READ | Rights.TRANSFER | Rights.DUPLICATE),
    0,
)
THREAD_STATES = tuple(s for s in ThreadState if s is not ThreadState.NEW)
OTHER_TYPES = (ObjType.EVENT, ObjType.PORT, ObjType.SOCKET, ObjType.TIMER, ObjType.FIFO)

_idx = st.integers(0, 15)
# None (the next koid) most of the time; otherwise an explicit koid relative to the next
# one: a past koid must be refused, a future one skips ahead.
_koid = st.sampled_from((None, None, None, None, None, None, -3, -1, 0, 2))
_owner = st.integers(0, 9)  # 0: kernel-only (None), 1: KERNEL, else a process
_offset = st.builds(
    lambda page, sub: page * P + sub, st.integers(0, 5), st.sampled_from((0, 0, 1, P - 1))
)


def _op(name: str, *args: st.SearchStrategy[Any]) -> st.SearchStrategy[Op]:
    return st.builds(Op, st.just(name), st.tuples(*args))


def _index_of(values: tuple[Any, ...]) -> st.SearchStrategy[int]:
    return st.integers(0, len(values) - 1)


_addr = st.integers(0, 5 + len(ABS_ADDRS))

# Writes and maps are listed twice: they are what make memory interesting.
OPS: tuple[st.SearchStrategy[Op], ...] = (
    _op("process_create", _idx, st.sampled_from((1, 1, 1, 0)), _koid),
    _op("vmo_create", _owner, _index_of(VMO_SIZES), _koid),
    _op("vmar_map", _idx, _idx, _index_of(MAP_OFFSETS), _index_of(MAP_SIZES), st.integers(0, 7), _addr),
    _op("vmar_map", _idx, _idx, _index_of(MAP_OFFSETS), _index_of(MAP_SIZES), st.integers(0, 7), _addr),
    _op("vmo_write", _idx, _offset, _index_of(LENGTHS)),
    _op("vmo_write", _idx, _offset, _index_of(LENGTHS)),
    _op("vmo_decommit", _idx, _offset, _index_of(LENGTHS)),
    _op("vmo_set_size", _idx, _index_of(VMO_SIZES)),
    _op("vmo_clone", _idx, st.integers(0, 3), _index_of(VMO_SIZES), _owner, _koid),
    _op("vmo_create_physical", _owner, _index_of(PADDRS), st.sampled_from((P, 16 * P, P, 0))),
    _op("kernel_release", _idx),
    _op("vmar_allocate", _idx, _index_of(VMAR_SIZES), _addr, _koid),
    _op("vmar_destroy", _idx),
    _op("vmar_unmap", _idx, _idx, st.integers(-1, 3), st.integers(0, 3)),
    _op("vmar_unmap", _idx, _idx, st.integers(-1, 3), st.integers(0, 3)),
    _op("vmar_protect", _idx, _idx, st.integers(-1, 3), st.integers(0, 3), st.integers(0, 7)),
    _op("handle_grant", _idx, st.integers(0, 5), _idx, _index_of(RIGHTS)),
    _op("handle_duplicate", _idx, _idx, st.one_of(st.none(), st.integers(0, 255))),
    _op("handle_transfer", _idx, _idx, _idx),
    _op("handle_close", _idx, _idx),
    _op("process_start", _idx),
    _op("process_kill", _idx),
    _op("job_create", _idx, _koid),
    _op("thread_create", _idx, _koid),
    _op("thread_start", _idx),
    _op("thread_set_state", _idx, _index_of(THREAD_STATES)),
    _op("object_create", _idx, _index_of(OTHER_TYPES), _koid),
    _op("channel_create", _idx, _idx),
)
ops = st.one_of(*OPS)


# A job with two running processes (one thread each) and a VMO held by each: without it
# most early ops would find nothing to act on. It is part of the op list, so a world
# still replays from its list alone.
PRELUDE = (
    Op("job_create", (0, None)),
    Op("process_create", (1, 1, None)),
    Op("process_create", (1, 1, None)),
    Op("thread_create", (0, None)),
    Op("thread_create", (1, None)),
    Op("vmo_create", (2, VMO_SIZES.index(16 * P), None)),
    Op("vmo_create", (3, VMO_SIZES.index(4 * P), None)),
)


def op_lists(max_size: int = 60) -> st.SearchStrategy[list[Op]]:
    """Random op lists, most of them after :data:`PRELUDE`."""
    return st.builds(
        lambda prelude, rest: [*prelude, *rest],
        st.sampled_from((PRELUDE, PRELUDE, PRELUDE, ())),
        st.lists(ops, min_size=10, max_size=max_size),
    )


def _pick(seq: list[Any], i: int | None, fit: Callable[[Any], bool] | None = None) -> Any:
    """``seq[i]`` (modulo its length), or ``None`` if ``seq`` is empty. With ``fit``, the
    low three quarters of indices choose among the fitting candidates (live objects, say)
    so most ops can succeed; the rest choose among all, dead ones included."""
    assert i is not None
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
        handler: Callable[..., bool | None] = getattr(self, f"_op_{op.name}")
        try:
            if handler(*op.args) is False:
                return SKIPPED
        except KernelError as err:
            return err.status
        return None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self.last_call = (method, args)
        return getattr(self.kernel, method)(*args, **kwargs)

    # ------------------------------------------------------------------ resolution

    def _koid(self, delta: int | None) -> int | None:
        return None if delta is None else self.kernel.next_koid + delta

    def _owner(self, o: int | None) -> Owner:
        if o == 0:
            return None
        if o == 1 or not self.processes:
            return KERNEL
        return _pick(self.processes, o, _running)  # type: ignore[no-any-return]

    @staticmethod
    def _addr(vmar: SimVmar, choice: int | None) -> int | None:
        assert choice is not None
        if choice < 3:
            return None
        if choice < 6:
            return vmar.base + (choice - 3) * 2 * P
        return ABS_ADDRS[choice - 6]

    def _handle(self, pi: int | None, hi: int | None) -> tuple[SimProcess, int] | None:
        process = _pick(self.processes, pi, lambda p: bool(p.handles))
        if process is None or not process.handles:
            return None
        return process, _pick(list(process.handles), hi)

    def _range(
        self, vmar: SimVmar, mi: int | None, start: int | None, npages: int | None
    ) -> tuple[int, int]:
        """A range around one of ``vmar``'s mappings (partial, whole or overhanging)."""
        assert start is not None and npages is not None
        mappings = [c for c in vmar.children if isinstance(c, SimMapping)]
        m = _pick(mappings, mi)
        if m is None:
            return vmar.base, max(npages, 1) * P
        return m.base + start * P, (npages * P if npages else m.size)

    # ------------------------------------------------------------------ ops

    def _op_job_create(self, ji: int | None, kd: int | None) -> None:
        self.jobs.append(self._call("job_create", _pick(self.jobs, ji), "job", koid=self._koid(kd)))

    def _op_process_create(self, ji: int | None, start: int | None, kd: int | None) -> None:
        p = self._call("process_create", _pick(self.jobs, ji), "proc", koid=self._koid(kd))
        self.processes.append(p)
        self.vmars.append(p.aspace.root)
        if start:
            self.kernel.process_start(p)

    def _op_process_start(self, pi: int | None) -> bool | None:
        p = _pick(self.processes, pi, lambda p: p.state is ProcessState.NEW)
        if p is None:
            return False
        self._call("process_start", p)
        return None

    def _op_process_kill(self, pi: int | None) -> bool | None:
        p = _pick(self.processes, pi, _running)
        if p is None:
            return False
        self._call("process_kill", p)
        return None

    def _op_thread_create(self, pi: int | None, kd: int | None) -> bool | None:
        p = _pick(self.processes, pi, _running)
        if p is None:
            return False
        self.threads.append(self._call("thread_create", p, "thread", koid=self._koid(kd)))
        return None

    def _op_thread_start(self, ti: int | None) -> bool | None:
        t = _pick(self.threads, ti, lambda t: t.state is ThreadState.NEW)
        if t is None:
            return False
        self._call("thread_start", t)
        return None

    def _op_thread_set_state(self, ti: int | None, si: int | None) -> bool | None:
        t = _pick(self.threads, ti, lambda t: t.state is not ThreadState.DEAD)
        if t is None:
            return False
        self._call("thread_set_state", t, _pick(list(THREAD_STATES), si))
        return None

    def _op_vmo_create(self, o: int | None, si: int | None, kd: int | None) -> None:
        assert si is not None
        vmo = self._call(
            "vmo_create", VMO_SIZES[si], "vmo", owner=self._owner(o), koid=self._koid(kd)
        )
        self.vmos.append(vmo)

    def _op_vmo_create_physical(self, o: int | None, ai: int | None, size: int | None) -> None:
        assert ai is not None
        vmo = self._call("vmo_create_physical", PADDRS[ai], size, "phys", owner=self._owner(o))
        self.vmos.append(vmo)

    def _op_vmo_clone(
        self, vi: int | None, page: int | None, si: int | None, o: int | None, kd: int | None
    ) -> bool | None:
        parent = _pick(self.vmos, vi, _alive)
        if parent is None:
            return False
        assert page is not None and si is not None
        clone = self._call(
            "vmo_clone",
            parent,
            page * P,
            VMO_SIZES[si],
            owner=self._owner(o),
            koid=self._koid(kd),
        )
        self.vmos.append(clone)
        return None

    def _op_vmo_write(self, vi: int | None, offset: int | None, li: int | None) -> bool | None:
        vmo = _pick(self.vmos, vi, _alive)
        if vmo is None:
            return False
        assert li is not None
        self._call("vmo_write", vmo, offset, LENGTHS[li])
        return None

    def _op_vmo_decommit(self, vi: int | None, offset: int | None, li: int | None) -> bool | None:
        vmo = _pick(self.vmos, vi, _alive)
        if vmo is None:
            return False
        assert li is not None
        self._call("vmo_decommit", vmo, offset, LENGTHS[li])
        return None

    def _op_vmo_set_size(self, vi: int | None, si: int | None) -> bool | None:
        vmo = _pick(self.vmos, vi, _alive)
        if vmo is None:
            return False
        assert si is not None
        self._call("vmo_set_size", vmo, VMO_SIZES[si])
        return None

    def _op_kernel_release(self, vi: int | None) -> bool | None:
        vmo = _pick(self.vmos, vi, lambda v: v.kernel_refs > 0)
        if vmo is None:
            return False
        self._call("kernel_release", vmo)
        return None

    def _op_vmar_allocate(
        self, ri: int | None, si: int | None, ai: int | None, kd: int | None
    ) -> bool | None:
        parent = _pick(self.vmars, ri, _alive)
        if parent is None:
            return False
        assert si is not None
        vmar = self._call(
            "vmar_allocate",
            parent,
            VMAR_SIZES[si],
            addr=self._addr(parent, ai),
            koid=self._koid(kd),
        )
        self.vmars.append(vmar)
        return None

    def _op_vmar_destroy(self, ri: int | None) -> bool | None:
        vmar = _pick(self.vmars, ri, lambda v: v.alive and v.parent is not None)
        if vmar is None:
            return False
        self._call("vmar_destroy", vmar)
        return None

    def _op_vmar_map(
        self,
        ri: int | None,
        vi: int | None,
        oi: int | None,
        si: int | None,
        perms: int | None,
        ai: int | None,
    ) -> bool | None:
        vmar = _pick(self.vmars, ri, _alive)
        vmo = _pick(self.vmos, vi, _alive)
        if vmar is None or vmo is None:
            return False
        assert oi is not None and si is not None
        self._call(
            "vmar_map",
            vmar,
            vmo,
            vmo_offset=MAP_OFFSETS[oi],
            size=MAP_SIZES[si],
            perms=perms,
            addr=self._addr(vmar, ai),
        )
        return None

    def _op_vmar_unmap(
        self, ri: int | None, mi: int | None, start: int | None, npages: int | None
    ) -> bool | None:
        vmar = _pick(self.vmars, ri, _alive)
        if vmar is None:
            return False
        self._call("vmar_unmap", vmar, *self._range(vmar, mi, start, npages))
        return None

    def _op_vmar_protect(
        self,
        ri: int | None,
        mi: int | None,
        start: int | None,
        npages: int | None,
        perms: int | None,
    ) -> bool | None:
        vmar = _pick(self.vmars, ri, _alive)
        if vmar is None:
            return False
        self._call("vmar_protect", vmar, *self._range(vmar, mi, start, npages), perms)
        return None

    def _op_handle_grant(
        self, pi: int | None, kind: int | None, oi: int | None, ri: int | None
    ) -> bool | None:
        process = _pick(self.processes, pi, _running)
        assert kind is not None and ri is not None
        pools: tuple[list[Any], ...] = (
            self.vmos,
            self.processes,
            self.jobs,
            self.threads,
            self.vmars,
            self.others,
        )
        obj = _pick(pools[kind], oi)
        if process is None or obj is None:
            return False
        self._call("handle_grant", process, obj, RIGHTS[ri])
        return None

    def _op_handle_duplicate(
        self, pi: int | None, hi: int | None, rights: int | None
    ) -> bool | None:
        found = self._handle(pi, hi)
        if found is None:
            return False
        self._call("handle_duplicate", *found, rights)
        return None

    def _op_handle_transfer(self, pi: int | None, hi: int | None, di: int | None) -> bool | None:
        found = self._handle(pi, hi)
        if found is None:
            return False
        self._call("handle_transfer", *found, _pick(self.processes, di, _running))
        return None

    def _op_handle_close(self, pi: int | None, hi: int | None) -> bool | None:
        found = self._handle(pi, hi)
        if found is None:
            return False
        self._call("handle_close", *found)
        return None

    def _op_object_create(self, pi: int | None, ti: int | None, kd: int | None) -> bool | None:
        p = _pick(self.processes, pi, _running)
        if p is None:
            return False
        assert ti is not None
        obj = self._call("object_create", p, OTHER_TYPES[ti], koid=self._koid(kd))
        self.others.append(obj)
        return None

    def _op_channel_create(self, ai: int | None, bi: int | None) -> bool | None:
        a = _pick(self.processes, ai, _running)
        if a is None:
            return False
        self.others.extend(self._call("channel_create", a, _pick(self.processes, bi, _running)))
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
            (j.koid, j.handle_count, tuple(p.koid for p in j.processes), tuple(c.koid for c in j.jobs))
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


def all_job_processes(job: SimJob) -> list[SimProcess]:
    """Processes of ``job`` and of all its descendant jobs."""
    out = list(job.processes)
    for child in job.jobs:
        out.extend(all_job_processes(child))
    return out
