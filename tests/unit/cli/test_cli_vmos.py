"""``mxmem vmos``: vmos.cpp's usage, errors and rows, byte for byte."""

from __future__ import annotations

import json
from importlib.resources import files

import jsonschema
import pytest
from runner import Mxmem, Result

from mxmem.cli.vmos import HELP
from mxmem.model import Perm, Rights
from mxmem.sources.sim import PAGE_SIZE, Kernel, SimSource
from mxmem.sources.sim.kernel import SimProcess, SimVmar

VMOS_SCHEMA = json.loads((files("mxmem") / "schemas" / "vmos.schema.json").read_text())
USAGE = "Usage: vmos <process-koid>|help\n"
HEADER = "rights  koid parent #chld #map #shr    size   alloc name"


def root_vmar(p: SimProcess) -> SimVmar:
    assert p.aspace is not None and p.aspace.root is not None
    return p.aspace.root


def app_world() -> Kernel:
    """p:3000 ``app`` and p:3100 ``other``.

    Handles of app, in order: ``libfoo.so`` 3010 (all rights), a duplicate of it with
    READ|MAP, its clone ``data:libfoo.so`` 3011, an unmapped nameless VMO 3012 (3 pages
    written), a clone 3014 of a kernel-only VMO, and two channel endpoints (not VMOs).
    Mappings of app, in address order: libfoo.so twice, the clone, the physical
    ``framebuffer`` 3013 (its handle closed) and the kernel-only ``kstack``. ``other``
    maps libfoo.so too, so its share count is 2 (two address spaces).
    """
    k = Kernel(64 << 20, wired_bytes=1 << 20)
    app = k.process_create(k.root_job, "app", koid=3000)
    k.process_start(app)
    lib = k.vmo_create(5 * PAGE_SIZE, "libfoo.so", owner=app, koid=3010)
    k.vmo_write(lib, 2 * PAGE_SIZE, PAGE_SIZE)
    k.handle_duplicate(app, k.handle_of(app, lib), Rights.READ | Rights.MAP)
    text = Perm.READ | Perm.EXECUTE
    k.vmar_map(root_vmar(app), lib, size=0x2000, perms=text, addr=0x10000000)
    k.vmar_map(root_vmar(app), lib, vmo_offset=0x2000, size=0x1000, addr=0x10003000)
    data = k.vmo_clone(lib, 0x3000, 0x2000, "data:libfoo.so", owner=app, koid=3011)
    k.vmo_write(data, 0, 1)
    k.vmar_map(root_vmar(app), data, addr=0x10004000)
    scratch = k.vmo_create(0x10000, "", owner=app, koid=3012)
    k.vmo_write(scratch, 0, 3 * PAGE_SIZE)
    fb = k.vmo_create_physical(0xFE000000, 0x4000, "framebuffer", owner=app, koid=3013)
    k.vmar_map(root_vmar(app), fb, addr=0x20000000)
    k.handle_close(app, k.handle_of(app, fb))
    kstack = k.vmo_create(PAGE_SIZE, "kstack", owner=None)
    k.vmo_write(kstack, 0, PAGE_SIZE)
    k.vmar_map(root_vmar(app), kstack, addr=0x30000000)
    k.vmo_clone(kstack, 0, PAGE_SIZE, "kclone", owner=app, koid=3014)
    k.channel_create(app)
    other = k.process_create(k.root_job, "other", koid=3100)
    k.process_start(other)
    k.vmar_map(root_vmar(other), lib, size=0x2000, perms=text, addr=0x10000000)
    return k


def run_vmos(mxmem: Mxmem, *args: str, kernel: Kernel | None = None) -> Result:
    return mxmem.run("vmos", *args, source=SimSource(kernel or app_world()))


