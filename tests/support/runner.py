"""One way for tests to run mxmem: the ``mxmem`` fixture of conftest.py hands out a
:class:`Mxmem`.

- ``mxmem.run(*args, source=None, stdin=None)`` runs the command in this process (fast;
  ``source`` replaces the source the arguments name, as ``main(..., source=)`` does;
  stdin is empty unless given);
- ``mxmem.subprocess(*args, stdin=None)`` runs ``python3 -m mxmem`` as a real process,
  for what only a process shows (start-up imports, exit codes from signals, binary
  output, real pipes);
- ``mxmem.start(*args)`` starts one and hands back a :class:`Running` to talk to while it
  runs (Ctrl-C, reading its reports as they come); leaving the ``with`` block kills it if
  it is still running and closes its pipes, so no test leaks a process or a pipe.

Each returns or holds a :class:`Result` ``(code, out, err)``.

Child processes start with SIGINT at its default action. A shell that runs a command in
the background without job control (``(python3 -m pytest ... &)`` in a script) starts it
with SIGINT ignored, and an ignored signal stays ignored across ``exec``: Python then
installs no KeyboardInterrupt handler, and a child sent Ctrl-C would never stop.
mxmem itself keeps an inherited "ignore", as every Unix tool does (that is how a script
protects its background jobs from the terminal's Ctrl-C); the tests are what must not
depend on the shell that started them.
"""

from __future__ import annotations

import io
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import pytest
from paths import SRC

from mxmem.cli import main
from mxmem.sources import Source

TIMEOUT = 120.0  # seconds: a generous bound for one command on a busy 2-core machine


class Result(NamedTuple):
    code: int
    out: str
    err: str

    def json(self) -> Any:
        """The standard output parsed as JSON (after checking the command succeeded)."""
        assert self.code == 0, self.err
        return json.loads(self.out)


def subprocess_env() -> dict[str, str]:
    """The environment for a child ``python3 -m mxmem``: this tree's ``src`` first."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(SRC) + (os.pathsep + path if path else "")}


def default_sigint() -> None:
    """``preexec_fn`` of every child: SIGINT back to its default action (see the module
    docstring). Only async-signal-safe work happens here (one sigaction)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _input(stdin: str | bytes | None) -> bytes | None:
    return stdin.encode() if isinstance(stdin, str) else stdin


class Running:
    """A started ``mxmem`` process: read its output line by line with a deadline, send it
    signals, then :meth:`finish` it."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def readline(self, timeout: float = TIMEOUT) -> str:
        """The next line of standard output ("" at its end); fails the test when none
        comes within ``timeout`` seconds instead of hanging the suite."""
        assert self.proc.stdout is not None
        stream = self.proc.stdout
        line = bytearray()
        deadline = time.monotonic() + timeout
        fd = stream.fileno()
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                pytest.fail(f"mxmem wrote no line within {timeout} s (so far: {bytes(line)!r})")
            chunk = os.read(fd, 1)
            if not chunk:
                break
            line += chunk
        return line.decode()

    def send_signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def finish(self, timeout: float = TIMEOUT) -> Result:
        """Wait for the process to end and return its exit code and remaining output; fails
        the test (after killing it) when it has not ended within ``timeout`` seconds."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            pytest.fail(f"mxmem did not end within {timeout} s")
        return Result(self.proc.returncode, out.decode(), err.decode())

    def close(self) -> None:
        """Kill the process if it still runs, reap it and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


class Mxmem:
    """The runner the ``mxmem`` fixture hands out. It holds no state, so module- and
    session-scoped fixtures can use it too."""

    def run(
        self, *args: str, source: Source | None = None, stdin: str | bytes | None = None
    ) -> Result:
        """``mxmem ARGS`` in this process, with ``stdin`` as its standard input (empty when
        not given); its standard output and error are captured here, not by pytest.
        ``sys.stdin`` is replaced, not file descriptor 0: a tool that looks at the
        descriptor (treemap guessing a pipe) needs ``-`` named, or :meth:`subprocess`."""
        streams = (sys.stdin, sys.stdout, sys.stderr)
        out, err = io.BytesIO(), io.BytesIO()
        # The wrappers stay referenced here: a dropped TextIOWrapper closes its buffer.
        wrappers = (
            io.TextIOWrapper(io.BytesIO(_input(stdin) or b""), encoding="utf-8"),
            io.TextIOWrapper(out, encoding="utf-8", write_through=True),
            io.TextIOWrapper(err, encoding="utf-8", write_through=True),
        )
        sys.stdin, sys.stdout, sys.stderr = wrappers
        try:
            code = main(list(args), source=source)
            for wrapper in wrappers[1:]:
                wrapper.flush()
            texts = [
                stream.getvalue().decode(errors="backslashreplace") for stream in (out, err)
            ]
        finally:
            sys.stdin, sys.stdout, sys.stderr = streams
        return Result(code, *texts)

    def subprocess(
        self, *args: str, stdin: str | bytes | None = None, timeout: float = TIMEOUT
    ) -> Result:
        """``python3 -m mxmem ARGS`` as a child process (stdin: /dev/null unless given)."""
        proc = subprocess.run(
            [sys.executable, "-m", "mxmem", *args],
            input=_input(stdin) if stdin is not None else None,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            env=subprocess_env(),
            timeout=timeout,
            preexec_fn=default_sigint,
            check=False,
        )
        return Result(
            proc.returncode,
            proc.stdout.decode(errors="backslashreplace"),
            proc.stderr.decode(errors="backslashreplace"),
        )

    @contextmanager
    def start(self, *args: str) -> Iterator[Running]:
        """``python3 -m mxmem ARGS`` running in the background for the ``with`` block."""
        running = Running(
            subprocess.Popen(
                [sys.executable, "-m", "mxmem", *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=subprocess_env(),
                preexec_fn=default_sigint,
            )
        )
        try:
            yield running
        finally:
            running.close()
