"""A new user's defects in the command line's safety: ``-o FILE`` that destroyed what it
wrote over (a device, a FIFO, a symlink, a hard link, a file's mode), ``-o`` over the
capture being read, hints that dropped an option's value, conflicting source options
accepted silently, ``k``'s errors on stdout, digest's CSV without its Total, and error
wording."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from mxmem.cli import main
from mxmem.cli.options import EXIT_USAGE

Capsys = pytest.CaptureFixture[str]


def run(capsys: Capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def capture_bytes(capsys: Capsys, tmp_path: Path) -> bytes:
    """What `mxmem --sim capture -o FILE` writes to a new file."""
    fresh = tmp_path / "fresh.json"
    assert run(capsys, "--sim", "capture", "-o", str(fresh))[0] == 0
    return fresh.read_bytes()


# --- 1. -o FILE writes into what is there, never replaces what it cannot recreate --------


def device(tmp_path: Path, name: str, minor: int) -> Path:
    """A character device node like /dev/null (1, 3) or /dev/full (1, 7), made in
    ``tmp_path``: a test of code that replaced device nodes must not risk the system's."""
    path = tmp_path / name
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    except OSError as e:  # not root, or a container without CAP_MKNOD
        pytest.skip(f"cannot make a device node: {e.strerror}")
    return path


def test_output_to_a_null_device_leaves_the_device(capsys: Capsys, tmp_path: Path) -> None:
    # Was: as root, the rename replaced the device node with a regular file.
    null = device(tmp_path, "null", 3)
    assert run(capsys, "--sim", "capture", "-o", str(null)) == (0, "", "")
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_output_to_a_full_device_is_one_line(capsys: Capsys, tmp_path: Path) -> None:
    full = device(tmp_path, "full", 7)
    code, out, err = run(capsys, "--sim", "capture", "-o", str(full))
    assert (code, out) == (1, "")
    assert err == f"capture: cannot write {full}: No space left on device\n"
    assert stat.S_ISCHR(os.lstat(full).st_mode)


def test_output_to_a_fifo_reaches_its_reader(capsys: Capsys, tmp_path: Path) -> None:
    expected = capture_bytes(capsys, tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def reader() -> None:
        with open(fifo, "rb") as f:
            got.append(f.read())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        code = run(capsys, "--sim", "capture", "-o", str(fifo))[0]
    finally:
        if thread.is_alive():  # unblock a reader the write never reached
            with open(fifo, "wb"):
                pass
        thread.join(10)
    assert code == 0
    assert got == [expected]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_output_through_a_symlink_writes_its_target(capsys: Capsys, tmp_path: Path) -> None:
    expected = capture_bytes(capsys, tmp_path)
    elsewhere = tmp_path / "dir"
    elsewhere.mkdir()
    target = elsewhere / "target.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert run(capsys, "--sim", "capture", "-o", str(link)) == (0, "", "")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == expected
    assert sorted(p.name for p in elsewhere.iterdir()) == ["target.json"]  # no temporary


def test_output_keeps_the_mode_of_the_file_it_replaces(capsys: Capsys, tmp_path: Path) -> None:
    path = tmp_path / "private.html"
    path.write_text("old")
    path.chmod(0o600)
    assert run(capsys, "--sim", "treemap", "--json", "-o", str(path)) == (0, "", "")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())


def test_a_new_output_file_gets_the_umask_mode(capsys: Capsys, tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        path = tmp_path / "new.json"
        assert run(capsys, "--sim", "capture", "-o", str(path))[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_output_to_a_hard_link_keeps_the_link(capsys: Capsys, tmp_path: Path) -> None:
    expected = capture_bytes(capsys, tmp_path)
    first = tmp_path / "first.json"
    first.write_text("old")
    second = tmp_path / "second.json"
    os.link(first, second)
    assert run(capsys, "--sim", "capture", "-o", str(second)) == (0, "", "")
    assert first.read_bytes() == second.read_bytes() == expected
    assert os.path.samefile(first, second)


# --- 2. -o naming the capture being read --------------------------------------------------


@pytest.mark.parametrize("form", ["source", "operand", "symlink", "capture"])
def test_output_over_the_capture_read_is_refused(
    capsys: Capsys, tmp_path: Path, form: str
) -> None:
    data = capture_bytes(capsys, tmp_path)
    path = tmp_path / "same.json"
    path.write_bytes(data)
    out_path = str(path)
    if form == "symlink":
        (tmp_path / "link.json").symlink_to(path)
        out_path = str(tmp_path / "link.json")
    args = {
        "source": [f"--capture={path}", "treemap", "-o", out_path],
        "operand": ["treemap", str(path), "-o", out_path],
        "symlink": ["--capture", str(path), "treemap", "-o", out_path],
        "capture": ["--capture", str(path), "capture", "-o", out_path],
    }[form]
    code, out, err = run(capsys, *args)
    assert (code, out) == (EXIT_USAGE, "")
    tool = "capture" if form == "capture" else "treemap"
    assert err == (
        f"{tool}: -o {out_path} is the capture being read; write to another file\n"
    )
    assert path.read_bytes() == data


# --- 3. the hint for a misplaced source option keeps its value ----------------------------


@pytest.mark.parametrize(
    ("args", "moved"),
    [
        (["--capture", "x"], "--capture=x"),
        (["--capture=x"], "--capture=x"),
        (["--capture", "my file.json"], "'--capture=my file.json'"),
        (["--sim=doc"], "--sim=doc"),
        (["--sim", "doc"], "--sim=doc"),  # a world: it was meant attached
        (["--sim", "123"], "--sim"),  # not a world: ps's operand, --sim alone
    ],
)
def test_the_source_hint_keeps_the_value(capsys: Capsys, args: list[str], moved: str) -> None:
    code, out, err = run(capsys, "ps", *args)
    assert (code, out) == (EXIT_USAGE, "")
    assert err == f"ps: {args[0]}: source options go before the tool: mxmem {moved} ps\n"


# --- 4. conflicting sources, a world given apart, a source before diff --------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [("--host", "--sim"), ("--sim", "--capture=F"), ("--sim=doc", "--sim=doc"),
     ("--capture=a", "--host")],
)
def test_two_source_options_are_a_usage_error(capsys: Capsys, first: str, second: str) -> None:
    code, out, err = run(capsys, first, second, "ps")
    assert (code, out) == (EXIT_USAGE, "")
    assert err == f"mxmem: two source options ({first} and {second}): give one\n"


