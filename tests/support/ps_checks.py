"""What every ``ps --attribution=exact --json`` document must satisfy, whatever its
source: its schema, and the sums (rows, jobs, the summary) adding up to the printed bytes."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import jsonschema

PS_SCHEMA = json.loads((files("mxmem") / "schemas" / "ps.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(PS_SCHEMA)


def check_adds_up(doc: dict[str, Any]) -> None:
    """The invariants every exact JSON document keeps, whatever the source."""
    rows = doc["rows"]
    for row in rows:
        if row["type"] == "t" or row["attributed_bytes"] is None:
            continue
        parts = ("private_bytes", "shared_bytes", "kernel_bytes", "estimated_bytes")
        # kernel_bytes is null where the source cannot tell (a capture of VMO figures).
        assert row["attributed_bytes"] == sum(row[k] or 0 for k in parts)
    # A job is the sum of the processes right under it and of its child jobs.
    for i, row in enumerate(rows):
        if row["type"] != "j":
            continue
        below = [
            r
            for r in rows[i + 1 :]
            if r["parent_koid"] == row["koid"] and r["type"] in "jp" and r["attributed_bytes"]
        ]
        if row["attributed_bytes"] is None:
            # Its processes are all unknown (and so are its child jobs').
            assert not below, row["koid"]
            continue
        for key in ("attributed_bytes", "private_bytes", "shared_bytes", "kernel_bytes"):
            kernel_unknown = key == "kernel_bytes" and row[key] is None
            expected = None if kernel_unknown else sum(r[key] for r in below)
            assert row[key] == expected, (row["koid"], key)
    summary = doc["summary"]
    categories = sum(c["bytes"] for c in summary["categories"])
    assert (
        summary["processes_bytes"] + categories + summary["residual_bytes"]
        == (summary["total_bytes"])
    )
    sizes = [c["bytes"] for c in summary["categories"]]
    assert sizes == sorted(sizes, reverse=True)
    assert all(size > 0 for size in sizes)
