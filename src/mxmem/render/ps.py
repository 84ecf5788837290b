"""``ps``: the job/process/thread tree with PSS, PRIVATE and SHARED (spec §2).

:func:`ps_rows` builds the view from a snapshot and its figures; :func:`write_ps` prints
it byte for byte as Magenta's ``ps.c`` did, :func:`ps_json` as JSON rows (the wire
format is ``schemas/ps.schema.json``).

Two Linux figures have no column in the table: a process's ``SwapPss`` (its share of
swapped-out memory: never ``Swap``, which counts a shared swap entry once per sharer)
is ``swap_pss_bytes`` in JSON, and added to PSS only when asked (``ps --swap``); a
job's own memory charge (its cgroup's) is ``cgroup_charge_bytes`` in JSON: it is not
the sum of its processes' PSS (it also holds page cache, kernel memory and the memory
of processes that have exited, and counts each page once, whole, to one cgroup).

``ps --attribution=exact`` (issue 6) has its own rows (:func:`exact_rows`): ATTRIB,
the RAM attributed to a process (each page once: its PRIVATE pages, its SHARED fraction
of pages others use too, and the KERNEL memory it causes), printed by
:func:`write_ps_exact` with a summary that adds up to the total physical memory, or as
JSON by :func:`ps_exact_json`.
"""

from __future__ import annotations

from typing import NamedTuple, TextIO

from mxmem.accounting.magenta2017 import TaskMemory
from mxmem.model import Job, Process, Snapshot, Thread
from mxmem.render.exact import ShownAttribution, ShownShare, summary_lines
from mxmem.render.jsonout import JsonValue
from mxmem.render.text import safe_text
from mxmem.render.units import format_size

__all__ = [
    "ExactRow",
    "PsRow",
    "exact_rows",
    "ps_exact_json",
    "ps_json",
    "ps_rows",
    "reports_swap",
    "swap_pss_total",
    "write_ps",
    "write_ps_exact",
]

def reports_swap(snapshot: Snapshot) -> bool:
    """Whether the source reports per-process figures of its own (the Linux host's
    ``smaps_rollup``), which include ``SwapPss``. Figures derived from mappings (the
    simulated Magenta kernel, which has no swap) do not."""
    return any(p.stats is not None for p in snapshot.processes.values())


def swap_pss_total(memory: TaskMemory, snapshot: Snapshot, job_koid: int | None) -> int:
    """Σ SwapPss of the processes under ``job_koid`` (default: the root job)."""
    start = snapshot.root_job_koid if job_koid is None else job_koid
    total = 0
    for koid, stats in memory.processes.items():
        process = snapshot.processes.get(koid)
        if stats is None or process is None or not stats.swap_pss_bytes:
            continue
        if start in snapshot.ancestors(process.job_koid):
            total += stats.swap_pss_bytes
    return total


class PsRow(NamedTuple):
    """One line of ``ps``. Sizes are ``None`` where the cell is blank or unknown: a job's
    SHARED is always blank, a thread has no sizes, a process without figures is unknown."""

    depth: int
    type: str  # "j", "p" or "t"
    koid: int
    parent_koid: int | None
    name: str
    pss_bytes: int | None
    private_bytes: int | None
    shared_bytes: int | None
    state: str | None  # threads only
    swap_pss_bytes: int | None = None  # processes: SwapPss, when known
    charge_bytes: int | None = None  # jobs: the cgroup's own charge, when reported
    # A Linux kernel thread has no user memory: its size cells stay blank in the table.
    kernel_thread: bool = False


