"""Named unit tests of the simulated kernel's semantics, each with a hand-computed result.

Costs used below (kernel.HEAP_COST): job 512, process 1536 + aspace 512 + root VMAR 256,
thread 8704, VMO 384, VMAR 256, mapping 192, handle 64, other object 192 bytes; the heap
grows from the PMM 16 pages (64 KiB) at a time and never shrinks.
"""

from __future__ import annotations

import pytest

from mxmem.errors import KernelError
from mxmem.model import Level, ObjType, Perm, ProcessState, Rights, ThreadState
from mxmem.sources.sim.kernel import KERNEL, PAGE_SIZE, Kernel, SimMapping, SimProcess, SimVmar
from mxmem.sources.sim.source import kernel_snapshot

P = PAGE_SIZE
MIB = 1 << 20
RW = Perm.READ | Perm.WRITE


def running(k: Kernel, name: str = "p") -> SimProcess:
    p = k.process_create(k.root_job, name)
    k.process_start(p)
    return p


def root(p: SimProcess) -> SimVmar:
    assert p.aspace is not None and p.aspace.root is not None
    return p.aspace.root


def layout(vmar: SimVmar) -> list[tuple[int, int, int, int]]:
    """(base, size, perms, vmo_offset) of the VMAR's own mappings, in address order."""
    return [
        (c.base, c.size, c.perms, c.vmo_offset) for c in vmar.children if isinstance(c, SimMapping)
    ]


# --------------------------------------------------------------------------- kstats, heap


def test_boot_figures() -> None:
    # 64 MiB = 16384 pages: 2048 wired (8 MiB image), 16 heap (the root job's 512 bytes
    # grew it one chunk), the rest free.
    k = Kernel(64 * MIB, wired_bytes=8 * MIB)
    assert k.kmem() == {
        "total_bytes": 64 * MIB,
        "free_bytes": (16384 - 2048 - 16) * P,
        "wired_bytes": 8 * MIB,
        "heap_total_bytes": 16 * P,
        "heap_free_bytes": 16 * P - 512,
        "vmo_bytes": 0,
        "mmu_bytes": 0,
        "other_bytes": 0,
    }
    assert k.root_job.koid == 1024
    assert [v.name for v in k.vmos] == ["physmap", "kernel image", "kernel heap", "hpet"]


def test_kstats_sum_to_total() -> None:
    k = Kernel(64 * MIB, wired_bytes=8 * MIB, other_bytes=3 * P)
    p = running(k)  # heap 512 + 2304 = 2816; 1 MMU page (the PML4)
    vmo = k.vmo_create(3 * P, "v", owner=p)  # heap + 384 + 64 = 3264
    k.vmo_write(vmo, 0, 2 * P)  # 2 OBJECT pages
    k.vmar_map(root(p), vmo, addr=0x1000000)  # heap + 192 = 3456; PT + PD + PDPT = 3 MMU
    km = kernel_snapshot(k, Level.KMEM).kernel
    assert km is not None
    assert (km.wired_bytes, km.other_bytes, km.vmo_bytes, km.mmu_bytes) == (
        8 * MIB,
        3 * P,
        2 * P,
        4 * P,
    )
    assert (km.heap_total_bytes, km.heap_free_bytes) == (16 * P, 16 * P - 3456)
    assert km.free_bytes == (16384 - 2048 - 3 - 16 - 2 - 4) * P
    assert km.parts_sum() == km.total_bytes == 64 * MIB


