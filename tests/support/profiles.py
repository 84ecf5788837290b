"""Hypothesis profiles, chosen with ``HYPOTHESIS_PROFILE`` (conftest.py loads the one named):

- ``ci`` (the default, so the README's test command runs what CI runs): every property
  test's full number of examples, derandomized so a run is repeatable and a failure
  found in CI is found again by anyone who reruns the command, no deadline (a busy
  machine must not fail a test), no example database (CI starts clean each time);
- ``dev``: a fifth of the examples (at least 5), random, remembered in ``.hypothesis/``
  so a failure found once is replayed first next time.

A test that sets its own ``max_examples`` overrides any profile's, so the property
tests write ``max_examples=examples(N)``: N under ``ci``, fewer under ``dev``.
"""

from __future__ import annotations

import os

from hypothesis import settings

PROFILES = ("ci", "dev")
DEFAULT = "ci"
DEV_SHARE = 5  # dev runs 1/DEV_SHARE of a test's examples

settings.register_profile("ci", derandomize=True, deadline=None, database=None, print_blob=True)
settings.register_profile("dev", max_examples=100 // DEV_SHARE, deadline=None)


def chosen() -> str:
    """The profile ``HYPOTHESIS_PROFILE`` names (``ci`` when unset or empty)."""
    return os.environ.get("HYPOTHESIS_PROFILE") or DEFAULT


def examples(n: int) -> int:
    """``max_examples`` for a test that wants ``n`` examples in CI."""
    return max(5, n // DEV_SHARE) if chosen() == "dev" else n
