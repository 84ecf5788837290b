"""``mxmem scenarios``: the simulated worlds ``--sim=WORLD`` accepts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from mxmem.cli.common import Tool
from mxmem.cli.options import Grammar, Opt, parse
from mxmem.render.jsonout import JsonValue, write_json
from mxmem.render.text import safe_text
from mxmem.sources import Source
from mxmem.sources.sim.worlds import World

HELP = """\
Usage: scenarios [--json]
Lists the simulated worlds: use one with `mxmem --sim=WORLD TOOL`.
Options:
 --json         Print the list as JSON
"""

# World specs that are not names in the registry: (spelling, what it gives).
PATTERNS = (
    ("scale:N[:SEED]", "a generated system of N processes, the same for the same N and SEED"),
    ("FILE.toml", "a world described in a TOML file (FILE.json: the same in JSON)"),
)


def write_scenarios(worlds: Sequence[World], out: TextIO) -> None:
    """The built-in worlds, then the other spellings, as one aligned two-column list."""
    entries = [(w.name, w.description) for w in worlds] + list(PATTERNS)
    width = max(len(name) for name, _ in entries)
    out.write(
        "".join(
            f"{safe_text(name):<{width}}  {safe_text(description)}\n"
            for name, description in entries
        )
    )


def scenarios_json(worlds: Sequence[World]) -> JsonValue:
    return {
        "worlds": [{"name": w.name, "description": w.description} for w in worlds],
        "patterns": [{"spec": spec, "description": d} for spec, d in PATTERNS],
    }


GRAMMAR = Grammar("scenarios", HELP, (Opt("json", long="json"),))


def run_with(args: Sequence[str], out: TextIO, err: TextIO, worlds: Sequence[World]) -> int:
    """``run`` over a given list of worlds."""
    parsed = parse(GRAMMAR, args, out, err)
    if isinstance(parsed, int):
        return parsed
    if "json" in parsed.flags:
        write_json(scenarios_json(worlds), out)
    else:
        write_scenarios(worlds, out)
    return 0


def run(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
    from mxmem.sources.sim.worlds import worlds

    return run_with(args, out, err, worlds())


TOOL = Tool("scenarios", "list the simulated worlds --sim=WORLD accepts", run)
