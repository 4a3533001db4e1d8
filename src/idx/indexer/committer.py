"""`add`'s catalog commits in one background thread, in order, at most one batch behind.

Each batch is stored in one transaction. On a GPU the model embeds a batch of 1,024 in well under
a tenth of a second, while DuckDB takes longer to store it (one insert of 1,024 vectors, the file
rows, the commit, now and then a reconnect that replays the write-ahead log). Run in this thread,
that work overlaps the reading and embedding of the next batch; DuckDB does it without the GIL.

The rules that keep it safe: the caller `drain`s (waits for the commit under way) before it hands
over the next one, so memory holds one batch and commits keep their order; before it uses the
catalog itself, so one connection is never used by two threads at once; and at the end, failing
or not, `close` lets the commit under way finish, so an interrupted `add` keeps every batch it
handed over whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class Committer:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="idx-commit")
        self._pending: Future | None = None
        self.busy = 0.0  # seconds the thread spent committing
        self.waited = 0.0  # seconds the caller spent waiting for it

    def submit(self, commit: Callable[[], None]) -> None:
        """Run `commit` after the one before it (whose error, if any, is raised here)."""
        self.drain()
        self._pending = self._pool.submit(self._timed, commit)

    def drain(self) -> None:
        """Wait for the commit under way; raise its error."""
        pending = self._pending
        if pending is None:
            return
        start = time.perf_counter()
        try:
            pending.result()
        finally:
            self.waited += time.perf_counter() - start
            if pending.done():  # not when Ctrl-C cut the wait short: close waits again
                self._pending = None

    def close(self, failing: bool = False) -> None:
        """Let the commit under way finish; raise its error unless the caller is failing
        already (then its own error is the one to tell)."""
        self._pool.shutdown(wait=True)
        if not failing:
            self.drain()

    def _timed(self, commit: Callable[[], None]) -> None:
        start = time.perf_counter()
        try:
            commit()
        finally:
            self.busy += time.perf_counter() - start
