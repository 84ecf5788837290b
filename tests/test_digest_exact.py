"""``mxmem digest --attribution=exact``: buckets sized by exact attribution (issue 6).

The small world is built here with the simulated kernel's own calls, and every row is
computed by hand in the comments (P = 4096; kernel costs from the sim's ``HEAP_COST``:
process 1536, address space 512, root VMAR 256, mapping 192, handle 64, a VMO's 384
split equally among the processes that map or hold it; page tables: a PML4 page, plus
3 pages once something is mapped inside the 2 MiB block at 0x1000000).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fixed import FixedSource

from mxmem.accounting.digest import bucket_rules, exact_digest
from mxmem.accounting.figures import figures
from mxmem.cli import main
from mxmem.cli.digest import HELP
from mxmem.model import Level
from mxmem.render.exact import APPROXIMATE
from mxmem.sources import Source, open_source
from mxmem.sources.sim import PAGE_SIZE, Kernel, SimSource
from mxmem.sources.sim.kernel import SimProcess, SimVmar

P = PAGE_SIZE
BASE = 0x1000000
FUCHSIA = Path(__file__).parent / "fixtures" / "fuchsia"

Capsys = pytest.CaptureFixture[str]


def root(p: SimProcess) -> SimVmar:
    assert p.aspace is not None and p.aspace.root is not None
    return p.aspace.root


def world() -> Kernel:
    """Three processes, in this order: blobfs p:1100, other p:1200, app p:1300.

    - ``blob-1`` (1500): 4 pages, blobfs's handle, never mapped;
    - its copy-on-write clone (1501, also named ``blob-1``), app's handle, mapped in app;
      app wrote the clone's page 1, so the clone has 1 page of its own and still sees
      blob-1's pages 0, 2 and 3;
    - ``heap`` (1502): 3 pages, app's, mapped in app;
    - ``libc.so`` (1503): 2 pages, app's handle, mapped in app and in other;
    - ``scratch`` (1504): 1 page, other's handle, never mapped.
    """
    k = Kernel(64 << 20, wired_bytes=1 << 20)
    blobfs = k.process_create(k.root_job, "blobfs", koid=1100)
    other = k.process_create(k.root_job, "other", koid=1200)
    app = k.process_create(k.root_job, "app", koid=1300)
    for p in (blobfs, other, app):
        k.process_start(p)
    blob = k.vmo_create(4 * P, "blob-1", owner=blobfs, koid=1500)
    k.vmo_write(blob, 0, 4 * P)
    clone = k.vmo_clone(blob, 0, 4 * P, owner=app, koid=1501)
    k.vmo_write(clone, P, P)
    k.vmar_map(root(app), clone, addr=BASE)
    heap = k.vmo_create(3 * P, "heap", owner=app, koid=1502)
    k.vmo_write(heap, 0, 3 * P)
    k.vmar_map(root(app), heap, addr=BASE + 4 * P)
    lib = k.vmo_create(2 * P, "libc.so", owner=app, koid=1503)
    k.vmo_write(lib, 0, 2 * P)
    k.vmar_map(root(app), lib, addr=BASE + 7 * P)
    k.vmar_map(root(other), lib, addr=BASE)
    scratch = k.vmo_create(P, "scratch", owner=other, koid=1504)
    k.vmo_write(scratch, 0, P)
    return k


BUCKETS = [
    {"name": "Blobs", "process": "blobfs", "vmo": "blob-.*"},
    {"name": "App", "process": "app"},
    {"name": "Libs", "vmo": r".*\.so"},
]

# By hand. Exact VMO bytes: blob-1's pages 0, 2, 3 are reached by blob-1 (blobfs) and
# the clone (app): half each; its page 1 only by blob-1: blob-1 = 1.5P + P = 10240, the
# clone = 1.5P + its own page = 10240. heap 3P = 12288, libc.so 2P = 8192, scratch 4096.
# Claims (Fuchsia's order: buckets in file order, then processes, then VMOs): Blobs
# claims blob-1 through blobfs; App claims all of app's: the clone, heap and libc.so,
# 10240 + 12288 + 8192 = 30720; Libs finds libc.so taken: 0. Undigested: scratch, 4096
# (other's, private).
# (2017 sizes them by committed bytes instead: Blobs 4P, App P + 3P: 16384 each.)
# Kernel (processes):
#   blobfs: page tables P + process 1536 + aspace 512 + VMAR 256 + 1 handle 64 + blob-1
#           384 = 6848
#   other:  page tables 4P + 1536 + 512 + 256 + 1 mapping 192 + 1 handle 64 + libc.so
#           384/2 + scratch 384 = 19520
#   app:    page tables 4P + 1536 + 512 + 256 + 3 mappings 576 + 3 handles 192 + clone
#           384 + heap 384 + libc.so 192 = 20416
#   = 46784
# Wired: 256 pages (1 MiB). The heap took one 16-page chunk, 65536 bytes, of which the
# root job's 512 and the processes' objects (2752 + 3136 + 4032) are used: heap free
# 55104, "Kernel objects (no process)" 512 (the root job). Free: 16384 pages - 256 wired
# - 16 heap - 11 VMO pages - 9 page-table pages = 16092 pages = 65912832.
EXPECTED = [
    ("App", 30720, 3),
    ("Blobs", 10240, 1),
    ("Libs", 0, 0),
    ("Undigested", 4096, 1),
    ("Kernel (processes)", 46784, 0),
    ("Wired", 1 << 20, 0),
    ("Kernel heap free", 55104, 0),
    ("Kernel objects (no process)", 512, 0),
    ("Free", 16092 * P, 0),
]


def bucket_file(tmp_path: Path, buckets: list[dict[str, Any]] | None = None) -> str:
    path = tmp_path / "buckets.json"
    path.write_text(json.dumps(BUCKETS if buckets is None else buckets))
    return str(path)


def run(capsys: Capsys, *args: str, source: Source | None = None) -> tuple[int, str, str]:
    code = main(["digest", *args], source=source or SimSource(world()))
    out, err = capsys.readouterr()
    return code, out, err


def test_exact_buckets_by_hand() -> None:
    snap = SimSource(world()).snapshot(Level.PAGES)
    result = exact_digest(snap, bucket_rules(BUCKETS, "b"), figures(snap, "exact"))
    assert [(b.name, b.size_bytes, b.vmo_count) for b in result.buckets] == EXPECTED
    assert sum(b.size_bytes for b in result.buckets) == result.total_bytes == 64 << 20
    assert (result.exact, result.notes) == (True, ())


def test_csv_and_json(tmp_path: Path, capsys: Capsys) -> None:
    path = bucket_file(tmp_path)
    code, out, err = run(capsys, "--attribution=exact", "--buckets", path, "--output=csv")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["bucket,size_bytes,vmos"] + [
        f"{name},{size},{count}" for name, size, count in EXPECTED
    ]
    code, out, err = run(capsys, "--attribution=exact", f"--buckets={path}", "--output", "json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "attribution": "exact",
        "exact": True,
        "total_bytes": 64 << 20,
        "notes": [],
        "buckets": [{"name": n, "size_bytes": s, "vmos": c} for n, s, c in EXPECTED],
        "undigested": [{"koid": 1200, "name": "other", "size_bytes": 4096}],
    }


def test_human_table_ends_with_the_total_it_adds_up_to(tmp_path: Path, capsys: Capsys) -> None:
    code, out, err = run(capsys, "--attribution=exact", "--buckets", bucket_file(tmp_path))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "BUCKET                            SIZE",
        "App                              30KiB",
        "Blobs                            10KiB",
        "Libs                                0B",
        "Undigested                        4KiB",
        "Kernel (processes)            45.69KiB",  # 46784 / 1024 = 45.6875
        "Wired                             1MiB",
        "Kernel heap free              53.81KiB",  # 55104 / 1024 = 53.8125
        "Kernel objects (no process)       512B",
        "Free                          62.86MiB",  # 16092 / 256 = 62.859375
        "Total                            64MiB",
        "",
        "UNDIGESTED BY PROCESS       SIZE",
        "other[1200]                 4KiB",
    ]


def test_buckets_are_optional_in_exact_mode(capsys: Capsys) -> None:
    # Without buckets every VMO byte is Undigested: 10240 * 2 + 12288 + 8192 + 4096.
    code, out, err = run(capsys, "--attribution=exact", "--output=csv")
    assert (code, err) == (0, "")
    assert out.splitlines()[1] == "Undigested,45056,5"
    assert out.splitlines()[2:] == [f"{n},{s},{c}" for n, s, c in EXPECTED[4:]]
    # ... and still required in 2017 mode.
    code, out, err = run(capsys, "--attribution=2017")
    assert (code, out) == (2, "")
    assert err == "digest: --buckets FILE is required; see `mxmem digest --help`\n"


def test_fractional_shares_round_so_the_rows_add_up(tmp_path: Path, capsys: Capsys) -> None:
    """One page reached by a VMO and two clones, each used by its own process: P/3 =
    1365.33 bytes each. Rounded by largest remainder, the three rows add up to the page:
    1366 + 1365 + 1365 (the extra byte to the first row, ties keep file order)."""
    k = Kernel(16 << 20, wired_bytes=1 << 20)
    procs = [k.process_create(k.root_job, f"p{i}", koid=1100 + 100 * i) for i in range(3)]
    for p in procs:
        k.process_start(p)
    parent = k.vmo_create(P, "v", owner=procs[0], koid=1500)
    k.vmo_write(parent, 0, P)
    k.vmo_clone(parent, 0, P, owner=procs[1], koid=1501)
    k.vmo_clone(parent, 0, P, owner=procs[2], koid=1502)
    buckets = [{"name": f"B{i}", "process": f"p{i}"} for i in range(3)]
    path = bucket_file(tmp_path, buckets)
    code, out, _ = run(
        capsys, "--attribution=exact", "--buckets", path, "--output=json", source=SimSource(k)
    )
    assert code == 0
    doc = json.loads(out)
    rows = [(b["name"], b["size_bytes"]) for b in doc["buckets"]]
    assert rows[:4] == [("B0", 1366), ("B1", 1365), ("B2", 1365), ("Undigested", 0)]
    assert sum(size for _, size in rows) == doc["total_bytes"] == 16 << 20


@pytest.mark.parametrize("world_spec", ["doc", "doc-vmaps", "doc-vmos", "scale:40"])
def test_builtin_worlds_add_up_to_the_byte(world_spec: str, capsys: Capsys) -> None:
    buckets = FUCHSIA / "example_buckets.json"
    code, out, err = run(
        capsys,
        "--attribution=exact",
        "--buckets",
        str(buckets),
        "--output=json",
        source=open_source(f"sim:{world_spec}"),
    )
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["exact"] is True
    assert sum(b["size_bytes"] for b in doc["buckets"]) == doc["total_bytes"]
    assert all(b["size_bytes"] >= 0 for b in doc["buckets"])
    assert "Residual" not in [b["name"] for b in doc["buckets"]]
    assert doc["buckets"][-1]["name"] == "Free"


def test_a_source_without_page_facts_is_a_one_line_error(capsys: Capsys) -> None:
    source = FixedSource(SimSource(world()).snapshot(Level.FULL))
    code, out, err = run(capsys, "--attribution=exact", source=source)
    assert (code, out) == (1, "")
    assert err == (
        "digest: --attribution=exact: the source fixed has no page-level facts to attribute\n"
    )


@pytest.mark.parametrize("value", ["", "Exact", "2016"])
def test_an_unknown_attribution_is_a_usage_error(capsys: Capsys, value: str) -> None:
    code, out, err = run(capsys, f"--attribution={value}")
    assert (code, out) == (2, "")
    assert err == f"digest: --attribution must be 2017 or exact, not {value!r}\n"


def test_help_describes_exact_mode(capsys: Capsys) -> None:
    code, out, _ = run(capsys, "--help")
    assert (code, out) == (0, HELP)
    assert "--attribution=exact" in out
    assert "--buckets is optional here" in out


# --- the real Fuchsia capture: approximate -------------------------------------------------


def test_real_fuchsia_capture_is_approximate_and_adds_up(capsys: Capsys) -> None:
    capture = FUCHSIA / "test_snapshot.json"
    if open_source(f"capture:{capture}").snapshot(Level.PAGES).pages is None:
        pytest.xfail("the capture source has no page facts (Level.PAGES) yet")
    buckets = FUCHSIA / "test_digest.json"
    code = main(
        [
            "--capture",
            str(capture),
            "digest",
            "--attribution=exact",
            "--buckets",
            str(buckets),
            "--output=json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    doc = json.loads(out)
    raw = json.loads(capture.read_bytes())
    kernel = raw["Kernel"]
    # A capture has VMO figures, not pages: approximate, said once on standard error
    # (the notes are in the JSON).
    assert doc["exact"] is False
    assert doc["notes"]
    assert err == f"digest: note: {APPROXIMATE}\n"
    sizes = {b["name"]: b["size_bytes"] for b in doc["buckets"]}
    n_named = len(json.loads(buckets.read_bytes()))
    named = [b["size_bytes"] for b in doc["buckets"][:n_named]]
    assert named == sorted(named, reverse=True)
    # Every committed byte of the capture's 6253 VMOs (all of them referenced, directly or
    # as an ancestor of a referenced clone) lands once in the buckets or Undigested:
    # 740474880 bytes, the sum of the Vmos table's committed_bytes column.
    committed = sum(row[3] for row in raw["Vmos"][1:])
    assert committed == 740474880
    assert sum(named) + sizes["Undigested"] == committed
    # The rest is the kernel's own figures, by kind; they leave 1363968 bytes of the
    # total unclassified, shown as the Residual (never folded into a category).
    assert sizes["Free"] == kernel["free"] == 7670870016
    assert "Kernel (processes)" not in sizes  # a capture cannot tell; said in a note
    assert sum(sizes.values()) == doc["total_bytes"] == kernel["total"]
    assert sizes["Residual"] == kernel["total"] - sum(
        kernel[k] for k in ("free", "wired", "total_heap", "vmo", "mmu", "ipc", "other")
    )
    assert sizes["Residual"] == 1363968
    code = main(["--capture", str(capture), "digest", "--attribution=exact"])
    out, err = capsys.readouterr()
    assert code == 0
    lines = out.splitlines()
    total = lines.index("Total (approximate)   7.999GiB")
    assert lines[total - 1] == "Residual              1.301MiB"
    assert lines[total + 2].startswith("UNDIGESTED BY PROCESS")
