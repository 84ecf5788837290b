"""Exact attribution on captures (issue 6): page facts in mxmem snapshot files, lossless;
page facts derived from captures that have none (memgraph JSON, Fuchsia memory_monitor
captures, snapshot files saved without them), with expectations computed by hand."""

from __future__ import annotations

import copy
import gc
import json
import os
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paths import FIXTURES
from profiles import examples

from mxmem.accounting.exact import UNREFERENCED, attribute
from mxmem.cli import main
from mxmem.errors import SourceError
from mxmem.model import (
    PAGE_TABLES,
    Level,
    PageFacts,
    PageUse,
    Snapshot,
)
from mxmem.sources import open_source
from mxmem.sources.capture import CaptureSource, load_capture
from mxmem.sources.capture.pages import (
    NOT_IN_PSS,
    NOTE_COW,
    NOTE_NO_KERNEL,
    NOTE_NO_VMOS,
    NOTE_ONCE_PER_PROCESS,
    NOTE_PROCESS_KERNEL,
    NOTE_VMO_LEVEL,
)
from mxmem.sources.capture.snapshot_file import dumps, loads
from mxmem.sources.sim.worlds import worlds

WORLDS = [w.name for w in worlds()]
LINUX = sys.platform.startswith("linux") and os.path.exists("/proc/self/smaps_rollup")
FUCHSIA = FIXTURES / "fuchsia" / "test_snapshot.json"


def write(path: Path, document: object) -> str:
    path.write_text(json.dumps(document))
    return str(path)


def paged(path: str) -> Snapshot:
    return open_source(f"capture:{path}").snapshot(Level.PAGES)


def facts_of(snapshot: Snapshot) -> PageFacts:
    assert snapshot.pages is not None
    return snapshot.pages


# --- page facts in mxmem snapshot files: lossless ----------------------------------------


@pytest.mark.parametrize("world", [*WORLDS, "scale:300"])
def test_page_facts_round_trip_every_world(world: str) -> None:
    snapshot = open_source(f"sim:{world}").snapshot(Level.PAGES)
    assert snapshot.level is Level.PAGES and snapshot.pages is not None
    again = loads(dumps(snapshot), "f")
    assert again == snapshot
    assert again.pages == snapshot.pages
    assert list(again.pages.pages) == list(snapshot.pages.pages)  # order survives too
    assert attribute(facts_of(again)) == attribute(snapshot.pages)


@pytest.mark.skipif(not LINUX, reason="needs Linux /proc with smaps_rollup")
def test_page_facts_round_trip_of_a_host_snapshot() -> None:
    from mxmem.sources.linux.host import HostSource

    snapshot = HostSource().snapshot(Level.PAGES)
    if snapshot.pages is None:
        pytest.skip("the host source has no page facts yet")
    assert loads(dumps(snapshot), "f") == snapshot


def test_round_trip_keeps_every_page_fact_field() -> None:
    # What no sim world has: a kernel-held used VMO, VMO 0, estimated and swap figures,
    # an unknown kernel kind, exact False with notes, a page size of 1, hostile names.
    base = open_source("sim:doc").snapshot(Level.FULL)
    facts = PageFacts(
        total_bytes=2**63,
        page_size=1,
        pages={
            (PageUse(0, (7,)),): 5,
            (PageUse(3, (1, 2), True), PageUse(9, ())): 2**40,
            (PageUse(4, (), True),): 0,
        },
        process_kernel={7: {PAGE_TABLES: 4096, "kernel objects\u00e9": 1}, 1: {}},
        process_estimated={7: 123, 8: 0},
        process_swap={1: 99},
        categories={"free": 10, "page cache not mapped \udcff": 11},
        exact=False,
        notes=("a note", ""),
    )
    snapshot = replace(base, level=Level.PAGES, pages=facts)
    again = loads(dumps(snapshot), "f")
    assert again == snapshot
    assert again.pages is not None
    assert list(again.pages.process_kernel) == [7, 1]
    assert list(again.pages.categories) == ["free", "page cache not mapped \udcff"]


