"""The seed document's worlds (``doc``, ``doc-vmaps``, ``doc-vmos``) against the doc.

The doc's ``ps`` table must come out byte for byte; its ``vmaps`` and ``vmos`` examples
elide lines with ``...``, so their lines must appear in order, each run between two
``...`` contiguous. The whole current outputs are pinned as goldens too (see
tests/goldens/data/README.md). The consistency tests check the worlds are plausible systems.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from paths import GOLDEN_DIR
from runner import Mxmem

from mxmem.accounting.magenta2017 import task_memory
from mxmem.model import Level, Perm, ProcessState, Snapshot
from mxmem.sources.sim.source import kernel_snapshot
from mxmem.sources.sim.worlds import build, worlds
from mxmem.sources.sim.worlds.doc import WORLDS

K = 1024
VDSO = 1031
# The vDSO is mapped as r-- 24k and r-x 4k; the kernel divides per mapping, so with a
# share count of 12 each process gets 24576 // 12 + 4096 // 12 = 2048 + 341 bytes.
DOC_SCALED_VDSO = 24576 // 12 + 4096 // 12


def run(mxmem: Mxmem, *argv: str) -> str:
    code, out, err = mxmem.run(*argv)
    assert (code, err) == (0, "")
    return out


def seed_runs(text: str) -> list[list[str]]:
    """The runs of output lines in a seed excerpt: ``...`` separates runs, ``#`` lines
    are the doc's commentary."""
    runs: list[list[str]] = [[]]
    for line in text.splitlines():
        if line == "...":
            runs.append([])
        elif not line.startswith("#"):
            runs[-1].append(line)
    return [r for r in runs if r]


def missing_run(runs: list[list[str]], output: str) -> list[str] | None:
    """The first run not found (contiguously, after the previous one) in ``output``."""
    lines = output.splitlines()
    pos = 0
    for run_ in runs:
        for i in range(pos, len(lines) - len(run_) + 1):
            if lines[i : i + len(run_)] == run_:
                pos = i + len(run_)
                break
        else:
            return run_
    return None


def snapshot(world: str) -> Snapshot:
    return kernel_snapshot(build(world), Level.FULL)


# --------------------------------------------------------------------------- the doc's outputs


@pytest.mark.parametrize("argv", [["--sim", "ps"], ["--sim=doc", "ps"]])
def test_ps_prints_the_doc_table_byte_for_byte(
    mxmem: Mxmem, argv: list[str]
) -> None:
    assert run(mxmem, *argv) == (GOLDEN_DIR / "ps_doc.txt").read_text()


def test_vmaps_2470_shows_the_doc_lines_in_order(mxmem: Mxmem) -> None:
    out = run(mxmem, "--sim=doc-vmaps", "vmaps", "2470")
    runs = seed_runs((GOLDEN_DIR / "vmaps_doc-vmaps_2470.seed.txt").read_text())
    assert [len(r) for r in runs] == [2, 4, 1, 2, 1, 3, 4]
    assert missing_run(runs, out) is None
    # The doc's first two lines open the output; every "..." of the doc holds something.
    assert out.splitlines()[:2] == runs[0]
    assert len(out.splitlines()) > sum(len(r) for r in runs) + len(runs)


def test_vmos_1118_shows_the_doc_lines_in_order(mxmem: Mxmem) -> None:
    out = run(mxmem, "--sim=doc-vmos", "vmos", "1118")
    runs = seed_runs((GOLDEN_DIR / "vmos_doc-vmos_1118.seed.txt").read_text())
    assert [len(r) for r in runs] == [7, 4]
    assert missing_run(runs, out) is None
    lines = out.splitlines()
    # Header first and last, the doc's rows right after the first header, and ld.so.1's
    # three rows just before the last.
    assert lines[:7] == runs[0]
    assert lines[-4:] == runs[1]
    # 1381 is mapped three times by 1118, so it has three mapping rows.
    assert sum(" 1381 " in line for line in lines) == 3


def test_seed_matcher_rejects_reordered_or_broken_runs() -> None:
    runs = [["a", "b"], ["c"]]
    assert missing_run(runs, "a\nb\nx\nc\n") is None
    assert missing_run(runs, "c\na\nb\n") == ["c"]  # out of order
    assert missing_run(runs, "a\nx\nb\nc\n") == ["a", "b"]  # not contiguous
    assert seed_runs("x\n# note\n...\ny\nz\n...\n") == [["x"], ["y", "z"]]


@pytest.mark.parametrize(
    ("golden_name", "argv"),
    [
        ("vmaps_doc-vmaps_2470.txt", ["--sim=doc-vmaps", "vmaps", "2470"]),
        ("vmos_doc-vmos_1118.txt", ["--sim=doc-vmos", "vmos", "1118"]),
        ("ps-T_doc.txt", ["--sim", "ps", "-T"]),
    ],
)
def test_whole_outputs_match_goldens(
    mxmem: Mxmem,
    golden: Callable[[str, str], None],
    golden_name: str,
    argv: list[str],
) -> None:
    golden(golden_name, run(mxmem, *argv))