def ps_rows(
    snapshot: Snapshot,
    memory: TaskMemory,
    job_koid: int | None = None,
    *,
    threads: bool = False,
    jobs_only: bool = False,
    swap: bool = False,
) -> list[PsRow]:
    """The rows of ``ps`` for the tree under ``job_koid`` (default: the root job), in
    Magenta's walk order with depth 0 at the starting job. ``swap`` adds each process's
    SwapPss to its PSS (and so to its jobs')."""
    job_swap: dict[int, int] = {}
    if swap:
        for koid, stats in memory.processes.items():
            process = snapshot.processes.get(koid)
            if stats is None or process is None or not stats.swap_pss_bytes:
                continue
            for ancestor in snapshot.ancestors(process.job_koid):
                job_swap[ancestor] = job_swap.get(ancestor, 0) + stats.swap_pss_bytes
    rows: list[PsRow] = []
    process_koid = 0  # the walk yields a process's threads right after it
    for depth, kind, obj in snapshot.walk(job_koid, threads=threads and not jobs_only):
        if isinstance(obj, Job):
            totals = memory.jobs.get(obj.koid)
            pss = None if totals is None else totals.pss_bytes + job_swap.get(obj.koid, 0)
            rows.append(
                PsRow(
                    depth,
                    "j",
                    obj.koid,
                    obj.parent_koid,
                    obj.name,
                    pss,
                    totals.private_bytes if totals is not None else None,
                    None,
                    None,
                    charge_bytes=obj.charge_bytes,
                )
            )
        elif jobs_only:
            continue
        elif isinstance(obj, Process):
            process_koid = obj.koid
            stats = memory.processes.get(obj.koid)
            rows.append(
                PsRow(
                    depth,
                    "p",
                    obj.koid,
                    obj.job_koid,
                    obj.name,
                    None
                    if stats is None
                    else stats.pss_bytes + (stats.swap_pss_bytes if swap else 0),
                    stats.private_bytes if stats is not None else None,
                    stats.shared_bytes if stats is not None else None,
                    None,
                    swap_pss_bytes=stats.swap_pss_bytes if stats is not None else None,
                    kernel_thread=obj.kernel_thread,
                )
            )
        else:
            assert isinstance(obj, Thread) and kind == "t"
            rows.append(
                PsRow(
                    depth, "t", obj.koid, process_koid, obj.name, None, None, None, obj.state.value
                )
            )
    return rows


def _size_cells(row: PsRow, units: str) -> tuple[str, str, str]:
    if row.type == "t" or row.kernel_thread:
        return "", "", ""
    if row.type == "p" and row.pss_bytes is None:
        return "?", "?", "?"  # figures unknown (e.g. unreadable), not zero
    pss = "?" if row.pss_bytes is None else format_size(row.pss_bytes, units)
    private = "?" if row.private_bytes is None else format_size(row.private_bytes, units)
    # ps.c: shared bytes don't mean much as a sum, so a job's SHARED cell stays blank.
    shared = "" if row.shared_bytes is None else format_size(row.shared_bytes, units)
    return pss, private, shared


def write_ps(rows: list[PsRow], out: TextIO, *, units: str = "", threads: bool = False) -> None:
    """Print the table as ``ps.c`` does, with the header before and after it.

    ``units`` is ``""`` for natural units or the ``--units`` letter. ``threads`` adds
    the STATE column (``-T``); job and process rows leave it blank.
    """
    # ps.c: the ID column is as wide as the widest "<indent><type>:<koid>" cell.
    id_w = max((2 * r.depth + 2 + len(str(r.koid)) for r in rows), default=0)
    if threads:
        header = f"{'TASK':<{id_w}} {'PSS':>7} {'PRIVATE':>7} {'SHARED':>7} {'STATE':>7} NAME\n"
    else:
        header = f"{'TASK':<{id_w}} {'PSS':>7} {'PRIVATE':>7} {'SHARED':>7} NAME\n"
    lines = [header]
    for row in rows:
        cell = " " * (2 * row.depth) + f"{row.type}:{row.koid}"
        pss, private, shared = _size_cells(row, units)
        state = f" {row.state or '':>7}" if threads else ""
        lines.append(
            f"{cell:<{id_w}} {pss:>7} {private:>7} {shared:>7}{state} {safe_text(row.name)}\n"
        )
    lines.append(header)
    out.write("".join(lines))