def test_files_without_page_facts_are_written_and_read_as_before() -> None:
    full = json.loads(dumps(open_source("sim:doc").snapshot(Level.FULL)))
    # The version-1 keys, in order, and nothing else: older readers read these files
    # (they skip "platform", which came later, as they skip any key they do not know).
    assert list(full) == [
        "format",
        "version",
        "source",
        "platform",
        "level",
        "timestamp",
        "kernel",
        "cpus",
        "cpu_total",
        "root_job",
        "jobs",
        "processes",
        "vmos",
        "kernel_aspace",
        "notes",
    ]
    assert full["version"] == 1 and all("v" not in p for p in full["processes"])
    assert json.loads(dumps(open_source("sim:doc").snapshot(Level.PAGES)))["version"] == 1


# A snapshot file as mxmem wrote it before page facts existed (hand-written, minimal).
OLD_FILE = {
    "format": "mxmem-snapshot",
    "version": 1,
    "source": "old",
    "level": "FULL",
    "timestamp": "2017-06-07T05:51:08+00:00",
    "kernel": None,
    "cpus": [],
    "cpu_total": None,
    "root_job": 1,
    "jobs": [[1, None, "root", [2], [], []]],
    "processes": [{"k": 2, "j": 1, "n": "p", "s": "running", "h": [[1, 5, "vmo", 3]]}],
    "vmos": [[5, "v", 8192, 8192, 0, 0, 0, 1, 0, 0]],
    "kernel_aspace": None,
    "notes": [],
}


def test_an_old_file_still_loads_and_derives_page_facts(tmp_path: Path) -> None:
    path = write(tmp_path / "old.json", OLD_FILE)
    source = open_source(f"capture:{path}")
    full = source.snapshot(Level.FULL)
    assert full.level is Level.FULL and full.pages is None
    facts = facts_of(source.snapshot(Level.PAGES))
    # No kernel figures: the total is what the one handle-held VMO commits.
    assert facts.total_bytes == 8192 and facts.page_size == 1
    assert dict(facts.pages) == {(PageUse(5, (2,)),): 8192}
    assert dict(facts.categories) == {}
    assert NOTE_NO_KERNEL in facts.notes and not facts.exact
    attribution = attribute(facts)
    assert attribution.processes[2].private == 8192 and attribution.residual == 0


def test_capture_source_returns_stored_page_facts() -> None:
    snapshot = open_source("sim:doc").snapshot(Level.PAGES)
    source = CaptureSource(snapshot, "capture:x")
    assert source.snapshot(Level.PAGES) is snapshot
    assert source.snapshot(Level.FULL) is snapshot
    assert source.snapshot(Level.KMEM) is snapshot


def test_derived_page_facts_are_lazy_and_cached() -> None:
    snapshot = open_source("sim:doc").snapshot(Level.FULL)
    source = CaptureSource(snapshot, "capture:x")
    assert source.snapshot(Level.FULL) is snapshot  # no page facts unless asked
    first = source.snapshot(Level.PAGES)
    assert first is source.snapshot(Level.PAGES)
    assert gc.isenabled()  # turned off while deriving, and back on
    assert first.level is Level.PAGES and first.pages is not None
    assert replace(first, level=Level.FULL, pages=None) == snapshot
    assert source.snapshot(Level.FULL) is snapshot


# --- derived page facts: a hand-written memgraph file -------------------------------------


def kernel_records(**sizes: int) -> list[dict[str, object]]:
    return [
        {
            "id": f"kernel/{name}",
            "type": "kernel",
            "parent": "" if name == "physmem" else "kernel/physmem",
            "name": name,
            "size_bytes": size,
        }
        for name, size in sizes.items()
    ]