# --------------------------------------------------------------------------- the worlds


def test_worlds_are_registered_with_one_line_descriptions() -> None:
    assert [w.name for w in WORLDS] == ["doc", "doc-vmaps", "doc-vmos"]
    assert [w.name for w in worlds()][:3] == ["doc", "doc-vmaps", "doc-vmos"]
    for w in WORLDS:
        assert w.description and "\n" not in w.description


@pytest.mark.parametrize("world", ["doc", "doc-vmaps", "doc-vmos"])
def test_kernel_memory_figures_sum_to_total(world: str) -> None:
    kmem = snapshot(world).kernel
    assert kmem is not None
    assert kmem.parts_sum() == kmem.total_bytes
    assert kmem.free_bytes > 0 and kmem.vmo_bytes > 0 and kmem.mmu_bytes > 0


@pytest.mark.parametrize("world", ["doc", "doc-vmaps", "doc-vmos"])
def test_worlds_are_deterministic(world: str) -> None:
    assert snapshot(world) == snapshot(world)


def test_doc_processes_are_the_doc_twelve_all_running() -> None:
    snap = snapshot("doc")
    assert sorted(snap.processes) == [
        1043, 1104, 1209, 1290, 1565, 1619, 1688, 1867, 1916, 2115, 2334, 2441
    ]  # fmt: skip
    assert all(p.state is ProcessState.RUNNING for p in snap.processes.values())
    # Each has an initial thread; only ps, which takes the snapshot, is running.
    running = {
        p.koid
        for p in snap.processes.values()
        for t in p.threads
        if t.name == "initial-thread" and t.state == "running"
    }
    assert running == {2441}


@pytest.mark.parametrize(("world", "processes"), [("doc", 12), ("doc-vmaps", 13), ("doc-vmos", 14)])
def test_vdso_is_mapped_twice_by_every_process(world: str, processes: int) -> None:
    snap = snapshot(world)
    assert len(snap.processes) == processes
    vdso = snap.vmos[VDSO]
    assert (vdso.name, vdso.size_bytes, vdso.committed_bytes) == ("vdso/full", 28 * K, 28 * K)
    # The doc's vmos row: 2 children (the kernel's variants), 2 mappings per process,
    # shared by every process.
    assert (vdso.num_children, vdso.num_mappings, vdso.share_count) == (
        2,
        2 * processes,
        processes,
    )


def test_doc_figures_come_from_the_kernel_rule() -> None:
    snap = snapshot("doc")
    mem = task_memory(snap)
    devmgr = mem.processes[1043]
    assert devmgr is not None
    assert (devmgr.private_bytes, devmgr.shared_bytes, devmgr.scaled_shared_bytes) == (
        1384 * K,
        28 * K,
        DOC_SCALED_VDSO,
    )
    # Job roll-ups sum PSS and PRIVATE over all descendant processes.
    services = mem.jobs[1103]
    assert services.private_bytes == (296 + 240 + 360 + 264 + 304) * K
    assert services.pss_bytes == services.private_bytes + 5 * DOC_SCALED_VDSO
    drivers = mem.jobs[1082]
    assert drivers.private_bytes == (772 + 248 + 652 + 256 + 3876 + 24944) * K
    root = mem.jobs[1028]
    assert root.pss_bytes == (1384 + 30748 + 1464) * K + 12 * DOC_SCALED_VDSO


@pytest.mark.parametrize("world", ["doc", "doc-vmaps", "doc-vmos"])
def test_program_text_is_a_bootfs_clone_owning_no_mapped_pages(world: str) -> None:
    snap = snapshot(world)
    texts = 0
    for p in snap.processes.values():
        assert p.aspace is not None
        for m in p.aspace.mappings():
            if m.perms & Perm.EXECUTE and m.vmo_koid != VDSO:
                texts += 1
                assert m.committed_bytes == 0, (p.koid, m)
                # The per-process clone of the opened file, itself a clone of bootfs.
                file = snap.vmos[snap.vmos[m.vmo_koid].parent_koid]
                assert snap.vmos[file.parent_koid].name == "bootfs"
    assert texts >= 2 * len(snap.processes)  # a program and ld.so.1 at least


def test_doc_vmos_crashlogger_holds_two_vmo_handles() -> None:
    snap = snapshot("doc-vmos")
    crashlogger = snap.processes[1118]
    assert crashlogger.name == "crashlogger" and crashlogger.handles is not None
    vmo_handles = [h.koid for h in crashlogger.handles if h.type == "vmo"]
    assert vmo_handles == [1170, VDSO]
