"""``ps --attribution=exact`` on the seed's worlds: the whole outputs as goldens
(tests/goldens/data/ps-exact*.txt), two of the doc world's rows recomputed by hand."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import pytest

from mxmem.cli import main
from mxmem.model import Level
from mxmem.render.units import format_size
from mxmem.sources import open_source
from mxmem.sources.sim import PAGE_SIZE
from mxmem.sources.sim.worlds.doc import MEMORY_BYTES, WIRED_BYTES

P = PAGE_SIZE
Capsys = pytest.CaptureFixture[str]


def cells(out: str, koid: str) -> list[str]:
    (line,) = [ln for ln in out.splitlines() if ln.split()[:1] == [koid]]
    return line.split()[1:5]


def test_golden_doc(capsys: Capsys, golden: Callable[[str, str], None]) -> None:
    assert main(["--sim", "ps", "--attribution=exact"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    golden("ps-exact_doc.txt", out)
    snap = open_source("sim:doc").snapshot(Level.PAGES)
    assert snap.pages is not None
    kernel = snap.pages.process_kernel

    # p:2441 /boot/bin/ps. PRIVATE: its own pages, as 2017's PRIVATE (304k): ld.so.1 data
    # 24k, stack 4k, ps data 8k, TCB 4k, thread VMO 4k, libmxio data 12k, heap 240k + 8k.
    # SHARED: the vDSO's 7 pages among the 12 processes mapping it: 28672/12; ps's text
    # (6 pages) reaches both bootfs (devmgr's handle) and its clone: half; ld.so.1's text
    # (140 pages) and libmxio.so's (22) are reached by bootfs and 12 process clones: 1/13.
    private = 304 * 1024
    shared = Fraction(28672, 12) + 3 * P + Fraction(140 * P, 13) + Fraction(22 * P, 13)
    total = private + shared + sum(kernel[2441].values())
    assert cells(out, "p:2441") == [
        format_size(round(total)),  # 512.1k
        format_size(private),
        format_size(round(shared)),  # 64.2k
        format_size(sum(kernel[2441].values())),
    ]

    # p:1565 devhost:root. PRIVATE 248k (2017's). SHARED: the vDSO 28672/12; devhost's
    # text (7 pages) and libdriver.so's (12) reached by bootfs and the 5 devhosts' clones:
    # 1/6; ld.so.1 and libmxio.so as above; kpci.so (5 pages), only it and bootfs: 1/2.
    private = 248 * 1024
    shared = (
        Fraction(28672, 12)
        + Fraction(7 * P, 6)
        + Fraction(12 * P, 6)
        + Fraction(140 * P, 13)
        + Fraction(22 * P, 13)
        + Fraction(5 * P, 2)
    )
    total = private + shared + sum(kernel[1565].values())
    assert cells(out, "p:1565") == [
        format_size(round(total)),  # 485.9k
        format_size(private),
        format_size(round(shared)),  # 74.9k
        format_size(sum(kernel[1565].values())),
    ]
    # The summary: the doc's kstats figures (total 2046.9M, wired 72.6M).
    assert f"total                       {format_size(MEMORY_BYTES)}" in out.splitlines()
    assert f"wired                         {format_size(WIRED_BYTES)}" in out.splitlines()


def test_golden_doc_vmos(capsys: Capsys, golden: Callable[[str, str], None]) -> None:
    # Another boot, with VMOs no process maps or holds any more ("unreferenced VMOs").
    assert main(["--sim=doc-vmos", "ps", "--attribution=exact", "-T"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    golden("ps-exact-T_doc-vmos.txt", out)
    assert "\nunreferenced VMOs " in out
