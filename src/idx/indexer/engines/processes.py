"""Decode processes for the local engine on a GPU: forked workers that read, hash, decode and crop
files, and write each crop into a ring of shared memory instead of sending it through a pipe.

Threads share one interpreter and decode a GPU's worth of images at a fraction of its speed;
processes decode in parallel, but a pipe moved their 150 KB crops at about 140 MB/s on the H200
machine (about 1,000 images/s: five reads a crop, each a system call). Here a result carries only
its slot; the parent copies the crop out of the ring as it takes the result, in submission order,
so a slot is free again before the task that reuses it is submitted (at most `slots` in flight).

On Linux the workers are forked, as PyTorch's DataLoader forks its workers: a fresh interpreter
(forkserver, spawn) would run the caller's script again in each unless it is guarded by
`if __name__ == "__main__"`, and the ring is an anonymous shared mapping they inherit. A forked
worker touches nothing of the parent's but Pillow and numpy (not CUDA, FAISS's OpenMP or the
catalog). Elsewhere they are spawned, and crops come back through the pipe.
"""

from __future__ import annotations

import mmap
import multiprocessing
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from idx.indexer import scan
from idx.indexer.reader import Prepared, Preprocessing, prepare

_FORK = sys.platform.startswith("linux")


@dataclass(frozen=True)
class InRing:
    """A Prepared's tensor while its crop waits in the ring."""

    slot: int


class DecodeProcesses:
    """`workers` processes running reader.prepare with crop `steps` for `(h, w)` crops; submit
    entries and take results in the same order (`result`), at most `slots` in flight."""

    def __init__(
        self, workers: int, known: frozenset[str], steps: Preprocessing, crop: tuple[int, int],
        slots: int,
    ):  # fmt: skip
        self.slots = slots
        self._next = 0
        self._ring: np.ndarray | None = None
        shared = None
        if _FORK:
            shared = mmap.mmap(-1, slots * crop[0] * crop[1] * 3)  # MAP_SHARED, anonymous
            self._ring = np.frombuffer(shared, np.uint8).reshape(slots, crop[0], crop[1], 3)
        self._pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("fork" if _FORK else "spawn"),
            initializer=_start,
            initargs=(known, steps, shared, crop, slots),
        )

    def submit(self, entry: scan.FileEntry) -> Future:
        slot = self._next % self.slots
        self._next += 1
        return self._pool.submit(_prepare, entry, slot)

    def result(self, future: Future) -> Prepared | scan.Skip:
        found = future.result()
        if isinstance(found, Prepared) and isinstance(found.tensor, InRing):
            assert self._ring is not None
            found.tensor = self._ring[found.tensor.slot].copy()  # the slot is free again
        return found

    def __enter__(self) -> DecodeProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(cancel_futures=True)


#: A worker's share of the run: known content hashes, the preprocessing, the ring (or None).
_WORKER: tuple[frozenset[str], Preprocessing, np.ndarray | None] | None = None


def _start(
    known: frozenset[str], steps: Preprocessing, shared: Any, crop: tuple[int, int], slots: int
) -> None:
    global _WORKER
    ring = None
    if shared is not None:
        ring = np.frombuffer(shared, np.uint8).reshape(slots, crop[0], crop[1], 3)
    _WORKER = (known, steps, ring)


def _prepare(entry: scan.FileEntry, slot: int) -> Prepared | scan.Skip:
    assert _WORKER is not None, "a decode process runs only after _start"
    known, steps, ring = _WORKER
    found = prepare(entry, known, lambda: steps)
    if ring is not None and isinstance(found, Prepared) and found.tensor is not None:
        ring[slot] = found.tensor
        found.tensor = InRing(slot)
    return found