def ps_json(rows: list[PsRow], *, swap_pss: bool = False) -> list[JsonValue]:
    """The rows as JSON objects (``schemas/ps.schema.json``); sizes in bytes, ``null``
    where the text table has a blank or ``?`` cell. ``swap_pss`` adds each process's
    ``swap_pss_bytes`` (for a source that :func:`reports_swap`); a job with a charge
    gets ``cgroup_charge_bytes``."""
    out: list[JsonValue] = []
    for row in rows:
        obj: dict[str, JsonValue] = {
            "type": row.type,
            "koid": row.koid,
            "parent_koid": row.parent_koid,
            "depth": row.depth,
            "name": row.name,
            "pss_bytes": row.pss_bytes,
            "private_bytes": row.private_bytes,
            "shared_bytes": row.shared_bytes,
        }
        if row.type == "t":
            obj["state"] = row.state
        elif row.type == "p" and swap_pss:
            obj["swap_pss_bytes"] = row.swap_pss_bytes
        elif row.type == "j" and row.charge_bytes is not None:
            obj["cgroup_charge_bytes"] = row.charge_bytes
        out.append(obj)
    return out


# --- --attribution=exact -----------------------------------------------------------------


class ExactRow(NamedTuple):
    """One line of ``ps --attribution=exact``. ``share`` is ``None`` for a thread and
    for a process whose memory is unknown (unreadable, and not in the attribution); a
    job's is the sum of the processes of its subtree whose memory is known."""

    depth: int
    type: str  # "j", "p" or "t"
    koid: int
    parent_koid: int | None
    name: str
    share: ShownShare | None
    state: str | None = None  # threads only
    # A Linux kernel thread with nothing attributed: blank cells, as in the 2017 table.
    kernel_thread: bool = False
    # Jobs only, when the source reports them (Linux cgroups): the cgroup's own charge,
    # and the bytes of the mapped pages charged to it (kpagecgroup).
    charge_bytes: int | None = None
    charged_pages_bytes: int | None = None


def _process_share(process: Process, shown: ShownAttribution) -> ShownShare | None:
    share = shown.processes.get(process.koid)
    if share is not None:
        return share
    # Not in the attribution: unknown if the source could not read it; otherwise it
    # has nothing attributed (a dead process, a kernel thread).
    return None if process.unreadable is not None else ShownShare()


def exact_rows(
    snapshot: Snapshot,
    shown: ShownAttribution,
    job_koid: int | None = None,
    *,
    threads: bool = False,
    jobs_only: bool = False,
) -> list[ExactRow]:
    """The rows of ``ps --attribution=exact`` for the tree under ``job_koid`` (default:
    the root job), in the same walk order as :func:`ps_rows`."""
    # A job's figures: the sums over every process below it, from the same rounded
    # figures the process rows show (so a job row is the sum of what is printed).
    jobs: dict[int, ShownShare] = {}
    for process in snapshot.processes.values():
        share = _process_share(process, shown)
        if share is None or process.job_koid not in snapshot.jobs:
            continue
        for ancestor in snapshot.ancestors(process.job_koid):
            jobs[ancestor] = jobs.get(ancestor, ShownShare()) + share
    rows: list[ExactRow] = []
    process_koid = 0  # the walk yields a process's threads right after it
    for depth, kind, obj in snapshot.walk(job_koid, threads=threads and not jobs_only):
        if isinstance(obj, Job):
            share = jobs.get(obj.koid, ShownShare())
            rows.append(
                ExactRow(
                    depth,
                    "j",
                    obj.koid,
                    obj.parent_koid,
                    obj.name,
                    share,
                    charge_bytes=obj.charge_bytes,
                    charged_pages_bytes=obj.charged_pages_bytes,
                )
            )
        elif jobs_only:
            continue
        elif isinstance(obj, Process):
            process_koid = obj.koid
            blank = obj.kernel_thread and obj.koid not in shown.processes
            rows.append(
                ExactRow(
                    depth,
                    "p",
                    obj.koid,
                    obj.job_koid,
                    obj.name,
                    _process_share(obj, shown),
                    kernel_thread=blank,
                )
            )
        else:
            assert isinstance(obj, Thread) and kind == "t"
            rows.append(
                ExactRow(depth, "t", obj.koid, process_koid, obj.name, None, obj.state.value)
            )
    return rows


