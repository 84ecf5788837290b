"""Whole outputs of the ``doc`` world pinned as goldens (tests/goldens/data, regenerated
with ``--update-golden``; tests/goldens/data/README.md says which are never regenerated):
the kernel console's commands and memgraph's records."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from runner import Mxmem


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("k-mx-ps_doc.txt", ["mx", "ps"]),
        ("k-mx-jobs_doc.txt", ["mx", "jobs"]),
        ("k-mx-ht-1043_doc.txt", ["mx", "ht", "1043"]),
        ("k-mx-vmos-hidden_doc.txt", ["mx", "vmos", "hidden"]),
        ("k-mx-vmos-all-uk_doc.txt", ["mx", "vmos", "all", "-uk"]),
        ("k-mx-vmos-1867_doc.txt", ["mx", "vmos", "1867"]),
        ("k-mx-asd-kernel_doc.txt", ["mx", "asd", "kernel"]),
        ("k-mx-asd-1104_doc.txt", ["mx", "asd", "1104"]),
    ],
)
def test_doc_world_goldens(
    mxmem: Mxmem, golden: Callable[[str, str], None], name: str, args: list[str]
) -> None:
    code, out, err = mxmem.run("--sim=doc", "k", *args)
    assert (code, err) == (0, "")
    golden(name, out)


def test_doc_world_golden(mxmem: Mxmem, golden: Callable[[str, str], None]) -> None:
    code, out, err = mxmem.run("--sim=doc", "memgraph")
    assert (code, err) == (0, "")
    golden("memgraph_doc.json", out)
