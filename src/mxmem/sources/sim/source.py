"""Turn a simulated kernel's state into a :class:`~mxmem.model.Snapshot`."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from mxmem.errors import SourceError
from mxmem.model import (
    Aspace,
    Handle,
    Job,
    KernelMemory,
    Level,
    Mapping,
    Platform,
    Process,
    Snapshot,
    Thread,
    Vmar,
    Vmo,
)
from mxmem.sources.sim.kernel import (
    PAGE_SIZE,
    Kernel,
    SimAspace,
    SimJob,
    SimMapping,
    SimProcess,
    SimVmar,
    SimVmo,
)
from mxmem.sources.sim.pages import sim_page_facts

# A simulated kernel booted at this time (the doc's kstats sample): a snapshot is taken at
# SIM_EPOCH + the kernel's clock, so outputs are reproducible and time moves only when the
# kernel runs.
SIM_EPOCH = datetime(2017, 6, 7, 5, 51, 8, 21000, tzinfo=UTC)


class SimSource:
    """A source over a live :class:`Kernel` (which may keep changing between snapshots)."""

    def __init__(self, kernel: Kernel, name: str = "sim") -> None:
        self.kernel = kernel
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def snapshot(
        self, level: Level = Level.FULL, processes: Collection[int] | None = None
    ) -> Snapshot:
        return kernel_snapshot(self.kernel, level, processes, source=self._name)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass (see :class:`mxmem.sources.Advancing`)."""
        self.kernel.run(seconds)


def kernel_memory(kernel: Kernel) -> KernelMemory:
    return KernelMemory(**kernel.kmem())


def _vmo(vmo: SimVmo) -> Vmo:
    return Vmo(
        koid=vmo.koid,
        name=vmo.name,
        size_bytes=vmo.size,
        committed_bytes=vmo.committed_pages * PAGE_SIZE,
        parent_koid=vmo.parent.koid if vmo.parent is not None else None,
        num_children=len(vmo.children),
        num_mappings=len(vmo.mappings),
        share_count=vmo.share_count(),
        physical=vmo.physical,
        kernel_only=vmo.kernel_only,
        phys_base=vmo.paddr or 0,
    )


def _vmar(vmar: SimVmar, used: set[SimVmo]) -> Vmar:
    children: list[Vmar | Mapping] = []
    for child in vmar.children:
        if isinstance(child, SimVmar):
            children.append(_vmar(child, used))
        else:
            children.append(_mapping(child, used))
    return Vmar(
        koid=vmar.koid, name=vmar.name, base=vmar.base, size=vmar.size, children=tuple(children)
    )


def _mapping(m: SimMapping, used: set[SimVmo]) -> Mapping:
    used.add(m.vmo)
    return Mapping(
        m.base,
        m.size,
        m.perms,
        m.vmo.koid,
        m.vmo_offset,
        m.vmo.pages_in_range(m.vmo_offset, m.size) * PAGE_SIZE,
        m.vmo.name,
    )


def _aspace(aspace: SimAspace, used: set[SimVmo]) -> Aspace:
    assert aspace.root is not None
    return Aspace(
        name=aspace.name, base=aspace.base, size=aspace.size, root=_vmar(aspace.root, used)
    )


def _process(p: SimProcess, level: Level, used: set[SimVmo]) -> Process:
    threads = tuple(Thread(koid=t.koid, name=t.name, state=t.state) for t in p.threads)
    handles = None
    aspace = None
    if level >= Level.TASKS:
        if p.aspace is not None:
            aspace = _aspace(p.aspace, used)
        handles = tuple(
            Handle(h.value, h.obj.koid, h.obj.type, h.rights) for h in p.handles.values()
        )
        for h in p.handles.values():
            if isinstance(h.obj, SimVmo):
                used.add(h.obj)
    return Process(
        koid=p.koid,
        job_koid=p.job.koid,
        name=p.name,
        state=p.state,
        threads=threads,
        handles=handles,
        aspace=aspace,
    )


def kernel_snapshot(
    kernel: Kernel,
    level: Level = Level.FULL,
    processes: Collection[int] | None = None,
    *,
    source: str = "sim",
) -> Snapshot:
    """Snapshot the kernel. The sim kernel knows every page, so even ``ps`` gets address
    spaces (its figures are derived from them by accounting, like the 2017 kernel did)."""
    jobs: dict[int, Job] = {}
    procs: dict[int, Process] = {}
    used: set[SimVmo] = set()
    wanted = None if processes is None else set(processes)
    if level >= Level.TASKS:
        stack: list[SimJob] = [kernel.root_job]
        while stack:
            job = stack.pop()
            jobs[job.koid] = Job(
                koid=job.koid,
                parent_koid=job.parent.koid if job.parent is not None else None,
                name=job.name,
                process_koids=tuple(p.koid for p in job.processes),
                child_koids=tuple(j.koid for j in job.jobs),
            )
            for p in job.processes:
                if wanted is None or p.koid in wanted:
                    procs[p.koid] = _process(p, level, used)
            stack.extend(job.jobs)
    vmos: dict[int, Vmo] = {}
    kernel_aspace = None
    if level >= Level.FULL:
        if wanted is None:
            vmos = {v.koid: _vmo(v) for v in kernel.vmos}
            kernel_aspace = _aspace(kernel.kernel_aspace, set())
        else:
            # Only the VMOs the chosen processes refer to, with their clone ancestors.
            for vmo in list(used):
                parent = vmo.parent
                while parent is not None and parent not in used:
                    used.add(parent)
                    parent = parent.parent
            # Sorted by koid (creation order for user VMOs) without scanning the global list,
            # so one process's snapshot costs the same in a small world and a huge one.
            vmos = {v.koid: _vmo(v) for v in sorted(used, key=lambda v: v.koid)}
    elif level >= Level.TASKS:
        # Accounting needs the share counts of mapped VMOs.
        vmos = {v.koid: _vmo(v) for v in used}
    return Snapshot(
        source=source,
        platform=Platform.MAGENTA,
        level=level,
        timestamp=SIM_EPOCH + timedelta(microseconds=kernel.clock_ns // 1000),
        kernel=kernel_memory(kernel),
        root_job_koid=kernel.root_job.koid if level >= Level.TASKS else None,
        jobs=jobs,
        processes=procs,
        vmos=vmos,
        kernel_aspace=kernel_aspace,
        notes=(),
        cpus=kernel.sched.stats(),
        pages=sim_page_facts(kernel) if level >= Level.PAGES else None,
    )


def open_sim(spec: str) -> SimSource:
    """``doc``, ``doc-vmaps``, ``scale:N`` or a world file (TOML/JSON)."""
    from mxmem.sources.sim import worlds

    try:
        kernel = worlds.build(spec)
    except KeyError as err:
        raise SourceError(str(err.args[0])) from None
    return SimSource(kernel, f"sim:{spec}")
