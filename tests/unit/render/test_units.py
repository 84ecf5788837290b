"""Tests for mxmem.render.units against the Magenta sizes.c reference vectors."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mxmem.render.units import UNITS, format_size, parse_size

K = 1024
KILO = K
MEGA = K * K
GIGA = MEGA * K
TERA = GIGA * K
PETA = TERA * K
EXA = PETA * K
UINT64_MAX = 2**64 - 1

NATURAL_VECTORS: list[tuple[int, str]] = [
    (0, "0B"),
    (1, "1B"),
    (1023, "1023B"),
    (1024, "1k"),
    (1025, "1025B"),
    (9 * K, "9k"),
    (9 * K + 1, "9217B"),
    (10 * K, "10k"),
    (MEGA - K, "1023k"),
    (MEGA, "1M"),
    (MEGA + K, "1025k"),
    (9 * MEGA + K, "9217k"),
    (GIGA, "1G"),
    (TERA, "1T"),
    (PETA, "1P"),
    (EXA, "1E"),
    (MEGA - 1, "1024.0k"),
    (MEGA + MEGA // 3, "1365.3k"),
    (GIGA - 1, "1024.0M"),
    (UINT64_MAX, "16.0E"),
    (9999, "9999B"),
    (10000, "9.8k"),
    (9999 * K, "9999k"),
    (9999 * K + 1, "9999.0k"),
    (10000 * K, "9.8M"),
    (10 * 1024 + 150, "10.2k"),
    (10 * 1024 + 51, "10.1k"),
    (11190, "11.0k"),
    (11210, "11.0k"),
    # From the doc.
    (0x7FFFFEFFF000, "128.0T"),
    (1384 * 1024 + (28 * 1024) // 12, "1386.3k"),
]

FIXED_VECTORS: list[tuple[int, str, str]] = [
    (UINT64_MAX, "B", "18446744073709551615B"),
    (UINT64_MAX, "k", "18014398509481984.0k"),
    (UINT64_MAX, "M", "17592186044416.0M"),
    (UINT64_MAX, "G", "17179869184.0G"),
    (UINT64_MAX, "T", "16777216.0T"),
    (UINT64_MAX, "P", "16384.0P"),
    (UINT64_MAX, "E", "16.0E"),
    (GIGA, "k", "1048576k"),
    (MEGA // 10, "M", "0.1M"),
    (0, "M", "0M"),
]

UNKNOWN_UNIT_VECTORS: list[tuple[int, str, str]] = [
    (GIGA, "X", "?1G"),
    (KILO, "X", "?1k"),
    (GIGA + 1, "X", "?1.0G"),
    (KILO + 1, "X", "?1025B"),
]


@pytest.mark.parametrize(("n", "expected"), NATURAL_VECTORS, ids=[e for _, e in NATURAL_VECTORS])
def test_natural_vectors(n: int, expected: str) -> None:
    assert format_size(n) == expected


@pytest.mark.parametrize(
    ("n", "unit", "expected"), FIXED_VECTORS, ids=[f"{u}-{e}" for _, u, e in FIXED_VECTORS]
)
def test_fixed_vectors(n: int, unit: str, expected: str) -> None:
    assert format_size(n, unit) == expected


@pytest.mark.parametrize(
    ("n", "unit", "expected"), UNKNOWN_UNIT_VECTORS, ids=[e for _, _, e in UNKNOWN_UNIT_VECTORS]
)
def test_unknown_unit_vectors(n: int, unit: str, expected: str) -> None:
    assert format_size(n, unit) == expected


def test_units_constant() -> None:
    assert UNITS == "BkMGTPE"


def test_lowercase_unit_letters_other_than_k_are_unknown() -> None:
    # Only kilo is lowercase; 'm' is not a unit, so it falls back to natural.
    assert format_size(MEGA, "m") == "?1M"
    assert format_size(KILO, "K") == "?1k"


@pytest.mark.parametrize("n", [-1, -KILO])
def test_negative_rejected(n: int) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        format_size(n)


@pytest.mark.parametrize("bad", [1.0, "1", True])
def test_non_int_rejected(bad: object) -> None:
    with pytest.raises(TypeError):
        format_size(bad)  # type: ignore[arg-type]


def test_multichar_unit_rejected() -> None:
    with pytest.raises(ValueError, match="single character"):
        format_size(KILO, "kB")


# --------------------------------------------------------------------------- parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4096", 4096),
        ("0", 0),
        ("4k", 4 * K),
        ("4K", 4 * K),
        ("2M", 2 * MEGA),
        ("2m", 2 * MEGA),
        ("1.5G", GIGA + GIGA // 2),
        ("64KiB", 64 * K),
        ("64kib", 64 * K),
        ("64KB", 64 * K),
        ("8 MiB", 8 * MEGA),
        ("  8 MiB  ", 8 * MEGA),
        ("3T", 3 * TERA),
        ("1P", PETA),
        ("16E", 16 * EXA),
        ("12B", 12),
        ("12 b", 12),
        ("0.5k", 512),
        ("1.25k", 1280),
        ("1024.0k", MEGA),
        ("16.0E", 16 * EXA),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "k",
        "-4k",
        "4x",
        "4 kk",
        "4KiBB",
        "4Ki",
        "4iB",
        "1.k",
        ".5k",
        "1e3",
        "1,024",
        "4 k B",
        "0x10",
        "٤k",  # non-ASCII digit
    ],
)
def test_parse_size_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


@pytest.mark.parametrize("text", ["0.3k", "1.5", "1.5B", "0.1M", "1.0000001G"])
def test_parse_size_rejects_fractional_bytes(text: str) -> None:
    with pytest.raises(ValueError, match="not a whole number of bytes"):
        parse_size(text)


# --------------------------------------------------------------------------- properties
#
# These are derived from the rules in the spec, not from the implementation:
#
# * Unit choice (natural): the loop divides while value >= 10000 or value is a
#   non-zero multiple of 1024, and stops at E. So the printed unit u satisfies
#   floor(n / 1024**u) < 10000 (unless u is E), and the step into u was forced.
# * "whole" is true iff no division lost anything, i.e. iff 1024**u divides n;
#   then the output is exactly n / 1024**u with no decimal.
# * Otherwise the decimal is (r//100 + round)/10 where r is the last remainder.
#   That approximates r/1000 to within 0.05, r/1000 overshoots r/1024 by at most
#   1023 * 24 / 1024000 < 0.024, and the discarded lower-order remainders are
#   worth < 1/1024. So |printed - n/1024**u| < 0.075 < 0.1.
# * The whole part is at most 9999, or 10000 only when the rounding carry fires
#   on 9999.x (e.g. 9999*1024 + 1000 -> "10000.0k").

_OUT_RE = re.compile(r"(?P<q>\?)?(?P<whole>[0-9]+)(?:\.(?P<tenth>[0-9]))?(?P<unit>[BkMGTPE])")

uint64 = st.integers(min_value=0, max_value=UINT64_MAX)


def _parse_output(out: str) -> tuple[Fraction, int, bool]:
    m = _OUT_RE.fullmatch(out)
    assert m is not None, f"malformed output {out!r}"
    assert m["q"] is None
    exact = m["tenth"] is None
    value = Fraction(int(m["whole"])) + (0 if exact else Fraction(int(m["tenth"]), 10))
    return value, UNITS.index(m["unit"]), exact


def _check_value(n: int, out: str, unit_index: int, value: Fraction, exact: bool) -> None:
    true_value = Fraction(n, 1024**unit_index)
    divisible = n % 1024**unit_index == 0
    # No decimal point iff the value is an exact multiple of the unit.
    assert exact == divisible, out
    if exact:
        assert value == true_value, out
    else:
        assert abs(value - true_value) < Fraction(1, 10), (out, float(true_value))


@given(n=uint64)
@example(n=9999 * K + 1000)  # rounding carry: "10000.0k"
@example(n=10000 * K - 1)
@example(n=MEGA + 1)  # climbs via 1024 % 1024 == 0 even though inexact: "1.0M"
@example(n=UINT64_MAX)
def test_natural_format_properties(n: int) -> None:
    out = format_size(n)
    value, u, exact = _parse_output(out)
    _check_value(n, out, u, value, exact)

    whole_part = int(value)
    if u < len(UNITS) - 1:
        # At most 4 whole digits, except the rounding carry on 9999.x.
        assert n // 1024**u < 10000, out
        if exact:
            assert whole_part <= 9999, out
        else:
            assert whole_part <= 10000, out
            if whole_part == 10000:
                assert out == f"10000.0{UNITS[u]}", out
    if u > 0:
        # The step into unit u was forced: at the previous unit, the value had
        # too many digits or was a non-zero multiple of 1024.
        prev = n // 1024 ** (u - 1)
        assert prev >= 10000 or (prev != 0 and prev % 1024 == 0), out


@given(m=st.integers(min_value=1, max_value=9999), u=st.integers(min_value=0, max_value=6))
def test_exact_multiples_print_without_decimal(m: int, u: int) -> None:
    # m * 1024**u with m not itself a multiple of 1024 stops exactly at unit u
    # (m < 10000 and m % 1024 != 0), and prints as "<m><unit>".
    if m % 1024 == 0:
        m += 1
    n = m * 1024**u
    assert format_size(n) == f"{m}{UNITS[u]}"


@given(k=st.integers(min_value=0, max_value=6))
def test_powers_of_1024_climb_to_largest_unit(k: int) -> None:
    assert format_size(1024**k) == f"1{UNITS[k]}"


@given(n=uint64, unit=st.sampled_from(UNITS))
def test_fixed_format_properties(n: int, unit: str) -> None:
    out = format_size(n, unit)
    value, u, exact = _parse_output(out)
    assert UNITS[u] == unit, out
    _check_value(n, out, u, value, exact)
    # Fixed units never stop early: the whole part is the integer quotient,
    # possibly +1 from the rounding carry.
    assert int(value) - n // 1024**u in (0, 1), out


@given(n=uint64, unit=st.characters(exclude_characters=UNITS))
def test_unknown_unit_is_question_mark_plus_natural(n: int, unit: str) -> None:
    out = format_size(n, unit)
    assert out.startswith("?")
    value, u, exact = _parse_output(out[1:])
    _check_value(n, out, u, value, exact)
    assert out == "?" + format_size(n)


@given(n=uint64)
def test_parse_size_roundtrips_exact_output(n: int) -> None:
    out = format_size(n)
    if "." not in out:
        assert parse_size(out) == n
