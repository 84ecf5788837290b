"""``mxmem digest`` output: a table for people, CSV and JSON with exact bytes.

The table and the CSV end with a ``Total`` line (the rows add up to it; ``Total (approximate)``
for an approximate exact digest), then, as Fuchsia's digest prints with
``--undigested``, the undigested memory of each process (``name[koid]``), largest
first. JSON carries ``total_bytes`` and ``undigested``; an exact digest's also
``attribution`` and ``exact``. A ``Residual`` row may be negative.
"""

from __future__ import annotations

from typing import TextIO

from mxmem.accounting.digest import Digest
from mxmem.render.jsonout import JsonValue, write_json
from mxmem.render.text import safe_text

_UNITS = ("B", "KiB", "MiB", "GiB")


def digest_size(size_bytes: int) -> str:
    """A size as Fuchsia's ``scripts/memory`` Python digests print it: ``%.4g`` of the
    value in the largest of B/KiB/MiB/GiB that keeps it at least 1 (RFC-0004 IEC units),
    e.g. ``1023B``, ``1KiB``, ``1.5MiB``, ``12.35GiB``. A negative size (an exact
    digest's residual) is its absolute value's, with a minus sign."""
    if size_bytes < 0:
        return "-" + digest_size(-size_bytes)
    value = float(size_bytes)
    unit = 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{value:.4g}{_UNITS[unit]}"


def _total_label(digest: Digest) -> str:
    return "Total (approximate)" if digest.exact is False else "Total"


def write_digest_human(digest: Digest, out: TextIO) -> None:
    names = [safe_text(b.name) for b in digest.buckets]
    label = _total_label(digest)
    width = max([len("BUCKET"), len(label), *(len(n) for n in names)])
    lines = [f"{'BUCKET':<{width}} {'SIZE':>10}"]
    lines += [
        f"{name:<{width}} {digest_size(bucket.size_bytes):>10}"
        for name, bucket in zip(names, digest.buckets, strict=True)
    ]
    lines.append(f"{label:<{width}} {digest_size(digest.total_bytes):>10}")
    if digest.undigested:
        procs = [f"{safe_text(p.name)}[{p.koid}]" for p in digest.undigested]
        head = "UNDIGESTED BY PROCESS"
        pwidth = max(len(head), *(len(n) for n in procs))
        lines += ["", f"{head:<{pwidth}} {'SIZE':>10}"]
        lines += [
            f"{name:<{pwidth}} {digest_size(p.size_bytes):>10}"
            for name, p in zip(procs, digest.undigested, strict=True)
        ]
    out.write("".join(f"{line}\n" for line in lines))


def _csv_field(text: str) -> str:
    # RFC 4180: quote a field holding a comma, quote or line break; double its quotes.
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_digest_csv(digest: Digest, out: TextIO) -> None:
    out.write("bucket,size_bytes,vmos\n")
    for b in digest.buckets:
        out.write(f"{_csv_field(safe_text(b.name))},{b.size_bytes},{b.vmo_count}\n")
    # The Total the rows add up to, as the table ends with it.
    vmos = sum(b.vmo_count for b in digest.buckets)
    out.write(f"{_csv_field(_total_label(digest))},{digest.total_bytes},{vmos}\n")


def write_digest_json(digest: Digest, out: TextIO) -> None:
    buckets: list[JsonValue] = [
        {"name": b.name, "size_bytes": b.size_bytes, "vmos": b.vmo_count} for b in digest.buckets
    ]
    notes: list[JsonValue] = list(digest.notes)
    undigested: list[JsonValue] = [
        {"koid": p.koid, "name": p.name, "size_bytes": p.size_bytes} for p in digest.undigested
    ]
    obj: dict[str, JsonValue] = {"buckets": buckets, "notes": notes}
    if digest.exact is not None:
        obj |= {"attribution": "exact", "exact": digest.exact}
    obj |= {"total_bytes": digest.total_bytes, "undigested": undigested}
    write_json(obj, out)