def test_heap_grows_in_chunks() -> None:
    k = Kernel(64 * MIB, wired_bytes=8 * MIB)
    p = k.process_create(k.root_job, "p")  # 512 + 2304 = 2816 allocated
    free = k.kmem()["free_bytes"]
    for _ in range(7):  # 2816 + 7 * 8704 = 63744 <= 65536: the first chunk suffices
        k.thread_create(p, "t")
    assert (k.kmem()["heap_total_bytes"], k.kmem()["free_bytes"]) == (65536, free)
    k.thread_create(p, "t")  # 72448 > 65536: one more 16-page chunk
    assert (k.kmem()["heap_total_bytes"], k.kmem()["free_bytes"]) == (131072, free - 65536)
    vmo = k.vmo_create(P, owner=p)
    k.handle_close(p, k.handle_of(p, vmo))
    # Freed bytes stay in the heap as heap-free; the heap does not shrink.
    assert k.kmem()["heap_total_bytes"] == 131072
    assert k.kmem()["heap_free_bytes"] == 131072 - 72448


def test_no_memory_is_atomic() -> None:
    # 64 pages: 16 wired, 16 heap, 32 free; the process takes 1 MMU page: 31 free.
    k = Kernel(64 * P, wired_bytes=16 * P)
    p = running(k)
    vmo = k.vmo_create(40 * P, owner=p)
    before = k.kmem()
    with pytest.raises(KernelError) as err:
        k.vmo_write(vmo, 0, 32 * P)
    assert err.value.status == "ERR_NO_MEMORY"
    assert (vmo.pages, k.kmem()) == (0, before)

    assert k.vmo_write(vmo, 0, 31 * P) == 31
    assert k.kmem()["free_bytes"] == 0
    before, heap = k.kmem(), k.heap_allocated
    with pytest.raises(KernelError) as err:
        k.vmar_map(root(p), vmo)  # needs 3 page-table pages
    assert err.value.status == "ERR_NO_MEMORY"
    assert (root(p).children, vmo.mappings, k.kmem(), k.heap_allocated) == ([], [], before, heap)

    assert k.vmo_decommit(vmo, 28 * P, 3 * P) == 3
    k.vmar_map(root(p), vmo)
    assert (k.kmem()["free_bytes"], k.kmem()["mmu_bytes"]) == (0, 4 * P)

    next_koid = k.next_koid
    with pytest.raises(KernelError) as err:
        k.process_create(k.root_job, "q")  # its PML4 page does not fit
    assert err.value.status == "ERR_NO_MEMORY"
    assert (k.root_job.processes, k.next_koid) == ([p], next_koid)


# --------------------------------------------------------------------------- koids


def test_koids_are_handed_out_in_order() -> None:
    k = Kernel()
    job = k.job_create(k.root_job, "j")
    p = k.process_create(job, "p")
    t = k.thread_create(p, "t")
    vmo = k.vmo_create(P, owner=p)
    clone = k.vmo_clone(vmo, 0, P, owner=p)
    vmar = k.vmar_allocate(root(p), 16 * P)
    hidden = k.vmo_create(P, "kernel-only", owner=None)
    assert [k.root_job.koid, job.koid, p.koid, root(p).koid, t.koid] == [
        1024,
        1025,
        1026,
        1027,
        1028,
    ]
    assert [vmo.koid, clone.koid, vmar.koid] == [1029, 1030, 1031]
    # Kernel-only VMOs take ids of their own (the four boot VMOs took 2**48 .. +3).
    assert (hidden.koid, hidden.kernel_only, k.next_koid) == ((1 << 48) + 4, True, 1032)
    assert kernel_snapshot(k).vmos[hidden.koid].user_koid == 0

    assert k.job_create(job, "later", koid=2000).koid == 2000
    assert k.process_create(job, "q").koid == 2001


def test_stale_koid_is_refused_without_side_effects() -> None:
    # Regression: the heap used to be charged before the koid was checked.
    k = Kernel()
    job = k.job_create(k.root_job, "j", koid=2000)
    heap, jobs = k.heap_allocated, list(job.jobs)
    for make in (
        lambda: k.job_create(job, "x", koid=1999),
        lambda: k.process_create(job, "x", koid=2000),
        lambda: k.vmo_create(P, owner=KERNEL, koid=5),
    ):
        with pytest.raises(KernelError) as err:
            make()
        assert err.value.status == "ERR_INVALID_ARGS"
        assert (k.heap_allocated, job.jobs, job.processes, k.next_koid) == (heap, jobs, [], 2001)
    # A kernel-only VMO takes no koid, so an explicit one is ignored rather than refused.
    assert k.vmo_create(P, owner=None, koid=5).kernel_only


