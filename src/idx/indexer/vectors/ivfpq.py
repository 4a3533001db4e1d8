"""The `ivfpq` index type: IVF-PQ codes in RAM, exact re-ranking from vectors on disk.

FAISS scans the compact codes of a few inverted lists (labels are image ids) for
`k * k_factor` candidates; those are re-ranked with their exact vectors, read from the
memory-mapped rows beside the FAISS file (`ExactRows`), so scores are exact cosines and a
search process holds the codes, not a second float32 copy of every vector. Removing or
changing images updates the lists in place (`remove_ids`, `add_with_ids`).

An index whose codes exceed IDX_IVF_RAM_MB is merged into FAISS's on-disk inverted lists
(`vectors.ivfdata`, memory-mapped) instead; those are shared with readers, so that layout is
rebuilt on change rather than changed in place (docs/scale.md).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from idx import config
from idx.indexer.vectors import shards
from idx.indexer.vectors.exact_rows import CHUNK_ROWS, ExactRows
from idx.progress import Progress, ProgressEvent

#: The files beside the FAISS file that only an ivfpq index uses.
FILES = (config.VECTORS_FLOATS_FILE, config.VECTORS_IDS_FILE, config.VECTORS_IVFDATA_FILE)
#: Candidates re-ranked per wanted result before tuning raises it.
K_FACTOR = 16
#: Candidate vectors re-ranked per step (bounds the memory of a batch of queries).
RERANK_ROWS = 16_384
#: What FAISS returns as the score of an empty slot.
NO_SCORE = np.finfo(np.float32).min


def params_for(n: int, dim: int) -> dict[str, int]:
    """sqrt(n) lists; PQ with 8 dimensions per byte, fewer bits per code on small sets."""
    nlist = max(1, min(round(math.sqrt(n)), n // 8))
    nbits = int(min(8, max(1, math.floor(math.log2(max(n, 2))) - 1)))
    m = max(s for s in range(1, max(1, dim // 8) + 1) if dim % s == 0)
    return {"nlist": nlist, "pq_m": m, "pq_bits": nbits}


def new_index(dim: int, params: dict[str, int]) -> Any:
    """An untrained IVF-PQ (inner product) with `params`."""
    ivf = faiss.IndexIVFPQ(
        faiss.IndexFlatIP(dim),
        dim,
        params["nlist"],
        params["pq_m"],
        params["pq_bits"],
        faiss.METRIC_INNER_PRODUCT,
    )
    # Small sets are allowed (fewer points per centroid than FAISS recommends), not refused.
    ivf.cp.min_points_per_centroid = 1
    ivf.pq.cp.min_points_per_centroid = 1
    ivf.pq.cp.niter = 15
    return ivf


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """FAISS's on-disk lists report with printf, and stdout carries results (`--json`)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def is_on_disk(ivf: Any) -> bool:
    return isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists)


