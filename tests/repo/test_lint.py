"""Run the linters as tests so CI fails on lint or type errors."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from paths import REPO


def _run_tool(module: str, *args: str) -> None:
    if importlib.util.find_spec(module) is None:
        # The test extras install both tools; a missing one is a broken setup, not a skip.
        pytest.fail(f"{module} is not installed: pip install -e '.[test]'")
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    output = f"$ {module} {' '.join(args)}\n{proc.stdout}{proc.stderr}"
    assert proc.returncode == 0, output


def test_ruff_check() -> None:
    _run_tool("ruff", "check", "src", "tests", "bench")


@pytest.mark.slow
def test_mypy() -> None:
    # No arguments: files, strictness and python_version come from pyproject.toml.
    _run_tool("mypy")
