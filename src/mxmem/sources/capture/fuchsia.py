"""Fuchsia memory_monitor captures (``mem --print``, ``PrintCapture``; spec §11.2).

A capture is a JSON object ``{"Time", "Kernel", "Processes", "VmoNames", "Vmos"}``,
bare or wrapped as ``{"Capture": {...}, "Buckets": [...]}`` (newer memory_monitor; the
wrapper's buckets are ignored here: ``mxmem digest`` takes its buckets from a file).
``Processes`` and ``Vmos`` are tables whose first row names the columns; columns are
found by name, so a newer capture with extra columns (``populated_bytes``) still loads.

How a capture maps onto the model:

- ``Kernel`` -> :class:`KernelMemory` (``total_heap``/``free_heap`` are the heap
  figures; the pager and discardable fields of newer captures are not modelled).
- One root job, koid 0, named ``root``, holds every process in capture order. Koid 0 is
  ``ZX_KOID_INVALID``: no kernel object ever has it, so it cannot collide with a
  captured process or VMO.
- A process gets ``vmo_koids`` (the capture's list, each koid once) and no handles or
  address space: the capture has neither.
- A VMO's ``size_bytes`` is the capture's ``allocated_bytes``: the capture does not
  record the VMO's size, and allocated bytes are the nearest figure it has.
  ``num_children`` counts the captured VMOs naming it as parent; ``share_count`` stays 1
  (the kernel's figure counts mappings, which a capture does not record).
- A process has no ``stats``: the capture holds facts (which VMOs each process
  references, each VMO's committed bytes and parent), and the figures memory_monitor
  prints for them are Fuchsia's Summary rule, applied in accounting
  (:mod:`mxmem.accounting.fuchsia`), which the tools select for a snapshot whose
  processes carry VMO lists (:func:`mxmem.accounting.figures.rule_for`).

Every defect of the file raises :class:`~mxmem.errors.SourceError` with one line naming
the file and the JSON path of the bad value, e.g. ``$.Vmos[17][3]``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mxmem.errors import SourceError
from mxmem.model import Job, KernelMemory, Level, Platform, Process, Snapshot, Vmo
from mxmem.sources.capture._check import Checker

__all__ = ["CAPTURE_EPOCH", "ROOT_JOB_KOID", "load"]

ROOT_JOB_KOID = 0  # ZX_KOID_INVALID: never a real object's koid
#: A capture's ``Time`` is monotonic (nanoseconds since boot), not wall-clock time; the
#: snapshot's timestamp is this epoch plus it, so it is reproducible and says "boot + t".
CAPTURE_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_KERNEL_FIELDS = (
    ("total", "total_bytes"),
    ("free", "free_bytes"),
    ("wired", "wired_bytes"),
    ("total_heap", "heap_total_bytes"),
    ("free_heap", "heap_free_bytes"),
    ("vmo", "vmo_bytes"),
    ("mmu", "mmu_bytes"),
    ("ipc", "ipc_bytes"),
    ("other", "other_bytes"),
)
_PROCESS_COLUMNS = ("koid", "name", "vmos")
_VMO_COLUMNS = ("koid", "name", "parent_koid", "committed_bytes", "allocated_bytes")


class _Reader(Checker):
    """Checks values of one file (the shared checker, :mod:`._check`), naming it and the
    JSON path in every error; adds what Fuchsia's layout needs: required keys and
    header-row tables."""

    @property
    def name(self) -> str:
        return self.where

    def obj(self, value: Any, path: str) -> dict[str, Any]:
        return self.dict_(value, path)

    def array(self, value: Any, path: str) -> list[Any]:
        return self.list_(value, path)

    def count(self, value: Any, path: str) -> int:
        return self.int_(value, path)

    def text(self, value: Any, path: str) -> str:
        return self.str_(value, path)

    def key(self, obj: dict[str, Any], key: str, path: str) -> Any:
        if key not in obj:
            self.fail(path, f"missing key {key!r}")
        return obj[key]

    def table(
        self, value: Any, path: str, columns: tuple[str, ...]
    ) -> tuple[dict[str, int], list[tuple[str, list[Any]]]]:
        """A header-row table: column name -> index, and the (path, row) of each row."""
        rows = self.array(value, path)
        if not rows:
            self.fail(path, "missing the header row")
        header = self.array(rows[0], f"{path}[0]")
        index: dict[str, int] = {}
        for i, col in enumerate(header):
            index.setdefault(self.text(col, f"{path}[0][{i}]"), i)
        for col in columns:
            if col not in index:
                self.fail(f"{path}[0]", f"the header has no column {col!r}")
        out: list[tuple[str, list[Any]]] = []
        for r in range(1, len(rows)):
            row_path = f"{path}[{r}]"
            row = self.array(rows[r], row_path)
            if len(row) != len(header):
                self.fail(
                    row_path, f"expected {len(header)} values as in the header, got {len(row)}"
                )
            out.append((row_path, row))
        return index, out


def load(source: Path | str | bytes | Mapping[str, Any], *, name: str | None = None) -> Snapshot:
    """A snapshot of a capture: a file path, the file's bytes, or its parsed JSON.

    ``name`` names the capture in errors and in ``Snapshot.source`` (default: the path,
    or ``<capture>``)."""
    if isinstance(source, (Path, str)):
        label = name or str(source)
        try:
            raw: bytes = Path(source).read_bytes()
        except OSError as err:
            raise SourceError(f"{label}: cannot read: {err.strerror or err}") from err
        data: Any = _parse(raw, label)
    elif isinstance(source, bytes):
        label = name or "<capture>"
        data = _parse(source, label)
    else:
        label = name or "<capture>"
        data = source
    return _snapshot(_Reader(label), data)


def _parse(raw: bytes, label: str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SourceError(f"{label}: not JSON: {err}") from err


def _snapshot(r: _Reader, data: Any) -> Snapshot:
    top = r.obj(data, "$")
    path = "$"
    if "Capture" in top:
        path = "$.Capture"
        top = r.obj(top["Capture"], path)
    time_ns = r.count(r.key(top, "Time", path), f"{path}.Time")
    kernel = _kernel(r, r.key(top, "Kernel", path), f"{path}.Kernel")
    names_path = f"{path}.VmoNames"
    names = r.array(r.key(top, "VmoNames", path), names_path)
    for i, n in enumerate(names):
        r.text(n, f"{names_path}[{i}]")
    vmos, vmo_paths = _vmos(r, r.key(top, "Vmos", path), f"{path}.Vmos", names)
    processes = _processes(r, r.key(top, "Processes", path), f"{path}.Processes", vmos)
    _check_parents(r, vmos, vmo_paths)
    root = Job(
        koid=ROOT_JOB_KOID,
        parent_koid=None,
        name="root",
        process_koids=tuple(processes),
    )
    return Snapshot(
        source=f"fuchsia:{r.name}",
        platform=Platform.FUCHSIA,
        level=Level.FULL,
        timestamp=CAPTURE_EPOCH + timedelta(microseconds=time_ns // 1000),
        kernel=kernel,
        root_job_koid=ROOT_JOB_KOID,
        jobs={ROOT_JOB_KOID: root},
        processes=processes,
        vmos=vmos,
    )


def _kernel(r: _Reader, value: Any, path: str) -> KernelMemory:
    obj = r.obj(value, path)
    fields = {attr: r.count(r.key(obj, key, path), f"{path}.{key}") for key, attr in _KERNEL_FIELDS}
    return KernelMemory(**fields)


def _vmos(
    r: _Reader, value: Any, path: str, names: list[Any]
) -> tuple[dict[int, Vmo], dict[int, str]]:
    col, rows = r.table(value, path, _VMO_COLUMNS)
    vmos: dict[int, Vmo] = {}
    paths: dict[int, str] = {}
    for row_path, row in rows:
        koid = r.count(row[col["koid"]], f"{row_path}[{col['koid']}]")
        name_path = f"{row_path}[{col['name']}]"
        name_index = r.count(row[col["name"]], name_path)
        if name_index >= len(names):
            r.fail(name_path, f"name index {name_index} is not below {len(names)} VmoNames")
        parent = r.count(row[col["parent_koid"]], f"{row_path}[{col['parent_koid']}]")
        committed = r.count(row[col["committed_bytes"]], f"{row_path}[{col['committed_bytes']}]")
        allocated = r.count(row[col["allocated_bytes"]], f"{row_path}[{col['allocated_bytes']}]")
        if koid in vmos:
            r.fail(f"{row_path}[{col['koid']}]", f"duplicate VMO koid {koid}")
        if koid == 0:
            # Parent koid 0 means "no parent", so no VMO may have it.
            r.fail(f"{row_path}[{col['koid']}]", "VMO koid 0 is ZX_KOID_INVALID")
        vmos[koid] = Vmo(
            koid=koid,
            name=names[name_index],
            size_bytes=allocated,
            committed_bytes=committed,
            # Fuchsia's "no parent" is koid 0 (ZX_KOID_INVALID).
            parent_koid=parent or None,
        )
        paths[koid] = row_path
    children: dict[int, int] = {}
    for vmo in vmos.values():
        if vmo.parent_koid in vmos:
            children[vmo.parent_koid] = children.get(vmo.parent_koid, 0) + 1
    for koid, n in children.items():
        vmos[koid] = vmos[koid]._replace(num_children=n)
    return vmos, paths


def _check_parents(r: _Reader, vmos: dict[int, Vmo], paths: dict[int, str]) -> None:
    """Reject a parent cycle: clone parents form a forest. A parent not in the capture
    is fine (it ends the chain, as in Fuchsia)."""
    done: set[int] = set()
    for start in vmos:
        chain: list[int] = []
        on_chain: set[int] = set()
        koid: int | None = start
        while koid is not None and koid in vmos and koid not in done:
            if koid in on_chain:
                r.fail(paths[koid], f"VMO {koid} is its own ancestor (a parent cycle)")
            chain.append(koid)
            on_chain.add(koid)
            koid = vmos[koid].parent_koid
        done.update(chain)


def _processes(r: _Reader, value: Any, path: str, vmos: Mapping[int, Vmo]) -> dict[int, Process]:
    col, rows = r.table(value, path, _PROCESS_COLUMNS)
    out: dict[int, Process] = {}
    for row_path, row in rows:
        koid_path = f"{row_path}[{col['koid']}]"
        koid = r.count(row[col["koid"]], koid_path)
        if koid in out:
            r.fail(koid_path, f"duplicate process koid {koid}")
        if koid == ROOT_JOB_KOID:
            r.fail(koid_path, "process koid 0 is ZX_KOID_INVALID")
        name = r.text(row[col["name"]], f"{row_path}[{col['name']}]")
        list_path = f"{row_path}[{col['vmos']}]"
        refs: dict[int, None] = {}  # memory_monitor lists each VMO once; keep it so
        for j, v in enumerate(r.array(row[col["vmos"]], list_path)):
            vkoid = r.count(v, f"{list_path}[{j}]")
            if vkoid not in vmos:
                r.fail(f"{list_path}[{j}]", f"VMO {vkoid} is not in Vmos")
            refs[vkoid] = None
        out[koid] = Process(koid=koid, job_koid=ROOT_JOB_KOID, name=name, vmo_koids=tuple(refs))
    return out
