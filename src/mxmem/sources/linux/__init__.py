"""The live Linux host as a source (``mxmem --host``).

:mod:`.reader` is the only code that touches ``/proc`` and ``/sys``; :mod:`.procfs`
parses their text; :mod:`.cgroups` turns the memory cgroup tree (or the process tree)
into jobs; :mod:`.host` builds the snapshot and documents how Linux maps onto the model.
"""

from __future__ import annotations

from mxmem.sources.linux.host import HostSource

__all__ = ["HostSource", "open_host"]


def open_host(root: str = "") -> HostSource:
    """``host`` (the running system) or ``host:ROOT`` (a tree with ``ROOT/proc`` and
    ``ROOT/sys``, e.g. a test fixture)."""
    return HostSource(root or "/", "host" if not root else f"host:{root}")