def vmo_entry(koid: int, committed: int, parent: int = 0) -> dict[str, object]:
    return {
        "koid": koid,
        "name": f"vmo{koid}",
        "size_bytes": committed,
        "parent_koid": parent,
        "num_children": 0,
        "num_mappings": 1,
        "share_count": 1,
        "committed_bytes": committed,
    }


def process_record(
    koid: int, refs: list[tuple[dict[str, object], str]], *, sizes: bool = True
) -> dict[str, object]:
    record: dict[str, object] = {"id": f"p/{koid}", "type": "p", "koid": koid, "parent": "j/1"}
    record["name"] = f"proc{koid}"
    if sizes:
        record.update(private_bytes=4096, shared_bytes=4096, pss_bytes=6144)
    if refs:
        record["vmos"] = [vmo for vmo, _via in refs]
        record["vmo_refs"] = [
            {"vmo_koid": vmo["koid"], "via": [via]}
            | ({"handle_rights": ["READ"]} if via == "HANDLE" else {})
            for vmo, via in refs
        ]
    return record


ROOT_JOB = {"id": "j/1", "type": "j", "koid": 1, "parent": "kernel/vmo", "name": "root"}
META = {"type": "__META", "timestamp": "2017-06-07T05:51:08.021Z"}
# free + vmo + heap + wired + mmu + ipc + other = physmem (1 MiB): consistent figures.
KERNEL = kernel_records(
    physmem=1048576,
    free=794624,
    vmo=40960,
    heap=65536,
    **{"heap/free": 16384},
    wired=131072,
    mmu=8192,
    ipc=4096,
    other=4096,
)
SHARED, HANDLE_ONLY = vmo_entry(100, 8192), vmo_entry(101, 4096)
PARENT, CLONE = vmo_entry(102, 12288), vmo_entry(103, 4096, parent=102)


def hand_memgraph(kernel: list[dict[str, object]] = KERNEL) -> list[dict[str, object]]:
    """Process 10 maps VMO 100 twice and holds a handle to it, and maps the parent 102;
    process 11 maps 100 and the clone 103 of 102, and holds 101 by handle only."""
    return [
        *kernel,
        ROOT_JOB,
        process_record(10, [(SHARED, "MAPPING"), (SHARED, "MAPPING"), (SHARED, "HANDLE")]),
        process_record(11, [(SHARED, "MAPPING"), (HANDLE_ONLY, "HANDLE"), (CLONE, "MAPPING")]),
        META,
    ]


def with_parent(records: list[dict[str, object]]) -> list[dict[str, object]]:
    records = copy.deepcopy(records)
    first = next(r for r in records if r.get("id") == "p/10")
    assert isinstance(first["vmos"], list) and isinstance(first["vmo_refs"], list)
    first["vmos"].append(PARENT)
    first["vmo_refs"].append({"vmo_koid": 102, "via": ["MAPPING"]})
    return records


