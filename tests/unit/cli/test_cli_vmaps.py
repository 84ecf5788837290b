"""``mxmem vmaps``: vmaps.c's usage, errors and map lines, byte for byte."""

from __future__ import annotations

import json
from importlib.resources import files

import jsonschema
import pytest
from fixed import RecordingSource

from mxmem.cli import main
from mxmem.cli.vmaps import HELP
from mxmem.model import Level, Perm
from mxmem.sources.sim import PAGE_SIZE, Kernel, SimSource
from mxmem.sources.sim.kernel import SimProcess, SimVmar

VMAPS_SCHEMA = json.loads((files("mxmem") / "schemas" / "vmaps.schema.json").read_text())
USAGE = "Usage: vmaps <process-koid>|help\n"
R1 = 0x187BC860000  # above 4 GiB: printed as %016x
R2 = R1 + 0x10000


def root_vmar(p: SimProcess) -> SimVmar:
    assert p.aspace is not None and p.aspace.root is not None
    return p.aspace.root


def app_world() -> Kernel:
    """p:2000 ``app`` with, in address order:

    - a kernel-only VMO ``kstack`` (1 of 1 page committed) mapped below 4 GiB;
    - VMAR 2002 (128k) holding two ranges of ``libfoo.so`` (page 2 committed), a
      copy-on-write clone ``data:libfoo.so`` (1 page written) and VMAR 2003 (32k) with a
      physical VMO ``framebuffer`` in it — four levels deep.
    """
    k = Kernel(64 << 20, wired_bytes=1 << 20)
    app = k.process_create(k.root_job, "app", koid=2000)  # root VMAR 2001
    k.process_start(app)
    root = root_vmar(app)
    r1 = k.vmar_allocate(root, 0x20000, addr=R1, koid=2002)
    r2 = k.vmar_allocate(r1, 0x8000, addr=R2, koid=2003)
    lib = k.vmo_create(5 * PAGE_SIZE, "libfoo.so", owner=app, koid=2010)
    k.vmo_write(lib, 2 * PAGE_SIZE, PAGE_SIZE)
    k.vmar_map(r1, lib, size=0x2000, perms=Perm.READ | Perm.EXECUTE, addr=R1)
    k.vmar_map(r1, lib, vmo_offset=0x2000, size=0x1000, perms=Perm.READ, addr=R1 + 0x3000)
    data = k.vmo_clone(lib, 0x3000, 0x2000, "data:libfoo.so", owner=app, koid=2011)
    k.vmo_write(data, 0, 100)
    k.vmar_map(r1, data, addr=R1 + 0x4000)
    fb = k.vmo_create_physical(0xFE000000, 0x4000, "framebuffer", owner=app, koid=2012)
    k.vmar_map(r2, fb, addr=R2)
    kstack = k.vmo_create(PAGE_SIZE, "kstack", owner=None)
    k.vmo_write(kstack, 0, PAGE_SIZE)
    k.vmar_map(root, kstack, addr=0x2000000)
    return k


def run_vmaps(
    capsys: pytest.CaptureFixture[str], *args: str, kernel: Kernel | None = None
) -> tuple[int, str, str]:
    code = main(["vmaps", *args], source=SimSource(kernel or app_world()))
    out, err = capsys.readouterr()
    return code, out, err