def test_koids_deterministic() -> None:
    def build() -> tuple[Kernel, list[int]]:
        k = Kernel()
        a, b = running(k, "a"), running(k, "b")
        vmo = k.vmo_create(4 * P, "shared", owner=a)
        k.vmo_write(vmo, 0, 2 * P)
        k.vmar_map(root(a), vmo)
        value = k.handle_duplicate(a, k.handle_of(a, vmo), Rights.READ | Rights.TRANSFER)
        moved = k.handle_transfer(a, value, b)
        k.vmar_map(root(b), vmo)
        clone = k.vmo_clone(vmo, P, 2 * P, owner=b)
        return k, [a.koid, b.koid, vmo.koid, clone.koid, value, moved]

    (k1, ids1), (k2, ids2) = build(), build()
    assert ids1 == ids2
    assert ids1[:4] == [1025, 1027, 1029, 1030]  # each process also took a root VMAR koid
    assert kernel_snapshot(k1) == kernel_snapshot(k2)


# --------------------------------------------------------------------------- handles


def test_handle_duplicate_cannot_gain_rights() -> None:
    k = Kernel()
    p = running(k)
    rights = Rights.READ | Rights.MAP | Rights.DUPLICATE
    vmo = k.vmo_create(P, owner=p, rights=rights)
    h = k.handle_of(p, vmo)
    with pytest.raises(KernelError) as err:
        k.handle_duplicate(p, h, Rights.READ | Rights.WRITE)
    assert err.value.status == "ERR_INVALID_ARGS"
    assert (len(p.handles), vmo.handle_count) == (1, 1)

    same = k.handle_duplicate(p, h)
    fewer = k.handle_duplicate(p, h, Rights.READ)
    assert (p.handles[same].rights, p.handles[fewer].rights) == (rights, Rights.READ)
    assert len({h, same, fewer}) == 3 and vmo.handle_count == 3
    with pytest.raises(KernelError) as err:
        k.handle_duplicate(p, fewer)  # READ alone lacks DUPLICATE
    assert err.value.status == "ERR_ACCESS_DENIED"
    assert vmo.handle_count == 3


def test_transfer_requires_transfer_right() -> None:
    k = Kernel()
    a, b = running(k, "a"), running(k, "b")
    pinned = k.vmo_create(P, owner=a, rights=Rights.READ | Rights.MAP)
    h = k.handle_of(a, pinned)
    with pytest.raises(KernelError) as err:
        k.handle_transfer(a, h, b)
    assert err.value.status == "ERR_ACCESS_DENIED"
    assert (h in a.handles, b.handles) == (True, {})

    movable = k.vmo_create(P, owner=a)
    heap = k.heap_allocated
    moved = k.handle_transfer(a, k.handle_of(a, movable), b)
    assert [x.obj for x in a.handles.values()] == [pinned]
    assert (b.handles[moved].obj, b.handles[moved].rights) == (movable, Rights.DEFAULT_VMO)
    assert (movable.handle_count, k.heap_allocated) == (1, heap)

    dead = running(k, "dead")
    k.process_kill(dead)
    with pytest.raises(KernelError) as err:
        k.handle_transfer(b, moved, dead)
    assert err.value.status == "ERR_BAD_STATE"
    assert moved in b.handles


def test_other_objects_die_with_their_last_handle() -> None:
    k = Kernel()
    a, b = running(k, "a"), running(k, "b")
    heap = k.heap_allocated
    event = k.object_create(a, ObjType.EVENT)
    assert k.heap_allocated == heap + 192 + 64
    dup = k.handle_duplicate(a, k.handle_of(a, event))
    k.handle_close(a, dup)
    assert event.alive
    k.handle_close(a, k.handle_of(a, event))
    assert (event.alive, k.heap_allocated) == (False, heap)

    end_a, end_b = k.channel_create(a, b)
    assert (k.handle_of(a, end_a) in a.handles, k.handle_of(b, end_b) in b.handles) == (True, True)
    k.handle_close(a, k.handle_of(a, end_a))
    assert (end_a.alive, end_b.alive) == (False, True)


