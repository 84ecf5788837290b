"""Capture files as a source: a snapshot taken earlier, elsewhere, or on another system.

:func:`open_capture` tells the format by content, never by file name:

- gzip (magic bytes ``1f 8b``) is decompressed first, whatever the name;
- a JSON object whose first key is ``"format": "mxmem-snapshot"`` is mxmem's own snapshot
  file (``mxmem capture``; :mod:`.snapshot_file`, ``docs/capture-format.md``);
- a JSON array is ``memgraph`` output (:mod:`.memgraph`);
- anything else is taken for a Fuchsia ``memory_monitor`` capture, read by
  ``mxmem.sources.capture.fuchsia.load(document, name=...)`` (given the parsed JSON).

Asked for ``Level.PAGES``, a capture source returns the file's page facts (an mxmem
snapshot file saved at that level) or, for a file without them, facts derived from its
VMO figures (:mod:`.pages`).

Every problem with a file is one :class:`~mxmem.errors.SourceError` line naming the file
and the place in it.
"""

from __future__ import annotations

import gc
import gzip
import io
import json
import sys
import zlib
from collections.abc import Callable, Collection
from dataclasses import replace
from importlib import import_module
from typing import BinaryIO

from mxmem.errors import SourceError
from mxmem.model import Level, Snapshot
from mxmem.sources.capture.memgraph import NO_MAPPINGS_NOTE

__all__ = [
    "NO_MAPPINGS_NOTE",
    "STDIN",
    "STDIN_NAME",
    "CaptureSource",
    "load_capture",
    "open_capture",
    "read_capture",
]

#: The file name that means standard input (``--capture=-``, ``treemap -``).
STDIN = "-"
#: How errors name standard input.
STDIN_NAME = "standard input"

GZIP_MAGIC = b"\x1f\x8b"
# A decompressed capture larger than this is a gzip bomb, not a system (scale:100000, the
# largest world, is ~60 MB of snapshot JSON).
MAX_CAPTURE_BYTES = 4 << 30
# The mxmem snapshot writer puts "format" first; the sniff looks this far in.
_SNIFF_BYTES = 256
_UTF8_BOM = b"\xef\xbb\xbf"


class CaptureSource:
    """A source over one captured snapshot. Whatever level is asked for, it returns what
    the file has (a capture cannot collect more later), with one exception: asked for
    ``Level.PAGES`` when the file has no page facts, it derives them from the VMO
    figures the file has (:mod:`.pages`; approximate, with notes saying why), once."""

    def __init__(self, snapshot: Snapshot, name: str) -> None:
        self._snapshot = snapshot
        self._name = name
        self._paged: Snapshot | None = None

    @property
    def name(self) -> str:
        return self._name

    def snapshot(
        self, level: Level = Level.FULL, processes: Collection[int] | None = None
    ) -> Snapshot:
        if level < Level.PAGES or self._snapshot.pages is not None:
            return self._snapshot
        if self._paged is None:
            # Only now: deriving walks every VMO's clone family, which no other tool needs.
            from mxmem.sources.capture.pages import derive_page_facts

            stored = self._snapshot
            # As for loading: the cyclic GC would rescan the many new acyclic objects
            # (10k processes' memgraph: 0.4 s with it off, 0.9 s on).
            enabled = gc.isenabled()
            gc.disable()
            try:
                facts = derive_page_facts(stored, self._name.removeprefix("capture:"))
            finally:
                if enabled:
                    gc.enable()
            # A capture without VMOs (memgraph without -v) stays at its level.
            paged = Level.PAGES if stored.level >= Level.FULL else stored.level
            self._paged = replace(stored, level=paged, pages=facts)
        return self._paged


