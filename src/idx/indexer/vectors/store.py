"""The FAISS file: derived from the catalog, rebuilt or caught up whenever it disagrees with it.

`vectors.json` beside the index records the catalog generation the FAISS file reflects; a crash
between a catalog commit and the FAISS save leaves an older generation there, which the next open
detects and repairs from DuckDB.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from idx import config, knn
from idx.errors import UsageError
from idx.indexer.vectors import ivfpq
from idx.indexer.vectors.ivfpq import ReRankedIVF
from idx.progress import Progress, ProgressEvent

log = logging.getLogger(__name__)

FetchAll = Callable[[], "tuple[np.ndarray, np.ndarray]"]


#: Index types `idx reindex --type` accepts; "auto" picks one of them from the collection size.
INDEX_TYPES = ("flat", "hnsw", "ivfpq")
#: Up to this many vectors `auto` keeps exact search: an exact single query costs ~0.12-0.33 ms
#: per 1000 512-d vectors on a busy 2-core machine (bench/search.py part 0), so 2.4-6.5 ms here,
#: around the 5 ms latency target; above it, ivfpq answers in well under a millisecond.
AUTO_FLAT_MAX = 20_000
#: Approximate indexes promise recall@10 >= RECALL_TARGET vs exact search; they are tuned at
#: build time until a sample of RECALL_QUERIES reaches RECALL_TUNE_TO (a margin for the
#: sampling error of 200 queries, about +-0.01).
RECALL_TARGET = 0.95
RECALL_TUNE_TO = 0.97
RECALL_QUERIES = 200
RECALL_K = 10
#: Below this many vectors an ivfpq request is served by exact search.
IVFPQ_MIN = 16
#: Types whose FAISS index can drop ids in place; the others are rebuilt when ids go away
#: (ivfpq: while its lists are in RAM; on disk they are shared with readers, see can_apply).
REMOVABLE = frozenset({"flat", "ivfpq"})
#: An ivfpq index trained for n vectors is rebuilt once the collection reaches this many times
#: n: its sqrt(n) lists would have grown long enough to slow every query.
REBUILD_GROWTH = 4


def build_flat(dim: int) -> Any:
    """Exact inner-product search over unit vectors (= cosine similarity), ids = image ids."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def check_type(requested: str) -> None:
    if requested != "auto" and requested not in INDEX_TYPES:
        raise UsageError(
            f"unknown index type {requested!r}; choose auto or one of {', '.join(INDEX_TYPES)}"
        )


def choose_type(requested: str, n: int) -> str:
    """The concrete index type for `requested` ("auto" or one of INDEX_TYPES) at n vectors."""
    check_type(requested)
    if requested == "auto":
        return "flat" if n <= AUTO_FLAT_MAX else "ivfpq"
    if requested == "ivfpq" and n < IVFPQ_MIN:
        return "flat"  # too few vectors to train quantisers; becomes ivfpq as the index grows
    return requested


def build_index(kind: str, dim: int) -> tuple[Any, dict[str, Any]]:
    """An empty FAISS index of `kind` (flat or hnsw; ivfpq is built by `ivfpq.build`)."""
    if kind == "flat":
        return build_flat(dim), {}
    hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 80
    return faiss.IndexIDMap2(hnsw), {"M": 32, "efConstruction": 80}


def _knob_schedule(kind: str, index: Any) -> Iterator[dict[str, int]]:
    """Search-time settings of an approximate index, cheapest first (more = slower, more exact).

    ivfpq has two: nprobe (lists scanned) and k_factor_rf (candidates re-ranked with exact
    vectors); they are raised in turn, because either can be what limits recall (e.g. many
    near-equal neighbours in one list need more re-ranking, not more lists).
    """
    if kind == "hnsw":
        for ef in (16, 32, 64, 128, 256, 512, 1024, 2048, 4096):
            yield {"efSearch": ef}
        return
    nlist = index.nlist
    nprobe, k_factor = min(4, nlist), 16
    for step in itertools.count():
        yield {"nprobe": nprobe, "k_factor_rf": k_factor}
        if nprobe >= nlist and k_factor >= 512:
            return
        if (step % 2 == 0 and nprobe < nlist) or k_factor >= 512:
            nprobe = min(nlist, nprobe * 2)
        else:
            k_factor *= 2


