"""Shared test fixtures and the suite's own rules.

- ``golden``: compare a whole output with a file of tests/goldens/data/;
- ``mxmem``: the one way to run the command (in-process, as a child process, or started
  in the background): see tests/support/runner.py;
- Hypothesis profiles (``HYPOTHESIS_PROFILE=ci|dev``, default ``ci``): see
  tests/support/profiles.py;
- every test must leave no child process running and no pipe open (checked after each
  test's own fixtures are torn down): a leaked child or pipe would otherwise surface
  later as a hang or as a ResourceWarning failing some unrelated test.
"""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import profiles
import pytest
from children import Spawn, spawner
from hypothesis import settings
from paths import GOLDEN_DIR
from runner import Mxmem


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite the regenerable files in tests/goldens/data/ from the current output "
        "(also: MXMEM_UPDATE_GOLDEN=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("hypothesis_profile", None):
        return  # Hypothesis's own --hypothesis-profile option wins
    name = profiles.chosen()
    if name not in profiles.PROFILES:
        raise pytest.UsageError(
            f"HYPOTHESIS_PROFILE={name!r} is not a profile; use one of: "
            + ", ".join(profiles.PROFILES)
        )
    settings.load_profile(name)


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """``golden(name, text)``: assert ``text`` equals ``tests/goldens/data/<name>``, or, when
    updating, write it there instead."""
    update = bool(request.config.getoption("--update-golden")) or (
        os.environ.get("MXMEM_UPDATE_GOLDEN") == "1"
    )

    def check(name: str, text: str) -> None:
        path = GOLDEN_DIR / name
        if update:
            path.write_text(text)
            return
        assert path.exists(), f"{path} is missing; run pytest --update-golden to create it"
        assert text == path.read_text()

    return check


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """``spawn(script, *args)``: a real child process (``tests/support/children.py``),
    with the words of the first line it prints; killed with its group at the end."""
    yield from spawner()


@pytest.fixture(scope="session")
def mxmem() -> Mxmem:
    """Runs mxmem: ``mxmem.run(*args, source=, stdin=)`` in this process,
    ``mxmem.subprocess(*args, stdin=)`` as a child, ``with mxmem.start(*args) as p`` in the
    background. Each gives a ``Result(code, out, err)``. Session-scoped (it holds no
    state), so module fixtures can run mxmem too."""
    return Mxmem()


# --- no leaked processes or pipes ------------------------------------------------------------

PROC_SELF = Path("/proc/self")


def _live_children() -> dict[int, str]:
    """This process's children that have not exited: pid -> command line."""
    found: dict[int, str] = {}
    for task in (PROC_SELF / "task").iterdir():
        try:
            pids = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in map(int, pids):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile
            if stat.rpartition(")")[2].split()[0] != "Z":
                found[pid] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def _pipes() -> set[tuple[int, str]]:
    """The pipes this process holds open: (fd, "pipe:[inode]")."""
    found = set()
    for fd in os.listdir(PROC_SELF / "fd"):
        try:
            target = os.readlink(PROC_SELF / "fd" / fd)
        except OSError:
            continue  # the directory's own fd, closed meanwhile
        if target.startswith("pipe:"):
            found.add((int(fd), target))
    return found


CAN_CHECK = (PROC_SELF / "task").is_dir() and any(
    (task / "children").exists() for task in (PROC_SELF / "task").iterdir()
)


@pytest.fixture(autouse=True)
def _no_leaked_processes_or_pipes() -> Iterator[None]:
    """Function-scoped and autouse, so set up after the module fixtures (a browser, a
    module's processes are theirs to clean up) and torn down after the test's own
    fixtures: what is new at the end was leaked by the test or its fixtures."""
    if not CAN_CHECK:
        yield
        return
    children, pipes = set(_live_children()), _pipes()
    yield
    leaked = {pid: cmd for pid, cmd in _live_children().items() if pid not in children}
    deadline = time.monotonic() + 2  # a child killed at the very end may still be exiting
    while leaked and time.monotonic() < deadline:
        time.sleep(0.05)
        leaked = {pid: cmd for pid, cmd in _live_children().items() if pid in leaked}
    for pid in leaked:
        os.kill(pid, signal.SIGKILL)  # the suite's own child: don't let it outlive the test
    gc.collect()  # a pipe only an unreachable object still holds is closed by collecting it
    open_pipes = sorted(_pipes() - pipes)
    problems = [f"child process {pid} still running: {cmd}" for pid, cmd in leaked.items()]
    problems += [f"fd {fd} ({target}) still open" for fd, target in open_pipes]
    if problems:
        pytest.fail("the test leaked " + "; ".join(problems), pytrace=False)
