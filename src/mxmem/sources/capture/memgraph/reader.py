"""What every part of the memgraph reader shares: the checker, names, fields and
places."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from operator import itemgetter
from typing import NamedTuple

from mxmem.model import (
    Handle,
    Mapping,
    ObjType,
    Platform,
    Rights,
    TaskStats,
    Thread,
    Vmo,
)
from mxmem.sources.capture._check import U64_LIMIT, Checker

#: The note every memgraph capture carries (its ``has_mappings`` is False), and what
#: tools that need mappings say when they refuse one.
NO_MAPPINGS_NOTE = "this capture has no address spaces (memgraph JSON records no mappings)"

KERNEL_NAMES = {
    "physmem": "total_bytes",
    "free": "free_bytes",
    "vmo": "vmo_bytes",
    "heap": "heap_total_bytes",
    "heap/free": "heap_free_bytes",
    "wired": "wired_bytes",
    "mmu": "mmu_bytes",
    "ipc": "ipc_bytes",
    "other": "other_bytes",
}
VMO_FIELDS = (
    "koid",
    "size_bytes",
    "parent_koid",
    "num_children",
    "num_mappings",
    "share_count",
    "committed_bytes",
)
SIZE_FIELDS = ("private_bytes", "shared_bytes", "pss_bytes")
# The platforms a __META record may name (mxmem's memgraph writes one when not Magenta).
PLATFORMS = tuple(p.value for p in Platform if p is not Platform.MAGENTA)
U64_BITS = U64_LIMIT.bit_length() - 1
# A vmos entry's fields, in one call (see read_vmos).
entry_fields = itemgetter(
    "koid",
    "size_bytes",
    "parent_koid",
    "num_children",
    "num_mappings",
    "share_count",
    "committed_bytes",
    "name",
)


class Place(NamedTuple):
    """A record's place in error messages (``record 5 ("p/1234")``), formatted only when
    an error names it: a large memgraph has tens of thousands of records, all well formed
    as a rule, and each formatting costs a ``json.dumps``."""

    number: int
    rid: str

    def __str__(self) -> str:
        return place_of(self.number, self.rid)


def place_of(index: int, rid: str) -> str:
    return f"record {index} ({json.dumps(rid)[:60]})"


# Where a record is: its place, or the lazy form of it.
Where = str | Place


@dataclass
class RawProcess:
    koid: int
    job_koid: int
    name: str
    place: Where
    stats: TaskStats | None
    handle_stats: dict[ObjType, int] | None
    # Its VMO handles and (placeholder) mappings, in the file's order; those of a
    # kernel-only VMO have koid 0 until its koid is given: ``later`` lists them (a
    # handle?, where in its list, the VMO).
    handles: list[Handle] = field(default_factory=list)
    mappings: list[Mapping] = field(default_factory=list)
    later: list[tuple[bool, int, Vmo]] = field(default_factory=list)
    threads: list[Thread] = field(default_factory=list)


class Reader(Checker):
    def task_ref(self, value: object, prefix: str, place: str) -> int:
        """The koid of a ``"j/K"`` / ``"p/K"`` parent id."""
        text = self.str_(value, place)
        digits = text[len(prefix) :]
        if not text.startswith(prefix) or not digits.isdigit() or not digits.isascii():
            self.fail(place, f"parent {json.dumps(text)[:60]} is not a {prefix}<koid> id")
        return self.int_(int(digits), place)


# Names of the Rights enum that are sets of rights, not a right a handle lists.
NOT_RIGHTS = ("NONE", "DEFAULT_VMO")


def read_rights(reader: Reader, value: object, place: str) -> int:
    rights = 0
    for i, name in enumerate(reader.list_(value, place)):
        text = reader.str_(name, f"{place}[{i}]")
        if text not in Rights.__members__ or text in NOT_RIGHTS:
            reader.fail(f"{place}[{i}]", f"unknown right {json.dumps(text)[:40]}")
        rights |= Rights[text]
    return rights


