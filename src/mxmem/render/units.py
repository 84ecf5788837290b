"""Byte-size formatting and parsing, compatible with Magenta's ``pretty/sizes``.

Contract (a faithful port of Magenta ``system/ulib/pretty/sizes.c``):

* Units are ``"BkMGTPE"``, powers of 1024. Only the kilo unit is lowercase.
* ``format_size(n)`` picks a *natural* unit: at most 4 whole digits, exact
  multiples climb to the largest unit (``"1M"``, not ``"1024k"``), and
  non-multiples keep more whole digits (``"1025k"``, not ``"1.0M"``).
* ``format_size(n, unit)`` uses a *fixed* unit, even if the whole part becomes
  0 (``"0.1M"``). An unknown unit prints ``"?"`` followed by the natural form.
* Exact values print as ``"17k"``; inexact ones print one decimal using
  Magenta's integer rounding of the last remainder (see ``_tenths``), which is
  *not* the same as rounding ``n / 1024**u`` to one decimal place.

``parse_size`` is the (mxmem-specific) inverse for human input such as
``"4k"``, ``"1.5G"`` or ``"8 MiB"``; it only accepts sizes that are a whole
number of bytes. It is defined in :mod:`mxmem.sizes` (sources parse sizes too and
may not import renderers) and re-exported here.
"""

from __future__ import annotations

from mxmem.sizes import UNITS, parse_size

__all__ = ["UNITS", "format_size", "parse_size"]

_LAST_UNIT = len(UNITS) - 1  # index of 'E'; sizes.c never goes past it


def _tenths(remainder: int) -> int:
    """Magenta's one-decimal rounding of the last division's remainder.

    sizes.c treats the remainder (0..1023) as if it were thousandths: it takes
    ``r / 100`` and rounds up when ``r % 100 >= 50``. The result can be 10
    (e.g. r=950..1023), which the caller carries into the whole part. We copy
    the quirk verbatim so our output matches Magenta's ``memgraph`` byte for
    byte (e.g. 10000 -> "9.8k", although 10000/1024 = 9.77).
    """
    return remainder // 100 + (1 if remainder % 100 >= 50 else 0)


def format_size(n: int, unit: str = "") -> str:
    """Format ``n`` bytes the way Magenta's ``format_size_fixed`` does.

    ``unit`` is ``""`` for the natural unit, or one letter of :data:`UNITS` for
    a fixed unit. Any other single character yields a ``"?"`` prefix and the
    natural unit, as in sizes.c.

    Raises ``TypeError`` if ``n`` is not an ``int`` and ``ValueError`` if it is
    negative or ``unit`` is longer than one character (sizes.c takes a ``char``).
    """
    if type(n) is not int and (not isinstance(n, int) or isinstance(n, bool)):
        raise TypeError(f"size must be an int, not {type(n).__name__}")
    if n < 0:
        raise ValueError(f"size must be non-negative, got {n}")
    if len(unit) > 1:
        raise ValueError(f"unit must be '' or a single character, got {unit!r}")

    prefix = ""
    if unit and unit not in UNITS:
        # sizes.c: unknown unit -> emit '?' and fall back to natural units.
        prefix = "?"
        unit = ""

    value = n
    index = 0  # index into UNITS
    remainder = 0  # remainder of the LAST division; sizes.c rounds only this
    whole = True  # true only if no division lost anything

    # (Each step inline, not a nested function: ps formats three sizes per process.)
    if unit:
        # Fixed unit: divide until we reach it, even if the whole part hits 0.
        while UNITS[index] != unit:
            value, remainder = divmod(value, 1024)
            whole = whole and not remainder
            index += 1
    else:
        # Natural unit: at most 4 whole digits; exact multiples of 1024 keep
        # climbing so that we print "1M", not "1024k".
        while index < _LAST_UNIT and (value >= 10000 or (value != 0 and value % 1024 == 0)):
            value, remainder = divmod(value, 1024)
            whole = whole and not remainder
            index += 1

    letter = UNITS[index]
    if whole:
        return f"{prefix}{value}{letter}"

    tenths = _tenths(remainder)
    if tenths >= 10:
        # Rounding overflowed the decimal (e.g. r=1023): carry into the whole part.
        value += 1
        tenths -= 10
    return f"{prefix}{value}.{tenths}{letter}"
