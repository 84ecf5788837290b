"""The /proc parsers, on samples captured from a real machine and on hand-written edge cases.

The captured files are in ``tests/fixtures/linux/`` (see ``ORIGIN`` there and
``capture.py``, which made them); every expected number below was read off those files.
"""

from __future__ import annotations

from textwrap import dedent

import pytest
from paths import FIXTURES

from mxmem.model import ThreadState
from mxmem.sources.linux.cgroups import Hierarchy, choose_hierarchy
from mxmem.sources.linux.host import kernel_memory, task_size, task_stats
from mxmem.sources.linux.procfs import (
    MemFigures,
    cgroup_path,
    memory_cgroup_path,
    parse_cgroup,
    parse_fdinfo,
    parse_maps,
    parse_meminfo,
    parse_mountinfo,
    parse_slab_free,
    parse_smaps,
    parse_smaps_rollup,
    parse_stat,
    parse_status,
    parse_sysvipc_shm,
    thread_state,
)

LINUX_FIXTURES = FIXTURES / "linux"
K = 1024


def sample(name: str) -> str:
    return (LINUX_FIXTURES / name).read_text()


# --- smaps_rollup ----------------------------------------------------------------------


def test_rollup_captured() -> None:
    rollup = parse_smaps_rollup(sample("child.smaps_rollup"))
    assert rollup == MemFigures(
        rss=14000 * K,
        pss=8227 * K,
        shared_clean=6740 * K,
        shared_dirty=0,
        private_clean=152 * K,
        private_dirty=7108 * K,
        anonymous=7088 * K,
        shared_hugetlb=0,
        private_hugetlb=0,
        swap=0,
        swap_pss=0,
        locked=0,
    )


def test_task_stats_keep_the_kernels_pss() -> None:
    rollup = parse_smaps_rollup(sample("child.smaps_rollup"))
    assert rollup is not None
    stats = task_stats(rollup, 19439616)
    assert stats.mapped_bytes == 19439616
    assert stats.private_bytes == (152 + 7108) * K
    assert stats.shared_bytes == 6740 * K
    assert stats.scaled_shared_bytes == (8227 - 152 - 7108) * K
    assert stats.pss_bytes == 8227 * K  # the kernel's Pss, exactly


def test_rollup_with_hugetlb_and_swap() -> None:
    text = dedent("""\
        00400000-7fff00000000 ---p 00000000 00:00 0                          [rollup]
        Rss:                 400 kB
        Pss:                 250 kB
        Shared_Clean:        200 kB
        Shared_Dirty:          0 kB
        Private_Clean:         0 kB
        Private_Dirty:       200 kB
        Shared_Hugetlb:     4096 kB
        Private_Hugetlb:    2048 kB
        Swap:               1000 kB
        SwapPss:              10 kB
    """)
    rollup = parse_smaps_rollup(text)
    assert rollup is not None
    assert (rollup.swap, rollup.swap_pss) == (1000 * K, 10 * K)
    stats = task_stats(rollup, 0)
    # Hugetlb pages are in neither Rss nor Pss: private and shared add them, and PSS
    # is Pss + Private_Hugetlb.
    assert stats.private_bytes == (200 + 2048) * K
    assert stats.shared_bytes == (200 + 4096) * K
    assert stats.scaled_shared_bytes == 50 * K
    assert stats.pss_bytes == (250 + 2048) * K
    # SwapPss, never Swap (a shared swap entry counts once per sharer in Swap).
    assert stats.swap_pss_bytes == 10 * K


@pytest.mark.parametrize("text", ["", "\n", "Rss: 4 kB\n"])
def test_rollup_without_address_space(text: str) -> None:
    assert parse_smaps_rollup(text) is None


# --- smaps and maps --------------------------------------------------------------------