def test_rows(mxmem: Mxmem) -> None:
    code, out, err = run_vmos(mxmem, "3000")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        HEADER,
        # Handles, in handle-table order; the channel handles are not VMOs.
        "rwxmdt  3010      -     1    3    2     20k      4k libfoo.so",
        "r--m--  3010      -     1    3    2     20k      4k libfoo.so",
        "rwxmdt  3011   3010     0    1    1      8k      4k data:libfoo.so",
        "rwxmdt  3012      -     0    0    1     64k     12k -",
        # A clone of a kernel-only VMO: its parent has no user koid, so "0".
        "rwxmdt  3014      0     0    0    1      4k      0B kclone",
        # Mappings, in address order, one row each: no de-duplication.
        "     -  3010      -     1    3    2     20k      4k libfoo.so",
        "     -  3010      -     1    3    2     20k      4k libfoo.so",
        "     -  3011   3010     0    1    1      8k      4k data:libfoo.so",
        "     -  3013      -     0    1    1     16k    phys framebuffer",
        "     -     0      -     1    1    1      4k      4k kstack",
        HEADER,
    ]


def test_other_process_sees_the_shared_vmo(mxmem: Mxmem) -> None:
    code, out, _ = run_vmos(mxmem, "0xc1c")  # 3100
    assert code == 0
    assert out.splitlines() == [
        HEADER,
        "     -  3010      -     1    3    2     20k      4k libfoo.so",
        HEADER,
    ]


def test_process_without_vmos_prints_headers(mxmem: Mxmem) -> None:
    k = Kernel(16 << 20, wired_bytes=1 << 20)
    p = k.process_create(k.root_job, "empty", koid=1100)
    k.process_start(p)
    code, out, _ = run_vmos(mxmem, "1100", kernel=k)
    assert (code, out) == (0, HEADER + "\n" + HEADER + "\n")


@pytest.mark.parametrize("arg", ["help", "-help", "--help"])
def test_help(mxmem: Mxmem, arg: str) -> None:
    code, out, err = run_vmos(mxmem, arg)
    assert (code, out, err) == (0, HELP, "")
    assert out.startswith("Usage: vmos <process-koid>\n\nDumps a process's VMOs to stdout.\n")


def test_help_explains_every_column() -> None:
    for column in ("rights:", "koid:", "parent:", "#chld:", "#map:", "#shr:", "size:"):
        assert f"\n  {column} " in HELP
    names = ("READ", "WRITE", "EXECUTE", "MAP", "DUPLICATE", "TRANSFER")
    for right, name in zip("rwxmdt", names, strict=True):
        assert f"          {right}: MX_RIGHT_{name}\n" in HELP
    assert "'phys' VMOs do not consume RAM." in HELP
    assert "  PSS     =  PRIVATE + (SHARED / #shr)\n" in HELP


@pytest.mark.parametrize("args", [[], ["1", "2"], ["--json"]])
def test_usage(mxmem: Mxmem, args: list[str]) -> None:
    assert run_vmos(mxmem, *args) == (2, "", USAGE)


def test_not_a_number(mxmem: Mxmem) -> None:
    assert run_vmos(mxmem, "0x1g") == (2, "", 'ERROR: "0x1g" is not a number\n' + USAGE)


def test_missing_process(mxmem: Mxmem) -> None:
    # 3010 is a VMO's koid, not a process's.
    assert run_vmos(mxmem, "3010") == (
        1,
        "",
        "ERROR: couldn't find process with koid 3010: MX_ERR_NOT_FOUND (-25)\n" + USAGE,
    )


def test_dead_process(mxmem: Mxmem) -> None:
    k = app_world()
    k.process_kill(k.root_job.processes[1])
    assert run_vmos(mxmem, "3100", kernel=k) == (
        1,
        "",
        "ERROR: process 3100 has no address space (state dead): MX_ERR_BAD_STATE (-20)\n",
    )


