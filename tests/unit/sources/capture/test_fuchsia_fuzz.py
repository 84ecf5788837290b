"""Fuzzing the Fuchsia capture loader: a damaged capture either loads or is one
:class:`SourceError` line, and whatever loads, ``ps`` and ``digest`` run on it without
an internal error.

The input is the real capture (tests/fixtures/fuchsia/test_snapshot.json) cut down to its
first processes, the VMOs they reference and those VMOs' ancestors (the whole file takes
~0.1 s per load, too slow for hundreds of examples), bare and in the wrapped
``{"Capture", "Buckets"}`` form of newer memory_monitor.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
from contextlib import redirect_stderr, redirect_stdout
from datetime import timedelta
from typing import Any

import pytest
from fixed import FixedSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paths import FIXTURES
from profiles import examples
from strategies import json_paths

from mxmem.cli import main
from mxmem.errors import SourceError
from mxmem.model import Snapshot
from mxmem.sources.capture import load_capture

FUCHSIA_FIXTURES = FIXTURES / "fuchsia"
BUCKETS = FUCHSIA_FIXTURES / "test_digest.json"
PROCESSES = 20


def _trimmed() -> dict[str, Any]:
    """The real capture with its first PROCESSES processes and the VMOs they need."""
    full = json.loads((FUCHSIA_FIXTURES / "test_snapshot.json").read_bytes())
    header, *rows = full["Processes"]
    rows = rows[:PROCESSES]
    vmo_header, *vmo_rows = full["Vmos"]
    koid_col, name_col = vmo_header.index("koid"), vmo_header.index("name")
    parent_col = vmo_header.index("parent_koid")
    by_koid = {row[koid_col]: row for row in vmo_rows}
    keep: set[int] = set()
    for row in rows:
        for koid in row[header.index("vmos")]:
            while koid in by_koid and koid not in keep:
                keep.add(koid)
                koid = by_koid[koid][parent_col]
    kept = [list(row) for row in vmo_rows if row[koid_col] in keep]
    # Renumber the names the kept VMOs use, so VmoNames shrinks too.
    used = sorted({row[name_col] for row in kept})
    renumber = {old: new for new, old in enumerate(used)}
    for row in kept:
        row[name_col] = renumber[row[name_col]]
    return {
        **full,
        "Processes": [header, *rows],
        "VmoNames": [full["VmoNames"][i] for i in used],
        "Vmos": [vmo_header, *kept],
    }


TRIMMED = _trimmed()
WRAPPED = {
    "Capture": TRIMMED,
    "Buckets": [{"event_code": 1, "name": "ZBI Buffer", "process": "", "vmo": "zbi"}],
}

# Wrong types, negatives, huge numbers (past 64 bits, past datetime's range), and values
# that are right in one column and wrong in another.
_WEIRD = st.sampled_from(
    [
        None,
        True,
        False,
        -1,
        -(2**63),
        2**63,
        2**64,
        2**200,
        10**30,
        1.5,
        float("nan"),
        "",
        "x",
        "koid",
        [],
        [[]],
        [1, 2],
        {},
        {"a": 1},
    ]
)



def _capture_of(document: Any) -> Any:
    """The capture object inside ``document`` (bare or wrapped), if still an object."""
    if isinstance(document, dict) and isinstance(document.get("Capture"), dict):
        return document["Capture"]
    return document


def _table_rows(document: Any, key: str) -> list[Any]:
    capture = _capture_of(document)
    table = capture.get(key) if isinstance(capture, dict) else None
    if not isinstance(table, list):
        return []
    return [row for row in table[1:] if isinstance(row, list) and len(row) >= 3]


def _mutate(document: Any, data: st.DataObject) -> None:
    """One damage of ``document``, in place."""
    action = data.draw(
        st.sampled_from(
            ["replace", "drop", "duplicate", "name", "parent", "header", "vmo_ref", "scalar"]
        )
    )
    vmos = _table_rows(document, "Vmos")
    processes = _table_rows(document, "Processes")
    if action == "name" and vmos:
        # Name indexes at and past the end of VmoNames, negative, or of another type.
        row = data.draw(st.sampled_from(vmos))
        capture = _capture_of(document)
        names = capture.get("VmoNames") if isinstance(capture, dict) else None
        n = len(names) if isinstance(names, list) else 0
        row[1] = data.draw(st.sampled_from([n, n + 1, -1, 2**64, "0", None]))
        return
    if action == "parent" and vmos:
        # A parent that is the VMO itself, another captured VMO (maybe a cycle) or absent.
        row, other = data.draw(st.sampled_from(vmos)), data.draw(st.sampled_from(vmos))
        row[2] = data.draw(st.sampled_from([row[0], other[0], 0, 999_999_999]))
        return
    if action == "vmo_ref" and processes and vmos:
        # A process naming a VMO twice, a VMO not captured, or koid 0.
        row = data.draw(st.sampled_from(processes))
        if isinstance(row[2], list):
            row[2].append(data.draw(st.sampled_from([vmos[0][0], 0, 999_999_999])))
        return
    if action == "scalar":
        # Time and the Kernel figures: few paths among thousands, so aimed at directly.
        capture = _capture_of(document)
        if isinstance(capture, dict):
            kernel = capture.get("Kernel")
            if isinstance(kernel, dict) and kernel and data.draw(st.booleans()):
                capture = kernel
            if capture:
                key = data.draw(st.sampled_from(sorted(capture, key=str)))
                capture[key] = copy.deepcopy(data.draw(_WEIRD | st.just(2**64 - 1)))
        return
    if action == "header":
        capture = _capture_of(document)
        key = data.draw(st.sampled_from(["Processes", "Vmos"]))
        table = capture.get(key) if isinstance(capture, dict) else None
        if isinstance(table, list) and table and isinstance(table[0], list) and table[0]:
            header = table[0]
            i = data.draw(st.integers(0, len(header) - 1))
            how = data.draw(st.sampled_from(["rename", "swap", "extra", "drop"]))
            if how == "rename":
                header[i] = data.draw(st.sampled_from(["", "koid", "name", 7]))
            elif how == "swap":
                j = data.draw(st.integers(0, len(header) - 1))
                header[i], header[j] = header[j], header[i]
            elif how == "extra":
                header.append("populated_bytes")
            else:
                del header[i]
        return
    paths = [p for p in json_paths(document) if p]
    if not paths:
        return  # earlier damage left nothing to aim at (e.g. the capture became a scalar)
    path = data.draw(st.sampled_from(paths))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "drop":
        del parent[key]
    elif action == "duplicate" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
    else:
        parent[key] = copy.deepcopy(data.draw(_WEIRD))


def _load_and_run(raw: bytes) -> Snapshot | None:
    """Load ``raw``: a SourceError must be one line naming the file; a snapshot must go
    through ps and digest with a tool's own exit code (never 70, an internal error)."""
    try:
        snapshot = load_capture(raw, "fuzz.json")
    except SourceError as err:
        message = str(err)
        assert "\n" not in message and message.startswith("fuzz.json"), message
        return None
    source = FixedSource(snapshot)
    for argv in (
        ["ps"],
        ["ps", "-T"],
        ["digest", "--buckets", str(BUCKETS)],
        ["digest", "--buckets", str(BUCKETS), "--output", "csv"],
    ):
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(argv, source=source)
        assert code in (0, 1, 2), (argv, err.getvalue())
    return snapshot