def test_smaps_captured() -> None:
    vmas = parse_smaps(sample("child.smaps"))
    assert len(vmas) == 121
    first = vmas[0]
    assert (first.start, first.end, first.perms, first.offset) == (
        0x55942BE2D000,
        0x55942BE2E000,
        "r--p",
        0,
    )
    assert (first.major, first.minor, first.inode) == (0xFE, 0, 26723)
    assert first.path == "/root/.pyenv/versions/3.11.7/bin/python3.11"
    assert first.figures == MemFigures(rss=4 * K, shared_clean=4 * K)
    assert first.vmflags == ("rd", "mr", "mw", "me")
    sysv = next(v for v in vmas if "SYSV" in v.path)
    assert (sysv.major, sysv.minor, sysv.inode) == (0, 1, 1)  # inode = the shmid
    assert sysv.path == "/SYSV6d786d6d (deleted)"
    assert sysv.figures is not None and sysv.figures.private_dirty == 12 * K
    memfd = next(v for v in vmas if v.path == "/memfd:mxmem-fixture (deleted)")
    assert (memfd.inode, memfd.size, memfd.perms) == (34643, 1 << 20, "rw-s")
    assert memfd.figures is not None and memfd.figures.rss == 8 * K
    last = vmas[-1]
    assert (last.start, last.path, last.vmflags) == (0xFFFFFFFFFF600000, "[vsyscall]", ("ex",))


def test_smaps_sums_match_the_rollup() -> None:
    # Taken from one sleeping process: Rss and the private/shared pages sum exactly; Pss
    # loses under 1 KiB per VMA to smaps' per-VMA truncation.
    vmas = parse_smaps(sample("child.smaps"))
    rollup = parse_smaps_rollup(sample("child.smaps_rollup"))
    assert rollup is not None
    figures = [v.figures for v in vmas if v.figures is not None]
    assert sum(f.rss for f in figures) == rollup.rss
    assert sum(f.private_dirty for f in figures) == rollup.private_dirty
    assert sum(f.shared_clean for f in figures) == rollup.shared_clean
    lost = rollup.pss - sum(f.pss for f in figures)
    assert 0 <= lost < len(figures) * K


def test_maps_are_the_smaps_headers() -> None:
    headers = [v._replace(figures=None, vmflags=()) for v in parse_smaps(sample("child.smaps"))]
    assert parse_maps(sample("child.maps")) == headers


def test_smaps_hand_written_edge_cases() -> None:
    text = dedent("""\
        7f0000000000-7f0000200000 rw-s 00000000 00:2f 77              /dev/shm/my file (deleted)
        Size:               2048 kB
        Rss:                   0 kB
        Pss:                   0 kB
        Shared_Hugetlb:     2048 kB
        Private_Hugetlb:       0 kB
        THPeligible:           0
        ProtectionKey:         0
        VmFlags: rd wr sh mr mw me ms de ht sd
        7f0000200000-7f0000201000 ---p 00000000 00:00 0 
        Size:                  4 kB
        VmFlags: mr mw me sd
        7f0000201000-7f0000202000 rw-p 00000000 00:00 0                          [anon:line\\012two]
        Rss:                   4 kB
    """)  # noqa: W291 - the kernel leaves a space after an anonymous VMA's inode
    vmas = parse_smaps(text)
    assert [v.path for v in vmas] == ["/dev/shm/my file (deleted)", "", "[anon:line\\012two]"]
    assert (vmas[0].major, vmas[0].minor) == (0, 0x2F)
    assert vmas[0].figures == MemFigures(shared_hugetlb=2048 * K)
    assert "ht" in vmas[0].vmflags
    assert vmas[1].figures == MemFigures()
    assert vmas[2].figures == MemFigures(rss=4 * K)


def test_smaps_device_numbers_are_hex() -> None:
    (vma,) = parse_maps("7f00-8f00 r--s 00001000 103:0a 12  /dev/nvme0n1p10\n")
    assert (vma.major, vma.minor, vma.offset, vma.inode) == (0x103, 0xA, 0x1000, 12)


# --- stat and status -------------------------------------------------------------------


def test_stat_captured() -> None:
    st = parse_stat(sample("child.stat"))
    assert st.pid == 22496
    assert st.comm == "fixture)child"  # a ")" inside the name
    assert (st.state, st.ppid, st.flags, st.num_threads) == ("S", 22384, 4194304, 1)
    assert (st.start_time, st.vsize, st.rss_pages) == (300398, 19439616, 3478)
    assert not st.kernel_thread


def test_stat_kernel_thread() -> None:
    st = parse_stat(sample("kthreadd.stat"))
    assert (st.pid, st.comm, st.ppid, st.vsize) == (2, "kthreadd", 0, 0)
    assert st.flags == 0x208040 and st.kernel_thread  # PF_KTHREAD = 0x00200000


def test_stat_hostile_name() -> None:
    # PR_SET_NAME accepts any 15 bytes: escapes, newlines, ") (" that fake the next field.
    name = "\x1b[31m) R 1 (\n"
    st = parse_stat(f"4242 ({name}) Z 1 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 9 0 0")
    assert (st.comm, st.state, st.ppid, st.num_threads, st.vsize) == (name, "Z", 1, 1, 0)