def test_hand_memgraph_page_facts(tmp_path: Path) -> None:
    facts = facts_of(paged(write(tmp_path / "mg.json", with_parent(hand_memgraph()))))
    assert (facts.total_bytes, facts.page_size, facts.exact) == (1048576, 1, False)
    assert dict(facts.pages) == {
        # 100: mapped twice and held by 10, mapped by 11: each user once.
        (PageUse(100, (10, 11)),): 8192,
        # 101: held only by a handle of 11.
        (PageUse(101, (11,)),): 4096,
        # 102's bytes: reachable from 102 (10's) and its clone 103 (11's).
        (PageUse(102, (10,)), PageUse(103, (11,))): 12288,
        # 103's own bytes: only 103 reaches them.
        (PageUse(103, (11,)),): 4096,
    }
    assert dict(facts.categories) == {
        "free": 794624,
        "wired": 131072,
        "kernel heap": 65536 - 16384,
        "kernel heap free": 16384,
        "page tables": 8192,
        "ipc": 4096,
        "other": 4096,
        # kernel vmo - the committed bytes of the VMOs processes reach.
        UNREFERENCED: 40960 - (8192 + 4096 + 12288 + 4096),
    }
    assert dict(facts.process_kernel) == {} and dict(facts.process_estimated) == {}
    assert facts.notes == (NOTE_VMO_LEVEL, NOTE_ONCE_PER_PROCESS, NOTE_COW, NOTE_PROCESS_KERNEL)
    assert NOTE_COW.startswith("copy-on-write split approximated: ")

    a = attribute(facts)
    # 10: half of 100 (4096) + 102's share of 102's bytes (12288 / 2).
    ten = a.processes[10]
    assert (ten.private, ten.shared, ten.total) == (0, 4096 + 6144, 10240)
    assert dict(ten.by_vmo) == {100: 4096, 102: 6144}
    # 11: half of 100 + all of 101 + 103's share of 102's bytes + all of 103's own.
    eleven = a.processes[11]
    assert (eleven.private, eleven.shared) == (4096 + 4096, 4096 + 6144)
    assert eleven.total == 18432
    assert dict(eleven.by_vmo) == {100: 4096, 101: 4096, 103: 6144 + 4096}
    assert a.categories[UNREFERENCED] == 12288
    assert a.residual == 0 and a.accounted() == 1048576


def test_hand_memgraph_clone_without_its_parent(tmp_path: Path) -> None:
    # Without 102 in the file (no process references it), 103 starts its own family:
    # 102's 12288 bytes are unreferenced, and a note says the family was cut.
    facts = facts_of(paged(write(tmp_path / "mg.json", hand_memgraph())))
    assert (PageUse(103, (11,)),) in facts.pages
    assert facts.categories[UNREFERENCED] == 40960 - (8192 + 4096 + 4096)
    assert NOTE_COW not in facts.notes
    assert any(n.startswith("copy-on-write families cut: 1 VMOs") for n in facts.notes)
    assert attribute(facts).residual == 0


def test_more_vmo_bytes_than_the_kernel_figure_makes_no_negative_category(
    tmp_path: Path,
) -> None:
    # The kernel says 20480 bytes of VMOs, the processes reach 28672: no category goes
    # negative; the note says so and the residual carries the 8192 bytes.
    kernel = [
        {**r, "size_bytes": 20480}
        if r["id"] == "kernel/vmo"
        else {**r, "size_bytes": 794624 + 20480}
        if r["id"] == "kernel/free"
        else r
        for r in KERNEL
    ]
    facts = facts_of(paged(write(tmp_path / "mg.json", with_parent(hand_memgraph(kernel)))))
    assert UNREFERENCED not in facts.categories
    assert all(v >= 0 for v in facts.categories.values())
    note = next(n for n in facts.notes if "more than its kernel vmo figure" in n)
    assert "28672 bytes of VMO memory, 8192 more" in note
    assert attribute(facts).residual == -8192


def test_memgraph_without_vmo_records_uses_pss(tmp_path: Path) -> None:
    records = [
        *KERNEL,
        ROOT_JOB,
        process_record(10, []),
        process_record(11, []),
        process_record(12, [], sizes=False),
        META,
    ]
    snapshot = paged(write(tmp_path / "mg.json", records))
    assert snapshot.level is Level.TASKS  # a capture without VMOs stays at its level
    facts = facts_of(snapshot)
    assert dict(facts.pages) == {}
    # PSS = private + scaled shared = pss_bytes; 12 has no figures.
    assert dict(facts.process_estimated) == {10: 6144, 11: 6144}
    assert facts.categories[NOT_IN_PSS] == 40960 - 2 * 6144
    assert NOTE_NO_VMOS in facts.notes and NOTE_PROCESS_KERNEL in facts.notes
    assert any(n.startswith("1 process(es) had no figures") for n in facts.notes)
    a = attribute(facts)
    assert a.processes[10].estimated == 6144 and a.residual == 0


