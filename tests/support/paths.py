"""Where things are, for every test: the repository, its ``src``, and the tests' data
(captured inputs in ``tests/fixtures``, whole-output goldens in ``tests/goldens/data``).
One place, so a test that moves between directories needs no ``parent.parent`` chains."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
SRC = REPO / "src"
FIXTURES = TESTS / "fixtures"
GOLDEN_DIR = TESTS / "goldens" / "data"