def test_json(mxmem: Mxmem) -> None:
    code, out, err = run_vmos(mxmem, "3000", "--json")
    assert (code, err) == (0, "")
    rows = json.loads(out)
    jsonschema.validate(rows, VMOS_SCHEMA)
    assert [(r["via"], r["koid"]) for r in rows] == [
        ("HANDLE", 3010),
        ("HANDLE", 3010),
        ("HANDLE", 3011),
        ("HANDLE", 3012),
        ("HANDLE", 3014),
        ("MAPPING", 3010),
        ("MAPPING", 3010),
        ("MAPPING", 3011),
        ("MAPPING", 3013),
        ("MAPPING", 0),
    ]
    assert rows[1] == {
        "via": "HANDLE",
        "rights": ["READ", "MAP"],
        "koid": 3010,
        "parent_koid": None,
        "num_children": 1,
        "num_mappings": 3,
        "share_count": 2,
        "size_bytes": 0x5000,
        "committed_bytes": 4096,
        "physical": False,
        "name": "libfoo.so",
    }
    assert rows[0]["rights"] == [
        "READ",
        "WRITE",
        "EXECUTE",
        "MAP",
        "DUPLICATE",
        "TRANSFER",
        "GET_PROPERTY",
        "SET_PROPERTY",
    ]
    assert (rows[3]["name"], rows[3]["num_mappings"], rows[3]["committed_bytes"]) == ("", 0, 12288)
    assert rows[4]["parent_koid"] == 0
    assert rows[7]["parent_koid"] == 3010
    assert rows[8] == {
        "via": "MAPPING",
        "rights": None,
        "koid": 3013,
        "parent_koid": None,
        "num_children": 0,
        "num_mappings": 1,
        "share_count": 1,
        "size_bytes": 0x4000,
        "committed_bytes": None,
        "physical": True,
        "name": "framebuffer",
    }


def test_schema_ties_rights_to_handles_and_alloc_to_ram() -> None:
    row = {
        "via": "MAPPING",
        "rights": None,
        "koid": 1,
        "parent_koid": None,
        "num_children": 0,
        "num_mappings": 1,
        "share_count": 1,
        "size_bytes": 4096,
        "committed_bytes": 0,
        "physical": False,
        "name": "",
    }
    jsonschema.validate([row], VMOS_SCHEMA)
    for bad in (
        {**row, "rights": ["READ"]},
        {**row, "via": "HANDLE"},
        {**row, "physical": True},
        {**row, "committed_bytes": None},
        {**row, "share_count": 0},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate([bad], VMOS_SCHEMA)


def test_hostile_vmo_name(mxmem: Mxmem) -> None:
    k = Kernel(16 << 20, wired_bytes=1 << 20)
    p = k.process_create(k.root_job, "p", koid=1100)
    k.process_start(p)
    k.vmo_create(0x1000, "\x1b[31mred\x1b[0m\n", owner=p, koid=1110)
    code, out, _ = run_vmos(mxmem, "1100", kernel=k)
    assert code == 0
    assert out.splitlines()[1] == (
        "rwxmdt  1110      -     0    0    1      4k      0B \\x1b[31mred\\x1b[0m\\n"
    )


def test_wide_koids_widen_their_columns(mxmem: Mxmem) -> None:
    # A Linux host's koids are 16 digits: on main they overflowed the 5-wide column and
    # every row's later columns shifted right of the header.
    k = Kernel(64 << 20, wired_bytes=1 << 20)
    app = k.process_create(k.root_job, "app", koid=3000)
    k.process_start(app)
    big = 2**52 + 5
    lib = k.vmo_create(PAGE_SIZE, "lib", owner=app, koid=big)
    k.vmar_map(root_vmar(app), lib, addr=0x10000000)
    k.vmo_clone(lib, 0, PAGE_SIZE, "copy", owner=app, koid=big + 1)
    code, out, _ = mxmem.run("vmos", "3000", source=SimSource(k))
    assert code == 0
    lines = out.splitlines()
    header = "rights             koid           parent #chld #map #shr    size   alloc name"
    assert lines[0] == lines[-1] == header
    assert lines[1:-1] == [
        "rwxmdt 4503599627370501                -     1    1    1      4k      0B lib",
        "rwxmdt 4503599627370502 4503599627370501     0    0    1      4k      0B copy",
        "     - 4503599627370501                -     1    1    1      4k      0B lib",
    ]
