"""The ``mxmem`` command itself: source options, tool dispatch, exit codes, and the
helpers every tool shares (terminal-safe text, C number parsing, stable JSON)."""

from __future__ import annotations

import importlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Collection
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
from paths import SRC

import mxmem
from mxmem.cli import TOOL_MODULES, TOOLS, main
from mxmem.cli.common import strtoull
from mxmem.cli.scenarios import HELP as SCENARIOS_HELP
from mxmem.cli.scenarios import run_with, scenarios_json, write_scenarios
from mxmem.errors import KernelError, SourceError
from mxmem.model import Level, Snapshot
from mxmem.render.jsonout import dumps_json
from mxmem.render.text import c_pad, safe_text
from mxmem.sources.sim import Kernel, SimSource
from mxmem.sources.sim.worlds import World


def small_kernel(processes: int = 2) -> Kernel:
    k = Kernel(16 << 20, wired_bytes=1 << 20)
    for i in range(processes):
        p = k.process_create(k.root_job, f"p{i}")
        k.process_start(p)
    return k


class RaisingSource:
    """A source whose snapshot fails with ``exc``."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    @property
    def name(self) -> str:
        return "raising"

    def snapshot(
        self, level: Level = Level.FULL, processes: Collection[int] | None = None
    ) -> Snapshot:
        raise self.exc


def subprocess_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(SRC) + (os.pathsep + path if path else "")}


# --------------------------------------------------------------------------- global CLI


@pytest.mark.parametrize("arg", ["--help", "-h"])
def test_help_lists_every_tool(capsys: pytest.CaptureFixture[str], arg: str) -> None:
    assert main([arg]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith("Usage: mxmem [SOURCE] TOOL [ARGS...]\n")
    assert "  --sim=WORLD    a simulated world" in out
    width = max(map(len, TOOLS))
    for name, tool in TOOLS.items():
        assert f"\n  {name:<{width}}  {tool.summary}\n" in out
    assert list(TOOLS) == [
        "ps",
        "vmaps",
        "vmos",
        "memgraph",
        "treemap",
        "kstats",
        "k",
        "capture",
        "digest",
        "diff",
        "scenarios",
    ]


def test_tool_registry_matches_the_tool_modules() -> None:
    # The names and summaries are data in mxmem.cli, so that a command imports only the
    # module of the tool it runs; they must say what each module's TOOL says.
    for name, (module, summary) in TOOL_MODULES.items():
        tool = importlib.import_module(module).TOOL
        assert (tool.name, tool.summary) == (name, summary) == TOOLS[name][:2]


IMPORTS_SCRIPT = """
import sys
from mxmem.cli import main
code = main(sys.argv[1:])
print(code, *sorted(m for m in sys.modules if m.startswith("mxmem.cli.")))
"""


@pytest.mark.parametrize(
    ("args", "modules"),
    [
        (["--help"], ["mxmem.cli.common", "mxmem.cli.options"]),
        (["ps"], ["mxmem.cli.common", "mxmem.cli.options", "mxmem.cli.ps"]),
        (["vmos", "help"], ["mxmem.cli.common", "mxmem.cli.options", "mxmem.cli.vmos"]),
    ],
)
def test_a_command_imports_only_the_tool_it_runs(args: list[str], modules: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", IMPORTS_SCRIPT, *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=True,
        timeout=60,
    )
    assert proc.stdout.splitlines()[-1].split() == ["0", *modules]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"mxmem {mxmem.__version__}\n"


@pytest.mark.parametrize("args", [[], ["--sim"], ["--sim=x"]])
def test_no_tool_prints_help_to_stderr(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("Usage: mxmem [SOURCE] TOOL [ARGS...]\n")


def test_unknown_tool(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sim", "frob", "-x"]) == 2
    assert capsys.readouterr() == (
        "",
        "mxmem: unknown tool 'frob'; `mxmem --help` lists the tools\n",
    )


def test_unknown_source_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--linux", "ps"]) == 2
    assert capsys.readouterr() == ("", "mxmem: unknown option '--linux'; see `mxmem --help`\n")


def test_empty_world_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sim=", "ps"]) == 2
    assert capsys.readouterr().err == "mxmem: --sim= needs a world; `mxmem scenarios` lists them\n"


@pytest.mark.parametrize("args", [["--sim", "ps"], ["--sim=anything", "ps"], ["ps"]])
def test_the_token_after_sim_is_the_tool(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    assert main(args, source=SimSource(small_kernel(1))) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[1] == "j:1024        0B      0B         root"  # id_w 8: "  p:1025"


@pytest.mark.parametrize(
    "args", [["ps", "--help"], ["vmaps", "help"], ["vmos", "--help"], ["vmaps"], ["ps", "-x"]]
)
def test_help_and_usage_errors_never_open_the_source(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    # The world does not exist: opening it would fail, so these must not open it.
    code = main(["--sim=no-such-world", *args])
    _, err = capsys.readouterr()
    assert code in (0, 2)
    assert "mxmem:" not in err


def test_unknown_world_is_a_source_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sim=no-such-world", "ps"]) == SourceError.exit_code
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("mxmem: ") and "no-such-world" in err and err.count("\n") == 1


# --------------------------------------------------------------------------- exit codes


def test_mxmem_error_is_one_line_with_its_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ps"], source=RaisingSource(SourceError("cannot read\nworld.toml"))) == 2
    assert capsys.readouterr() == ("", "mxmem: cannot read\\nworld.toml\n")
    err = KernelError("ERR_NO_MEMORY", "need 5 pages, 2 free")
    assert main(["vmaps", "1"], source=RaisingSource(err)) == 1
    assert capsys.readouterr() == ("", "mxmem: ERR_NO_MEMORY: need 5 pages, 2 free\n")


def test_ctrl_c_exits_quietly_with_130(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ps"], source=RaisingSource(KeyboardInterrupt())) == 130
    assert capsys.readouterr() == ("", "")


def test_os_error_is_reported_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    exc = PermissionError(13, "Permission denied", "/proc/1/smaps")
    assert main(["ps"], source=RaisingSource(exc)) == 1
    assert capsys.readouterr().err == "mxmem: [Errno 13] Permission denied: '/proc/1/smaps'\n"


def test_a_bug_is_reported_without_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MXMEM_DEBUG", raising=False)
    assert main(["ps"], source=RaisingSource(ZeroDivisionError("oops"))) == 70
    assert capsys.readouterr().err == (
        "mxmem: internal error: ZeroDivisionError: oops (set MXMEM_DEBUG=1 for a traceback)\n"
    )
    monkeypatch.setenv("MXMEM_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["ps"], source=RaisingSource(ZeroDivisionError("oops")))


class ClosedPipe(io.StringIO):
    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_broken_pipe_in_process(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["ps"], source=SimSource(small_kernel())) == 141
    assert capsys.readouterr().err == ""


BROKEN_PIPE_SCRIPT = """
import sys
from mxmem.cli import main
from mxmem.sources.sim import Kernel, SimSource
k = Kernel(16 << 20, wired_bytes=1 << 20)
for i in range(200):
    k.process_start(k.process_create(k.root_job, f"process-{i}"))
