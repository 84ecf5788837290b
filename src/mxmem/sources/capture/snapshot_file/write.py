"""Saving: a snapshot as a version-1 mxmem snapshot file (the format: the package doc)."""

from __future__ import annotations

import collections.abc
import json
from typing import Any

from mxmem.model import (
    Aspace,
    CpuStats,
    Job,
    KernelMemory,
    PageFacts,
    Process,
    Snapshot,
    TaskStats,
    Vmar,
    Vmo,
)

# --- saving ------------------------------------------------------------------------------
from mxmem.sources.capture.snapshot_file.wire import (
    CHARGE,
    CHARGED_PAGES,
    CPU_FIELDS,
    FORMAT,
    KERNEL_FIELDS,
    VERSION,
    VMO_KERNEL_ONLY,
    VMO_PHYSICAL,
)


def _kernel(kernel: KernelMemory) -> dict[str, int]:
    saved = {n: getattr(kernel, n) for n in KERNEL_FIELDS}
    if kernel.available_bytes is not None:
        saved["available_bytes"] = kernel.available_bytes
    return saved


def _stats(stats: TaskStats) -> list[int]:
    return [
        stats.mapped_bytes,
        stats.private_bytes,
        stats.shared_bytes,
        stats.scaled_shared_bytes,
        stats.swap_pss_bytes,
    ]


def _vmar(vmar: Vmar) -> list[Any]:
    children: list[Any] = []
    for child in vmar.children:
        if isinstance(child, Vmar):
            children.append(_vmar(child))
        else:
            m = child
            entry: list[Any] = [
                "M",
                m.base,
                m.size,
                int(m.perms),
                m.vmo_koid,
                m.vmo_offset,
                m.committed_bytes,
                m.name,
            ]
            if m.stats is not None:
                entry.append(_stats(m.stats))
            children.append(entry)
    return ["R", vmar.koid, vmar.name, vmar.base, vmar.size, children]


def _aspace(aspace: Aspace | None) -> dict[str, Any] | None:
    if aspace is None:
        return None
    return {"n": aspace.name, "b": aspace.base, "s": aspace.size, "r": _vmar(aspace.root)}


def _cpu(cpu: CpuStats | None) -> dict[str, Any] | None:
    if cpu is None:
        return None
    return {name: getattr(cpu, name) for name in CPU_FIELDS}


def _process(p: Process) -> dict[str, Any]:
    out: dict[str, Any] = {"k": p.koid, "j": p.job_koid, "n": p.name, "s": p.state.value}
    # Defaults are left out: most processes have no source figures and no notes.
    if p.threads:
        out["t"] = [[t.koid, t.name, t.state.value] for t in p.threads]
    if p.handles is not None:
        out["h"] = [[h.value, h.koid, h.type.value, int(h.rights)] for h in p.handles]
    if p.aspace is not None:
        out["a"] = _aspace(p.aspace)
    if p.stats is not None:
        out["st"] = _stats(p.stats)
    if p.unreadable is not None:
        out["u"] = p.unreadable
    if p.kernel_thread:
        out["kt"] = True
    if p.vmo_koids is not None:
        out["v"] = list(p.vmo_koids)
    return out


def _vmo(v: Vmo) -> list[Any]:
    flags = (VMO_PHYSICAL if v.physical else 0) | (VMO_KERNEL_ONLY if v.kernel_only else 0)
    return [
        v.koid,
        v.name,
        v.size_bytes,
        v.committed_bytes,
        0 if v.parent_koid is None else v.parent_koid,
        v.num_children,
        v.num_mappings,
        v.share_count,
        flags,
        v.phys_base,
    ]


def _pairs(values: collections.abc.Mapping[Any, int]) -> list[list[Any]]:
    return [[k, v] for k, v in values.items()]


def _page_facts(facts: PageFacts) -> dict[str, Any]:
    # A page pattern is [[use, ...], count]; a use is [vmo_koid, [users]], with a third
    # element `true` only when the kernel also holds the VMO (rare, so left out otherwise).
    patterns: list[Any] = []
    for key, count in facts.pages.items():
        uses = [
            [u.vmo_koid, list(u.users), True] if u.kernel else [u.vmo_koid, list(u.users)]
            for u in key
        ]
        patterns.append([uses, count])
    return {
        "total_bytes": facts.total_bytes,
        "page_size": facts.page_size,
        "pages": patterns,
        "process_kernel": [[pid, _pairs(kinds)] for pid, kinds in facts.process_kernel.items()],
        "process_estimated": _pairs(facts.process_estimated),
        "process_swap": _pairs(facts.process_swap),
        "categories": _pairs(facts.categories),
        "exact": facts.exact,
        "notes": list(facts.notes),
    }


def _job_extras(job: Job) -> list[list[Any]]:
    out: list[list[Any]] = []
    if job.charge_bytes is not None:
        out.append([CHARGE, job.charge_bytes])
    if job.charged_pages_bytes is not None:
        out.append([CHARGED_PAGES, job.charged_pages_bytes])
    return out


def to_json(snapshot: Snapshot) -> dict[str, Any]:
    """The snapshot as a JSON-ready object (``format`` and ``version`` first; ``pages``
    only when the snapshot has page facts)."""
    kernel = snapshot.kernel
    out: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "source": snapshot.source,
        "platform": snapshot.platform.value,
        "level": snapshot.level.name,
        "timestamp": snapshot.timestamp.isoformat(),
        "kernel": None if kernel is None else _kernel(kernel),
        "cpus": [_cpu(c) for c in snapshot.cpus],
        "cpu_total": _cpu(snapshot.cpu_total),
        "root_job": snapshot.root_job_koid,
        "jobs": [
            [
                j.koid,
                j.parent_koid,
                j.name,
                list(j.process_koids),
                list(j.child_koids),
                _job_extras(j),
            ]
            for j in snapshot.jobs.values()
        ],
        "processes": [_process(p) for p in snapshot.processes.values()],
        "vmos": [_vmo(v) for v in snapshot.vmos.values()],
        "kernel_aspace": _aspace(snapshot.kernel_aspace),
        "notes": [*snapshot.notes, *snapshot.kernel_aspace_notes],
    }
    if not snapshot.has_mappings:
        out["has_mappings"] = False
    if snapshot.pages is not None:
        out["pages"] = _page_facts(snapshot.pages)
    return out


def dumps(snapshot: Snapshot) -> str:
    """The snapshot file's text: one line of compact, ASCII-only JSON (non-ASCII and
    undecodable characters of names are ``\\u`` escapes, so any name survives)."""
    return json.dumps(to_json(snapshot), separators=(",", ":"), ensure_ascii=True) + "\n"


