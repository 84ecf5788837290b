"""The suite itself: it passes on any machine (any memory size) and from any shell
(foreground, or in the background of a script, where SIGINT arrives ignored); no test
leaks a process or a pipe; the Hypothesis profiles and the ``mxmem`` runner fixture do
what conftest.py says.

Two tests here run another test of the suite in a child pytest under the condition
that once broke it (a machine with MemTotal 24683772 kB; a shell that ignores SIGINT):
they fail when that test depends on the machine or the shell again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from textwrap import dedent

import profiles
import pytest
from hypothesis import settings
from paths import FIXTURES, REPO, SRC, TESTS
from runner import Mxmem, subprocess_env

from mxmem.sources.linux import HostSource

LINUX = sys.platform.startswith("linux") and os.path.exists("/proc/self/smaps_rollup")
ROOT = LINUX and os.geteuid() == 0
UNSHARE = shutil.which("unshare")
# The MemTotal of the machine that showed defect b: 24683772 kB is 24105.246 MiB, which
# Magenta's rounding (sizes.c: the last remainder, 252, read as thousandths, rounds up
# at 50) prints as 24105.3M where "%.1f" prints 24105.2M.
MEMTOTAL_KB = 24683772


def child_pytest(
    *args: str, wrap: list[str] | None = None, sigint: object = signal.SIG_DFL, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python3 -m pytest ARGS`` from the repository, with SIGINT's disposition ``sigint``
    (what the shell that started the suite would hand down), optionally under ``wrap``."""

    def preexec() -> None:
        signal.signal(signal.SIGINT, sigint)  # type: ignore[arg-type]

    return subprocess.run(
        [*(wrap or []), sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
        check=False,
    )


# --- defect b: no test depends on the machine's memory size ----------------------------------


def meminfo_with_total(kb: int) -> str:
    """The captured meminfo of tests/fixtures/linux with MemTotal set to ``kb`` (what is
    not in use elsewhere becomes 'other', so the parts still add up)."""
    lines = (FIXTURES / "linux" / "meminfo").read_text().splitlines(keepends=True)
    assert lines[0].startswith("MemTotal:")
    return f"MemTotal:       {kb} kB\n" + "".join(lines[1:])


def test_kstats_prints_memtotal_with_magentas_rounding(tmp_path: Path, mxmem: Mxmem) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text(meminfo_with_total(MEMTOTAL_KB))
    code, out, _ = mxmem.run("kstats", "-m", "-n", "1", source=HostSource(str(tmp_path)))
    assert code == 0
    assert out.splitlines()[1].split()[0] == "24105.3M"


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT and UNSHARE), reason="a private /proc/meminfo needs root and unshare")
def test_host_memory_tests_pass_on_a_machine_with_another_memtotal(tmp_path: Path) -> None:
    """The tests that compare the host's figures with /proc/meminfo, run where
    /proc/meminfo says 24683772 kB (bind-mounted in a private mount namespace)."""
    fake = tmp_path / "meminfo"
    fake.write_text(meminfo_with_total(MEMTOTAL_KB))
    probe = subprocess.run(
        [UNSHARE, "-m", "sh", "-c", f"mount --bind {fake} /proc/meminfo && head -1 /proc/meminfo"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount over /proc/meminfo here: {probe.stderr.strip()}")
    assert probe.stdout.split()[1] == str(MEMTOTAL_KB)
    mounted = [UNSHARE, "-m", "sh", "-c", f'mount --bind {fake} /proc/meminfo && exec "$@"', "-"]
    done = child_pytest(
        "tests/unit/sources/linux/test_linux_kernel.py::test_kstats_memory_on_the_host_sums_to_total",
        "tests/unit/sources/linux/test_linux_kernel.py::test_kernel_memory_of_this_machine_sums_to_total",
        wrap=mounted,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


# --- defect c: no test depends on the shell's signal dispositions ----------------------------


@contextmanager
def sigint_ignored() -> Iterator[None]:
    """This process as a background shell's child: SIGINT ignored (children inherit it)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_reaches_a_started_mxmem_though_the_suite_ignores_it(mxmem: Mxmem) -> None:
    with sigint_ignored(), mxmem.start("--sim", "kstats", "-m", "-d", "0.2") as proc:
        assert proc.readline().split()[0] == "total"
        proc.send_signal(signal.SIGINT)
        code, _, err = proc.finish(timeout=30)
    assert (code, err) == (0, "")


@pytest.mark.slow
def test_the_ctrl_c_test_passes_from_a_background_shell() -> None:
    """What ``(python3 -m pytest ... > log 2>&1 &)`` in a script does: pytest starts with
    SIGINT ignored. The kstats Ctrl-C test must still pass, within its own timeout."""
    done = child_pytest(
        "tests/unit/cli/test_kstats.py::test_ctrl_c_ends_kstats_cleanly",
        sigint=signal.SIG_IGN,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


# --- no leaked processes or pipes ------------------------------------------------------------


@pytest.mark.slow
def test_a_leaked_process_or_pipe_fails_the_test_that_leaked_it(tmp_path: Path) -> None:
    (tmp_path / "test_leaks.py").write_text(
        dedent(
            """\
            import os
            import subprocess

            def test_leaks_a_process():
                subprocess.Popen(["sleep", "60"])

            def test_leaks_a_pipe():
                os.pipe()

            def test_cleans_up():
                subprocess.run(["true"], check=True)
                r, w = os.pipe()
                os.close(r)
                os.close(w)
            """
        )
    )
    # conftest.py as a plugin: the leak check without the rest of the suite.
    path = [str(TESTS), str(TESTS / "support"), str(SRC)]
    env = {**subprocess_env(), "PYTHONPATH": os.pathsep.join(path)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout
    assert "3 passed, 2 errors" in out, out
    errors = out.split("short test summary info")[1]
    assert "ERROR test_leaks.py::test_leaks_a_process" in errors
    assert "ERROR test_leaks.py::test_leaks_a_pipe" in errors
    assert "test_cleans_up" not in errors
    assert "the test leaked child process" in out and "still running: sleep 60" in out
    assert "the test leaked fd" in out and "(pipe:[" in out


# --- Hypothesis profiles ---------------------------------------------------------------------


def test_the_chosen_profile_is_loaded() -> None:
    assert settings.default.derandomize is (profiles.chosen() == "ci")
    assert settings.default.deadline is None
    assert profiles.examples(150) == (150 if profiles.chosen() == "ci" else 30)


@pytest.mark.slow
def test_an_unknown_profile_is_one_line_and_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/unit/render/test_units.py"],
        cwd=REPO,
        env={**subprocess_env(), "HYPOTHESIS_PROFILE": "fast"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "HYPOTHESIS_PROFILE='fast' is not a profile; use one of: ci, dev" in done.stderr
    assert "Traceback" not in done.stderr


# --- the mxmem runner ------------------------------------------------------------------------


def test_run_and_subprocess_agree(mxmem: Mxmem) -> None:
    inside = mxmem.run("--sim", "ps", "--json")
    outside = mxmem.subprocess("--sim", "ps", "--json")
    assert inside == outside
    assert inside.code == 0 and inside.err == "" and inside.json()[0]["type"] == "j"


def test_run_and_subprocess_feed_stdin_alike(mxmem: Mxmem) -> None:
    memgraph = mxmem.run("--sim", "memgraph").out
    inside = mxmem.run("treemap", "--json", "-", stdin=memgraph)
    assert inside == mxmem.subprocess("treemap", "--json", "-", stdin=memgraph)
    assert inside.code == 0 and inside.json()["source"] != "host"


def test_run_reports_usage_errors_like_the_command(mxmem: Mxmem) -> None:
    inside = mxmem.run("--sim=", "ps")
    assert inside == mxmem.subprocess("--sim=", "ps")
    assert inside.code == 2 and inside.out == "" and inside.err.startswith("mxmem: ")


def test_ci_runs_the_readme_command_with_its_default_profile() -> None:
    """The README's `python3 -m pytest` runs everything CI runs: .ci/run names the profile
    the README's command gets by default and deselects nothing."""
    ci = (REPO / ".ci" / "run").read_text()
    assert f"export HYPOTHESIS_PROFILE={profiles.DEFAULT}\n" in ci
    command = next(line for line in ci.splitlines() if "python3 -m pytest" in line)
    assert command.endswith("python3 -m pytest")
    addopts = (REPO / "pyproject.toml").read_text().split("addopts = ", 1)[1].splitlines()[0]
    assert " -m " not in f" {addopts} " and " -k " not in f" {addopts} "