def test_memgraph_without_kernel_records(tmp_path: Path) -> None:
    records = [r for r in with_parent(hand_memgraph()) if r.get("type") != "kernel"]
    facts = facts_of(paged(write(tmp_path / "mg.json", records)))
    assert facts.total_bytes == 8192 + 4096 + 12288 + 4096
    assert dict(facts.categories) == {}
    assert NOTE_NO_KERNEL in facts.notes
    assert attribute(facts).residual == 0


def test_a_parent_cycle_in_memgraph_ends(tmp_path: Path) -> None:
    # Damage: 200 is 201's parent and 201 is 200's. Each reaches the other once.
    a, b = vmo_entry(200, 4096, parent=201), vmo_entry(201, 8192, parent=200)
    records = [*KERNEL, ROOT_JOB, process_record(10, [(a, "MAPPING"), (b, "HANDLE")]), META]
    facts = facts_of(paged(write(tmp_path / "mg.json", records)))
    key = (PageUse(200, (10,)), PageUse(201, (10,)))
    assert dict(facts.pages) == {key: 4096 + 8192}
    assert attribute(facts).processes[10].private == 12288


# --- derived page facts: a hand-written Fuchsia capture -----------------------------------


def fuchsia_capture(vmo_bytes: int = 4000) -> dict[str, object]:
    """Clone chain A (101) <- B (102) <- C (103) and a VMO D (104) no process references;
    process 1 references A and C, 2 references B, 3 references C."""
    return {
        "Time": 95724504776,
        "Kernel": {
            "total": 10000,
            "free": 5000 + 4000 - vmo_bytes,
            "wired": 500,
            "total_heap": 300,
            "free_heap": 100,
            "vmo": vmo_bytes,
            "mmu": 150,
            "ipc": 50,
            "other": 0,
        },
        "Processes": [
            ["koid", "name", "vmos"],
            [1, "one", [101, 103]],
            [2, "two", [102]],
            [3, "three", [103, 103]],
        ],
        "VmoNames": ["a", "b", "c", "d"],
        "Vmos": [
            ["koid", "name", "parent_koid", "committed_bytes", "allocated_bytes"],
            [101, 0, 0, 3000, 3000],
            [102, 1, 101, 600, 600],
            [103, 2, 102, 90, 90],
            [104, 3, 0, 70, 70],
        ],
    }


def test_hand_fuchsia_page_facts(tmp_path: Path) -> None:
    facts = facts_of(paged(write(tmp_path / "f.json", fuchsia_capture())))
    a_use, b_use, c_use = PageUse(101, (1,)), PageUse(102, (2,)), PageUse(103, (1, 3))
    assert dict(facts.pages) == {
        (a_use, b_use, c_use): 3000,  # A's bytes: reachable from A, B and C
        (b_use, c_use): 600,
        (c_use,): 90,
        # D: no process reaches it, so it is in "unreferenced VMOs" below.
    }
    assert dict(facts.categories) == {
        "free": 5000,
        "wired": 500,
        "kernel heap": 200,
        "kernel heap free": 100,
        "page tables": 150,
        "ipc": 50,
        UNREFERENCED: 4000 - (3000 + 600 + 90),
    }
    assert NOTE_COW in facts.notes and NOTE_PROCESS_KERNEL in facts.notes
    a = attribute(facts)
    # A's 3000: 1000 per VMO; C's 1000 halved between 1 and 3. B's 600: 300 to B (2),
    # 150 each to 1 and 3 through C. C's 90: 45 each.
    totals = {pid: share.total for pid, share in a.processes.items()}
    assert totals == {1: 1000 + 500 + 150 + 45, 2: 1000 + 300, 3: 500 + 150 + 45}
    assert all(share.private == 0 for share in a.processes.values())
    assert a.categories[UNREFERENCED] == 310  # 70 of D plus 240 no VMO record explains
    assert a.residual == 0 and a.accounted() == 10000