def recall_queries(
    ids: np.ndarray, matrix: np.ndarray, k: int = RECALL_K, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """A sample of stored vectors as queries: (query ids, query vectors, exact top-k ids of
    each with itself excluded, as in `idx neighbors`)."""
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(ids), size=min(RECALL_QUERIES, len(ids)), replace=False)
    _, exact = knn.exact_neighbors(matrix, matrix[sample], k, ids=ids, query_ids=ids[sample])
    truth = [[int(i) for i in row if i >= 0] for row in exact]
    return ids[sample], matrix[sample], truth


def measure_recall(
    index: Any, qids: np.ndarray, queries: np.ndarray, truth: list[list[int]], k: int = RECALL_K
) -> float:
    """Recall@k of `index` against the exact neighbours `truth` of `queries`."""
    _, approx = index.search(np.ascontiguousarray(queries, np.float32), k + 1)
    hits = sum(
        len({int(i) for i in row if i != qid and i >= 0}.intersection(want[:k]))
        for qid, row, want in zip(qids, approx, truth)
    )
    total = sum(len(want[:k]) for want in truth)
    return hits / total if total else 1.0


def tune(index: Any, kind: str, ids: np.ndarray, matrix: np.ndarray) -> tuple[dict, float]:
    """Raise the search settings until recall@10 reaches RECALL_TUNE_TO (or they are maxed);
    returns the settings (stored in the index) and the recall measured with them."""
    sample = recall_queries(ids, matrix)
    space = faiss.ParameterSpace()
    settings: dict[str, int] = {}
    recall = 0.0
    for settings in _knob_schedule(kind, index):
        if isinstance(index, ReRankedIVF):
            index.nprobe, index.k_factor = settings["nprobe"], settings["k_factor_rf"]
        else:
            space.set_index_parameter(index, "efSearch", settings["efSearch"])
        recall = measure_recall(index, *sample)
        log.info("%s %s: recall@10 %.3f", kind, settings, recall)
        if recall >= RECALL_TUNE_TO:
            break
    return settings, recall


#: Fewer queries than this run on one thread: OpenMP threads for a single query cost more in
#: start-up and contention than they save (10x slower measured on a busy 2-core machine).
SMALL_BATCH = 8


@contextmanager
def single_thread() -> Iterator[None]:
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