# --------------------------------------------------------------------------- VMO lifetime


def test_last_handle_close_frees_pages() -> None:
    k = Kernel()
    p = running(k)
    heap = k.heap_allocated
    vmo = k.vmo_create(4 * P, owner=p)
    k.vmo_write(vmo, 0, 3 * P)
    dup = k.handle_duplicate(p, k.handle_of(p, vmo))
    k.handle_close(p, dup)
    assert (vmo.alive, k.kmem()["vmo_bytes"]) == (True, 3 * P)
    k.handle_close(p, k.handle_of(p, vmo))
    assert (vmo.alive, k.kmem()["vmo_bytes"], vmo in k.vmos) == (False, 0, False)
    assert k.heap_allocated == heap


def test_mapping_keeps_vmo_alive() -> None:
    k = Kernel()
    p = running(k)
    vmo = k.vmo_create(2 * P, owner=p)
    k.vmo_write(vmo, 0, 2 * P)
    m = k.vmar_map(root(p), vmo)
    k.handle_close(p, k.handle_of(p, vmo))
    assert (vmo.alive, k.kmem()["vmo_bytes"]) == (True, 2 * P)
    k.vmar_unmap(root(p), m.base, m.size)
    assert (vmo.alive, k.kmem()["vmo_bytes"]) == (False, 0)


def test_kernel_reference_keeps_vmo_alive() -> None:
    k = Kernel()
    vmo = k.vmo_create(P, owner=KERNEL)
    k.vmo_write(vmo, 0, 1)
    assert (vmo.alive, k.kmem()["vmo_bytes"]) == (True, P)
    k.kernel_release(vmo)
    assert (vmo.alive, k.kmem()["vmo_bytes"]) == (False, 0)
    with pytest.raises(KernelError) as err:
        k.kernel_release(vmo)
    assert err.value.status == "ERR_BAD_STATE"


def test_clone_keeps_parent_alive() -> None:
    k = Kernel()
    p = running(k)
    parent = k.vmo_create(2 * P, owner=p)
    k.vmo_write(parent, 0, 2 * P)
    clone = k.vmo_clone(parent, 0, 2 * P, owner=p)
    k.handle_close(p, k.handle_of(p, parent))
    assert (parent.alive, parent.children, k.kmem()["vmo_bytes"]) == (True, [clone], 2 * P)
    assert kernel_snapshot(k).vmos[parent.koid].num_children == 1
    k.handle_close(p, k.handle_of(p, clone))
    assert (parent.alive, clone.alive, k.kmem()["vmo_bytes"]) == (False, False, 0)
    assert [v.name for v in k.vmos] == ["physmap", "kernel image", "kernel heap", "hpet"]


def test_clone_write_copies_the_page_into_the_clone() -> None:
    k = Kernel()
    parent = k.vmo_create(4 * P, owner=KERNEL)
    k.vmo_write(parent, 0, 4 * P)
    clone = k.vmo_clone(parent, P, 2 * P, owner=KERNEL)  # sees parent pages 1 and 2
    assert (clone.pages, clone.parent_offset) == (0, P)
    assert k.vmo_write(clone, 0, 1) == 1  # copies parent page 1 into clone page 0
    assert (clone.pages, parent.pages, k.kmem()["vmo_bytes"]) == (0b1, 0b1111, 5 * P)
    assert k.vmo_decommit(clone, 0, P) == 1  # the clone sees its parent again
    assert (clone.pages, k.kmem()["vmo_bytes"]) == (0, 4 * P)


