"""Per-process reads on a few threads.

Reading ``/proc/PID/smaps_rollup`` is a walk of the process's page tables in the kernel:
its cost grows with the pages mapped (measured here: 3-8 ms for a Python process mapping
100 MB, 90 % of a whole ``mxmem --host ps``), not with anything mxmem does. ``os.read``
releases the GIL during the walk, so with N threads N walks run at once on N CPUs, and
the parsing of one text (which holds the GIL) overlaps with the walks of others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

__all__ = ["MAX_WORKERS", "in_background", "map_in_threads", "useful_workers"]

T = TypeVar("T")
R = TypeVar("R")

#: More threads than CPUs cannot walk more page tables at once; past a handful the
#: parsing, which takes turns on the GIL, is the limit.
MAX_WORKERS = 8


def useful_workers() -> int:
    """The CPUs this process may run on, at most :data:`MAX_WORKERS`."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_WORKERS))


def map_in_threads(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``[fn(item) for item in items]``, computed by ``workers`` threads (the calling
    thread is one of them); ``fn`` must be safe to call concurrently.

    The result is the same list in the same order as the sequential loop's. If calls
    raise, the exception of the first item (in ``items`` order) that raised is raised
    here, once every thread has stopped; the threads take no new item after a failure.
    """
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    import threading

    results: list[R | None] = [None] * len(items)
    errors: dict[int, BaseException] = {}
    # next() on a range iterator is atomic under the GIL: each index is handed out once.
    indexes = iter(range(len(items)))
    failed = threading.Event()

    def work(catch: type[BaseException]) -> None:
        for i in indexes:
            if failed.is_set():
                return
            try:
                results[i] = fn(items[i])
            except catch as err:  # raised again by the calling thread
                errors[i] = err
                failed.set()
                return

    threads = [
        threading.Thread(target=work, args=(BaseException,), name=f"mxmem-read-{n}", daemon=True)
        for n in range(min(workers, len(items)) - 1)
    ]
    for thread in threads:
        thread.start()
    try:
        # In the calling thread, Ctrl-C (KeyboardInterrupt) goes straight through.
        work(Exception)
    finally:
        failed.set()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[min(errors)]
    return cast("list[R]", results)  # every slot is filled when nothing failed


def in_background(fn: Callable[[], R]) -> Callable[[], R]:
    """Start ``fn()`` on another thread (when this process may use more than one CPU)
    and return a function that waits for it and returns its result, or raises what it
    raised. For reads in the kernel (which release the GIL) overlapping work here."""
    if useful_workers() <= 1:
        return _done(fn())
    import threading

    box: list[R] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as err:  # raised again by the waiting thread
            errors.append(err)

    thread = threading.Thread(target=run, name="mxmem-background", daemon=True)
    thread.start()

    def wait() -> R:
        thread.join()
        if errors:
            raise errors[0]
        return box[0]

    return wait


def _done(value: R) -> Callable[[], R]:
    return lambda: value
