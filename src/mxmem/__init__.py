"""mxmem: where did the memory go? Magenta's memory tools, in Python.

Public API::

    import mxmem
    mxmem.format_size(1419605)          # '1386.3k'
    snap = mxmem.snapshot("sim:doc")    # a Snapshot from any source
"""

from __future__ import annotations

from mxmem.model import Level, Snapshot
from mxmem.render.units import format_size, parse_size

__version__ = "0.1.0"


def snapshot(source: str = "sim", level: Level = Level.FULL) -> Snapshot:
    """Take a snapshot of a source named as on the command line (``sim``,
    ``sim:doc-vmaps``, ``sim:scale:1000``, ``sim:world.toml``)."""
    from mxmem.sources import open_source

    return open_source(source).snapshot(level)


__all__ = ["Level", "Snapshot", "__version__", "format_size", "parse_size", "snapshot"]