def test_zero_length_write_commits_nothing() -> None:
    # Regression: an unaligned zero-length write committed (and a decommit freed) a page.
    k = Kernel()
    vmo = k.vmo_create(2 * P + 100, owner=KERNEL)
    assert (k.vmo_write(vmo, 100, 0), vmo.pages) == (0, 0)
    assert k.vmo_write(vmo, 2 * P + 100, 0) == 0  # at the very end: allowed, no page
    k.vmo_write(vmo, 0, P)
    assert (k.vmo_decommit(vmo, 5, 0), vmo.pages) == (0, 0b1)
    with pytest.raises(KernelError) as err:
        k.vmo_write(vmo, 2 * P + 101, 0)
    assert err.value.status == "ERR_OUT_OF_RANGE"


def test_resize_frees_pages_past_the_end() -> None:
    k = Kernel()
    vmo = k.vmo_create(4 * P, owner=KERNEL)
    k.vmo_write(vmo, 0, 4 * P)
    k.vmo_set_size(vmo, 5000)  # keeps pages_for(5000) = 2 pages
    assert (vmo.pages, k.kmem()["vmo_bytes"]) == (0b11, 2 * P)
    k.vmo_set_size(vmo, 4 * P)  # growing commits nothing
    assert (vmo.pages, k.kmem()["vmo_bytes"]) == (0b11, 2 * P)
    clone = k.vmo_clone(vmo, 0, P, owner=KERNEL)
    with pytest.raises(KernelError) as err:
        k.vmo_set_size(clone, 2 * P)
    assert err.value.status == "ERR_NOT_SUPPORTED"


def test_physical_vmo_uses_no_ram() -> None:
    k = Kernel()
    p = running(k)
    before = k.kmem()["vmo_bytes"]
    dev = k.vmo_create_physical(0xFE000000, 16 * P, "device", owner=p)
    assert (k.vmo_write(dev, 0, 16 * P), dev.pages, k.kmem()["vmo_bytes"]) == (0, 0, before)
    k.vmar_map(root(p), dev)  # costs page tables only
    assert (k.kmem()["vmo_bytes"], k.kmem()["mmu_bytes"]) == (before, 4 * P)
    for bad in (lambda: k.vmo_clone(dev, 0, P, owner=p), lambda: k.vmo_set_size(dev, P)):
        with pytest.raises(KernelError) as err:
            bad()
        assert err.value.status == "ERR_NOT_SUPPORTED"
    assert kernel_snapshot(k).vmos[dev.koid].physical


# --------------------------------------------------------------------------- VMARs, mappings


def test_partial_unmap_splits_mapping() -> None:
    k = Kernel()
    p = running(k)
    vmo = k.vmo_create(4 * P, owner=p)
    k.vmar_map(root(p), vmo, addr=0x1000000)
    heap = k.heap_allocated
    k.vmar_unmap(root(p), 0x1001000, P)
    assert layout(root(p)) == [(0x1000000, P, RW, 0), (0x1002000, 2 * P, RW, 2 * P)]
    assert sorted(m.base for m in vmo.mappings) == [0x1000000, 0x1002000]
    assert k.heap_allocated == heap + 192  # two mappings where there was one


def test_protect_splits_mapping() -> None:
    k = Kernel()
    p = running(k)
    vmo = k.vmo_create(4 * P, owner=p)
    k.vmar_map(root(p), vmo, addr=0x1000000)
    heap = k.heap_allocated
    k.vmar_protect(root(p), 0x1001000, 2 * P, Perm.READ)
    assert layout(root(p)) == [
        (0x1000000, P, RW, 0),
        (0x1001000, 2 * P, Perm.READ, P),
        (0x1003000, P, RW, 3 * P),
    ]
    assert (len(vmo.mappings), vmo.share_count(), k.heap_allocated) == (3, 1, heap + 2 * 192)
    assert root(p).aspace.mmu_pages == 4  # same pages mapped: same page tables


