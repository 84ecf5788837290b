"""Shared test fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite the regenerable files in tests/golden/ from the current output "
        "(also: MXMEM_UPDATE_GOLDEN=1)",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """``golden(name, text)``: assert ``text`` equals ``tests/golden/<name>``, or, when
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
