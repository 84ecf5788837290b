"""Real child processes for host tests: ``spawn(script, *args)`` runs ``python -c script``
in a new session and returns it with the words of the first line it prints (its "ready"
report); every child, and anything it forked, is killed when the test ends."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator

Spawn = Callable[..., tuple[subprocess.Popen[str], list[str]]]


def readline(proc: subprocess.Popen[str], timeout: float = 20.0) -> str:
    """The child's next line of output, failing the test if none comes in ``timeout``."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "child did not report ready"
    line = proc.stdout.readline()
    assert line, f"child exited with {proc.wait()}"
    return line


def spawner() -> Iterator[Spawn]:
    """The body of the ``spawn`` fixture (tests/conftest.py)."""
    started: list[subprocess.Popen[str]] = []

    def start(script: str, *args: str) -> tuple[subprocess.Popen[str], list[str]]:
        proc = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(proc)
        return proc, readline(proc).split()

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the child and anything it forked
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
