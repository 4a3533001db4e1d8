"""The stored kNN graph: every image's k nearest others, built and written whole into the
catalog's `neighbors` table (`idx neighbors --all`), and what the last build stored.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from idx.indexer.index import Index
from idx.knn import drop_self, exact_neighbors
from idx.ops.search import DEFAULT_K, check_k
from idx.progress import Progress, ProgressEvent

if TYPE_CHECKING:  # loaded where used (_graph_rows), as ops/search does
    import pyarrow as pa

#: Up to this many images `neighbors --all` is exact: all-pairs brute force at 100k 512-d vectors
#: takes minutes on 2 cores (bench/README.md), so the graph needs no approximation there.
EXACT_GRAPH_MAX = 100_000


@dataclass
class NeighborGraphReport:
    images: int
    k: int
    rows: int
    index_type: str
    recall_at_10: float | None
    seconds: float
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_neighbor_graph(
    index: Index, k: int = DEFAULT_K, *, batch_size: int = 4096, progress: Progress | None = None
) -> NeighborGraphReport:
    """Replace the `neighbors` table with every image's k nearest others (rank 1 = nearest).

    Exact (brute force, BLAS) up to EXACT_GRAPH_MAX images, else through the FAISS index.
    Queries go in batches and each batch's rows are inserted at once, so memory stays at the
    vectors plus one batch; the whole replacement is one transaction.
    """
    check_k(k)
    n = index.require_images("compute neighbors for")
    report = progress or (lambda event: None)
    start = time.perf_counter()
    ids, matrix = index.embeddings()
    exact = n <= EXACT_GRAPH_MAX
    store = None if exact else index.vectors
    k_eff = min(k, n - 1)
    rows = 0
    catalog = index.catalog
    with catalog.transaction():
        catalog.neighbors.clear()
        for at in range(0, n if k_eff else 0, batch_size):
            report(ProgressEvent("neighbors", at, n))
            batch_ids = ids[at : at + batch_size]
            queries = matrix[at : at + batch_size]
            if store is None:
                scores, found = exact_neighbors(
                    matrix, queries, k_eff, ids=ids, query_ids=batch_ids
                )
            else:
                scores, found = store.search(queries, k_eff + 1)
                scores, found = drop_self(found, batch_ids, k_eff, scores)
            edges = _graph_rows(batch_ids, scores, found)
            catalog.neighbors.add(edges)
            rows += edges.num_rows
        result = NeighborGraphReport(
            images=n,
            k=k_eff,
            rows=rows,
            index_type="exact" if store is None else store.kind,
            recall_at_10=1.0 if store is None else store.meta.get("recall_at_10"),
            seconds=0.0,
        )
        result.seconds = round(time.perf_counter() - start, 3)
        catalog.neighbors.record_run(result.as_dict())
    report(ProgressEvent("neighbors", n, n))
    return result


def _graph_rows(qids: np.ndarray, scores: np.ndarray, found: np.ndarray) -> pa.Table:
    """The graph's rows of a batch of queries (their own ids already dropped); empty slots
    (-1) are left out."""
    import pyarrow as pa

    kept = found >= 0
    ranks = np.broadcast_to(np.arange(1, found.shape[1] + 1, dtype=np.int32), kept.shape)
    return pa.table(
        {
            "image_id": np.broadcast_to(qids[:, None], kept.shape)[kept].astype(np.int64),
            "neighbor_id": found[kept].astype(np.int64),
            "rank": ranks[kept],
            "score": scores[kept].astype(np.float32),
        }
    )


def neighbor_graph_run(index: Index) -> dict[str, Any] | None:
    """What the last `neighbors --all` stored (k, when, index type), or None."""
    return index.catalog.neighbors.last_run()
