"""Work spread over threads, shared by every layer that decodes or writes images."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    name: str = "idx-worker",
    in_flight: int | None = None,
) -> Iterator[R]:
    """fn over items in `workers` threads, results in input order, at most `in_flight` items
    (default workers + 1) taken and not yet handed back, so memory stays flat however many items
    there are (Pillow releases the GIL while it decodes and encodes, so threads keep cores busy).
    Stopped early (closed, or an item failed), it cancels what has not started and waits for
    what has."""
    ahead = max(1, workers + 1 if in_flight is None else in_flight)
    pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
    try:
        it = iter(items)
        pending: deque[Future[R]] = deque(pool.submit(fn, x) for x in islice(it, ahead))
        while pending:
            result = pending.popleft().result()
            for x in islice(it, 1):
                pending.append(pool.submit(fn, x))
            yield result
    finally:
        pool.shutdown(cancel_futures=True)