def test_map_lines(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_vmaps(capsys, "2000")
    assert (code, err) == (0, "")
    # max_depth is 4, so every prefix is 3 wide: "/A" + 1, then (depth-2) + letter +
    # (4-depth). The aspace size 0x7fffeffff000 is 128T - 256M + 4k: "128.0T".
    assert out.splitlines() == [
        "/A  ________01000000-00007ffffffff000    128.0T:sz                    'proc:2000'",
        "/R  ________01000000-00007ffffffff000    128.0T:sz                    'root'",
        "M   ________02000000-________02001000 rw-    4k:sz   4k:res     0:vmo 'kstack'",
        "R   00000187bc860000-00000187bc880000      128k:sz                    'useralloc'",
        " M  00000187bc860000-00000187bc862000 r-x    8k:sz   0B:res  2010:vmo 'libfoo.so'",
        " M  00000187bc863000-00000187bc864000 r--    4k:sz   4k:res  2010:vmo 'libfoo.so'",
        " M  00000187bc864000-00000187bc866000 rw-    8k:sz   4k:res  2011:vmo 'data:libfoo.so'",
        " R  00000187bc870000-00000187bc878000       32k:sz                    'useralloc'",
        "  M 00000187bc870000-00000187bc874000 rw-   16k:sz   0B:res  2012:vmo 'framebuffer'",
    ]


def test_two_level_tree_keeps_the_c_negative_width_quirk(
    capsys: pytest.CaptureFixture[str],
) -> None:
    k = Kernel(16 << 20, wired_bytes=1 << 20)
    p = k.process_create(k.root_job, "flat", koid=1100)
    k.process_start(p)
    vmo = k.vmo_create(0x3000, "heap", owner=p, koid=1110)
    k.vmo_write(vmo, 0, 0x2000)
    k.vmar_map(root_vmar(p), vmo, addr=0x7FFF0000)
    code, out, _ = run_vmaps(capsys, "1100", kernel=k)
    assert code == 0
    # max_depth 2: "/%c%*s" gets width -1, which C prints as one space; depth-2 lines
    # get no padding at all, so they start one column to the left.
    assert out.splitlines() == [
        "/A  ________01000000-00007ffffffff000    128.0T:sz                    'proc:1100'",
        "/R  ________01000000-00007ffffffff000    128.0T:sz                    'root'",
        "M ________7fff0000-________7fff3000 rw-   12k:sz   8k:res  1110:vmo 'heap'",
    ]


def test_vmar_only_at_depth_three(capsys: pytest.CaptureFixture[str]) -> None:
    k = Kernel(16 << 20, wired_bytes=1 << 20)
    p = k.process_create(k.root_job, "p", koid=1100)
    k.process_start(p)
    vmar = k.vmar_allocate(root_vmar(p), 0x4000, addr=0x10000000, name="stack", koid=1102)
    vmo = k.vmo_create(0x3000, "", owner=p, koid=1110)
    k.vmar_map(vmar, vmo, addr=0x10001000)
    code, out, _ = run_vmaps(capsys, "1100", kernel=k)
    assert code == 0
    assert out.splitlines()[2:] == [
        "R  ________10000000-________10004000       16k:sz                    'stack'",
        " M ________10001000-________10004000 rw-   12k:sz   0B:res  1110:vmo ''",
    ]


def test_vmaps_asks_for_one_full_process(capsys: pytest.CaptureFixture[str]) -> None:
    source = RecordingSource(app_world())
    assert main(["vmaps", "2000"], source=source) == 0
    capsys.readouterr()
    assert source.calls == [(Level.FULL, [2000])]


@pytest.mark.parametrize("koid", ["0x7d0", "0X7D0", "03720", " 2000", "+2000"])
def test_koid_is_parsed_like_strtoull_base_0(capsys: pytest.CaptureFixture[str], koid: str) -> None:
    code, out, err = run_vmaps(capsys, koid)
    assert (code, err) == (0, "")
    assert out.startswith("/A  ________01000000-00007ffffffff000    128.0T:sz")


@pytest.mark.parametrize("arg", ["help", "-help", "--help", "---help"])
def test_help(capsys: pytest.CaptureFixture[str], arg: str) -> None:
    code, out, err = run_vmaps(capsys, arg)
    assert (code, out, err) == (0, HELP, "")


def test_help_text_is_the_documented_one() -> None:
    assert HELP == (
        "Usage: vmaps <process-koid>\n"
        "\n"
        "Dumps a process's memory maps to stdout.\n"
        "\n"
        "First column:\n"
        '  "/A" -- Process address space\n'
        '  "/R" -- Root VMAR\n'
        '  "R"  -- VMAR (R for Region)\n'
        '  "M"  -- Mapping\n'
        "\n"
        "  Indentation indicates parent/child relationship.\n"
    )


@pytest.mark.parametrize("args", [[], ["2000", "2001"], ["--json"], ["help", "x"]])
def test_wrong_argument_count_prints_usage(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, err = run_vmaps(capsys, *args)
    assert (code, out, err) == (2, "", USAGE)


@pytest.mark.parametrize("arg", ["abc", "", "0x", "08", "12 ", "2000k", "-", "1_000", "x\x1b"])
def test_not_a_number(capsys: pytest.CaptureFixture[str], arg: str) -> None:
    code, out, err = run_vmaps(capsys, arg)
    shown = arg.replace("\x1b", "\\x1b")
    assert (code, out, err) == (2, "", f'ERROR: "{shown}" is not a number\n' + USAGE)


@pytest.mark.parametrize(
    ("arg", "koid"),
    [("999", 999), ("2001", 2001), ("-1", 2**64 - 1), ("99999999999999999999999", 2**64 - 1)],
)
def test_missing_process(capsys: pytest.CaptureFixture[str], arg: str, koid: int) -> None:
    # 2001 is app's root VMAR: a koid, but not a process's. A negative number wraps and
    # an overflow saturates, as strtoull does.
    code, out, err = run_vmaps(capsys, arg)
    assert (code, out) == (1, "")
    assert err == (
        f"ERROR: couldn't find process with koid {koid}: MX_ERR_NOT_FOUND (-25)\n" + USAGE
    )


def test_dead_process_has_no_address_space(capsys: pytest.CaptureFixture[str]) -> None:
    k = app_world()
    k.process_kill(k.root_job.processes[0])
    code, out, err = run_vmaps(capsys, "2000", kernel=k)
    assert (code, out) == (1, "")
    assert err == (
        "ERROR: process 2000 has no address space (state dead): MX_ERR_BAD_STATE (-20)\n"
    )


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_vmaps(capsys, "--json", "2000")
    assert (code, err) == (0, "")
    entries = json.loads(out)
    jsonschema.validate(entries, VMAPS_SCHEMA)
    assert [(e["depth"], e["type"], e["name"]) for e in entries] == [
        (0, "aspace", "proc:2000"),
        (1, "vmar", "root"),
        (2, "mapping", "kstack"),
        (2, "vmar", "useralloc"),
        (3, "mapping", "libfoo.so"),
        (3, "mapping", "libfoo.so"),
        (3, "mapping", "data:libfoo.so"),
        (3, "vmar", "useralloc"),
        (4, "mapping", "framebuffer"),
    ]
    assert entries[0] == {
        "depth": 0,
        "type": "aspace",
        "name": "proc:2000",
        "base": 0x1000000,
        "size": 0x7FFFFFFFF000 - 0x1000000,
    }
    assert entries[2] == {
        "depth": 2,
        "type": "mapping",
        "name": "kstack",
        "base": 0x2000000,
        "size": 0x1000,
        "perms": "rw-",
        "vmo_koid": 0,
        "vmo_offset": 0,
        "committed_bytes": 4096,
    }
    assert entries[5] == {
        "depth": 3,
        "type": "mapping",
        "name": "libfoo.so",
        "base": R1 + 0x3000,
        "size": 0x1000,
        "perms": "r--",
        "vmo_koid": 2010,
        "vmo_offset": 0x2000,
        "committed_bytes": 4096,
    }


def test_json_help_and_errors_stay_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_vmaps(capsys, "help", "--json")
    assert (code, out) == (0, HELP)
    code, _, err = run_vmaps(capsys, "7", "--json")
    assert code == 1
    assert err.startswith("ERROR: couldn't find process with koid 7:")


def test_schema_rejects_a_mapping_without_its_vmo() -> None:
    entry = {"depth": 2, "type": "mapping", "name": "m", "base": 0, "size": 4096}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([entry], VMAPS_SCHEMA)
    vmar = {"depth": 0, "type": "vmar", "name": "r", "base": 0, "size": 4096}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([vmar], VMAPS_SCHEMA)  # only the aspace is at depth 0


def test_hostile_vmo_name(capsys: pytest.CaptureFixture[str]) -> None:
    k = Kernel(16 << 20, wired_bytes=1 << 20)
    p = k.process_create(k.root_job, "p", koid=1100)
    k.process_start(p)
    name = "x'\r\x1b[1A\u202eevil"
    vmo = k.vmo_create(0x1000, name, owner=p, koid=1110)
    k.vmar_map(root_vmar(p), vmo, addr=0x10000000)
    code, out, _ = run_vmaps(capsys, "1100", kernel=k)
    assert code == 0
    assert out.splitlines()[2].endswith(":vmo 'x'\\r\\x1b[1A\\u202eevil'")
    code, out, _ = run_vmaps(capsys, "1100", "--json", kernel=k)
    assert json.loads(out)[2]["name"] == name


def test_wide_koids_keep_the_names_in_one_column(capsys: pytest.CaptureFixture[str]) -> None:
    # A Linux host's koids are 16 digits: on main they overflowed the 5-wide :vmo column,
    # so mapping names started further right than the VMARs' names.
    k = Kernel(16 << 20, wired_bytes=1 << 20)
    p = k.process_create(k.root_job, "p", koid=1100)
    k.process_start(p)
    vmo = k.vmo_create(PAGE_SIZE, "big", owner=p, koid=2**52 + 5)
    k.vmar_map(root_vmar(p), vmo, addr=0x10000000)
    assert main(["vmaps", "1100"], source=SimSource(k)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == (
        "M ________10000000-________10001000 rw-    4k:sz   0B:res 4503599627370501:vmo 'big'"
    )
    # The names in one column but for vmaps.c's wider /A and /R prefixes of a two-level
    # tree ("/%c%*s" with a width of -1: two characters and a space, against "M").
    assert [line.index("'") for line in lines] == [81, 81, 79]
