"""The version-1 wire format's constants, shared by the writer and the reader."""

from __future__ import annotations

from dataclasses import fields

from mxmem.model import CpuStats, KernelMemory

FORMAT = "mxmem-snapshot"
VERSION = 1

# VMARs nest a few levels deep in any real address space; a deeper tree is damage (and
# would otherwise exhaust the interpreter's recursion limit).
MAX_VMAR_DEPTH = 64

VMO_PHYSICAL = 1
VMO_KERNEL_ONLY = 2

# A job's charges as version-1 extras: the key each is written under, and every key read
# as it (a file from a cgroup v1 host says usage_in_bytes; all are the cgroup's charge).
CHARGE = "memory.current"
CHARGE_KEYS = (CHARGE, "memory.usage_in_bytes")
CHARGED_PAGES = "kpagecgroup"

# The figures every capture has; ``available_bytes`` (Linux only) is saved when known.
KERNEL_FIELDS = tuple(f.name for f in fields(KernelMemory) if f.name != "available_bytes")
CPU_FIELDS = tuple(f.name for f in fields(CpuStats))