def test_hand_fuchsia_vmo_figure_too_small(tmp_path: Path) -> None:
    facts = facts_of(paged(write(tmp_path / "f.json", fuchsia_capture(vmo_bytes=3000))))
    assert UNREFERENCED not in facts.categories
    assert all(v > 0 for v in facts.categories.values())
    assert any("3690 bytes of VMO memory, 690 more" in n for n in facts.notes)
    assert attribute(facts).residual == -690


def test_the_real_fuchsia_capture(tmp_path: Path) -> None:
    snapshot = paged(str(FUCHSIA))
    facts = facts_of(snapshot)
    kmem = snapshot.kernel
    assert kmem is not None
    referenced = {k for p in snapshot.processes.values() for k in p.vmo_koids or ()}
    reached = sum(snapshot.vmos[k].committed_bytes for k in referenced)
    assert reached == 740474880  # every captured VMO is referenced by some process
    a = attribute(facts)
    assert a.processes_total() == reached
    assert a.categories[UNREFERENCED] == kmem.vmo_bytes - reached == 44191744
    assert a.categories["page tables"] == kmem.mmu_bytes
    assert all(v > 0 for v in a.categories.values())
    assert a.total_bytes == kmem.total_bytes
    # The capture's own figures add up to 1363968 bytes less than its total: that, and
    # only that, is the residual, and a note says so.
    assert kmem.total_bytes - kmem.parts_sum() == 1363968
    assert a.residual == 1363968
    assert any("1363968 less than its total (8588750848)" in n for n in facts.notes)
    assert NOTE_COW in facts.notes and NOTE_PROCESS_KERNEL in facts.notes
    assert not a.exact
    # Each process's share is no more than what it references plus their ancestors.
    for pid, share in a.processes.items():
        family: set[int] = set()
        for koid in snapshot.processes[pid].vmo_koids or ():
            while koid in snapshot.vmos and koid not in family:
                family.add(koid)
                koid = snapshot.vmos[koid].parent_koid
        assert 0 < share.total <= sum(snapshot.vmos[k].committed_bytes for k in family)


# --- derived page facts: memgraph of every world, and of the host -------------------------


