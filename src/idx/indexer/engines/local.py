"""The local engine: files read, hashed and decoded in worker threads (or processes) ahead of the
model, in input order with a bounded look-ahead (memory stays flat however many files there are),
and embedded in batches here while the workers read on.

Threads share one interpreter: on a GPU, which embeds ViT-B-32 at over 10,000 images/s, they
decode at a fraction of that. With `processes`, the workers are processes that send back uint8
crops (indexer.reader.Preprocessing.crops, a quarter of the float bytes), normalised on the GPU
(bench/README.md, "GPU"). On Linux they are forked, as PyTorch's DataLoader forks its workers: a
fresh interpreter (forkserver, spawn) would run the caller's script again in each of them unless
it is guarded by `if __name__ == "__main__"`. A forked worker touches nothing of the parent's but
Pillow and numpy: not CUDA, FAISS's OpenMP or the catalog."""

from __future__ import annotations

import multiprocessing
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from typing import Any

from idx.indexer import scan
from idx.indexer.engines import embed_rows
from idx.indexer.reader import Prepared, Preprocessing, prepare


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
        pool, task = self._workers(known)
        with pool:
            pending: deque[Future] = deque()
            it = iter(todo)
            for entry in it:
                pending.append(pool.submit(task, entry))
                if len(pending) >= lookahead:
                    break
            while pending:
                result = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(task, nxt))
                yield result

    def _workers(self, known: frozenset[str]) -> tuple[Executor, Callable[..., Any]]:
        """The pool that reads the files, and its task (entry -> Prepared | Skip)."""
        if self.processes:
            # The model's preprocessing is needed up front here (a process cannot ask for it
            # later): processes are for GPUs, where new content is what a run is for.
            steps = Preprocessing.crops(self.get_encoder())
            if steps is not None:
                pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context(_START),
                    initializer=_start_worker,
                    initargs=(known, steps),
                )
                return pool, _prepare_in_worker
        threads = ThreadPoolExecutor(self.workers, thread_name_prefix="idx-decode")
        return threads, partial(prepare, known=known, preprocessing=self.preprocessing)


_START = "fork" if sys.platform.startswith("linux") else "spawn"
#: A decode process's share of the run: the content hashes known before it, the preprocessing.
_WORKER: tuple[frozenset[str], Preprocessing] | None = None


def _start_worker(known: frozenset[str], steps: Preprocessing) -> None:
    global _WORKER
    _WORKER = (known, steps)


def _prepare_in_worker(entry: scan.FileEntry) -> Prepared | scan.Skip:
    assert _WORKER is not None, "a decode process runs only after _start_worker"
    known, steps = _WORKER
    return prepare(entry, known, lambda: steps)