def _exact_cells(row: ExactRow, units: str, estimated: bool, swap: bool) -> list[str]:
    count = 4 + estimated + swap
    if row.type == "t" or row.kernel_thread:
        return [""] * count
    share = row.share
    if share is None:
        return ["?"] * count  # unknown (e.g. unreadable), not zero
    values = [share.total, share.private, share.shared, share.kernel]
    values += [share.estimated] * estimated + [share.swap] * swap
    return [format_size(v, units) for v in values]


def write_ps_exact(
    rows: list[ExactRow],
    shown: ShownAttribution,
    out: TextIO,
    *,
    units: str = "",
    threads: bool = False,
    swap: bool = False,
    scope: str = "",
) -> None:
    """Print the exact table in the layout of ``ps.c`` (header before and after, the
    same ID column, ``%7s`` size cells), then a blank line and the whole system's
    summary (:func:`~mxmem.render.exact.summary_lines`).

    Columns: ATTRIB = PRIVATE + SHARED + KERNEL (+ ESTIM, present only when the source
    has per-process figures that are not page-level); SWAP (``swap``) is not RAM and
    not in ATTRIB; STATE with ``threads``.
    """
    estimated = shown.uses_estimates
    names = ["ATTRIB", "PRIVATE", "SHARED", "KERNEL"]
    names += ["ESTIM"] * estimated + ["SWAP"] * swap + ["STATE"] * threads
    id_w = max((2 * r.depth + 2 + len(str(r.koid)) for r in rows), default=0)
    header = f"{'TASK':<{id_w}} " + "".join(f"{n:>7} " for n in names) + "NAME\n"
    lines = [header]
    for row in rows:
        cells = _exact_cells(row, units, estimated, swap)
        if threads:
            cells.append(row.state or "")
        cell = " " * (2 * row.depth) + f"{row.type}:{row.koid}"
        sizes = "".join(f"{c:>7} " for c in cells)
        lines.append(f"{cell:<{id_w}} {sizes}{safe_text(row.name)}\n")
    lines.append(header)
    lines.append("\n")
    lines.extend(f"{line}\n" for line in summary_lines(shown, units=units, scope=scope))
    out.write("".join(lines))


def _share_json(share: ShownShare | None) -> dict[str, JsonValue]:
    keys = ("attributed", "private", "shared", "kernel", "estimated", "swap")
    if share is None:
        return {f"{k}_bytes": None for k in keys}
    values = (share.total, share.private, share.shared, share.kernel, share.estimated)
    return {f"{k}_bytes": v for k, v in zip(keys, (*values, share.swap), strict=True)}


def ps_exact_json(
    rows: list[ExactRow], shown: ShownAttribution, *, job_koid: int | None
) -> JsonValue:
    """The exact view as one JSON object (``schemas/ps.schema.json``, its second form):
    ``rows`` (integer bytes, ``null`` where the table has a blank or ``?`` cell, except a
    kernel thread's zeros), and the whole system's ``summary``, in which
    ``processes_bytes + Σ categories + residual_bytes == total_bytes``."""
    out_rows: list[JsonValue] = []
    for row in rows:
        obj: dict[str, JsonValue] = {
            "type": row.type,
            "koid": row.koid,
            "parent_koid": row.parent_koid,
            "depth": row.depth,
            "name": row.name,
            **_share_json(row.share),
        }
        if row.type == "t":
            obj["state"] = row.state
        elif row.type == "j":
            if row.charge_bytes is not None:
                obj["cgroup_charge_bytes"] = row.charge_bytes
            if row.charged_pages_bytes is not None:
                obj["cgroup_pages_bytes"] = row.charged_pages_bytes
        out_rows.append(obj)
    categories: list[JsonValue] = [{"name": n, "bytes": b} for n, b in shown.categories]
    notes: list[JsonValue] = list(shown.notes)
    return {
        "attribution": "exact",
        "exact": shown.exact,
        "notes": notes,
        "job_koid": job_koid,
        "rows": out_rows,
        "summary": {
            "scope": "system",
            "total_bytes": shown.total_bytes,
            "processes_bytes": shown.processes_bytes,
            "categories": categories,
            "residual_bytes": shown.residual_bytes,
            "swap_bytes": shown.swap_bytes,
        },
    }