def memgraph_file(tmp_path: Path, spec: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main([spec, "memgraph", "-vt"]) == 0
    path = tmp_path / "memgraph.json"
    path.write_text(capsys.readouterr().out)
    return str(path)


@pytest.mark.parametrize("world", [*WORLDS, "scale:300"])
def test_memgraph_of_every_world_adds_up(
    world: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = paged(memgraph_file(tmp_path, f"--sim={world}", capsys))
    facts = facts_of(snapshot)
    kmem = snapshot.kernel
    assert kmem is not None and kmem.parts_sum() == kmem.total_bytes
    a = attribute(facts)
    assert a.residual == 0 and a.accounted() == kmem.total_bytes
    assert all(v > 0 for v in a.categories.values())
    assert a.categories["free"] == kmem.free_bytes
    assert a.categories["wired"] == kmem.wired_bytes
    reached = sum(facts.pages.values())
    assert a.processes_total() == reached
    assert a.categories.get(UNREFERENCED, 0) == kmem.vmo_bytes - reached
    assert not a.exact
    assert NOTE_VMO_LEVEL in a.notes and NOTE_PROCESS_KERNEL in a.notes
    # Every process the capture has VMOs for gets a share; no one else does.
    with_vmos = {k for k, p in snapshot.processes.items() if p.aspace and p.aspace.mappings()}
    with_vmos |= {
        k for k, p in snapshot.processes.items() if any(h.type == "vmo" for h in p.handles or ())
    }
    assert set(a.processes) == with_vmos


@pytest.mark.parametrize("world", WORLDS)
def test_a_snapshot_file_without_page_facts_adds_up(world: str) -> None:
    # A FULL mxmem snapshot lists the kernel image and heap VMOs too: their bytes are in
    # the wired and heap figures, and must not be counted again.
    source = CaptureSource(open_source(f"sim:{world}").snapshot(Level.FULL), "capture:x")
    a = attribute(facts_of(source.snapshot(Level.PAGES)))
    assert a.residual == 0
    assert all(v > 0 for v in a.categories.values())


@pytest.mark.skipif(not LINUX, reason="needs Linux /proc with smaps_rollup")
def test_memgraph_of_the_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = paged(memgraph_file(tmp_path, "--host", capsys))
    facts = facts_of(snapshot)
    kmem = snapshot.kernel
    assert kmem is not None
    a = attribute(facts)
    assert a.processes and all(share.total > 0 for share in a.processes.values())
    assert all(v > 0 for v in a.categories.values())  # never a negative category
    reached = sum(facts.pages.values())
    over = max(reached - kmem.vmo_bytes, 0)
    assert a.residual == kmem.total_bytes - kmem.parts_sum() - over


# --- the CLI -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fuchsia", "memgraph", "hand-memgraph", "snapshot"])
def test_capture_exact_of_a_capture_round_trips(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if kind == "fuchsia":
        first = str(FUCHSIA)
    elif kind == "memgraph":
        first = memgraph_file(tmp_path, "--sim=doc-vmos", capsys)
    elif kind == "hand-memgraph":
        first = write(tmp_path / "mg.json", with_parent(hand_memgraph()))
    else:
        first = write(tmp_path / "old.json", OLD_FILE)
    second = tmp_path / "again.json.gz"
    assert main(["--capture", first, "capture", "--attribution=exact", "-o", str(second)]) == 0
    assert capsys.readouterr() == ("", "")
    expected = paged(first)
    again = open_source(f"capture:{second}")
    # The file carries the derived facts: every level gets them, nothing is derived again.
    assert again.snapshot(Level.FULL) == expected
    assert again.snapshot(Level.PAGES) == expected
    assert facts_of(expected).notes  # exact=False facts keep their notes


def test_capture_exact_of_the_sim(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    assert main(["--sim=doc", "capture", "--attribution=exact", "-o", str(path)]) == 0
    snapshot = open_source("capture:" + str(path)).snapshot(Level.FULL)
    assert snapshot == open_source("sim:doc").snapshot(Level.PAGES)
    assert facts_of(snapshot).exact and facts_of(snapshot).process_kernel
    # The default stays FULL, without page facts.
    assert main(["--sim=doc", "capture", "--attribution=2017", "-o", str(path)]) == 0
    assert open_source(f"capture:{path}").snapshot(Level.FULL).pages is None
    assert main(["--sim=doc", "capture", "-o", str(path)]) == 0
    assert '"pages"' not in path.read_text()


def test_capture_attribution_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sim=doc", "capture", "--attribution=pss", "-o", "-"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "capture: --attribution must be 2017 or exact, not 'pss'\n"


def _pages_doc() -> dict[str, object]:
    document = json.loads(dumps(open_source("sim:doc").snapshot(Level.PAGES)))
    assert isinstance(document, dict)
    return document


def _edit(change: str) -> dict[str, object]:
    doc = _pages_doc()
    pages = doc["pages"]
    assert isinstance(pages, dict)
    patterns = pages["pages"]
    if change == "users order":
        patterns[0][0][0][1] = list(reversed(patterns[0][0][0][1]))
    elif change == "user twice":
        patterns[0][0][0][1] = [1043, 1043]
    elif change == "vmo order":
        patterns[0][0] = list(reversed(patterns[0][0]))
    elif change == "duplicate pattern":
        patterns.append(patterns[0])
    elif change == "empty pattern":
        patterns[1][0] = []
    elif change == "negative count":
        patterns[1][1] = -1
    elif change == "kernel flag":
        patterns[1][0][0][2:] = [1]
    elif change == "page size":
        pages["page_size"] = 0
    elif change == "exact":
        del pages["exact"]
    elif change == "category twice":
        pages["categories"].append(pages["categories"][0])
    elif change == "kernel kinds":
        pages["process_kernel"][0][1] = {"page tables": 1}
    elif change == "pid":
        pages["process_kernel"].append(pages["process_kernel"][0])
    elif change == "level":
        doc["level"] = "EVERYTHING"
    elif change == "process vmos":
        doc["processes"][0]["v"] = [424242]
    return doc


BAD = [
    ("users order", "$.pages.pages[0][0][0][1][1]: users must be in ascending order, each once"),
    ("user twice", "$.pages.pages[0][0][0][1][1]: users must be in ascending order, each once"),
    ("vmo order", "$.pages.pages[0][0][1][0]: VMOs must be in ascending koid order, each once"),
    # {n}: the number of patterns the doc world has, where the appended copy lands.
    ("duplicate pattern", "$.pages.pages[{n}][0]: duplicate page pattern"),
    ("empty pattern", "$.pages.pages[1][0]: a page pattern needs at least one VMO"),
    ("negative count", "$.pages.pages[1][1]: -1 is out of range [0, 2**64)"),
    ("kernel flag", "$.pages.pages[1][0][0][2]: expected true or false, got 1"),
    ("page size", "$.pages.page_size: 0 is out of range [1, 2**64)"),
    ("exact", "$.pages.exact: expected true or false, got null"),
    ("category twice", '$.pages.categories[4][0]: duplicate category "wired"'),
    ("kernel kinds", "$.pages.process_kernel[0][1]: expected an array, got an object"),
    ("pid", "$.pages.process_kernel[12][0]: duplicate koid 1043"),
    ("level", "$.level: unknown level 'EVERYTHING' (KMEM, TASKS, FULL or PAGES)"),
    ("process vmos", "$.processes[0].v[0]: VMO 424242 is not in $.vmos"),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_page_facts_are_one_line_errors(
    change: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "bad.json", _edit(change))
    assert main(["--capture", path, "ps"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    n = len(_pages_doc()["pages"]["pages"])  # type: ignore[index]
    assert err == f"mxmem: {path}: {message.format(n=n)}\n"


# --- fuzzing: damaged page facts load or fail in one line --------------------------------

_VALID = json.dumps(_pages_doc()).encode()
_WEIRD = st.sampled_from(
    [None, True, False, -1, 0, 2**64, 1.5, "x", "", [], {}, [[]], [0, []], [[0, []]], {"a": 1}]
)


def _page_paths(value: object, path: tuple[object, ...]) -> list[tuple[object, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _page_paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:12]):  # the first patterns are enough
            out += _page_paths(v, (*path, i))
    return out


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_page_facts(data: st.DataObject) -> None:
    document = json.loads(_VALID)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _page_paths(document.get("pages"), ("pages",))
        path = data.draw(st.sampled_from(paths))
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["replace", "drop", "duplicate"]))
        try:
            if action == "replace":
                parent[path[-1]] = copy.deepcopy(data.draw(_WEIRD))
            elif action == "drop":
                del parent[path[-1]]
            elif isinstance(parent, list):
                parent.append(copy.deepcopy(parent[path[-1]]))
        except (KeyError, IndexError, TypeError):
            pass  # a path an earlier mutation removed
    try:
        snapshot = load_capture(json.dumps(document).encode(), "fuzz")
    except SourceError as err:
        assert "\n" not in str(err)
        return
    # What loads is a snapshot exact attribution can run on.
    facts = CaptureSource(snapshot, "capture:fuzz").snapshot(Level.PAGES).pages
    assert facts is not None
    assert isinstance(attribute(facts).residual, Fraction)
