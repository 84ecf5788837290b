"""Fuchsia's digest: memory grouped into named buckets (``digest.cc``, spec §11.4).

A bucket file is a JSON array of ``{"name", "process", "vmo"}`` objects (newer files
also carry an ``event_code``, accepted and ignored). ``process`` and ``vmo`` are regular
expressions matched against the WHOLE name (``re.fullmatch``, as ``std::regex_match``);
a list of patterns matches when any of them does; a missing or empty pattern matches
every name (Fuchsia's ``BucketMatch`` treats an empty regex so).

Assignment follows Fuchsia's ``Digester``: bucket by bucket in file order, and for each
bucket the processes in snapshot order (capture order for a capture) whose name matches,
and each such process's VMOs: a VMO whose name matches goes to the bucket unless an
earlier bucket claimed it. So when two buckets could claim a VMO, the first in the file
does, whichever process references it. VMOs with 0 committed bytes are skipped (they add
nothing). A bucket's size is the committed bytes of the VMOs it claimed, each page once
(:func:`vmo_pages_once`: on Linux, pages shared copy-on-write after fork are resident in
several processes' VMOs, and count once among them).

Then the named buckets are sorted by size, largest first; equal sizes keep file order
(a stable sort, so the output is deterministic). After them come, always, in this order:

- ``Undigested``: committed bytes of every VMO of the snapshot that no bucket claimed,
  except the kernel's own (``kernel_only``: on the simulated kernel its image and heap,
  on Linux its slab and vmalloc areas), whose memory is in ``Kernel`` (a Fuchsia
  capture holds only the VMOs processes reference, so it has none);
- ``Orphaned``: the kernel's VMO total minus the committed bytes of those VMOs (memory
  in VMOs the snapshot does not list, e.g. the kernel's own VMOs whose pages are VMO
  pages), never negative: if the VMOs add up to more than the kernel's figure (a
  snapshot not taken atomically), it is 0 and a note says by how much;
- ``Kernel``: wired + heap + mmu + ipc + other;
- ``Free``: free memory;
- ``Residual``, only when the rows above do not add up to the total memory (kernel
  figures that do not add up, or an Orphaned clamped at 0): total minus the rest, either
  sign, so that the rows always add up to the total.

The last four need kernel figures; a snapshot without them has none of them, and a note
says so. ``undigested`` lists, per process, the committed bytes of the Undigested VMOs
it references (a VMO several processes reference counts for each, as Fuchsia's
``--undigested`` prints them), largest first.

Exact mode (``digest --attribution=exact``, issue 6) claims VMOs by the same rule, but
sizes them by the exact rule's figures (:mod:`mxmem.accounting.figures`): each process's
private + shared bytes by the VMO they were reached through, in whole bytes that add up
to its printed figures, so no page is in two buckets and a process's undigested bytes
are its own share. After the named buckets come:

- ``Undigested``: the rest of the memory attributed to processes through VMOs (also
  pages a source cannot tie to a VMO);
- ``Estimated (processes)``, only for a source with per-process figures that are not
  page-level (a Linux host read without root);
- ``Kernel (processes)``: kernel memory the processes cause (page tables, kernel
  stacks, kernel objects); left out where the source cannot tell (a capture: the
  kernel's memory is in the categories);
- the attribution's categories, by kind, largest first, ``Free`` last (always shown):
  memory no process can be blamed for, instead of the 2017 ``Orphaned`` (a difference
  of two figures that could go negative) and the lump ``Kernel``;
- ``Residual``, only when the attribution does not add up to the total (a live host):
  total minus the rest, either sign, never folded into another row.

The rows add up to the total physical memory exactly, in either mode.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mxmem.accounting.figures import Figures, vmo_bytes
from mxmem.accounting.fuchsia import process_vmo_koids
from mxmem.errors import UsageError
from mxmem.model import Snapshot

__all__ = [
    "ESTIMATED",
    "FREE",
    "KERNEL",
    "KERNEL_PROCESSES",
    "ORPHANED",
    "RESIDUAL",
    "UNDIGESTED",
    "BucketRule",
    "BucketSize",
    "Digest",
    "UndigestedProcess",
    "bucket_rules",
    "digest",
    "exact_digest",
]

UNDIGESTED = "Undigested"
ORPHANED = "Orphaned"
KERNEL = "Kernel"
FREE = "Free"
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
class UndigestedProcess:
    """A process's undigested memory (Fuchsia's ``--undigested``)."""

    koid: int
    name: str
    size_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Digest:
    """The rows, which add up to ``total_bytes`` (without kernel figures: the memory of
    the processes' VMOs, all the rows there are); ``exact``: None in 2017 mode, else
    whether the attribution was exact (False: approximate, the notes say why)."""

    buckets: tuple[BucketSize, ...]
    total_bytes: int
    undigested: tuple[UndigestedProcess, ...] = ()
    notes: tuple[str, ...] = ()
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
    snapshot: Snapshot, rules: Sequence[BucketRule], sized: Mapping[int, object]
) -> list[list[int]]:
    """The VMO koids each rule claims, in claim order, by Fuchsia's order (bucket by
    bucket in file order, then the processes in snapshot order, then each one's VMOs);
    only VMOs with a nonzero size in ``sized`` are claimed."""
    vmos = snapshot.vmos
    claimed: set[int] = set()
    out: list[list[int]] = [[] for _ in rules]
    refs = {koid: process_vmo_koids(p) for koid, p in snapshot.processes.items()}
    for i, rule in enumerate(rules):
        for process in snapshot.processes.values():
            if not rule.process_match(process.name):
                continue
            for koid in refs[process.koid]:
                vmo = vmos.get(koid)
                if vmo is None or not sized.get(koid) or koid in claimed:
                    continue
                if rule.vmo_match(vmo.name):
                    claimed.add(koid)
                    out[i].append(koid)
    return out


def _named(
    rules: Sequence[BucketRule], claims: list[list[int]], size: Mapping[int, int]
) -> list[BucketSize]:
    named = [
        BucketSize(name=rule.name, size_bytes=sum(size[k] for k in koids), vmo_count=len(koids))
        for rule, koids in zip(rules, claims, strict=True)
    ]
    named.sort(key=lambda b: -b.size_bytes)  # stable: ties keep file order
    return named


def _undigested(
    snapshot: Snapshot, per_process: Mapping[int, int]
) -> tuple[UndigestedProcess, ...]:
    rows = [
        UndigestedProcess(koid=koid, name=snapshot.processes[koid].name, size_bytes=size)
        for koid, size in per_process.items()
        if size
    ]
    rows.sort(key=lambda r: (-r.size_bytes, r.koid))
    return tuple(rows)


def vmo_pages_once(snapshot: Snapshot) -> dict[int, int]:
    """The bytes of each VMO for the buckets, each page once: its committed bytes,
    except the kernel's own VMOs (the Kernel row's).

    A Linux VMO's committed bytes are its resident pages (what ``vmos`` shows as alloc),
    and a page a forked child still shares copy-on-write is resident in the parent's VMO
    and the child's alike. Where the source gives a VMO's one mapping the kernel's own
    figures (Linux ``smaps``), the bytes of that mapping's pages that other VMOs hold too
    (its Rss - Pss: shared minus its share of them) are taken off, so the VMOs that
    share a page add up to the page once. A VMO with several mappings is one object
    their processes share (a file): its pages are in no other VMO and count as they are.
    """
    vmos = snapshot.vmos
    sizes = {koid: v.committed_bytes for koid, v in vmos.items() if not v.kernel_only}
    lone: dict[int, int] = {}  # VMO koid -> Rss - Pss of its one mapping
    for process in snapshot.processes.values():
        if process.aspace is None:
            continue
        for mapping in process.aspace.mappings():
            stats = mapping.stats
            if stats is None or mapping.vmo_koid not in sizes:
                continue
            if vmos[mapping.vmo_koid].num_mappings != 1:
                continue
            lone[mapping.vmo_koid] = stats.shared_bytes - stats.scaled_shared_bytes
    for koid, extra in lone.items():
        if koid in sizes and extra > 0:
            sizes[koid] = max(0, sizes[koid] - extra)
    return sizes


def digest(snapshot: Snapshot, rules: Sequence[BucketRule]) -> Digest:
    """The bucket sizes of ``snapshot`` (see the module doc for the rule)."""
    refs = {koid: process_vmo_koids(p) for koid, p in snapshot.processes.items()}
    # The kernel's own VMOs (kernel_only: on the simulated kernel its image and heap,
    # on Linux its slab and vmalloc areas) are memory the Kernel row counts.
    committed = vmo_pages_once(snapshot)
    claims = _claim(snapshot, rules, committed)
    claimed = {koid for koids in claims for koid in koids}
    undigested = [k for k, size in committed.items() if k not in claimed and size]
    in_vmos = sum(committed.values())
    buckets = [
        *_named(rules, claims, committed),
        BucketSize(
            name=UNDIGESTED,
            size_bytes=sum(committed[k] for k in undigested),
            vmo_count=len(undigested),
        ),
    ]
    left = set(undigested)
    per_process = {
        koid: sum(committed[k] for k in koids if k in left) for koid, koids in refs.items()
    }
    notes: list[str] = []
    kernel = snapshot.kernel
    total = in_vmos
    if kernel is None:
        notes.append("no kernel memory figures: no Orphaned, Kernel or Free buckets")
    else:
        total = kernel.total_bytes
        orphaned = kernel.vmo_bytes - in_vmos
        if orphaned < 0:
            notes.append(
                f"the VMOs hold {-orphaned} bytes more than the kernel's VMO total:"
                " Orphaned shown as 0"
            )
            orphaned = 0
        buckets += [
            BucketSize(name=ORPHANED, size_bytes=orphaned),
            BucketSize(
                name=KERNEL,
                size_bytes=kernel.wired_bytes
                + kernel.heap_total_bytes
                + kernel.mmu_bytes
                + kernel.ipc_bytes
                + kernel.other_bytes,
            ),
            BucketSize(name=FREE, size_bytes=kernel.free_bytes),
        ]
        residual = total - sum(b.size_bytes for b in buckets)
        if residual:
            notes.append(
                f"the rows above Residual add up to {total - residual} bytes, not the"
                f" total {total}: the kernel's figures do not add up (or Orphaned was"
                " clamped); the difference is the Residual row"
            )
            buckets.append(BucketSize(name=RESIDUAL, size_bytes=residual))
    return Digest(
        buckets=tuple(buckets),
        total_bytes=total,
        undigested=_undigested(snapshot, per_process),
        notes=tuple(notes),
    )


def _category_row(name: str) -> str:
    # The attribution's kinds are lower case ("free", "kernel VMOs"); digest rows start
    # with a capital, as Fuchsia's "Undigested", "Kernel" and "Free" do.
    return name[:1].upper() + name[1:]


def exact_digest(snapshot: Snapshot, rules: Sequence[BucketRule], figs: Figures) -> Digest:
    """The bucket sizes of ``snapshot`` by the exact rule's figures ``figs`` (see the
    module doc)."""
    system = figs.system
    assert system is not None, "the exact rule's figures"
    # Each process's private + shared bytes by VMO, in whole bytes that add up to it.
    shares = {koid: vmo_bytes(figs, koid) for koid in figs.measured}
    size: dict[int, int] = {}
    for by_vmo in shares.values():
        for vkoid, nbytes in by_vmo.items():
            size[vkoid] = size.get(vkoid, 0) + nbytes
    claims = _claim(snapshot, rules, size)
    claimed = {koid for koids in claims for koid in koids}
    rest = [k for k, v in size.items() if v and k not in claimed]
    buckets = [
        *_named(rules, claims, size),
        BucketSize(name=UNDIGESTED, size_bytes=sum(size[k] for k in rest), vmo_count=len(rest)),
    ]
    per_process = {
        koid: sum(n for k, n in by_vmo.items() if k not in claimed)
        for koid, by_vmo in shares.items()
    }
    known = [f for f in figs.processes.values() if f is not None]
    estimated = sum(f.estimated for f in known)
    if estimated:
        buckets.append(BucketSize(name=ESTIMATED, size_bytes=estimated))
    if system.kernel_known:
        # A source that cannot tell (a capture) has its kernel memory in the categories;
        # a 0 row would read as "the processes cost the kernel nothing".
        kernel = sum(f.kernel or 0 for f in known)
        buckets.append(BucketSize(name=KERNEL_PROCESSES, size_bytes=kernel))
    free = 0
    for name, nbytes in system.categories:
        if name == "free":
            free = nbytes
        else:
            buckets.append(BucketSize(name=_category_row(name), size_bytes=nbytes))
    buckets.append(BucketSize(name=FREE, size_bytes=free))
    if system.has_residual:
        buckets.append(BucketSize(name=RESIDUAL, size_bytes=system.residual_bytes))
    return Digest(
        buckets=tuple(buckets),
        total_bytes=system.total_bytes,
        undigested=_undigested(snapshot, per_process),
        notes=system.notes,
        exact=system.exact,
    )