def test_the_trimmed_captures_load_and_run() -> None:
    # The fuzzing starts from captures that load: both forms, same snapshot.
    for document in (TRIMMED, WRAPPED):
        snapshot = _load_and_run(json.dumps(document).encode())
        assert snapshot is not None
        assert len(snapshot.processes) == PROCESSES
        assert len(snapshot.vmos) == len(TRIMMED["Vmos"]) - 1


# A generous deadline: a hang (a parent cycle walked forever) fails it, a busy machine
# does not.
FUZZ = settings(
    max_examples=examples(200),
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(wrapped=st.booleans(), mutations=st.integers(1, 4), data=st.data())
def test_fuzz_capture_mutations(wrapped: bool, mutations: int, data: st.DataObject) -> None:
    document = copy.deepcopy(WRAPPED if wrapped else TRIMMED)
    for _ in range(mutations):
        _mutate(document, data)
    raw = json.dumps(document).encode()
    if data.draw(st.booleans()):
        raw = gzip.compress(raw)
    _load_and_run(raw)


@FUZZ
@given(
    wrapped=st.booleans(),
    compress=st.booleans(),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4),
)
def test_fuzz_capture_byte_damage(
    wrapped: bool, compress: bool, cut: float, flips: list[tuple[float, int]]
) -> None:
    raw = json.dumps(WRAPPED if wrapped else TRIMMED).encode()
    data = bytearray(gzip.compress(raw) if compress else raw)
    for where, byte in flips:
        data[min(int(where * len(data)), len(data) - 1)] = byte
    _load_and_run(bytes(data[: max(1, int(cut * len(data)))]))


def _set(*path: Any, value: Any) -> Any:
    def edit(document: Any) -> None:
        for key in path[:-1]:
            document = document[key]
        document[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # Found by fuzzing: a Time past datetime's range (year 9999, ~2**68 ns) was an
        # OverflowError from timedelta; every figure is now checked to be below 2**64.
        (_set("Time", value=2**200), "fuzz.json: $.Time: "),
        (_set("Time", value=10**30), "fuzz.json: $.Time: "),
        (
            _set("Kernel", "total", value=2**64),
            "fuzz.json: $.Kernel.total: ",
        ),
        (
            _set("Vmos", 1, 3, value=2**64),
            "fuzz.json: $.Vmos[1][3]: ",
        ),
        (
            _set("Processes", 1, 0, value=2**70),
            "fuzz.json: $.Processes[1][0]: ",
        ),
    ],
)
def test_fuzz_findings(edit: Any, message: str) -> None:
    document = copy.deepcopy(TRIMMED)
    edit(document)
    with pytest.raises(SourceError) as err:
        load_capture(json.dumps(document).encode(), "fuzz.json")
    assert str(err.value).startswith(message)
    assert str(err.value).endswith(" is out of range [0, 2**64)")


def test_figures_at_the_64_bit_limit_load_and_run() -> None:
    # The largest values a capture may hold: a Time of year 2554, sizes of 2**64 - 1.
    document = copy.deepcopy(TRIMMED)
    top = 2**64 - 1
    document["Time"] = top
    document["Kernel"] = {key: top for key in document["Kernel"]}
    for row in document["Vmos"][1:]:
        row[3] = row[4] = top
    snapshot = _load_and_run(json.dumps(document).encode())
    assert snapshot is not None
    assert snapshot.timestamp.year == 2554
