"""``mxmem vmos <koid>``: every VMO a process holds a handle to or maps (spec §4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from mxmem.cli.common import Tool, find_process, print_notes, process_args
from mxmem.render.jsonout import write_json
from mxmem.render.vmos import vmos_json, vmos_rows, write_vmos
from mxmem.sources import Source

# Written from the column descriptions of docs/memory.md (vmos.cpp's help says the same).
HELP = """\
Usage: vmos <process-koid>

Dumps a process's VMOs to stdout.

The process either maps or has a handle to every VMO in this list (or both).
The same VMO may appear multiple times: the process could map the same VMO
twice, or have two handles to it, or both map it and have a handle to it.

Columns:
  rights: If the process points to the VMO via a handle, this column
      shows the rights that the handle has, zero or more of:
          r: MX_RIGHT_READ
          w: MX_RIGHT_WRITE
          x: MX_RIGHT_EXECUTE
          m: MX_RIGHT_MAP
          d: MX_RIGHT_DUPLICATE
          t: MX_RIGHT_TRANSFER
      NOTE: Non-handle entries will have a single '-' in this column.
  koid: The koid of the VMO, if it has one. Zero otherwise. A VMO without a
      koid was created by the kernel, and has never had a userspace handle.
  parent: The koid of the VMO's parent, if it's a clone.
  #chld: The number of active clones (children) of the VMO.
  #map: The number of times the VMO is currently mapped into VMARs.
  #shr: The number of processes that map (share) the VMO.
  size: The VMO's current size, in bytes.
  alloc: The amount of physical memory allocated to the VMO, in bytes.
      (mxmem: its resident bytes on every source; on Linux an anonymous
      region's Rss, pages shared copy-on-write with a forked process included.)
      NOTE: If this column contains the value 'phys', it means that the
      VMO points to a raw physical address range like a memory-mapped
      device. 'phys' VMOs do not consume RAM.
  name: The name of the VMO, or - if its name is empty.

To relate this back to ps: each VMO contributes, for its mapped portions
(since not all or any of a VMO's pages may be mapped):
  PRIVATE =  #shr == 1 ? alloc : 0
  SHARED  =  #shr  > 1 ? alloc : 0
  PSS     =  PRIVATE + (SHARED / #shr)
"""


def run(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
    parsed = process_args("vmos", args, out, err, HELP)
    if isinstance(parsed, int):
        return parsed
    found = find_process("vmos", parsed.koid, source, err, need_mappings=False)
    if isinstance(found, int):
        return found
    snapshot, process = found
    rows, missing = vmos_rows(process, snapshot.vmos)
    if parsed.json:
        write_json(vmos_json(rows), out)
    else:
        write_vmos(rows, out)
    notes = list(snapshot.notes)
    if missing:
        notes.append(f"{missing} VMO references could not be resolved and are not listed")
    print_notes("vmos", notes, err)
    return 0


TOOL = Tool("vmos", "a process's VMOs, held by handle or mapped", run)
