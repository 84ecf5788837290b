"""``vmos``: every VMO a process holds a handle to or maps (spec §4).

:func:`vmos_rows` lists them in the kernel's ``MX_INFO_PROCESS_VMOS`` order — first one
row per VMO handle in handle-table order, then one row per mapping in address-space
pre-order, with no de-duplication — and :func:`write_vmos` prints them as ``vmos.cpp``
did, :func:`vmos_json` as JSON (``schemas/vmos.schema.json``).
"""

from __future__ import annotations

from collections.abc import Mapping as MappingOf
from typing import NamedTuple, TextIO

from mxmem.model import ObjType, Process, Rights, Vmo, rights_string
from mxmem.render.jsonout import JsonValue
from mxmem.render.text import safe_text
from mxmem.render.units import format_size

__all__ = ["HEADER", "VmoRow", "header", "rights_names", "vmos_json", "vmos_rows", "write_vmos"]

HEADER = "rights  koid parent #chld #map #shr    size   alloc name\n"
# vmos.cpp's widths of the koid and parent columns: the least, widened to the data (a
# Linux host's koids are 16 digits; Magenta's fit).
KOID_WIDTH = 5
PARENT_WIDTH = 6


def header(koid_width: int = KOID_WIDTH, parent_width: int = PARENT_WIDTH) -> str:
    return (
        f"rights {'koid':>{koid_width}} {'parent':>{parent_width}}"
        " #chld #map #shr    size   alloc name\n"
    )

# JSON lists rights in the order the text column shows them (rwxmdt), then the rest.
_RIGHTS_ORDER = (
    Rights.READ,
    Rights.WRITE,
    Rights.EXECUTE,
    Rights.MAP,
    Rights.DUPLICATE,
    Rights.TRANSFER,
    Rights.GET_PROPERTY,
    Rights.SET_PROPERTY,
)


def rights_names(rights: int) -> list[str]:
    """The names of the rights set in ``rights`` (``["READ", "MAP", ...]``)."""
    return [str(r.name) for r in _RIGHTS_ORDER if rights & r]


class VmoRow(NamedTuple):
    via: str  # "HANDLE" or "MAPPING"
    rights: int | None  # the handle's rights; None for a mapping
    vmo: Vmo
    # What vmos prints as the parent: the parent's user koid (0 if the parent is
    # kernel-only), or None when the VMO is not a clone.
    parent_koid: int | None


def vmos_rows(process: Process, vmos: MappingOf[int, Vmo]) -> tuple[list[VmoRow], int]:
    """The rows for ``process``, and how many referenced VMOs were missing from ``vmos``
    (a source that lost them between listing and reading; they cannot be printed)."""
    rows: list[VmoRow] = []
    missing = 0

    def add(via: str, rights: int | None, koid: int) -> None:
        nonlocal missing
        vmo = vmos.get(koid)
        if vmo is None:
            missing += 1
            return
        parent: int | None = None
        if vmo.parent_koid:
            parent_vmo = vmos.get(vmo.parent_koid)
            parent = parent_vmo.user_koid if parent_vmo is not None else vmo.parent_koid
        rows.append(VmoRow(via, rights, vmo, parent))

    for handle in process.handles or ():
        if handle.type is ObjType.VMO:
            add("HANDLE", handle.rights, handle.koid)
    if process.aspace is not None:
        for mapping in process.aspace.mappings():
            add("MAPPING", None, mapping.vmo_koid)
    return rows, missing


def write_vmos(rows: list[VmoRow], out: TextIO) -> None:
    """Print the rows as ``vmos.cpp`` does, with the header before and after them; the
    koid and parent columns are as wide as their widest value needs."""
    koid_width = max([KOID_WIDTH, *(len(str(r.vmo.user_koid)) for r in rows)])
    parent_width = max([PARENT_WIDTH, *(len(str(r.parent_koid or "")) for r in rows)])
    head = header(koid_width, parent_width)
    lines = [head]
    for row in rows:
        vmo = row.vmo
        rights = "-" if row.rights is None else rights_string(row.rights)
        parent = "-" if row.parent_koid is None else str(row.parent_koid)
        # A physical VMO maps a device range and uses no RAM: vmo-utils.c prints "phys".
        alloc = "phys" if vmo.physical else format_size(vmo.committed_bytes)
        name = safe_text(vmo.name) if vmo.name else "-"
        lines.append(
            f"{rights:>6} {vmo.user_koid:{koid_width}d} {parent:>{parent_width}}"
            f" {vmo.num_children:5d}"
            f" {vmo.num_mappings:4d} {vmo.share_count:4d} {format_size(vmo.size_bytes):>7}"
            f" {alloc:>7} {name}\n"
        )
    lines.append(head)
    out.write("".join(lines))


def vmos_json(rows: list[VmoRow]) -> list[JsonValue]:
    """The rows as JSON objects (``schemas/vmos.schema.json``)."""
    out: list[JsonValue] = []
    for row in rows:
        vmo = row.vmo
        rights: JsonValue = None
        if row.rights is not None:
            rights = list[JsonValue](rights_names(row.rights))
        out.append(
            {
                "via": row.via,
                "rights": rights,
                "koid": vmo.user_koid,
                "parent_koid": row.parent_koid,
                "num_children": vmo.num_children,
                "num_mappings": vmo.num_mappings,
                "share_count": vmo.share_count,
                "size_bytes": vmo.size_bytes,
                "committed_bytes": None if vmo.physical else vmo.committed_bytes,
                "physical": vmo.physical,
                "name": vmo.name,
            }
        )
    return out
