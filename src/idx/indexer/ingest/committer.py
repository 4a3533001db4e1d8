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

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

log = logging.getLogger(__name__)


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
        """Let the commit under way finish, a second Ctrl-C notwithstanding (the caller uses the
        catalog next); raise its error, or log it when the caller is failing already (then the
        caller's error is the one to raise)."""
        start, interrupted = time.perf_counter(), False
        pending, self._pending = self._pending, None
        while pending is not None and not pending.done():
            try:
                wait([pending])  # not Thread.join: one cut short by Ctrl-C returns at once after
            except KeyboardInterrupt:
                interrupted = True
        self._pool.shutdown(wait=True)  # the thread has nothing left to do
        self.waited += time.perf_counter() - start
        error = pending.exception() if pending is not None else None
        if error is not None and (failing or interrupted):
            log.warning("the last batch handed over was not stored either: %s", error)
        if interrupted:
            raise KeyboardInterrupt
        if error is not None and not failing:
            raise error

    def _timed(self, commit: Callable[[], None]) -> None:
        start = time.perf_counter()
        try:
            commit()
        finally:
            self.busy += time.perf_counter() - start
