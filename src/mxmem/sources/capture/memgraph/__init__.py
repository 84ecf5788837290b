"""memgraph JSON (mxmem's or a real Magenta/Zircon system's) as a :class:`Snapshot`.

The records (magenta-tools.md §6) give: kernel records -> :class:`KernelMemory`; ``j``,
``p`` and ``t`` records -> jobs, processes and threads, linked by their ``parent`` ids
in record order (the walker's creation order); a process's ``private_bytes``,
``shared_bytes`` and ``pss_bytes`` -> its ``stats`` (``scaled_shared = pss - private``;
memgraph has no mapped size, so ``mapped_bytes`` is 0). With ``-v``, each process's
``vmos`` entries become the snapshot's VMOs (one per koid; entries with koid 0, VMOs
that only the kernel knows, get koids after the largest in the file and stay
``kernel_only``), its ``HANDLE`` refs become VMO handles with the listed rights and
synthesized values 1, 2, 3... (memgraph records no handle values). With ``-H``,
``handle_stats`` adds handles of the other types (koid 0, no rights).

memgraph records no mappings: only *which* VMOs a process maps. A process's ``MAPPING``
refs are kept as zero-sized mappings at address 0 in a placeholder address space, so
``vmos`` and ``memgraph -v`` can list them, and the snapshot carries
:data:`NO_MAPPINGS_NOTE`: ``vmaps`` (and anything else that needs real addresses)
refuses such a capture rather than print made-up addresses (the snapshot's
``has_mappings`` is False).
"""


from mxmem.sources.capture.memgraph.reader import NO_MAPPINGS_NOTE
from mxmem.sources.capture.memgraph.records import from_records

__all__ = ["NO_MAPPINGS_NOTE", "from_records"]