sys.exit(main(["ps"], source=SimSource(k)))
"""


def test_broken_pipe_in_a_real_process() -> None:
    # The reader is gone before mxmem writes anything, so the write must hit EPIPE: no
    # traceback, no "Exception ignored" at interpreter exit, exit status 128 + SIGPIPE.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", BROKEN_PIPE_SCRIPT],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=subprocess_env(),
            check=False,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (141, b"")


def test_broken_pipe_through_head() -> None:
    proc = subprocess.run(
        f"{sys.executable} -m mxmem --sim ps | head -1",
        shell=True,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=False,
        timeout=60,
    )
    assert proc.stderr == ""
    assert proc.stdout.startswith("TASK ")
    assert proc.stdout.count("\n") == 1


def test_python_dash_m(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mxmem", "--version"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=False,
        timeout=60,
        cwd=tmp_path,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"mxmem {mxmem.__version__}\n", "")


# --------------------------------------------------------------------------- scenarios

FAKE_WORLDS = [
    World("doc", "the system of docs/memory.md", small_kernel),
    World("doc-vmaps", "the vmaps example", small_kernel),
]
SCENARIOS_SCHEMA = json.loads((files("mxmem") / "schemas" / "scenarios.schema.json").read_text())


def test_scenarios_lists_worlds_then_patterns() -> None:
    out = io.StringIO()
    write_scenarios(FAKE_WORLDS, out)
    assert out.getvalue().splitlines() == [
        "doc             the system of docs/memory.md",
        "doc-vmaps       the vmaps example",
        "scale:N[:SEED]  a generated system of N processes, the same for the same N and SEED",
        "FILE.toml       a world described in a TOML file (FILE.json: the same in JSON)",
    ]


def test_scenarios_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_with(["--json"], sys.stdout, sys.stderr, FAKE_WORLDS) == 0
    data = json.loads(capsys.readouterr().out)
    jsonschema.validate(data, SCENARIOS_SCHEMA)
    assert data == scenarios_json(FAKE_WORLDS)
    assert data["worlds"] == [
        {"name": "doc", "description": "the system of docs/memory.md"},
        {"name": "doc-vmaps", "description": "the vmaps example"},
    ]
    assert [p["spec"] for p in data["patterns"]] == ["scale:N[:SEED]", "FILE.toml"]


def test_scenarios_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_with(["--help"], sys.stdout, sys.stderr, FAKE_WORLDS) == 0
    assert capsys.readouterr() == (SCENARIOS_HELP, "")
    assert run_with(["-v"], sys.stdout, sys.stderr, FAKE_WORLDS) == 2
    assert capsys.readouterr() == (
        "",
        "scenarios: invalid option -- 'v'; see `mxmem scenarios --help`\n",
    )


def test_scenarios_lists_the_real_registry(capsys: pytest.CaptureFixture[str]) -> None:
    from mxmem.sources.sim.worlds import worlds

    assert main(["scenarios"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:-2]] == [w.name for w in worlds()]
    assert "doc" in [w.name for w in worlds()]


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("devhost:pci#1:1234:1111", "devhost:pci#1:1234:1111"),
        ("", ""),
        ("tab\there", "tab\\there"),
        ("a\nb\r", "a\\nb\\r"),
        ("\x1b[2J\x07", "\\x1b[2J\\x07"),
        ("\x00\x7f", "\\x00\\x7f"),
        ("c1 \x9b31m \x85", "c1 \\x9b31m \\x85"),  # C1 CSI and NEL
        ("bidi \u202eexe.txt", "bidi \\u202eexe.txt"),
        ("line\u2028sep", "line\\u2028sep"),
        ("bad byte \udcff", "bad byte \\xff"),  # surrogateescape'd 0xff
        ("lone \ud800", "lone \\ud800"),
        ("ünïcödé ✓ 名前 \xa0", "ünïcödé ✓ 名前 \xa0"),
        ("back\\slash", "back\\slash"),
    ],
)
def test_safe_text(raw: str, shown: str) -> None:
    assert safe_text(raw) == shown


def test_safe_text_output_is_printable_on_one_line() -> None:
    every_char = "".join(chr(c) for c in range(0x3000)) + "\ud800\udcff"
    shown = safe_text(every_char)
    assert not any(ch in shown for ch in "\x1b\n\r\x9b\u202e")
    assert shown.encode("utf-8")  # no lone surrogates left


@pytest.mark.parametrize(("width", "spaces"), [(-1, 1), (0, 0), (3, 3), (-4, 4)])
def test_c_pad(width: int, spaces: int) -> None:
    assert c_pad(width) == " " * spaces


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("1234", 1234),
        ("0x4d2", 1234),
        ("0X4D2", 1234),
        ("02322", 1234),
        ("00", 0),
        ("  \t1234", 1234),
        ("+1234", 1234),
        ("-1", 2**64 - 1),
        ("-0x10", 2**64 - 16),
        ("18446744073709551615", 2**64 - 1),
        ("18446744073709551616", 2**64 - 1),
        ("", None),
        (" ", None),
        ("+", None),
        ("0x", None),
        ("0xg", None),
        ("09", None),
        ("12a", None),
        ("1234 ", None),
        ("1_234", None),
        ("١٢", None),
        ("--1", None),
    ],
)
def test_strtoull(text: str, value: int | None) -> None:
    assert strtoull(text) == value


def test_json_is_sorted_compact_and_ascii() -> None:
    assert dumps_json({"b": [1, None], "a": "\x1b\u202e名"}) == (
        '{"a":"\\u001b\\u202e\\u540d","b":[1,null]}'
    )
    with pytest.raises(ValueError):
        dumps_json(float("nan"))


def test_default_source_is_the_host(capsys: pytest.CaptureFixture[str]) -> None:
    # No source option: the tools inspect the machine they run on (this test's process
    # is in the table).
    import json
    import os

    assert main(["ps", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any(r["type"] == "p" and r["koid"] == os.getpid() for r in rows)


@pytest.mark.parametrize("argv", [["--capture"], ["--capture="]])
def test_capture_option_needs_a_file(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main([*argv, "ps"] if argv == ["--capture="] else argv) == 2
    assert "needs a file" in capsys.readouterr().err
