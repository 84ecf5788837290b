"""Helpers shared by the text renderers.

Names of processes, jobs and VMOs come from the inspected system, so whoever named a
process controls those bytes. Text output passes every such string through
:func:`safe_text` so that a name can never move the cursor, clear the screen, start a
terminal escape sequence or reorder the line. JSON output keeps the real string (the JSON
encoder escapes it).
"""

from __future__ import annotations

import re

__all__ = ["c_pad", "safe_text"]

# What a terminal may act on rather than print:
# - C0 controls, DEL and C1 controls (0x9b is a one-byte CSI on some terminals);
# - Unicode line/paragraph separators and the bidi controls, which can make a line
#   display differently from what it contains ("Trojan Source", CVE-2021-42574);
# - lone surrogates: a name decoded from bytes with ``surrogateescape`` (Linux) would
#   otherwise crash the UTF-8 encoder of stdout.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:
        # surrogateescape stands for the undecodable byte code - 0xDC00: show that byte.
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def safe_text(s: str) -> str:
    """``s`` with every character a terminal could act on replaced by a visible escape.

    ``"\\x1b[2J"`` becomes ``\\x1b[2J`` (four visible characters then ``[2J``), a newline
    becomes ``\\n``. Backslashes are left alone so ordinary names print exactly as
    Magenta printed them; JSON output is the unambiguous form.
    """
    if s.isprintable():  # fast path: no controls, separators or surrogates at all
        return s
    return _UNSAFE.sub(_escape, s)


def c_pad(width: int) -> str:
    """What C's ``printf("%*s", width, "")`` prints: a negative width means a ``-`` flag
    and the absolute width, so it is ``abs(width)`` spaces either way."""
    return " " * abs(width)