class VectorStore:
    """A FAISS index of image ids -> unit vectors, kept in step with the catalog."""

    def __init__(self, index_dir: Path):
        self.index_dir = Path(index_dir)
        self.file = self.index_dir / config.VECTORS_FILE
        self.meta_file = self.index_dir / config.VECTORS_META_FILE
        self.index: Any = None
        self.meta: dict[str, Any] = {}

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal) if self.index is not None else 0

    def read_meta(self) -> dict[str, Any]:
        try:
            return json.loads(self.meta_file.read_text())
        except (OSError, ValueError):
            return {}

    @property
    def kind(self) -> str:
        """The concrete type of the loaded index."""
        return str(self.meta.get("type", "flat"))

    @property
    def requested(self) -> str:
        """What was asked for (`auto` unless `idx reindex --type` chose a type)."""
        return str(self.meta.get("requested", "auto"))

    def load(
        self,
        generation: int,
        fetch_all: FetchAll,
        *,
        writable: bool,
    ) -> str:
        """Load the file if it matches `generation`, else rebuild from the catalog with the type
        recorded in the meta (so the type chosen with `idx reindex` survives repairs).

        Returns "loaded", "rebuilt" or "empty".
        """
        meta = self.read_meta()
        if meta.get("generation") == generation and self.file.exists():
            try:
                if meta.get("type") == "ivfpq":
                    self.index = ReRankedIVF.load(self.file, meta)
                else:
                    self.index = faiss.read_index(str(self.file))
                self.meta = meta
                return "loaded"
            except (RuntimeError, ValueError) as exc:
                log.warning(
                    "FAISS file %s unreadable (%s); rebuilding from the catalog", self.file, exc
                )
        self.meta = meta
        ids, matrix = fetch_all()
        return self.rebuild(generation, ids, matrix, writable=writable)

    def rebuild(
        self,
        generation: int,
        ids: np.ndarray,
        matrix: np.ndarray,
        *,
        requested: str | None = None,
        writable: bool = True,
        progress: Progress | None = None,
    ) -> str:
        """Build a fresh index of the requested type from (ids, matrix); approximate types are
        tuned and their recall@10 recorded."""
        requested = requested or self.requested
        report = progress or (lambda event: None)
        meta: dict[str, Any] = {"generation": generation, "requested": requested}
        if len(ids) == 0:
            self.index, self.meta = None, {**meta, "type": choose_type(requested, 0), "count": 0}
            if writable:
                self.save(generation)
            return "empty"
        kind = choose_type(requested, len(ids))
        log.info("building a %s FAISS index from the catalog (%d vectors)", kind, len(ids))
        start = time.perf_counter()
        if kind == "ivfpq":
            self.index, params = ivfpq.build(
                ids,
                matrix,
                self.index_dir if writable else None,
                workers=config.index_workers(),
                ram_limit_mb=config.ivf_ram_limit(),
                progress=report,
            )
        else:
            self.index, params = build_index(kind, matrix.shape[1])
            step = 50_000
            for at in range(0, len(ids), step):
                report(ProgressEvent("index", at, len(ids)))
                self.add(ids[at : at + step], matrix[at : at + step])
            report(ProgressEvent("index", len(ids), len(ids)))
        meta.update(type=kind, params=params)
        if kind != "flat":
            report(ProgressEvent("recall", 0, 1))
            settings, recall = tune(self.index, kind, ids, matrix)
            params.update(settings)
            meta["recall_at_10"] = round(recall, 4)
        meta["build_seconds"] = round(time.perf_counter() - start, 3)
        self.meta = meta
        if writable:
            self.save(generation)
        return "rebuilt"

    def can_apply(self, changed: Sequence[int], removed: Sequence[int], n_after: int) -> bool:
        """Whether one add run's changes can be applied in place (else: rebuild the index).

        Types without remove_ids take additions only; "auto" rebuilds when the collection size
        calls for another type; ivfpq when it outgrew what it was trained for, or when its lists
        are on disk (shared with readers, never changed in place).
        """
        if self.index is None:
            return False
        if choose_type(self.requested, n_after) != self.kind:
            return False
        if isinstance(self.index, ReRankedIVF):
            trained_for = self.meta.get("params", {}).get("trained_for") or n_after
            if self.index.on_disk or n_after > REBUILD_GROWTH * trained_for:
                return False
        if self.kind in REMOVABLE or not (changed or removed):
            return True
        if removed:
            return False
        return not np.isin(np.asarray(changed, np.int64), self.ids()).any()

    def ids(self) -> np.ndarray:
        """The ids the index holds (in insertion order, or list by list for ivfpq)."""
        if self.index is None:
            return np.zeros(0, np.int64)
        if isinstance(self.index, ReRankedIVF):
            return self.index.ids()
        return faiss.vector_to_array(self.index.id_map)

    def add(self, ids: np.ndarray, matrix: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self.index.add_with_ids(
            np.ascontiguousarray(matrix, dtype=np.float32), np.asarray(ids, dtype=np.int64)
        )

    def remove(self, ids: np.ndarray) -> None:
        if self.index is None or len(ids) == 0:
            return
        self.index.remove_ids(np.asarray(ids, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores [q, k], ids [q, k]); missing slots have id -1."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self.index is None or self.index.ntotal == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        if len(q) >= SMALL_BATCH:
            return self.index.search(q, min(k, self.index.ntotal))
        with single_thread():
            return self.index.search(q, min(k, self.index.ntotal))

    def save(self, generation: int) -> None:
        """Write the FAISS file, then the generation it reflects (each atomically)."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        extra: dict[str, Any] = {}
        if isinstance(self.index, ReRankedIVF):
            extra = self.index.save(self.file)
            self.meta["params"] = {
                **self.meta.get("params", {}),
                "k_factor_rf": self.index.k_factor,
            }
        else:
            if self.index is not None:
                tmp = self.file.with_suffix(".faiss.tmp")
                faiss.write_index(self.index, str(tmp))
                os.replace(tmp, self.file)
            else:
                self.file.unlink(missing_ok=True)
            for name in ivfpq.FILES:  # an ivfpq index's files, stale now (readers keep theirs)
                (self.index_dir / name).unlink(missing_ok=True)
        self.meta = {**self.meta, "generation": generation, "count": self.ntotal, **extra}
        self._write_meta()

    def follow(self, generation: int) -> None:
        """Record the file, as it is, for `generation`: the catalog committed no vector since
        the generation the file holds (moved or touched files move the generation too, because
        readers re-read paths by it), so rewriting the whole file would change nothing."""
        self.meta = {**self.read_meta(), "generation": generation}
        self._write_meta()

    def _write_meta(self) -> None:
        tmp_meta = self.meta_file.with_suffix(".json.tmp")
        tmp_meta.write_text(json.dumps(self.meta, indent=2, sort_keys=True))
        os.replace(tmp_meta, self.meta_file)