def _decompress(data: bytes, where: str) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            out = f.read(MAX_CAPTURE_BYTES + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise SourceError(f"{where}: damaged gzip data ({err})") from None
    if len(out) > MAX_CAPTURE_BYTES:
        raise SourceError(f"{where}: decompresses to more than {MAX_CAPTURE_BYTES} bytes")
    return out


def load_capture(data: bytes, where: str) -> Snapshot:
    """The snapshot in a capture file's bytes; ``where`` names the file in errors."""
    # Loading builds millions of acyclic objects, which the cyclic GC would rescan over
    # and over: with it off, a 100k-process capture loads in 21.5 s instead of 44.8 s
    # (bench/bench_capture.py). Library callers get that too, not only the CLI.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _load(data, where)
    finally:
        if enabled:
            gc.enable()


def _load(data: bytes, where: str) -> Snapshot:
    from mxmem.sources.capture import memgraph, snapshot_file

    if data[:2] == GZIP_MAGIC:
        data = _decompress(data, where)
    head = data[:_SNIFF_BYTES].removeprefix(_UTF8_BOM).lstrip(b" \t\r\n")
    if head.startswith(b"{") and b'"mxmem-snapshot"' in head:
        return snapshot_file.loads(data, where)
    if head.startswith(b"["):
        try:
            # memgraph.cpp printed names as the kernel had them: raw control characters
            # and bytes that are not UTF-8 (which become U+FFFD) are accepted.
            text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
            document = json.loads(text, strict=False)
        except json.JSONDecodeError as err:
            snapshot_file.raise_bad_json(where, err)
        except (RecursionError, ValueError) as err:
            raise SourceError(f"{where}: $: not valid JSON ({type(err).__name__})") from None
        return memgraph.from_records(document, where)
    if head.startswith(b"{") and b'"format"' in head:
        raise SourceError(f"{where}: $.format: unknown capture format")
    return _fuchsia(data, where)


def _fuchsia(data: bytes, where: str) -> Snapshot:
    # Parsed here so that any JSON failure (bad UTF-8, nesting past the recursion limit,
    # an integer of too many digits) is the same one-line error for every format.
    try:
        document = json.loads(data)
    except (RecursionError, ValueError):
        raise SourceError(f"{where}: unknown capture format (not JSON)") from None
    if not isinstance(document, dict):
        raise SourceError(f"{where}: unknown capture format")
    try:
        module = import_module("mxmem.sources.capture.fuchsia")
    except ImportError:
        raise SourceError(f"{where}: unknown capture format") from None
    load: Callable[..., object] | None = getattr(module, "load", None)
    if load is None:
        raise SourceError(f"{where}: unknown capture format")
    snapshot = load(document, name=where)
    if not isinstance(snapshot, Snapshot):
        raise SourceError(f"{where}: unknown capture format")
    return snapshot


def read_capture(stream: BinaryIO, where: str) -> CaptureSource:
    """A source over the capture read from ``stream`` (to its end, now); ``where`` names
    it in errors. Any format, gzipped or not: a pipe is told by content like a file."""
    try:
        data = stream.read(MAX_CAPTURE_BYTES + 1)
    except OSError as err:
        raise SourceError(f"{where}: {err.strerror or err}") from None
    if len(data) > MAX_CAPTURE_BYTES:
        raise SourceError(f"{where}: larger than {MAX_CAPTURE_BYTES} bytes")
    if not data or data.isspace():
        raise SourceError(
            f"{where}: empty (expected a capture: memgraph JSON, an mxmem snapshot or a"
            " Fuchsia capture)"
        )
    return CaptureSource(load_capture(data, where), f"capture:{where}")


def open_capture(path: str) -> CaptureSource:
    """A source over the capture file at ``path`` (read and checked now); ``-`` is
    standard input (``mxmem capture -o - | mxmem --capture=- ps``)."""
    if path == STDIN:
        stdin = sys.stdin
        buffer = None if stdin is None else getattr(stdin, "buffer", None)
        if buffer is None:
            raise SourceError(f"{STDIN_NAME}: not available to read a capture from")
        return read_capture(buffer, STDIN_NAME)
    try:
        with open(path, "rb") as f:
            return read_capture(f, path)
    except OSError as err:
        raise SourceError(f"{path}: {err.strerror or err}") from None
