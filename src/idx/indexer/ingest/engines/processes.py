"""Decode processes for the local engine on a GPU: forked workers that read, hash, decode and crop
files, and write each crop into a ring of shared memory instead of sending it through a pipe.

Threads share one interpreter and decode a GPU's worth of images at a fraction of its speed;
processes decode in parallel, but a pipe moved their 150 KB crops at about 140 MB/s on the H200
machine (five reads a crop, each a system call), and a task per file cost a pickled round trip
each. Here a task takes CHUNK files, and its results carry only their slots in the ring; the
parent copies the crops out as it takes a task's results, in submission order, before it submits
the task that reuses those slots.

On Linux the workers are forked, as PyTorch's DataLoader forks its workers: a fresh interpreter
(forkserver, spawn) would run the caller's script again in each unless it is guarded by
`if __name__ == "__main__"`, and the ring is an anonymous shared mapping they inherit. A forked
worker touches nothing of the parent's but Pillow and numpy (not CUDA, FAISS's OpenMP or the
catalog). Elsewhere they are spawned, and crops come back through the pipe.
"""

from __future__ import annotations

import ctypes
import mmap
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

from idx.errors import IdxError
from idx.indexer.files import scan
from idx.indexer.files.reader import Prepared, Preprocessing, prepare

_FORK = sys.platform.startswith("linux")


@dataclass(frozen=True)
class InRing:
    """A Prepared's tensor while its crop waits in the ring."""

    slot: int


#: Files per task: one pickled round trip per file cost more than decoding it at GPU speeds.
CHUNK = 16


class DecodeProcesses:
    """`workers` processes running reader.prepare with crop `steps` for `(h, w)` crops, CHUNK
    files a task; `map` gives the results in input order with about `in_flight` files ahead."""

    def __init__(
        self, workers: int, known: frozenset[str], steps: Preprocessing, crop: tuple[int, int],
        in_flight: int,
    ):  # fmt: skip
        self.chunks = max(2 * workers, -(-in_flight // CHUNK))  # tasks in flight
        slots = self.chunks * CHUNK
        self._ring: np.ndarray | None = None
        shared = None
        if _FORK:
            shared = mmap.mmap(-1, slots * crop[0] * crop[1] * 3)  # MAP_SHARED, anonymous
            self._ring = np.frombuffer(shared, np.uint8).reshape(slots, crop[0], crop[1], 3)
        self._pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("fork" if _FORK else "spawn"),
            initializer=_start,
            initargs=(known, steps, shared, crop, slots, os.getpid()),
        )

    def map(self, entries: Sequence[scan.FileEntry]) -> Iterator[Prepared | scan.Skip]:
        pending: deque[tuple[Future, Sequence[scan.FileEntry]]] = deque()
        starts = range(0, len(entries), CHUNK)
        for n, start in enumerate(starts):
            if len(pending) >= self.chunks:
                yield from self._taken(pending.popleft())  # its slots are free again
            first_slot = (n % self.chunks) * CHUNK
            chunk = entries[start : start + CHUNK]
            pending.append((self._pool.submit(_prepare_chunk, chunk, first_slot), chunk))
        while pending:
            yield from self._taken(pending.popleft())

    def _taken(self, task: tuple[Future, Sequence[scan.FileEntry]]) -> list[Prepared | scan.Skip]:
        future, chunk = task
        try:
            found = future.result()
        except BrokenProcessPool:
            raise IdxError(
                f"a decode process died reading one of {len(chunk)} files from "
                f"{chunk[0].path}: a file crashed its decoder, or memory ran out; what was "
                "added so far is kept, and `idx add` again resumes (IDX_DECODE=threads reads "
                "in this process instead)"
            ) from None
        for result in found:
            if isinstance(result, Prepared) and isinstance(result.tensor, InRing):
                assert self._ring is not None
                result.tensor = self._ring[result.tensor.slot].copy()
        return found

    def __enter__(self) -> DecodeProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(cancel_futures=True)


#: A worker's share of the run: known content hashes, the preprocessing, the ring (or None).
_WORKER: tuple[frozenset[str], Preprocessing, np.ndarray | None] | None = None


def _start(
    known: frozenset[str],
    steps: Preprocessing,
    shared: Any,
    crop: tuple[int, int],
    slots: int,
    parent: int,
) -> None:
    global _WORKER
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for `add`, which ends the workers
    ring = None
    if shared is not None:
        ring = np.frombuffer(shared, np.uint8).reshape(slots, crop[0], crop[1], 3)
    _WORKER = (known, steps, ring)


def _die_with(parent: int) -> None:
    """End this worker when `add`'s process ends, killed too (Linux): a forked worker holds what
    it inherited, the index's write lock among them, and waits for work that will not come."""
    if _FORK:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # it ended before prctl took effect
            os._exit(1)


_PR_SET_PDEATHSIG = 1


def _prepare_chunk(
    entries: Sequence[scan.FileEntry], first_slot: int
) -> list[Prepared | scan.Skip]:
    assert _WORKER is not None, "a decode process runs only after _start"
    known, steps, ring = _WORKER
    out = []
    for slot, entry in enumerate(entries, first_slot):
        found = prepare(entry, known, lambda: steps)
        if ring is not None and isinstance(found, Prepared) and found.tensor is not None:
            ring[slot] = found.tensor
            found.tensor = InRing(slot)
        out.append(found)
    return out
