"""``ps --attribution=exact`` on the live host: a child with 32 MiB of its own memory, the
figures adding up to MemTotal; as a normal user the attribution says it is approximate."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ps_checks import VALIDATOR, check_adds_up
from runner import Mxmem
from users import as_nobody

from mxmem.cli import main
from mxmem.model import Level
from mxmem.sources import Source, open_source

LINUX = sys.platform.startswith("linux") and os.path.exists("/proc/self/pagemap")
ROOT = LINUX and os.geteuid() == 0


def ps_json(mxmem: Mxmem, source: Source) -> dict[str, Any]:
    doc: dict[str, Any] = mxmem.run("ps", "--attribution=exact", "--json", source=source).json()
    VALIDATOR.validate(doc)
    return doc


def meminfo_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


@pytest.fixture
def hog() -> Iterator[int]:
    """A child process with 32 MiB of private anonymous memory, every page written."""
    script = (
        "import sys\n"
        "b = bytearray(32 << 20)\n"
        "for i in range(0, len(b), 4096): b[i] = 1\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    try:
        yield child.pid
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
        child.stdout.close()


def host_has_pages() -> bool:
    return open_source("host").snapshot(Level.PAGES).pages is not None


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="needs Linux /proc")
def test_the_live_host(mxmem: Mxmem, hog: int) -> None:
    if not host_has_pages():
        pytest.xfail("the host source has no page facts (Level.PAGES) yet")
    doc = ps_json(mxmem, source=open_source("host"))
    check_adds_up(doc)
    assert doc["summary"]["total_bytes"] == meminfo_total()
    (row,) = [r for r in doc["rows"] if r["koid"] == hog]
    # Its 32 MiB are its alone (plus the interpreter's own private pages).
    assert row["private_bytes"] >= 32 << 20
    assert row["attributed_bytes"] >= row["private_bytes"] + row["shared_bytes"]
    code, out, err = mxmem.run("ps", "--attribution=exact", source=open_source("host"))
    assert code == 0
    (line,) = [ln for ln in out.splitlines() if ln.split()[:1] == [f"p:{hog}"]]
    assert re.fullmatch(r"\s*p:\d+(\s+\S+){4} python\S*", line)
    assert ("ps: note: approximate" in err) == (not doc["exact"])
    if doc["summary"]["residual_bytes"]:
        assert "\nresidual " in out


@pytest.mark.skipif(not ROOT, reason="switching to another user needs root")
def test_the_live_host_as_a_normal_user_is_approximate() -> None:
    if not host_has_pages():
        pytest.xfail("the host source has no page facts (Level.PAGES) yet")

    def ps() -> str:
        import io

        out, err = io.StringIO(), io.StringIO()
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            main(["--host", "ps", "--attribution=exact", "--json"])
        finally:
            sys.stdout, sys.stderr = saved
        return out.getvalue() + "\x00" + err.getvalue()

    out, err = as_nobody(ps).split("\x00")
    doc = json.loads(out)
    VALIDATOR.validate(doc)
    check_adds_up(doc)
    # Without root there is no kpagecount: the figures cannot be page-level.
    assert doc["exact"] is False
    assert doc["notes"]
    assert "ps: note: approximate" in err
