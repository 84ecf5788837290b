"""The option behaviours every tool shares (issue 10, item 4): each runs over every tool
in ``mxmem.cli.TOOLS``, so a new tool is tested as soon as it is registered."""

from __future__ import annotations

import pytest

from mxmem.cli import TOOLS, main
from mxmem.cli.options import EXIT_USAGE

Capsys = pytest.CaptureFixture[str]

# A source that does not exist: a tool that opened it would fail with "mxmem: ...".
NO_WORLD = "--sim=no-such-world"

# For each tool, arguments that run it, and the same with its options spelled otherwise:
# a value attached (--opt=value, -dVALUE) and apart (--opt value, -d VALUE), short flags
# bundled and not. None where the tool has no option of that kind.
SPELLINGS: dict[str, tuple[list[str], list[str]] | None] = {
    "ps": (["--job=1082", "-T", "-J", "--units=k"], ["-TJ", "--job", "1082", "--units", "k"]),
    "vmaps": None,  # vmaps.c's one argument: no options but --json and help
    "vmos": None,
    "memgraph": (["--attribution=exact", "-v", "-t"], ["-vt", "--attribution", "exact"]),
    "treemap": (["--attribution=2017", "--json"], ["--json", "--attribution", "2017"]),
    "kstats": (["-m", "-t", "-n1"], ["-mt", "-n", "1"]),
    "k": None,  # the kernel console's words
    "capture": (["--output=-"], ["-o", "-"]),
    "digest": (
        ["--attribution=exact", "--output=csv"],
        ["--output", "csv", "--attribution", "exact"],
    ),
    "diff": None,
    "scenarios": None,
}

# Each tool's first line of help, as -h and --help print it.
HELP_STARTS = {
    "ps": "Usage: ps [options]\n",
    "vmaps": "Usage: vmaps <process-koid>\n",
    "vmos": "Usage: vmos <process-koid>\n",
    "memgraph": "Usage: memgraph [options]\n",
    "treemap": "Usage: treemap ",
    "kstats": "Usage: kstats [options]\n",
    "k": "mx ps                : list processes\n",
    "capture": "Usage: capture ",
    "digest": "Usage: digest ",
    "diff": "Usage: diff OLD NEW",
    "scenarios": "Usage: scenarios",
}


def test_every_tool_is_covered() -> None:
    assert set(SPELLINGS) == set(HELP_STARTS) == set(TOOLS)


@pytest.mark.parametrize("flag", ["-h", "--help"])
@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_help_on_stdout_exit_0(capsys: Capsys, tool: str, flag: str) -> None:
    assert main([NO_WORLD, tool, flag]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith(HELP_STARTS[tool])


@pytest.mark.parametrize(
    "misplaced", [["--sim"], ["--sim=doc"], ["--host"], ["--capture=x.json"], ["--capture", "x"]]
)
@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_a_source_option_after_the_tool_gets_a_hint(
    capsys: Capsys, tool: str, misplaced: list[str]
) -> None:
    assert main([NO_WORLD, tool, *misplaced]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    moved = "=".join(misplaced)  # `--capture x` is moved as `--capture=x`
    assert err == (
        f"{tool}: {misplaced[0]}: source options go before the tool: mxmem {moved} {tool}\n"
    )


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_an_unknown_option_is_a_usage_error(capsys: Capsys, tool: str) -> None:
    assert main([NO_WORLD, tool, "--no-such-option"]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert "mxmem:" not in err  # the tool said it, before opening the source
    if tool != "k":  # (the console prints its usage as output, as it did)
        assert out == ""
        assert err


@pytest.mark.parametrize("tool", sorted(t for t, s in SPELLINGS.items() if s is not None))
def test_option_spellings_are_equivalent(capsys: Capsys, tool: str) -> None:
    spellings = SPELLINGS[tool]
    assert spellings is not None
    outputs = []
    for args in spellings:
        assert main(["--sim", tool, *args]) == 0, capsys.readouterr().err
        outputs.append(capsys.readouterr())
    assert outputs[0] == outputs[1]
    assert outputs[0].out


def test_units_lists_the_units(capsys: Capsys) -> None:
    assert main([NO_WORLD, "ps", "--units=q"]) == EXIT_USAGE
    assert capsys.readouterr() == ("", "ps: --units must be one of B, k, M, G, T, P, E, not 'q'\n")
