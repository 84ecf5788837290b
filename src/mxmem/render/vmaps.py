"""``vmaps``: a process's address space, VMARs and mappings (spec §3).

:func:`vmaps_entries` flattens an :class:`~mxmem.model.Aspace` into the kernel's
``MX_INFO_PROCESS_MAPS`` order (depth-first pre-order, ascending addresses);
:func:`write_vmaps` prints it byte for byte as ``vmaps.c`` did, :func:`vmaps_json` as JSON
(``schemas/vmaps.schema.json``).
"""

from __future__ import annotations

from collections.abc import Mapping as MappingOf
from typing import NamedTuple, TextIO

from mxmem.model import Aspace, Mapping, Vmar, Vmo, perm_string
from mxmem.render.jsonout import JsonValue
from mxmem.render.text import c_pad, safe_text
from mxmem.render.units import format_size

__all__ = ["VmapsEntry", "vmaps_entries", "vmaps_json", "write_vmaps"]

_LETTER = {"aspace": "A", "vmar": "R", "mapping": "M"}


class VmapsEntry(NamedTuple):
    depth: int
    type: str  # "aspace", "vmar" or "mapping"
    name: str
    base: int
    size: int
    mapping: Mapping | None = None
    # The koid vmaps prints for the mapped VMO: 0 for a kernel-only VMO.
    vmo_koid: int = 0

    @property
    def end(self) -> int:
        return self.base + self.size


def vmaps_entries(aspace: Aspace, vmos: MappingOf[int, Vmo]) -> list[VmapsEntry]:
    """Depth 0 is the address space, depth 1 its root VMAR, deeper VMARs and mappings."""
    entries = [VmapsEntry(0, "aspace", aspace.name, aspace.base, aspace.size)]
    stack: list[tuple[int, Vmar | Mapping]] = [(1, aspace.root)]
    while stack:
        depth, node = stack.pop()
        if isinstance(node, Vmar):
            entries.append(VmapsEntry(depth, "vmar", node.name, node.base, node.size))
            stack.extend((depth + 1, child) for child in reversed(node.children))
        else:
            vmo = vmos.get(node.vmo_koid)
            koid = vmo.user_koid if vmo is not None else node.vmo_koid
            entries.append(
                VmapsEntry(depth, "mapping", node.name, node.base, node.size, node, koid)
            )
    return entries


def _addr(addr: int) -> str:
    # vmaps.c pads 32-bit addresses with underscores so the columns line up.
    return f"________{addr:08x}" if addr <= 0xFFFFFFFF else f"{addr:016x}"


def write_vmaps(entries: list[VmapsEntry], out: TextIO) -> None:
    """Print the entries as ``vmaps.c`` does (no header). The ``:vmo`` koids are
    ``%5llu``, widened to the widest (a Linux host's are 16 digits), so the names still
    start in one column."""
    max_depth = max([2, *(e.depth for e in entries)])
    koid_width = max([5, *(len(str(e.vmo_koid)) for e in entries if e.mapping is not None)])
    lines: list[str] = []
    for e in entries:
        letter = _LETTER[e.type]
        if e.depth < 2:
            # "/%c%*s" with max_depth-3: C treats the -1 of a two-level tree as "%-1s",
            # one space, so /A and /R lines are then one column wider than the rest.
            prefix = f"/{letter}{c_pad(max_depth - 3)}"
        else:
            prefix = f"{c_pad(e.depth - 2)}{letter}{c_pad(max_depth - e.depth)}"
        size = format_size(e.size)
        m = e.mapping
        if m is not None:
            res = format_size(m.committed_bytes)
            cols = (
                f" {perm_string(m.perms)} {size:>5}:sz {res:>4}:res"
                f" {e.vmo_koid:{koid_width}d}:vmo"
            )
        else:
            cols = f" {size:>9}:sz" + " " * (14 + koid_width)
        lines.append(f"{prefix} {_addr(e.base)}-{_addr(e.end)}{cols} '{safe_text(e.name)}'\n")
    out.write("".join(lines))


def vmaps_json(entries: list[VmapsEntry]) -> list[JsonValue]:
    """The entries as JSON objects (``schemas/vmaps.schema.json``)."""
    out: list[JsonValue] = []
    for e in entries:
        obj: dict[str, JsonValue] = {
            "depth": e.depth,
            "type": e.type,
            "name": e.name,
            "base": e.base,
            "size": e.size,
        }
        m = e.mapping
        if m is not None:
            obj["perms"] = perm_string(m.perms)
            obj["vmo_koid"] = e.vmo_koid
            obj["vmo_offset"] = m.vmo_offset
            obj["committed_bytes"] = m.committed_bytes
        out.append(obj)
    return out
