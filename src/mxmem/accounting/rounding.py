"""Whole bytes from exact fractions, so that what a display prints adds up (issue 10).

Every rounding of the figures happens here, with one rule: largest remainder. The parts
are floored, and the bytes the floors lose against the rounded sum go one each to the
parts with the largest remainders; equal remainders go by key (the smaller first), so
the result never depends on the order the parts came in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction
from math import floor
from typing import Any, TypeVar

K = TypeVar("K", bound=Any)

_ZERO = Fraction(0)

__all__ = ["exact_sum", "integer_parts", "parts_to_target", "scaled_to_fit"]


def exact_sum(values: Iterable[Fraction]) -> Fraction:
    """The exact sum of many fractions: numerators added per denominator (shares have
    a handful of distinct denominators), then one Fraction, instead of one normalising
    Fraction addition per value."""
    by_denominator: dict[int, int] = {}
    for value in values:
        d = value.denominator
        by_denominator[d] = by_denominator.get(d, 0) + value.numerator
    return sum((Fraction(n, d) for d, n in by_denominator.items()), _ZERO)


def integer_parts(parts: Iterable[tuple[K, Fraction]]) -> dict[K, int]:
    """Round non-negative fractional parts to whole bytes so that they add up to the
    rounded sum (largest remainder; ties by key, smaller key first).

    Each part ends within one byte of its exact value (the floor or the ceiling). The
    sum is rounded half to even (Python's ``round``). Works on numerators and
    denominators: the remainders are summed per denominator (a handful of distinct ones:
    users x reaching VMOs) before one Fraction sum, because summing thousands of
    Fractions one by one is what made display rounding slow.
    """
    floors: dict[K, int] = {}
    remainders: list[tuple[Fraction, K]] = []
    by_denominator: dict[int, int] = {}
    for name, value in parts:
        q, r = divmod(value.numerator, value.denominator)
        floors[name] = q
        if r:
            remainders.append((Fraction(r, value.denominator), name))
            by_denominator[value.denominator] = by_denominator.get(value.denominator, 0) + r
    whole = sum(floors.values())
    rest = sum((Fraction(n, d) for d, n in by_denominator.items()), _ZERO)
    short = round(whole + rest) - whole
    remainders.sort(key=lambda item: (-item[0], item[1]))
    for _, name in remainders[: max(short, 0)]:
        floors[name] += 1
    return floors


def parts_to_target(shares: Mapping[K, Fraction], target: int, rest_key: K) -> dict[K, int]:
    """``shares`` as whole bytes that add up to exactly ``target`` (a figure already
    rounded elsewhere, e.g. a process's printed ``private + shared``), each within a
    byte of its exact value whenever that is possible. Shares of 0 or less count as
    nothing and are left out.

    The shares are rounded with :func:`integer_parts`, which makes them add up to their
    rounded sum; ``target`` can differ from that by a byte or two (it was rounded among
    other parts). The difference ``d`` goes on by the same rule: one byte more to each
    of the ``d`` fractional shares rounded down, largest remainder first; or one byte
    less from each of the ``|d|`` rounded up, smallest remainder first (ties by key,
    both ways). Should there be too few such shares, the largest shares take the rest
    (``rest_key`` takes it when there are no shares).
    """
    items = [(key, share) for key, share in shares.items() if share > 0]
    rounded = {key: int(share) for key, share in items if share.denominator == 1}
    fractional = {key: share for key, share in items if share.denominator != 1}
    rounded.update(integer_parts(fractional.items()))
    short = target - sum(rounded.values())
    if short:
        remainder = {key: share - floor(share) for key, share in fractional.items()}
        if short > 0:
            movable = sorted(
                (k for k, v in fractional.items() if rounded[k] == floor(v)),
                key=lambda k: (-remainder[k], k),
            )
        else:
            movable = sorted(
                (k for k, v in fractional.items() if rounded[k] > floor(v)),
                key=lambda k: (remainder[k], k),
            )
        step = 1 if short > 0 else -1
        for key in movable[: abs(short)]:
            rounded[key] += step
            short -= step
        # Too few shares to move by a byte each: the largest take the rest.
        for key in sorted(rounded, key=lambda k: (-rounded[k], k)):
            if not short:
                break
            change = short if short > 0 else max(short, -rounded[key])
            rounded[key] += change
            short -= change
        if short > 0:  # no share at all: the bytes are ``rest_key``'s
            rounded[rest_key] = rounded.get(rest_key, 0) + short
    return {key: size for key, size in rounded.items() if size}


def scaled_to_fit(sizes: Mapping[K, int], limit: int) -> dict[K, int]:
    """``sizes`` as they are when they add up to at most ``limit``; otherwise scaled down
    in proportion so that they add up to exactly ``limit`` (largest remainder, each
    within a byte of its exact share)."""
    total = sum(sizes.values())
    if total <= limit:
        return dict(sizes)
    limit = max(limit, 0)
    return integer_parts((key, Fraction(size * limit, total)) for key, size in sizes.items())
