"""``map_in_threads``: the host source's per-process reads on a few threads must give
exactly what the sequential loop gives (the same list, the same first error)."""

from __future__ import annotations

import threading
import time

import pytest

from mxmem.sources.linux.parallel import MAX_WORKERS, map_in_threads, useful_workers


def test_results_in_order() -> None:
    items = list(range(500))
    assert map_in_threads(lambda n: n * n, items, 4) == [n * n for n in items]
    assert map_in_threads(lambda n: n * n, [], 4) == []
    assert map_in_threads(lambda n: n * n, [3], 4) == [9]


def test_calls_run_at_the_same_time() -> None:
    # The first two calls wait for each other: only two threads at once get past it (a
    # sequential loop would break the barrier after its timeout).
    barrier = threading.Barrier(2, timeout=10)
    seen: set[str] = set()

    def call(n: int) -> int:
        if n < 2:
            barrier.wait()
        seen.add(threading.current_thread().name)
        return n

    assert map_in_threads(call, list(range(20)), 2) == list(range(20))
    assert len(seen) == 2


def test_one_worker_stays_in_the_calling_thread() -> None:
    names = map_in_threads(lambda _: threading.current_thread().name, [1, 2, 3], 1)
    assert names == [threading.current_thread().name] * 3


def test_the_first_items_error_is_raised() -> None:
    # Item 7 may fail first in time; the error of item 3, which the sequential loop would
    # meet first, is the one raised.
    def call(n: int) -> int:
        if n in (3, 7):
            raise ValueError(f"item {n}")
        return n

    for workers in (1, 2, 4):
        with pytest.raises(ValueError, match=r"^item 3$"):
            map_in_threads(call, list(range(10)), workers)


def test_no_new_items_after_an_error() -> None:
    done: list[int] = []

    def call(n: int) -> int:
        if n == 0:
            raise KeyError(n)
        time.sleep(0.005)  # lets the thread with item 0 run
        done.append(n)
        return n

    with pytest.raises(KeyError):
        map_in_threads(call, list(range(200)), 2)
    # The other thread finishes the call it is in and stops: without the stop it would
    # go through all 199 (a second).
    assert len(done) < 100


def test_useful_workers() -> None:
    assert 1 <= useful_workers() <= MAX_WORKERS
