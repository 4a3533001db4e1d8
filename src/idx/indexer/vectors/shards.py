"""Building an IVF-PQ index in pieces: train once on a sample, fill shards in parallel, merge.

`fill_shard` is a pure function of (trained empty index bytes, ids, vectors) -> filled index
bytes, so any executor can run it: worker processes here (`fill_in_processes`), a Ray task on
a cluster. Shards are merged in order, so a sharded build holds the same lists (same codes in
the same order) as one built in one piece and answers every query alike. `merge_on_disk`
merges into FAISS's on-disk inverted lists (memory-mapped) for an index whose codes do not fit
in RAM.

Plain IVF-PQ only: `merge_from` on fast-scan (`PQ...x4fs`) indexes crashed with faiss-cpu
1.15.1 (faiss#2407).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

#: Training sample per centroid, as FAISS samples by default (its max_points_per_centroid).
POINTS_PER_CENTROID = 64
#: At most this many vectors per shard: the unit of work a process (or a Ray task) fills.
SHARD_ROWS = 1_000_000
#: Fewer vectors than this are filled in this process (starting workers costs more).
SHARD_MIN = 200_000


def training_sample(n: int, nlist: int, nbits: int, seed: int = 0) -> np.ndarray:
    """Sorted positions of the vectors to train on: enough for the coarse centroids and for
    each PQ codebook (POINTS_PER_CENTROID each), or every vector when there are fewer."""
    size = min(n, POINTS_PER_CENTROID * max(nlist, 2**nbits))
    if size == n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def train(index: Any, matrix: np.ndarray, nbits: int, seed: int = 0) -> bytes:
    """Train `index` (an empty IVF-PQ) on a sample of `matrix`; its bytes, still empty."""
    ivf = faiss.extract_index_ivf(index)
    sample = training_sample(len(matrix), ivf.nlist, nbits, seed)
    index.train(np.ascontiguousarray(matrix[sample], np.float32))
    return faiss.serialize_index(index).tobytes()


def fill(trained: bytes, ids: np.ndarray, vectors: np.ndarray, step: int = 65_536) -> Any:
    """The trained empty index with (ids, vectors) added, in steps (vectors may be mapped)."""
    index = faiss.deserialize_index(np.frombuffer(trained, np.uint8))
    for at in range(0, len(ids), step):
        index.add_with_ids(
            np.ascontiguousarray(vectors[at : at + step], np.float32),
            np.ascontiguousarray(ids[at : at + step], np.int64),
        )
    return index


def fill_shard(trained: bytes, ids: np.ndarray, vectors: np.ndarray) -> bytes:
    """Pure: trained empty index bytes + (ids, vectors) -> the filled index's bytes."""
    return faiss.serialize_index(fill(trained, ids, vectors)).tobytes()


def shard_ranges(n: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) ranges: at least one per worker, none over SHARD_ROWS."""
    count = max(workers, -(-n // SHARD_ROWS), 1)
    bounds = np.linspace(0, n, count + 1).astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _fill_from_files(
    trained: bytes,
    floats: str,
    ids_file: str,
    dim: int,
    rows: int,
    span: tuple[int, int],
    threads: int,
    out: str | None,
) -> bytes | str:
    """Worker: fill one shard from rows [start, stop) of the exact-vector files; its bytes, or
    the path of the file it wrote when `out` is given (for the on-disk merge)."""
    faiss.omp_set_num_threads(threads)
    start, stop = span
    vectors = np.memmap(floats, np.float32, "r", shape=(rows, dim))[start:stop]
    ids = np.memmap(ids_file, np.int64, "r", shape=(rows,))[start:stop]
    shard = fill_shard(trained, np.asarray(ids), vectors)
    if out is None:
        return shard
    Path(out).write_bytes(shard)
    return out


def fill_in_processes(
    trained: bytes,
    files: tuple[Path, Path],
    dim: int,
    rows: int,
    ranges: Sequence[tuple[int, int]],
    workers: int,
    out_dir: Path | None = None,
) -> Iterator[bytes | str]:
    """Fill the shards `ranges` of the exact-vector files (floats, ids) in `workers` processes;
    yields each shard's bytes (or file, with out_dir) in order, as they complete in order."""
    import multiprocessing  # here: a search, which imports this module, starts no process
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: a forked child of a process that ran OpenMP (FAISS) can hang
    context = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    floats, ids_file = (str(p) for p in files)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [
            pool.submit(
                _fill_from_files,
                trained,
                floats,
                ids_file,
                dim,
                rows,
                span,
                threads,
                None if out_dir is None else str(out_dir / f"shard{i:05d}.faiss"),
            )
            for i, span in enumerate(ranges)
        ]
        for future in futures:
            yield future.result()


def merge(trained: bytes, shards: Iterable[bytes | Any]) -> Any:
    """The trained empty index with each shard (bytes or an index) merged in, in order."""
    index = faiss.deserialize_index(np.frombuffer(trained, np.uint8))
    for shard in shards:
        part = (
            faiss.deserialize_index(np.frombuffer(shard, np.uint8))
            if isinstance(shard, bytes | bytearray)
            else shard
        )
        index.merge_from(part, 0)
    return index


def merge_on_disk(trained: bytes, shard_files: Sequence[str | Path], data: Path) -> Any:
    """The trained empty index with the shards' lists merged into FAISS's on-disk inverted
    lists in `data` (memory-mapped; the shards are read mapped too, so nothing needs to fit
    in RAM but the centroids)."""
    from faiss.contrib.ondisk import merge_ondisk

    index = faiss.deserialize_index(np.frombuffer(trained, np.uint8))
    merge_ondisk(index, [str(f) for f in shard_files], str(data))
    return index


def write_shards(shards: Iterable[bytes | str], folder: Path) -> list[Path]:
    """Shard files in `folder` for `merge_on_disk` (bytes written, paths passed through)."""
    paths = []
    for i, shard in enumerate(shards):
        if isinstance(shard, str):
            paths.append(Path(shard))
            continue
        path = folder / f"shard{i:05d}.faiss"
        path.write_bytes(shard)
        paths.append(path)
    return paths


def shard_folder(near: Path) -> tempfile.TemporaryDirectory:
    """A temporary folder for shard files on the same disk as `near` (they can be large)."""
    near.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix="idx-shards-", dir=near)