def test_unmap_spanning_two_mappings_and_a_gap() -> None:
    k = Kernel()
    p = running(k)
    vmo = k.vmo_create(8 * P, owner=p)
    k.vmar_map(root(p), vmo, size=2 * P, addr=0x1000000)
    k.vmar_map(root(p), vmo, vmo_offset=4 * P, size=2 * P, addr=0x1003000)
    k.vmar_unmap(root(p), 0x1001000, 3 * P)  # [0x1001000, 0x1004000)
    assert layout(root(p)) == [(0x1000000, P, RW, 0), (0x1004000, P, RW, 5 * P)]


def test_overlapping_regions_are_refused() -> None:
    k = Kernel()
    p = running(k)
    vmo = k.vmo_create(2 * P, owner=p)
    k.vmar_map(root(p), vmo, addr=0x1000000)  # [0x1000000, 0x1002000)
    heap = k.heap_allocated
    for bad in (
        lambda: k.vmar_map(root(p), vmo, addr=0x1001000),
        lambda: k.vmar_allocate(root(p), 4 * P, addr=0x1001000),
    ):
        with pytest.raises(KernelError) as err:
            bad()
        assert err.value.status == "ERR_NO_MEMORY"  # Magenta's answer to an overlap
    assert (len(root(p).children), k.heap_allocated) == (1, heap)
    # Without an address: the lowest gap, right after the first mapping.
    assert k.vmar_map(root(p), vmo).base == 0x1002000
    sub = k.vmar_allocate(root(p), 4 * P, addr=0x1010000)
    with pytest.raises(KernelError) as err:
        k.vmar_unmap(root(p), 0x100F000, 2 * P)  # would cut into the sub-region
    assert err.value.status == "ERR_INVALID_ARGS"
    assert sub.alive


def test_vmar_destroy_unmaps_everything_below() -> None:
    k = Kernel()
    p = running(k)
    heap, mmu = k.heap_allocated, k.kmem()["mmu_bytes"]
    vmo = k.vmo_create(P, owner=p)
    k.vmo_write(vmo, 0, P)
    sub = k.vmar_allocate(root(p), 64 * P)
    inner = k.vmar_allocate(sub, 16 * P, addr=sub.base + 16 * P)
    k.vmar_map(sub, vmo, addr=sub.base)
    k.vmar_map(inner, vmo)
    k.handle_close(p, k.handle_of(p, vmo))
    k.vmar_destroy(sub)
    assert (sub.alive, inner.alive, vmo.alive) == (False, False, False)
    assert (root(p).children, k.heap_allocated, k.kmem()["mmu_bytes"]) == ([], heap, mmu)
    with pytest.raises(KernelError) as err:
        k.vmar_destroy(root(p))
    assert err.value.status == "ERR_ACCESS_DENIED"


def test_page_tables_cost_mmu() -> None:
    # One page-table (PT) page per 2 MiB block touched, one directory (PD) page per
    # 1 GiB, one PDPT page per 512 GiB, plus the PML4 from process creation.
    k = Kernel()
    p = running(k)
    aspace = root(p).aspace
    vmo = k.vmo_create(2 * P, owner=p)

    def mmu() -> tuple[int, int]:
        return aspace.mmu_pages, k.kmem()["mmu_bytes"] // P

    assert mmu() == (1, 1)
    a = k.vmar_map(root(p), vmo, size=P, addr=0x1000000)  # PT 8, PD 0, PDPT 0: +3
    assert mmu() == (4, 4)
    b = k.vmar_map(root(p), vmo, size=P, addr=0x1001000)  # same blocks: +0
    assert mmu() == (4, 4)
    c = k.vmar_map(root(p), vmo, size=P, addr=0x40000000)  # PT 512, PD 1: +2
    assert mmu() == (6, 6)
    d = k.vmar_map(root(p), vmo, size=2 * P, addr=0x11FF000)  # PT 8 and 9: +1 (PT 9)
    assert mmu() == (7, 7)
    e = k.vmar_map(root(p), vmo, size=P, addr=0x8000000000)  # 512 GiB: PT, PD, PDPT +3
    assert mmu() == (10, 10)
    for m, expected in ((a, 10), (c, 8), (b, 8), (d, 4), (e, 1)):
        # a: b and d keep PT 8; c: PT 512 and PD 1 go; b: d keeps PT 8;
        # d: PT 8, PT 9, PD 0, PDPT 0 go; e: its three go, the PML4 stays.
        k.vmar_unmap(root(p), m.base, m.size)
        assert mmu() == (expected, expected)
    k.process_kill(p)
    assert k.kmem()["mmu_bytes"] == 0


