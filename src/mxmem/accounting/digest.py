"""Fuchsia's digest: memory grouped into named buckets (``digest.cc``, spec §11.4).

A bucket file is a JSON array of ``{"name", "process", "vmo"}`` objects (newer files
also carry an ``event_code``, accepted and ignored). ``process`` and ``vmo`` are regular
expressions matched against the WHOLE name (``re.fullmatch``, as ``std::regex_match``);
a list of patterns matches when any of them does; a missing or empty pattern matches
every name (Fuchsia's ``BucketMatch`` treats an empty regex so).

Assignment takes the processes in snapshot order (capture order for a capture), then the
bucket rules in file order, then the process's VMOs, as the issue that specifies mxmem's
digest fixes it (and Fuchsia's ``scripts/memory`` digest does): a bucket whose process
pattern matches claims each VMO of that process whose name matches, unless a bucket
already claimed it. So a VMO shared by two processes goes to a bucket of the process
that comes first. (Fuchsia's C++ ``Digester`` loops over buckets first; the two orders
differ only for VMOs shared by processes matched by different buckets.) VMOs with 0
committed bytes are skipped (they add nothing). A bucket's size is the committed bytes of
the VMOs it claimed.

Then the named buckets are sorted by size, largest first; equal sizes keep file order
(a stable sort, so the output is deterministic). After them come, always, in this order:

- ``Undigested``: committed bytes of every VMO of the snapshot that no bucket claimed;
- ``Orphaned``: the kernel's VMO total minus the committed bytes of all the snapshot's
  VMOs (memory in VMOs no process references), never negative: if the VMOs add up to
  more than the kernel's figure (a snapshot not taken atomically), it is 0 and a note
  says by how much;
- ``Kernel``: wired + heap + mmu + ipc + other;
- ``Free``: free memory.

The last three need kernel figures; a snapshot without them has none of the three, and
a note says so.

Exact mode (:func:`exact_digest`, ``digest --attribution=exact``, issue 6) claims VMOs
by the same rule, but sizes every VMO by its exact attributed bytes
(:attr:`Attribution.vmos <mxmem.accounting.exact.Attribution.vmos>`: each page once,
a copy-on-write page split among the VMOs that reach it), so no page is in two
buckets. After the named buckets come:

- ``Undigested``: the rest of the memory attributed to processes through VMOs (also
  pages a source cannot tie to a VMO);
- ``Estimated (processes)``, only for a source with per-process figures that are not
  page-level (a Linux host read without root);
- ``Kernel (processes)``: kernel memory the processes cause (page tables, kernel
  stacks, kernel objects); left out when an approximate source cannot tell (it is 0
  there, and the kernel's memory is in the categories);
- the attribution's categories, by kind, largest first, ``Free`` last (always shown):
  memory no process can be blamed for, instead of the 2017 ``Orphaned`` (a difference
  of two figures that could go negative) and the lump ``Kernel``;
- ``Residual``, only when the attribution does not add up to the total (a live host):
  total minus the rest, either sign, never folded into another row.

Sizes are rounded to whole bytes all together (largest remainder), so the rows add up
to the total physical memory exactly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from mxmem.accounting.exact import Attribution, integer_parts
from mxmem.accounting.fuchsia import process_vmo_koids
from mxmem.errors import UsageError
from mxmem.model import Snapshot

__all__ = [
    "ESTIMATED",
    "KERNEL_PROCESSES",
    "RESIDUAL",
    "UNDIGESTED",
    "BucketRule",
    "BucketSize",
    "Digest",
    "bucket_rules",
    "digest",
    "exact_digest",
]

UNDIGESTED = "Undigested"
ESTIMATED = "Estimated (processes)"
KERNEL_PROCESSES = "Kernel (processes)"
RESIDUAL = "Residual"

EXIT_BAD_BUCKETS = 2
_KEYS = {"name", "process", "vmo", "event_code"}


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketRule:
    """One bucket of a bucket file; ``None`` patterns match every name."""

    name: str
    process: tuple[re.Pattern[str], ...] | None = None
    vmo: tuple[re.Pattern[str], ...] | None = None

    def process_match(self, name: str) -> bool:
        return self.process is None or any(p.fullmatch(name) for p in self.process)

    def vmo_match(self, name: str) -> bool:
        return self.vmo is None or any(p.fullmatch(name) for p in self.vmo)


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketSize:
    name: str
    size_bytes: int
    vmo_count: int = 0  # VMOs the bucket claimed (0 for the kernel-figure buckets)


@dataclass(frozen=True, slots=True, kw_only=True)
class Digest:
    buckets: tuple[BucketSize, ...]
    notes: tuple[str, ...] = ()
    # Exact mode only: the total physical memory the buckets add up to, and whether the
    # attribution was exact (False: approximate, the notes say why). None in 2017 mode.
    total_bytes: int | None = None
    exact: bool | None = None


def _bad(label: str, path: str, message: str) -> UsageError:
    return UsageError(f"{label}: {path}: {message}", EXIT_BAD_BUCKETS)


def _patterns(value: Any, label: str, path: str) -> tuple[re.Pattern[str], ...] | None:
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        raise _bad(label, path, "an empty list of patterns matches nothing")
    out: list[re.Pattern[str]] = []
    for i, item in enumerate(items):
        item_path = f"{path}[{i}]" if isinstance(value, list) else path
        if not isinstance(item, str):
            raise _bad(label, item_path, "expected a regular expression string")
        try:
            out.append(re.compile(item))
        except re.error as err:
            raise _bad(label, item_path, f"bad regular expression {item!r}: {err}") from err
    if not isinstance(value, list) and value == "":
        return None
    return tuple(out)


def bucket_rules(data: Any, label: str) -> tuple[BucketRule, ...]:
    """The rules of a parsed bucket file; ``label`` names the file in errors, which
    are one line with the JSON path (:class:`~mxmem.errors.UsageError`, exit 2)."""
    if not isinstance(data, list):
        raise _bad(label, "$", "expected an array of buckets")
    rules: list[BucketRule] = []
    seen: set[str] = set()
    for i, item in enumerate(data):
        path = f"$[{i}]"
        if not isinstance(item, dict):
            raise _bad(label, path, "expected a bucket object")
        unknown = sorted(set(item) - _KEYS)
        if unknown:
            raise _bad(label, path, f"unknown key {unknown[0]!r} (expected name, process, vmo)")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(label, f"{path}.name", "expected a non-empty bucket name")
        if name in seen:
            raise _bad(label, f"{path}.name", f"duplicate bucket name {name!r}")
        seen.add(name)
        code = item.get("event_code", 0)
        if not isinstance(code, int) or isinstance(code, bool):
            raise _bad(label, f"{path}.event_code", "expected a whole number")
        rules.append(
            BucketRule(
                name=name,
                process=_patterns(item["process"], label, f"{path}.process")
                if "process" in item
                else None,
                vmo=_patterns(item["vmo"], label, f"{path}.vmo") if "vmo" in item else None,
            )
        )
    return tuple(rules)


def _claim(
    snapshot: Snapshot, rules: Sequence[BucketRule], size: Mapping[int, int | Fraction]
) -> list[list[int]]:
    """The VMO koids each rule claims, in claim order; ``size`` gives each VMO's bytes
    (a VMO of size 0 adds nothing and is not claimed)."""
    vmos = snapshot.vmos
    claimed: set[int] = set()
    out: list[list[int]] = [[] for _ in rules]
    # The order the issue fixes (and Fuchsia's scripts/memory digest follows): processes in
    # capture order, then rules in file order, then the process's VMOs; the first match
    # claims a VMO, so a VMO shared by two processes goes to the earlier process's bucket.
    for process in snapshot.processes.values():
        koids = process_vmo_koids(process)
        for i, rule in enumerate(rules):
            if not rule.process_match(process.name):
                continue
            for koid in koids:
                vmo = vmos.get(koid)
                if vmo is None or not size.get(koid) or koid in claimed:
                    continue
                if rule.vmo_match(vmo.name):
                    claimed.add(koid)
                    out[i].append(koid)
    return out


def digest(snapshot: Snapshot, rules: Sequence[BucketRule]) -> Digest:
    """The bucket sizes of ``snapshot`` (see the module doc for the rule)."""
    vmos = snapshot.vmos
    committed = {koid: vmo.committed_bytes for koid, vmo in vmos.items()}
    claims = _claim(snapshot, rules, committed)
    claimed = {koid for koids in claims for koid in koids}
    sizes = [sum(committed[k] for k in koids) for koids in claims]
    counts = [len(koids) for koids in claims]
    named = [
        BucketSize(name=rule.name, size_bytes=sizes[i], vmo_count=counts[i])
        for i, rule in enumerate(rules)
    ]
    named.sort(key=lambda b: -b.size_bytes)  # stable: ties keep file order
    undigested = [v for k, v in vmos.items() if k not in claimed and v.committed_bytes]
    buckets = [
        *named,
        BucketSize(
            name="Undigested",
            size_bytes=sum(v.committed_bytes for v in undigested),
            vmo_count=len(undigested),
        ),
    ]
    notes: list[str] = []
    kernel = snapshot.kernel
    if kernel is None:
        notes.append("no kernel memory figures: no Orphaned, Kernel or Free buckets")
    else:
        in_vmos = sum(v.committed_bytes for v in vmos.values())
        orphaned = kernel.vmo_bytes - in_vmos
        if orphaned < 0:
            notes.append(
                f"the VMOs hold {-orphaned} bytes more than the kernel's VMO total:"
                " Orphaned shown as 0"
            )
            orphaned = 0
        buckets += [
            BucketSize(name="Orphaned", size_bytes=orphaned),
            BucketSize(
                name="Kernel",
                size_bytes=kernel.wired_bytes
                + kernel.heap_total_bytes
                + kernel.mmu_bytes
                + kernel.ipc_bytes
                + kernel.other_bytes,
            ),
            BucketSize(name="Free", size_bytes=kernel.free_bytes),
        ]
    return Digest(buckets=tuple(buckets), notes=tuple(notes))


def _category_row(name: str) -> str:
    # The attribution's kinds are lower case ("free", "kernel VMOs"); digest rows start
    # with a capital, as Fuchsia's "Undigested", "Kernel" and "Free" do.
    return name[:1].upper() + name[1:]


def exact_digest(
    snapshot: Snapshot, rules: Sequence[BucketRule], attribution: Attribution
) -> Digest:
    """The bucket sizes of ``snapshot`` by exact attribution (see the module doc)."""
    exact = attribution.vmos
    claims = _claim(snapshot, rules, exact)
    claimed = {koid for koids in claims for koid in koids}
    # Every row as an exact fraction, keyed by its position (names may repeat: a bucket
    # file may call a bucket "Free").
    named = [
        (rule.name, sum((exact[k] for k in koids), Fraction(0)), len(koids))
        for rule, koids in zip(rules, claims, strict=True)
    ]
    named.sort(key=lambda row: -row[1])  # stable: ties keep file order
    rest = [k for k, v in exact.items() if v and k not in claimed]
    rows: list[tuple[str, Fraction, int]] = [
        *named,
        (UNDIGESTED, sum((exact[k] for k in rest), Fraction(0)), len(rest)),
    ]
    estimated = sum((p.estimated for p in attribution.processes.values()), Fraction(0))
    if estimated:
        rows.append((ESTIMATED, estimated, 0))
    kernel = sum((p.kernel_total for p in attribution.processes.values()), Fraction(0))
    if kernel or attribution.exact:
        # An approximate source that cannot tell (a capture) has its kernel memory in
        # the categories; a 0 row would read as "the processes cost the kernel nothing".
        rows.append((KERNEL_PROCESSES, kernel, 0))
    categories = sorted(
        ((k, v) for k, v in attribution.categories.items() if k != "free"),
        key=lambda item: (-item[1], item[0]),
    )
    rows += [(_category_row(k), v, 0) for k, v in categories]
    rows.append(("Free", attribution.categories.get("free", Fraction(0)), 0))
    whole = integer_parts((str(i), size) for i, (_, size, _) in enumerate(rows))
    buckets = [
        BucketSize(name=name, size_bytes=whole[str(i)], vmo_count=count)
        for i, (name, _, count) in enumerate(rows)
    ]
    if attribution.residual:
        residual = attribution.total_bytes - sum(whole.values())
        buckets.append(BucketSize(name=RESIDUAL, size_bytes=residual))
    return Digest(
        buckets=tuple(buckets),
        notes=attribution.notes,
        total_bytes=attribution.total_bytes,
        exact=attribution.exact,
    )
