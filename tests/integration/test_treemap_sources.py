"""``treemap`` reads through the sources like every tool (issue 10, item 2).

``mxmem --sim treemap -o F`` maps the simulated kernel; ``mxmem --capture=F treemap -o F``
maps a capture of every format (memgraph JSON, an mxmem capture, gzipped or not, a Fuchsia
capture); standard input is ``-`` (``treemap -``, ``--capture=-``) and, with no source
option, a piped capture is what treemap maps, as the 2017 pipeline
``memgraph -vt | treemap > mem.html`` expects. Every way in to the same capture gives the
same tree. These run ``python -m mxmem`` in real processes, so that the pipes are real.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from paths import FIXTURES, SRC

FUCHSIA = FIXTURES / "fuchsia" / "test_snapshot.json"


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(SRC) + (os.pathsep + path if path else "")}


def mxmem(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mxmem", *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        env=_env(),
        timeout=300,
        check=False,
    )


def ok(*args: str, stdin: bytes | None = None) -> bytes:
    done = mxmem(*args, stdin=stdin)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def tree(text: bytes | str) -> Any:
    return json.loads(text)["tree"]


def page_tree(path: Path) -> Any:
    """The tree a page embeds (folded as the page shows it)."""
    page = path.read_text()
    start = page.index('id="treemap-data">') + len('id="treemap-data">')
    return json.loads(page[start : page.index("</script>", start)])["tree"]


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One capture file of each format, of the doc world (Fuchsia: the real fixture)."""
    d = tmp_path_factory.mktemp("captures")
    memgraph = d / "memgraph.json"
    memgraph.write_bytes(ok("--sim", "memgraph", "-vt"))
    snapshot = d / "snapshot.json"
    ok("--sim", "capture", "-o", str(snapshot))
    gz = d / "snapshot.json.gz"
    ok("--sim", "capture", "-o", str(gz))
    memgraph_gz = d / "memgraph.json.gz"
    memgraph_gz.write_bytes(gzip.compress(memgraph.read_bytes()))
    return {
        "memgraph": memgraph,
        "memgraph-gz": memgraph_gz,
        "mxmem": snapshot,
        "mxmem-gz": gz,
        "fuchsia": FUCHSIA,
    }


FORMATS = ["memgraph", "memgraph-gz", "mxmem", "mxmem-gz", "fuchsia"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("attribution", ["2017", "exact"])
def test_every_capture_format_every_way_in_gives_one_tree(
    captures: dict[str, Path], fmt: str, attribution: str, tmp_path: Path
) -> None:
    path = captures[fmt]
    data = path.read_bytes()
    mode = f"--attribution={attribution}"
    by_option = tree(ok(f"--capture={path}", "treemap", "--json", mode))
    assert tree(ok("treemap", "--json", mode, str(path))) == by_option
    assert tree(ok("treemap", "--json", mode, "-", stdin=data)) == by_option
    assert tree(ok("--capture=-", "treemap", "--json", mode, stdin=data)) == by_option
    # No source option and a piped capture: the capture, as `memgraph -vt | treemap`.
    assert tree(ok("treemap", "--json", mode, stdin=data)) == by_option
    # -o F writes the page of that same tree.
    out = tmp_path / "mem.html"
    ok(f"--capture={path}", "treemap", mode, "-o", str(out))
    page = page_tree(out)
    assert (page["n"], page["s"]) == (by_option["name"], by_option["size_bytes"])
    assert len(by_option["children"]) == len(page["c"])


def test_sim_treemap_is_the_tree_of_its_memgraph(tmp_path: Path) -> None:
    # The seed's pipeline and the source option give the same map of the doc world.
    direct = tree(ok("--sim", "treemap", "--json"))
    piped = tree(ok("treemap", "--json", stdin=ok("--sim", "memgraph", "-vt")))
    assert direct == piped
    out = tmp_path / "sim.html"
    assert ok("--sim", "treemap", "-o", str(out)) == b""
    assert page_tree(out)["s"] == direct["size_bytes"]
    # memgraph without -v: processes by their figures, the same from either way in.
    no_vmos = ok("--sim", "memgraph")
    assert tree(ok("treemap", "--json", "-", stdin=no_vmos))["size_bytes"] == direct["size_bytes"]


def test_sim_exact_treemap_adds_up_to_the_total() -> None:
    out = json.loads(ok("--sim", "treemap", "--json", "--attribution=exact"))
    assert out["attribution"]["residual_bytes"] == 0
    assert out["tree"]["size_bytes"] == out["attribution"]["total_bytes"]


def test_a_source_option_wins_over_piped_stdin() -> None:
    # `mxmem --sim treemap` maps the simulated kernel, whatever is piped to it.
    direct = tree(ok("--sim", "treemap", "--json"))
    assert tree(ok("--sim", "treemap", "--json", stdin=b"not a capture")) == direct


def test_a_source_option_and_input_together_are_refused(captures: dict[str, Path]) -> None:
    done = mxmem("--sim", "treemap", str(captures["memgraph"]))
    assert done.returncode == 1
    assert done.stdout == b""
    assert done.stderr.decode().count("\n") == 1
    assert "give one" in done.stderr.decode()


def test_an_empty_pipe_is_an_error_not_the_host() -> None:
    # `failing-command | mxmem treemap` must not silently map this machine instead.
    done = mxmem("treemap", "--json", stdin=b"")
    assert done.returncode == 2
    assert done.stdout == b""
    assert done.stderr.decode() == (
        "mxmem: standard input: empty (expected a capture: memgraph JSON, an mxmem snapshot"
        " or a Fuchsia capture)\n"
    )