def test_status_captured() -> None:
    status = parse_status(sample("child.status"))
    assert (status.name, status.tgid, status.ppid, status.uid) == ("fixture)child", 22496, 22384, 0)
    assert (status.threads, status.vm_size, status.vm_rss) == (1, 18984 * K, 14000 * K)
    assert status.kthread is False
    kthreadd = parse_status(sample("kthreadd.status"))
    assert (kthreadd.tgid, kthreadd.vm_size, kthreadd.kthread) == (2, 0, True)


def test_status_of_an_older_kernel_has_no_kthread_line() -> None:
    status = parse_status("Name:\tsleep\nTgid:\t7\nPPid:\t1\nUid:\t1000\t1000\t1000\t1000\n")
    assert (status.tgid, status.uid, status.kthread) == (7, 1000, None)


@pytest.mark.parametrize(
    ("letter", "state"),
    [
        ("R", ThreadState.RUNNING),
        ("S", ThreadState.BLOCKED),
        ("D", ThreadState.BLOCKED),
        ("I", ThreadState.BLOCKED),
        ("T", ThreadState.SUSPENDED),
        ("t", ThreadState.SUSPENDED),
        ("Z", ThreadState.DEAD),
        ("X", ThreadState.DEAD),
        ("?", ThreadState.BLOCKED),
    ],
)
def test_thread_states(letter: str, state: ThreadState) -> None:
    assert thread_state(letter) is state


# --- cgroups and mounts ----------------------------------------------------------------


def test_cgroup_hybrid_captured() -> None:
    text = sample("child.cgroup")
    entries = parse_cgroup(text)
    assert len(entries) == 10
    assert entries[5].controllers == ("memory",)
    assert entries[-1].hierarchy_id == 0 and entries[-1].controllers == ()
    v1 = "/process_api/2c96e903eb6f79664542839ab211a473"
    assert memory_cgroup_path(entries, 1) == cgroup_path(text, 1) == v1
    assert memory_cgroup_path(entries, 2) == cgroup_path(text, 2) == "/"


def test_cgroup_v2_only_and_named_hierarchies() -> None:
    text = "1:name=systemd:/user.slice\n0::/user.slice/user-1000.slice/session-2.scope\n"
    assert cgroup_path(text, 2) == "/user.slice/user-1000.slice/session-2.scope"
    assert cgroup_path(text, 1) is None  # no v1 memory line
    # "memory" must be a whole controller name, not part of one.
    assert cgroup_path("3:memory_x,cpu:/a\n", 1) is None
    assert cgroup_path("3:cpu,memory:/b\n", 1) == "/b"


def test_mountinfo_captured() -> None:
    mounts = parse_mountinfo(sample("child.mountinfo"))
    memory = next(m for m in mounts if "memory" in m.super_options)
    assert (memory.major, memory.minor, memory.mount_point) == (0, 32, "/sys/fs/cgroup/memory")
    assert (memory.fstype, memory.super_options) == ("cgroup", ("rw", "memory"))
    shm = [m for m in mounts if m.mount_point == "/dev/shm"]
    assert [(m.major, m.minor, m.fstype) for m in shm] == [(0, 23, "tmpfs"), (0, 27, "tmpfs")]


def test_mountinfo_unescapes_paths() -> None:
    (m,) = parse_mountinfo(
        "50 27 0:44 / /mnt/my\\040disk\\134x rw shared:1 - tmpfs none rw,size=4k\n"
    )
    assert m.mount_point == "/mnt/my disk\\x"
    assert (m.fstype, m.source, m.super_options) == ("tmpfs", "none", ("rw", "size=4k"))


def test_hierarchy_hybrid_uses_v1_memory() -> None:
    mounts = parse_mountinfo(sample("child.mountinfo"))
    hybrid = choose_hierarchy(mounts, {"/sys/fs/cgroup/unified": "hugetlb\n"})
    assert hybrid == Hierarchy(1, "/sys/fs/cgroup/memory", "memory.usage_in_bytes")
    unified = choose_hierarchy(mounts, {"/sys/fs/cgroup/unified": "cpuset cpu io memory pids\n"})
    assert unified == Hierarchy(2, "/sys/fs/cgroup/unified", "memory.current")
    assert choose_hierarchy([m for m in mounts if m.fstype != "cgroup"], {}) is None


# --- descriptors -----------------------------------------------------------------------


