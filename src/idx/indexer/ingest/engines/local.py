"""The local engine: files read, hashed and decoded in worker threads (or, on a GPU, processes:
engines.processes) ahead of the model, in input order with a bounded look-ahead (memory stays flat
however many files there are), and embedded in batches here while the workers read on. For a
model on a GPU the workers stop at uint8 crops, which the GPU normalises (a quarter of the bytes
to copy, and less work under the GIL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

from idx.indexer.files import scan
from idx.indexer.files.reader import Prepared, Preprocessing, prepare
from idx.indexer.ingest.engines.embedding import embed_rows
from idx.indexer.ingest.engines.processes import DecodeProcesses
from idx.parallel import ordered_map


class LocalEngine:
    name = "local"

    def __init__(
        self,
        encoder_factory: Callable[[], Any],
        *,
        batch_size: int,
        workers: int,
        check: bool,
        processes: bool = False,
    ):
        self.encoder_factory = encoder_factory
        self.batch_size = batch_size
        self.workers = workers
        self.processes = processes
        self.check = check  # measure the first batch against fp32 (the int8 check)
        self.encoder: Any = None
        self.identity: Any = None
        self._encoder_lock = threading.Lock()
        self._steps: Preprocessing | None = None
        self.seconds_embedding = self.seconds_starting = 0.0

    def get_encoder(self) -> Any:
        # Loaded by the first worker that meets new content: a run of moves never loads torch.
        with self._encoder_lock:
            if self.encoder is None:
                start = time.perf_counter()
                self.encoder = self.encoder_factory()
                self.identity = self.encoder.identity
                self.seconds_starting += time.perf_counter() - start
        return self.encoder

    def preprocessing(self) -> Preprocessing:
        if self._steps is None:
            encoder = self.get_encoder()
            crops = Preprocessing.crops(encoder) if encoder.device.kind != "cpu" else None
            self._steps = crops or Preprocessing.of(encoder)
        return self._steps

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
            encoder = self.get_encoder()  # loading the model is not embedding
            start = time.perf_counter()
            embed_rows(encoder, rows, self.check)
            self.seconds_embedding += time.perf_counter() - start
            self.check = False

    def _read(
        self, todo: list[scan.FileEntry], known: frozenset[str]
    ) -> Iterator[Prepared | scan.Skip]:
        if not todo:
            return
        with self._workers(known, 2 * self.batch_size) as workers:
            yield from workers.map(todo)

    def _workers(self, known: frozenset[str], in_flight: int) -> Any:
        """Who reads the files: `map(entries)` gives their results in order."""
        if self.processes:
            # The preprocessing is needed up front here (a process cannot ask for it later):
            # processes are for GPUs, where new content is what a run is for.
            encoder = self.get_encoder()
            crops = Preprocessing.crops(encoder)
            if crops is not None:
                crop = encoder.pixel_steps().crop
                return DecodeProcesses(self.workers, known, crops, crop, in_flight)
        return _Threads(self.workers, known, self.preprocessing, in_flight)


class _Threads:
    """Decode threads of this process (parallel.ordered_map), one file a task, `lookahead` files
    ahead."""

    def __init__(
        self,
        workers: int,
        known: frozenset[str],
        steps: Callable[[], Preprocessing],
        lookahead: int,
    ):
        self.workers = workers
        self._task = partial(prepare, known=known, preprocessing=steps)
        self.lookahead = lookahead

    def map(self, entries: Sequence[scan.FileEntry]) -> Iterator[Prepared | scan.Skip]:
        return ordered_map(self._task, entries, self.workers, "idx-decode", self.lookahead)

    def __enter__(self) -> _Threads:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to end: map's threads end with its iterator (finished, failed or closed)."""