def test_a_world_given_apart_from_sim_gets_a_hint(capsys: Capsys) -> None:
    code, out, err = run(capsys, "--sim", "doc", "ps")
    assert (code, out) == (EXIT_USAGE, "")
    assert err == (
        "mxmem: unknown tool 'doc'; `mxmem --help` lists the tools"
        " (worlds are given as --sim=WORLD)\n"
    )
    # Not every unknown tool is a world.
    assert run(capsys, "frob")[2] == "mxmem: unknown tool 'frob'; `mxmem --help` lists the tools\n"


@pytest.mark.parametrize("source", ["--sim", "--host", "--capture=x.json"])
def test_a_source_option_before_diff_is_a_usage_error(capsys: Capsys, source: str) -> None:
    code, out, err = run(capsys, source, "diff", "sim:doc", "sim:doc")
    assert (code, out) == (EXIT_USAGE, "")
    assert err.startswith("diff: no source option goes before diff: OLD and NEW are its sources")
    assert err.count("\n") == 1
    assert run(capsys, "diff", "sim:doc", "sim:doc")[0] == 0  # the operands alone: fine


# --- 5. k: errors on stderr, a koid that is not a number, extra arguments -----------------


@pytest.mark.parametrize(
    ("args", "code", "first"),
    [
        (["mx", "ht", "abc"], EXIT_USAGE, "not a process koid: abc"),
        (["mx", "vmos", "12ab"], EXIT_USAGE, "not a process koid: 12ab"),
        (["mx", "asd", "0x"], EXIT_USAGE, "not a process koid: 0x"),
        (["mx", "ps", "junk"], EXIT_USAGE, "unexpected argument 'junk'"),
        (["mx", "jobs", "junk"], EXIT_USAGE, "unexpected argument 'junk'"),
        (["mx", "ht", "1043", "junk"], EXIT_USAGE, "unexpected argument 'junk'"),
        (["mx", "frob"], EXIT_USAGE, "unrecognized subcommand 'frob'"),
        (["mx"], EXIT_USAGE, "not enough arguments:"),
        (["mx", "ht", "99999"], 1, "process not found!"),
    ],
)
def test_k_errors_go_to_stderr(capsys: Capsys, args: list[str], code: int, first: str) -> None:
    got, out, err = run(capsys, "--sim", "k", *args)
    assert (got, out) == (code, "")
    assert err.splitlines()[0] == first


def test_k_output_stays_on_stdout(capsys: Capsys) -> None:
    code, out, err = run(capsys, "--sim", "k", "mx", "ps", "help")
    assert (code, err) == (0, "")
    assert out.startswith("id  : process id number\n")
    code, out, err = run(capsys, "--sim", "k", "mx", "ht", "0x413")  # 1043, as atoul reads
    assert (code, err) == (0, "")
    assert out


# --- 6. digest's CSV ends with the Total, as the table and the JSON do -------------------


def test_digest_csv_has_the_total(capsys: Capsys) -> None:
    code, csv, _ = run(capsys, "--sim", "digest", "--attribution=exact", "--output=csv")
    assert code == 0
    code, js, _ = run(capsys, "--sim", "digest", "--attribution=exact", "--output=json")
    assert code == 0
    rows = [line.split(",") for line in csv.splitlines()[1:]]
    total = json.loads(js)["total_bytes"]
    assert rows[-1][:2] == ["Total", str(total)]
    assert sum(int(r[1]) for r in rows[:-1]) == total
    assert int(rows[-1][2]) == sum(int(r[2]) for r in rows[:-1])


# --- 7. error wording -----------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["capture", "treemap"])
def test_output_errors_say_what_is_wrong(capsys: Capsys, tmp_path: Path, tool: str) -> None:
    afile = tmp_path / "ps.txt"
    afile.write_text("")
    code, out, err = run(capsys, "--sim", tool, "-o", f"{afile}/x.html")
    assert (code, out) == (1, "")
    # One prefix form for a tool's errors: the tool's name, as digest and ps print theirs.
    assert err == f"{tool}: cannot write {afile}/x.html: {afile} is not a directory\n"
    code, out, err = run(capsys, "--sim", tool, "-o", f"{afile}/deeper/x.html")
    assert err == f"{tool}: cannot write {afile}/deeper/x.html: {afile} is not a directory\n"


def test_an_unwritable_proc_file_says_why(capsys: Capsys) -> None:
    if not os.path.exists("/proc/version"):
        pytest.skip("no /proc")
    code, out, err = run(capsys, "--sim", "treemap", "-o", "/proc/version")
    assert (code, out) == (1, "")
    assert err.startswith("treemap: cannot write /proc/version: ")
    assert "No such file" not in err
    assert err.count("\n") == 1