def test_fdinfo_memfd_captured() -> None:
    info = parse_fdinfo(sample("child.fdinfo.memfd"))
    assert (info.pos, info.flags, info.mnt_id, info.ino) == (0, 0o2100002, 0, 34643)
    assert info.access_mode == 2  # O_RDWR
    assert (info.size, info.exp_name, info.name) == (None, None, None)


def test_fdinfo_dmabuf() -> None:
    # drivers/dma-buf/dma-buf.c dma_buf_show_fdinfo (no exporter on the capture machine).
    info = parse_fdinfo(
        "pos:\t0\nflags:\t02000000\nmnt_id:\t15\nino:\t1234\nsize:\t8388608\ncount:\t2\n"
        "exp_name:\tsystem\nname:\tcamera buf\n"
    )
    assert (info.ino, info.access_mode, info.size) == (1234, 0, 8 << 20)
    assert (info.exp_name, info.name) == ("system", "camera buf")


# --- system-wide -----------------------------------------------------------------------


def test_meminfo_and_kernel_memory_captured() -> None:
    meminfo = parse_meminfo(sample("meminfo"))
    assert meminfo["MemTotal"] == 24683656 * K
    assert meminfo["HugePages_Total"] == 0 and meminfo["Hugepagesize"] == 2048 * K
    kmem = kernel_memory(meminfo)
    assert kmem.total_bytes == 24683656 * K
    assert kmem.free_bytes == 22368188 * K
    # Slab + VmallocUsed - KernelStack (the stacks are vmalloc'd: CONFIG_VMAP_STACK).
    assert kmem.heap_total_bytes == (139348 + 5908 - 1648) * K
    assert kmem.mmu_bytes == 3832 * K
    assert kmem.vmo_bytes == (880564 + 1217900 + 8096) * K  # AnonPages + Cached + Buffers
    assert kmem.wired_bytes == (1648 + 712) * K  # KernelStack + Percpu (+ Hugetlb 0)
    assert kmem.other_bytes == 59108 * K
    assert kmem.parts_sum() == kmem.total_bytes


def test_kernel_memory_heap_free_is_capped() -> None:
    # Capped at the slab part of the heap: vmalloc has no free part.
    kmem = kernel_memory({"MemTotal": 100, "Slab": 10, "VmallocUsed": 5}, slab_free=25)
    assert (kmem.heap_total_bytes, kmem.heap_free_bytes, kmem.other_bytes) == (15, 10, 85)


def test_slab_free() -> None:
    text = dedent("""\
        slabinfo - version: 2.1
        # name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : ...
        kmalloc-64          100    128     64   64    1 : tunables    0    0    0 : slabdata
        dentry               10     10    192   21    1 : tunables    0    0    0 : slabdata
        ext4_inode_cache      0     30   1080   30    8 : tunables    0    0    0 : slabdata
    """)
    assert parse_slab_free(text) == 28 * 64 + 30 * 1080
    assert parse_slab_free(sample("slabinfo")) >= 0


def test_sysvipc_captured() -> None:
    (seg,) = parse_sysvipc_shm(sample("sysvipc.shm"))
    # IPC_RMID'd while attached: the key reads 0 (IPC_PRIVATE) but maps keeps the name.
    assert (seg.key, seg.shmid, seg.size, seg.cpid, seg.nattch) == (0, 1, 1 << 20, 22496, 1)
    assert (seg.uid, seg.rss, seg.swap) == (0, 12288, 0)


def test_sysvipc_old_kernel_without_rss() -> None:
    text = (
        "       key      shmid perms       size  cpid  lpid nattch   uid   gid  cuid  cgid"
        "      atime      dtime      ctime\n"
        "   1234567      32769   600      65536   100   100      0  1000  1000  1000  1000"
        "          0          0 1700000000\n"
    )
    (seg,) = parse_sysvipc_shm(text)
    assert (seg.key, seg.shmid, seg.size, seg.nattch, seg.rss, seg.swap) == (
        1234567,
        32769,
        65536,
        0,
        0,
        0,
    )
    assert parse_sysvipc_shm("") == []


def test_task_size() -> None:
    assert task_size("x86_64", 0x7FFE2BD05000) == 0x7FFFFFFFF000
    # 5-level paging: a VMA above 47 bits widens the range to the next power of two.
    assert task_size("x86_64", 0x7FFE2BD05000 << 8) == 1 << 55
    assert task_size("aarch64", 0) == 1 << 48
