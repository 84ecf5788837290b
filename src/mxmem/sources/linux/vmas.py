"""What a Linux VMA is in the model: a process's figures from its smaps fields, the
user range's size, the identity of the object behind a VMA, the runs of VMAs of one
loaded object, mapping permissions and VMO koids. Pure functions, used by the host scan
(:mod:`.host`); the mapping itself is described there."""

from __future__ import annotations

import re
from collections.abc import Iterator

from mxmem.model import Mapping, Perm, TaskStats, Vmar
from mxmem.sources.linux.procfs import MemFigures, Vma


def task_stats(figures: MemFigures, mapped_bytes: int) -> TaskStats:
    """A process's (or one VMA's) figures from its ``smaps_rollup`` (``smaps``) fields."""
    private_pages = figures.private_clean + figures.private_dirty
    return TaskStats(
        mapped_bytes=mapped_bytes,
        private_bytes=private_pages + figures.private_hugetlb,
        shared_bytes=figures.shared_clean + figures.shared_dirty + figures.shared_hugetlb,
        # Pss counts every private page whole, so it is never below them; max() only
        # guards against a malformed file.
        scaled_shared_bytes=max(0, figures.pss - private_pages),
        swap_pss_bytes=figures.swap_pss,
    )


# The top of the user address range (TASK_SIZE) for the usual page-table depths.
_TASK_SIZE = {
    "x86_64": 0x7FFFFFFFF000,  # 4-level paging, 47 bits minus the guard page
    "aarch64": 1 << 48,
    "ppc64le": 1 << 47,
    "riscv64": 1 << 47,
    "s390x": 1 << 53,
    "i686": 0xC0000000,
    "armv7l": 0xBF000000,
}
KERNEL_HALF = 1 << 63  # [vsyscall] lives at 0xffffffffff600000


def task_size(machine: str, highest_end: int) -> int:
    """The user range's size: the architecture's usual ``TASK_SIZE``, or the next power
    of two when a VMA lies above it (5-level paging, 52-bit VAs)."""
    size = _TASK_SIZE.get(machine, 1 << 47)
    if highest_end > size:
        size = 1 << (highest_end - 1).bit_length()
    return size


KOID_BITS = 52


def fold_koid(key: tuple[object, ...]) -> int:
    # Imported here: only FULL snapshots fold keys, and hashlib loads OpenSSL (~5 ms of
    # every ps otherwise).
    from hashlib import blake2b

    digest = blake2b(repr(key).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> (64 - KOID_BITS)) or 1


def perm_bits(text: str) -> int:
    perms = _PERMS.get(text[:3])
    if perms is None:
        value = Perm.NONE
        if text[0] == "r":
            value |= Perm.READ
        if text[1] == "w":
            value |= Perm.WRITE
        if text[2] == "x":
            value |= Perm.EXECUTE
        perms = _PERMS[text[:3]] = int(value)
    return perms


_PERMS: dict[str, int] = {}  # "r-x" -> Perm bits (enum arithmetic is slow, per VMA)


# Pseudo-files the kernel maps into every process; one shared kernel-owned object each.
KERNEL_FILES = frozenset(
    {"[vdso]", "[vvar]", "[vvar_vclock]", "[uprobes]", "[sigpage]", "[vectors]", "[vsyscall]"}
)
# The name ipc/shm.c gives a SysV segment's file ("SYSV%08x" on the internal shm mount);
# its inode number is the shmid (verified: shmid 0 shows inode 0 in maps).
_SYSV = re.compile(r"/SYSV[0-9a-f]{8} \(deleted\)")
# Names of objects on the kernel's internal shmem mount, which mountinfo does not list.
SHMEM_PREFIXES = ("/memfd:", "/dev/zero", "[anon_shmem:")
SHMEM_FSTYPES = frozenset({"tmpfs", "hugetlbfs", "ramfs", "devtmpfs"})

_ELF_GAP = 2 << 20  # ld.so aligns segments to at most 2 MiB (max-page-size)


def vma_key(pid: int, vma: Vma) -> tuple[str, tuple[object, ...]]:
    """(kind, identity key) of the object behind a VMA."""
    if vma.major == 0 and _SYSV.fullmatch(vma.path):
        return "sysv", ("sysv", vma.major, vma.minor, vma.inode)
    if vma.inode == 0:
        if vma.path in KERNEL_FILES:
            return "special", ("special", vma.path)
        return "anon", ("anon", pid, vma.start)
    kind = "dmabuf" if vma.path.startswith("/dmabuf:") else "file"
    return kind, ("file", vma.major, vma.minor, vma.inode)


def elf_end(vmas: list[Vma], i: int) -> int:
    """The end (exclusive) of the run of VMAs of one loaded object starting at ``i``."""
    first = vmas[i]
    if first.inode == 0 or first.offset != 0 or first.perms[:3] not in ("r--", "r-x"):
        return i + 1
    j = i + 1
    while j < len(vmas):
        prev, nxt = vmas[j - 1], vmas[j]
        if (
            nxt.inode != first.inode
            or (nxt.major, nxt.minor) != (first.major, first.minor)
            or nxt.path != first.path
            or nxt.start - prev.end > _ELF_GAP
            or nxt.offset < prev.offset
            or nxt.offset == 0
        ):
            break
        j += 1
    return j


def in_order(vmar: Vmar) -> Iterator[Mapping]:
    """The mappings of a VMAR, in address order."""
    for child in vmar.children:
        if isinstance(child, Vmar):
            yield from in_order(child)
        else:
            yield child