class ReRankedIVF:
    """IVF-PQ over image ids + their exact vectors (ExactRows), searched with re-ranking."""

    def __init__(self, ivf: Any, rows: ExactRows, k_factor: int = K_FACTOR):
        self.ivf = ivf
        self.rows = rows
        self.k_factor = k_factor
        self.on_disk = is_on_disk(ivf)

    @property
    def d(self) -> int:
        return int(self.ivf.d)

    @property
    def ntotal(self) -> int:
        return int(self.ivf.ntotal)

    @property
    def nprobe(self) -> int:
        return int(self.ivf.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.ivf.nprobe = int(value)

    @property
    def nlist(self) -> int:
        return int(self.ivf.nlist)

    def search(
        self, queries: np.ndarray, k: int, among: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(exact scores [q, k], ids [q, k]) best first; empty slots have id -1. `among`: only
        these ids (a selector inside FAISS)."""
        q = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
        k = max(1, min(k, self.ntotal))
        depth = min(self.ntotal, k * self.k_factor)
        if among is None:  # search parameters cost ~40 us a query even when empty
            _, candidates = self.ivf.search(q, depth)
        else:
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(among, np.int64))
            # faiss's wrapper takes the fields as keywords (handle_SearchParameters); its stub
            # declares __init__(self) only
            params = faiss.SearchParametersIVF(sel=selector, nprobe=self.nprobe)  # type: ignore[call-arg]
            _, candidates = self.ivf.search(q, depth, params=params)
        scores = np.full((len(q), k), NO_SCORE, np.float32)
        ids = np.full((len(q), k), -1, np.int64)
        step = max(1, RERANK_ROWS // depth)
        for at in range(0, len(q), step):
            found = candidates[at : at + step]
            batch = np.arange(len(found))[:, None]
            valid = found >= 0
            if valid.all():  # the usual case: no masks
                exact = self.rows.get(found).reshape(*found.shape, self.d)
                sims = np.matmul(exact, q[at : at + step, :, None])[..., 0]
            else:
                sims = np.full(found.shape, -np.inf, np.float32)
                rows = np.nonzero(valid)[0]
                sims[valid] = np.einsum("nd,nd->n", self.rows.get(found[valid]), q[at + rows])
            top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
            best = sims[batch, top]
            kept = np.isfinite(best)
            scores[at : at + step][kept] = best[kept]
            ids[at : at + step][kept] = found[batch, top][kept]
        return scores, ids

    def add_with_ids(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, np.float32)
        ids = np.ascontiguousarray(ids, np.int64)
        self.ivf.add_with_ids(vectors, ids)
        self.rows.append(ids, vectors)

    def remove_ids(self, ids: np.ndarray) -> int:
        """Drop ids from the lists (their exact rows become dead until a compaction)."""
        return int(self.ivf.remove_ids(faiss.IDSelectorBatch(np.asarray(ids, np.int64))))

    def reconstruct_batch(self, ids: np.ndarray) -> np.ndarray:
        """The exact vectors of ids (each in the index); RuntimeError for one that has none."""
        try:
            return self.rows.get(ids)
        except KeyError as exc:
            raise RuntimeError(str(exc)) from exc

    def ids(self) -> np.ndarray:
        """Every id in the lists (list by list)."""
        lists = self.ivf.invlists
        parts = [np.zeros(0, np.int64)]
        for i in range(self.nlist):
            size = lists.list_size(i)
            if size:
                parts.append(faiss.rev_swig_ptr(lists.get_ids(i), size).copy())
        return np.concatenate(parts)

    def save(self, file: Path) -> dict[str, int]:
        """Write the exact rows still in RAM (compacting when due), then the FAISS file
        (atomically); returns what vectors.json records about the rows."""
        if self.rows.folder is None:
            self.rows.folder = file.parent
        if not self.on_disk:
            (file.parent / config.VECTORS_IVFDATA_FILE).unlink(missing_ok=True)
        self.rows.flush()
        if self.rows.needs_compaction(self.ntotal):
            self.rows.compact(self.ids())
        tmp = file.with_suffix(".faiss.tmp")
        faiss.write_index(self.ivf, str(tmp))
        os.replace(tmp, file)
        return self.rows.state()

    @classmethod
    def load(cls, file: Path, meta: dict[str, Any]) -> ReRankedIVF:
        """Read the FAISS file and map the exact rows vectors.json records; ValueError or
        RuntimeError when they are missing or do not match (then the caller rebuilds). On-disk
        lists are mapped read-only: they are shared and never changed in place."""
        if "rows" not in meta:
            raise ValueError(f"{file} predates exact rows on disk")
        flags = faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY
        with stdout_to_stderr():
            ivf = faiss.read_index(str(file), flags)
        rows = ExactRows(file.parent, ivf.d)
        rows.open(int(meta["rows"]), int(meta["sorted_rows"]))
        return cls(ivf, rows, int(meta.get("params", {}).get("k_factor_rf", K_FACTOR)))


def build(
    ids: np.ndarray,
    matrix: np.ndarray,
    folder: Path | None,
    *,
    workers: int = 1,
    ram_limit_mb: float | None = None,
    progress: Progress | None = None,
) -> tuple[ReRankedIVF, dict[str, Any]]:
    """Train on a sample, fill (in shards, in `workers` processes, from the exact rows written
    to `folder` first), merge; in RAM, or on disk when the codes exceed `ram_limit_mb`.
    `folder` None: a reader's copy, everything in RAM. Returns the index and its parameters."""
    report = progress or (lambda event: None)
    n, dim = matrix.shape
    params: dict[str, Any] = {**params_for(n, dim), "trained_for": n}
    order = None if bool(np.all(ids[1:] > ids[:-1])) else np.argsort(ids, kind="stable")
    if order is not None:  # the exact rows are kept sorted by id
        ids, matrix = ids[order], matrix[order]
    report(ProgressEvent("train", 0, 1))
    trained = shards.train(new_index(dim, params), matrix, params["pq_bits"])
    rows = ExactRows(folder, dim)
    steps = range(0, n, CHUNK_ROWS)
    rows.write(ids, (matrix[at : at + CHUNK_ROWS] for at in steps))
    codes_mb = n * (params["pq_m"] * params["pq_bits"] / 8 + 8) / 2**20
    on_disk = folder is not None and ram_limit_mb is not None and codes_mb > ram_limit_mb
    parallel = folder is not None and workers > 1 and n >= shards.SHARD_MIN
    if folder is None or not (parallel or on_disk):
        report(ProgressEvent("index", 0, n))
        ivf = shards.fill(trained, ids, matrix)
        report(ProgressEvent("index", n, n))
        params["shards"] = 1
        return ReRankedIVF(ivf, rows), params
    ranges = shards.shard_ranges(n, workers if parallel else 1)
    params["shards"] = len(ranges)
    with shards.shard_folder(folder) as tmp:
        out_dir = Path(tmp) if on_disk else None
        filled = shards.fill_in_processes(
            trained, rows.files, dim, n, ranges, min(workers, len(ranges)), out_dir
        )
        done = _counted(filled, ranges, report)
        if not on_disk:
            return ReRankedIVF(shards.merge(trained, done), rows), params
        data = folder / config.VECTORS_IVFDATA_FILE
        partial = data.with_suffix(".ivfdata.tmp")
        with stdout_to_stderr():
            ivf = shards.merge_on_disk(trained, shards.write_shards(done, Path(tmp)), partial)
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    assert isinstance(lists, faiss.OnDiskInvertedLists)  # merge_on_disk's lists are on disk
    lists.filename = str(data)  # what the FAISS file records; read back from its folder
    os.replace(partial, data)
    params["on_disk"] = 1
    return ReRankedIVF(ivf, rows), params


def _counted(filled: Any, ranges: list[tuple[int, int]], report: Progress) -> Any:
    total = ranges[-1][1]
    report(ProgressEvent("index", 0, total))
    for shard, (_, stop) in zip(filled, ranges):
        report(ProgressEvent("index", stop, total))
        yield shard
