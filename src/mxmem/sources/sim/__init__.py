"""The simulated Magenta kernel as a source."""

from __future__ import annotations

from mxmem.sources.sim.kernel import KERNEL, PAGE_SIZE, Kernel
from mxmem.sources.sim.source import SimSource, open_sim

__all__ = ["KERNEL", "PAGE_SIZE", "Kernel", "SimSource", "open_sim"]
