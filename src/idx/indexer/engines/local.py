"""The local engine: files read, hashed and decoded in threads of this process, ahead of the model,
in input order with a bounded look-ahead (memory stays flat however many files there are), and
embedded in batches here while the threads read on."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from idx.indexer import scan
from idx.indexer.engines import embed_rows
from idx.indexer.reader import Prepared, Preprocessing, prepare


class LocalEngine:
    name = "local"

    def __init__(
        self, encoder_factory: Callable[[], Any], *, batch_size: int, workers: int, check: bool
    ):
        self.encoder_factory = encoder_factory
        self.batch_size = batch_size
        self.workers = workers
        self.check = check  # measure the first batch against fp32 (the int8 check)
        self.encoder: Any = None
        self.identity: Any = None
        self._encoder_lock = threading.Lock()

    def get_encoder(self) -> Any:
        # Loaded by the first worker that meets new content: a run of moves never loads torch.
        with self._encoder_lock:
            if self.encoder is None:
                self.encoder = self.encoder_factory()
                self.identity = self.encoder.identity
        return self.encoder

    def preprocessing(self) -> Preprocessing:
        return Preprocessing.of(self.get_encoder())

    def stream(
        self, todo: list[scan.FileEntry], known: frozenset[str]
    ) -> Iterator[Prepared | scan.Skip]:
        """Results in input order; new content comes out embedded, a batch at a time (or
        sooner when many files in a row need no model, so that their commits are not held)."""
        pending: list[Prepared | scan.Skip] = []
        new: list[Prepared] = []
        for result in self._read(todo, known):
            pending.append(result)
            if isinstance(result, Prepared) and result.tensor is not None:
                new.append(result)
            if len(new) >= self.batch_size or len(pending) >= 4 * self.batch_size:
                self._embed(new)
                yield from pending
                pending, new = [], []
        self._embed(new)
        yield from pending

    def _embed(self, rows: list[Prepared]) -> None:
        if rows:
            embed_rows(self.get_encoder(), rows, self.check)
            self.check = False

    def _read(
        self, todo: list[scan.FileEntry], known: frozenset[str]
    ) -> Iterator[Prepared | scan.Skip]:
        if not todo:
            return
        lookahead = 2 * self.batch_size
        with ThreadPoolExecutor(self.workers, thread_name_prefix="idx-decode") as pool:
            pending: deque[Future] = deque()
            it = iter(todo)
            for entry in it:
                pending.append(pool.submit(prepare, entry, known, self.preprocessing))
                if len(pending) >= lookahead:
                    break
            while pending:
                result = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(prepare, nxt, known, self.preprocessing))
                yield result
