"""Work spread over threads, shared by every layer that decodes or writes images."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import Any


def ordered_map(
    fn: Callable[[Any], Any], items: Iterable[Any], workers: int, name: str = "idx-worker"
) -> Iterator[Any]:
    """fn over items in `workers` threads, results in input order, at most workers + 1 in
    flight (Pillow releases the GIL while it decodes and encodes, so threads keep cores busy)."""
    with ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:
        it = iter(items)
        pending: deque[Future] = deque(pool.submit(fn, x) for x in islice(it, workers + 1))
        while pending:
            result = pending.popleft().result()
            for x in islice(it, 1):
                pending.append(pool.submit(fn, x))
            yield result
