"""What the host source's VMO kinds mean for the page reads (``kinds`` of
:func:`.pagefacts.host_page_facts`). Apart from the page modules so that the FULL scan,
which names the kinds, imports no numpy."""

from __future__ import annotations

__all__ = [
    "ANON",
    "DMABUF",
    "FILE",
    "HUGETLB",
    "MEMORY_OBJECTS",
    "NOT_READ",
    "PHYSICAL",
    "SHMEM",
    "SPECIAL",
]

# What the host source's VMO kinds mean for page reads (``kinds`` of host_page_facts).
ANON = "anon"  # private anonymous memory of one VMA
FILE = "file"  # a file's page cache (regular files, devices)
SHMEM = "shmem"  # memfd, tmpfs/shm files, SysV segments, MAP_SHARED anonymous memory
DMABUF = "dmabuf"  # exporter memory, not in any /proc/meminfo counter
SPECIAL = "special"  # [vdso], [vvar]...: the kernel's pages
HUGETLB = "hugetlb"  # hugetlbfs and MAP_HUGETLB: pages of the hugetlb pool
PHYSICAL = "physical"  # VM_PFNMAP/VM_IO: device memory

MEMORY_OBJECTS = frozenset({SHMEM, DMABUF})
NOT_READ = frozenset({SPECIAL, HUGETLB, PHYSICAL})
