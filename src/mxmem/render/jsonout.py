"""Stable JSON output: the same data always gives the same bytes.

Keys are sorted and separators fixed, so outputs can be diffed and compared in tests.
``ensure_ascii`` stays on: every control character (C0, DEL, C1) and every non-ASCII
character is written as a ``\\uXXXX`` escape, so even JSON sent straight to a terminal
cannot carry an escape sequence from a hostile name, while the decoded string is exact.
"""

from __future__ import annotations

from typing import TextIO, TypeAlias

__all__ = ["JsonValue", "dumps_json", "write_json"]

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"


def dumps_json(value: JsonValue) -> str:
    """``value`` as one line of JSON (no trailing newline)."""
    # Imported here: the text tools (ps without --json) never need the json package.
    import json

    return json.dumps(
        value,
        sort_keys=True,
        indent=None,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    )


def write_json(value: JsonValue, out: TextIO) -> None:
    """Write ``value`` as one line of JSON followed by a newline."""
    out.write(dumps_json(value))
    out.write("\n")
