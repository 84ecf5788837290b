"""Byte sizes typed by people (``"4k"``, ``"1.5G"``), shared by every layer.

``parse_size`` lives here rather than in :mod:`mxmem.render.units` because sources parse
sizes too (world files) and sources may not import renderers; ``mxmem.render.units``
re-exports both names.
"""

from __future__ import annotations

import re

__all__ = ["UNITS", "parse_size"]

#: Unit letters in increasing powers of 1024 (sizes.c: ``units[] = "BkMGTPE"``).
UNITS = "BkMGTPE"

# "<number> [<unit>]" where unit is B, or K/M/G/T/P/E optionally followed by
# "B" or "iB". Everything is binary (1k = 1024) to match format_size.
_SIZE_RE = re.compile(
    r"\s*(?P<num>[0-9]+(?:\.[0-9]+)?)\s*(?:(?P<unit>[kmgtpe])(?:i?b)?|(?P<bytes>b))?\s*",
    re.IGNORECASE | re.ASCII,
)


def parse_size(text: str) -> int:
    """Parse a human byte size such as ``"4k"``, ``"1.5G"``, ``"64KiB"``, ``"4096"``.

    Units are binary and case-insensitive: ``k``/``K`` = 1024, ``M`` = 1024**2,
    ... ``E`` = 1024**6, optionally followed by ``B`` or ``iB``; a bare number or
    a ``B`` suffix means bytes. Fractions are allowed only if the result is a
    whole number of bytes (``"0.5k"`` is 512, ``"0.3k"`` is an error): a size
    is a count of bytes, so we refuse to silently round.
    """
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"invalid size {text!r}: expected a non-negative number with an optional "
            f"binary unit, e.g. '4096', '4k', '1.5G', '64KiB' (units: B K M G T P E)"
        )
    # Imported here: fractions (with decimal) is a large import that most commands,
    # which never parse a size, should not pay for.
    from fractions import Fraction

    number = Fraction(match["num"])  # exact: no float rounding of e.g. "1.1G"
    letter = match["unit"]
    power = 0 if letter is None else UNITS.lower().index(letter.lower())
    size = number * (1 << (10 * power))  # shift, not **: int ** int is typed Any
    if size.denominator != 1:
        raise ValueError(f"invalid size {text!r}: {size} is not a whole number of bytes")
    return size.numerator
