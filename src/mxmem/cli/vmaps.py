"""``mxmem vmaps <koid>``: a process's address space, VMARs and mappings (spec §3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from mxmem.cli.common import Tool, find_process, print_notes, process_args
from mxmem.render.jsonout import write_json
from mxmem.render.vmaps import vmaps_entries, vmaps_json, write_vmaps
from mxmem.sources import Source

# vmaps.c's help, as quoted in docs/memory.md.
HELP = """\
Usage: vmaps <process-koid>

Dumps a process's memory maps to stdout.

First column:
  "/A" -- Process address space
  "/R" -- Root VMAR
  "R"  -- VMAR (R for Region)
  "M"  -- Mapping

  Indentation indicates parent/child relationship.
"""


def run(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
    parsed = process_args("vmaps", args, out, err, HELP)
    if isinstance(parsed, int):
        return parsed
    found = find_process("vmaps", parsed.koid, source, err)
    if isinstance(found, int):
        return found
    snapshot, process = found
    assert process.aspace is not None  # find_process checked it
    entries = vmaps_entries(process.aspace, snapshot.vmos)
    if parsed.json:
        write_json(vmaps_json(entries), out)
    else:
        write_vmaps(entries, out)
    print_notes("vmaps", snapshot.notes, err)
    return 0


TOOL = Tool("vmaps", "a process's address space: VMARs and mappings", run)