def test_partial_unmap_keeps_page_tables_in_use() -> None:
    # Regression: splitting a mapping left one reference on page tables both halves
    # use, so unmapping one half freed tables the other still needed.
    k = Kernel()
    p = running(k)
    aspace = root(p).aspace
    vmo = k.vmo_create(4 * P, owner=p)
    k.vmar_map(root(p), vmo, size=2 * P, addr=0x11FF000)  # PT 8 + PT 9 + PD + PDPT
    assert aspace.mmu_pages == 5
    k.vmar_unmap(root(p), 0x11FF000, P)  # PT 8 goes; PT 9, PD 0, PDPT 0 stay
    assert aspace.mmu_pages == 4
    k.vmar_unmap(root(p), 0x1200000, P)
    assert aspace.mmu_pages == 1

    k.vmar_map(root(p), vmo, addr=0x1000000)  # 4 pages in PT 8
    k.vmar_protect(root(p), 0x1001000, P, Perm.READ)
    k.vmar_unmap(root(p), 0x1000000, P)
    assert aspace.mmu_pages == 4  # the other two pieces still use PT 8
    k.vmar_unmap(root(p), 0x1001000, 3 * P)
    assert (aspace.mmu_pages, k.kmem()["mmu_bytes"]) == (1, P)


# --------------------------------------------------------------------------- tasks


def test_process_kill_releases_everything() -> None:
    k = Kernel()
    job = k.job_create(k.root_job, "j")
    p = k.process_create(job, "p")
    t = k.thread_create(p, "t")
    k.process_start(p, t)
    vmo = k.vmo_create(2 * P, owner=p)
    k.vmo_write(vmo, 0, 2 * P)
    k.vmar_map(root(p), vmo)
    event = k.object_create(p, ObjType.EVENT)
    k.process_kill(p)
    assert (p.state, t.state, p.handles, p.aspace) == (
        ProcessState.DEAD,
        ThreadState.DEAD,
        {},
        None,
    )
    assert (vmo.alive, event.alive) == (False, False)
    assert (k.kmem()["vmo_bytes"], k.kmem()["mmu_bytes"]) == (0, 0)
    # The process and its thread stay listed (DEAD) until destroyed.
    assert job.processes == [p]
    assert k.heap_allocated == 512 + 512 + 1536 + 8704
    k.process_kill(p)  # killing a dead process does nothing
    for bad in (
        lambda: k.vmo_create(P, owner=p),
        lambda: k.thread_create(p, "t2"),
        lambda: k.handle_grant(p, k.root_job, Rights.READ),
        lambda: k.process_start(p),
    ):
        with pytest.raises(KernelError) as err:
            bad()
        assert err.value.status == "ERR_BAD_STATE"


def test_thread_states() -> None:
    k = Kernel()
    p = running(k)
    t = k.thread_create(p, "t")
    with pytest.raises(KernelError):
        k.thread_set_state(t, ThreadState.BLOCKED)  # not started yet
    k.thread_start(t)
    k.thread_set_state(t, ThreadState.BLOCKED)
    k.thread_set_state(t, ThreadState.DEAD)
    with pytest.raises(KernelError) as err:
        k.thread_set_state(t, ThreadState.RUNNING)
    assert err.value.status == "ERR_BAD_STATE"
    assert t.state is ThreadState.DEAD
