"""Checked reads of parsed JSON, for every capture format (mxmem snapshot files, memgraph
JSON, Fuchsia captures): every bad value becomes a one-line :class:`SourceError` naming
the file and the place, so a hostile or damaged capture never reaches the tools (or a
traceback), and every format words the same defect the same way."""

from __future__ import annotations

from typing import NoReturn

from mxmem.errors import SourceError

# Sizes, addresses and koids are 64-bit in every source; anything larger is damage.
U64_LIMIT = 2**64


def describe(value: object) -> str:
    """A short, one-line description of a bad value for an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        text = str(value)
        return text if len(text) <= 24 else text[:20] + "..."
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class Checker:
    """Reads values out of one file's parsed JSON; ``where`` names the file."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, place: str, message: str) -> NoReturn:
        raise SourceError(f"{self.where}: {place}: {message}")

    def int_(self, value: object, place: str, *, low: int = 0, high: int = U64_LIMIT) -> int:
        # bool is an int subclass in Python, but never a number in a capture.
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(place, f"expected an integer, got {describe(value)}")
        if not low <= value < high:
            top = "2**64" if high == U64_LIMIT else str(high)
            self.fail(place, f"{describe(value)} is out of range [{low}, {top})")
        return value

    def opt_int(self, value: object, place: str, *, low: int = 0) -> int | None:
        return None if value is None else self.int_(value, place, low=low)

    def str_(self, value: object, place: str) -> str:
        if not isinstance(value, str):
            self.fail(place, f"expected a string, got {describe(value)}")
        return value

    def opt_str(self, value: object, place: str) -> str | None:
        return None if value is None else self.str_(value, place)

    def bool_(self, value: object, place: str) -> bool:
        if not isinstance(value, bool):
            self.fail(place, f"expected true or false, got {describe(value)}")
        return value

    def list_(self, value: object, place: str, length: int | None = None) -> list[object]:
        if not isinstance(value, list):
            self.fail(place, f"expected an array, got {describe(value)}")
        if length is not None and len(value) != length:
            self.fail(place, f"expected {length} elements, got {len(value)}")
        return value

    def dict_(self, value: object, place: str) -> dict[str, object]:
        if not isinstance(value, dict):
            self.fail(place, f"expected an object, got {describe(value)}")
        return value
