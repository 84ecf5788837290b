"""mxmem's own snapshot files: a lossless, versioned JSON form of a :class:`Snapshot`.

:func:`dumps` and :func:`loads` are exact inverses: ``loads(dumps(s)) == s`` for every
snapshot whose references are consistent (what every source produces). The format is
documented in ``docs/capture-format.md``; bulk objects (mappings, VMOs, threads,
handles) are positional arrays so that a large system's file stays small.

Loading checks everything — types, ranges, duplicate koids, references to missing
objects, cycles in parent chains — and reports the first problem as one
:class:`~mxmem.errors.SourceError` line with its JSON path (``$.processes[3].koid``).

A snapshot taken at ``Level.PAGES`` carries its page facts (exact attribution, issue 6)
under the optional top-level key ``pages``; a file without it reads as before, so files
written before page facts existed still load, and a snapshot without page facts is still
written byte for byte as before.

The model's typed facts are written in version 1's own terms, so readers of either age
read files of either age: the platform is the key ``platform`` (a file without it was
written before it existed: inferred from ``source``), a job's charges are its
``[[key, value]]`` extras (``memory.current``, ``kpagecgroup``), a VMO without a parent
has parent koid 0, the notes about the kernel address space are the ``notes`` starting
with ``"kernel address space: "``, and a snapshot without real mappings (a memgraph
capture's) has ``"has_mappings": false`` (or, written before that key, its note).
"""


from mxmem.sources.capture.snapshot_file.read import from_json, loads, raise_bad_json
from mxmem.sources.capture.snapshot_file.wire import FORMAT, VERSION
from mxmem.sources.capture.snapshot_file.write import dumps, to_json

__all__ = ["FORMAT", "VERSION", "dumps", "from_json", "loads", "raise_bad_json", "to_json"]
