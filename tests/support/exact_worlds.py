"""Small simulated worlds whose exact attribution is worked out by hand, shared by the
memgraph, ps and treemap tests of exact mode (tests/unit/cli/test_memgraph_exact.py has the
figures; tests/unit/render/test_treemap_exact.py draws them)."""

from __future__ import annotations

import dataclasses
from typing import Any

from paths import FIXTURES

from mxmem.model import Level, PageFacts, Snapshot
from mxmem.sources.sim import PAGE_SIZE, Kernel, SimSource
from mxmem.sources.sim.kernel import SimProcess, SimVmo

P = PAGE_SIZE
HOSTILE_WORLD = FIXTURES / "treemap" / "hostile-names.toml"
HOSTILE = "</script><img src=x onerror=alert(1)>"

def tiny_world() -> Kernel:
    """1 MiB of RAM, 64 KiB wired; root j:1024 holds b p:1300 and job apps j:1100 (a
    p:1200, c p:1400 with one thread 1410). ``lib`` 1500 (2 pages written) is a's, and
    a, b and c all map it at 0x1000000; ``buf`` 1600 (1 page written) is held by b only
    through its handle, never mapped.

    By hand (P = 4096; tests/unit/accounting/test_exact.py explains the page-table counts):

    - pages: lib's 2 pages are used by a, b and c: 2P/3 = 2730⅔ each, shared; buf's page
      is b's alone (its handle makes b a user): 4096 private to b.
    - page tables: a fresh process has its top-level table, and its first mapping at
      0x1000000 adds 3: 4P = 16384 each.
    - kernel stacks: c's one thread, 8192.
    - kernel objects (HEAP_COST): process 1536 + aspace 512 + root VMAR 256 + one
      mapping 192 = 2496 each, + 64 a handle, + 512 a thread less its stack, + lib's VMO
      object 384 split 3 ways (128 each), + buf's 384 (b alone). a: 2496 + 64 + 128 =
      2688; b: 2496 + 64 + 128 + 384 = 3072; c: 2496 + 512 + 128 = 3136.
    - rounding: the three shared 2730⅔ have equal remainders; the two missing bytes go to
      the first names, "p1200/shared" and "p1300/shared": a and b 2731, c 2730.
    - a = 2731 + 16384 + 2688 = 21803; b = 4096 + 2731 + 16384 + 3072 = 26283;
      c = 2730 + 16384 + 8192 + 3136 = 30442; Σ = 78528. Jobs: apps = a + c = 52245,
      root = 78528.
    - heap: jobs 2 x 512 + processes 3 x 2304 + thread 8704 + 2 VMOs x 384 + 2 handles x
      64 + 3 mappings x 192 = 18112 in one 16-page (65536) chunk: "kernel heap free"
      65536 - 18112 = 47424, "kernel objects (no process)" (the two jobs) 18112 - (2688
      + 3072 + 8192 + 3136) = 1024.
    - free: 256 pages - 16 wired - 16 heap - 12 page tables - 3 VMO pages = 209 pages =
      856064. 78528 + 856064 + 65536 + 47424 + 1024 = 1048576: residual 0.
    """
    return _tiny()[0]


def _tiny() -> tuple[Kernel, SimProcess, SimProcess, SimProcess, SimVmo]:
    """The tiny world, and its processes a, b, c and its VMO lib."""
    k = Kernel(256 * P, wired_bytes=16 * P)
    apps = k.job_create(k.root_job, "apps", koid=1100)
    a = k.process_create(apps, "a", koid=1200)
    k.process_start(a)
    b = k.process_create(k.root_job, "b", koid=1300)
    k.process_start(b)
    c = k.process_create(apps, "c", koid=1400)
    k.process_start(c, k.thread_create(c, "main", koid=1410))
    lib = k.vmo_create(2 * P, "lib", owner=a, koid=1500)
    k.vmo_write(lib, 0, 2 * P)
    for p in (a, b, c):
        k.vmar_map(_root(p), lib, addr=0x1000000)
    buf = k.vmo_create(P, "buf", owner=b, koid=1600)
    k.vmo_write(buf, 0, P)
    return k, a, b, c, lib


def clone_world() -> Kernel:
    """The tiny world, and c (1400) holds a handle to a copy-on-write clone of all of lib,
    1700 (named "lib" like its parent), into which nothing was written.

    By hand: each of lib's 2 pages is reached by lib (users a, b, c) and by the clone
    (user c): the two-step rule gives each VMO P/2 = 2048 of each page, lib's 2048 split
    3 ways (682⅔ each), the clone's to c. Over the 2 pages: a and b 1365⅓ each through
    lib; c 1365⅓ through lib and 4096 through the clone. All of it is shared (a page has
    users a, b and c), b's buf page private as in the tiny world.

    Rounding: the three fractional shared parts (1365⅓, 1365⅓, 5461⅓) add up to 8192; the
    one byte short of their floors goes to the first name, "p1200/shared": a 1366, b 1365,
    c 5461. The VMO lists: a's lib alone, 1365⅓ rounds to 1365, one byte short of its
    shared 1366, so it takes the byte: [1500, 1366]. b: [1600, 4096], [1500, 1365]. c:
    [1700, 4096], [1500, 1365] (= 5461). In the treemap, c's two VMOs named lib are one
    "lib[2]" box of 5461.
    """
    k, _a, _b, c, lib = _tiny()
    k.vmo_clone(lib, 0, 2 * P, owner=c, koid=1700)
    return k


def _root(p: SimProcess) -> Any:
    assert p.aspace is not None and p.aspace.root is not None
    return p.aspace.root



def with_facts(**facts: Any) -> Snapshot:
    """The tiny world's snapshot with page facts the test writes (as a live host or a
    capture would give them): b (1300) and c (1400) are in its task tree."""
    snapshot = SimSource(tiny_world()).snapshot(Level.PAGES)
    return dataclasses.replace(snapshot, pages=PageFacts(**facts))
