"""Filtered search: which images a filter keeps (SQL over the image_info view, or the label,
cluster and folder shortcuts) and the exact nearest neighbours among them."""

from __future__ import annotations

import numpy as np

from idx.indexer.index import Index
from idx.indexer.vectors.live import search_selected, vectors_of
from idx.indexer.vectors.store import VectorStore
from idx.knn import exact_neighbors

#: A filter keeping at most this share of the vectors is answered by an exact scan of its
#: vectors, a larger one by FAISS with an id selector: where the two cost the same, measured by
#: bench/serve.py (bench/README.md).
FILTER_SCAN_SHARE = 0.05


def matching_ids(
    index: Index,
    *,
    where: str | None = None,
    label: str | None = None,
    cluster: int | None = None,
    folder: str | None = None,
) -> np.ndarray | None:
    """Sorted ids of the images a filter keeps; None when no filter is given. `where` is an SQL
    condition over the image_info view (`idx sql "DESCRIBE image_info"`), run under the
    catalog's time limit for people's SQL."""
    if where is None and label is None and cluster is None and folder is None:
        return None
    catalog = index.catalog
    return catalog.image_info.matching_ids(
        where=where,
        label=label,
        cluster=cluster,
        folder=folder,
        timeout=catalog.user_sql.timeout,
    )


def search_among(
    store: VectorStore, query: np.ndarray, k: int, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the top k among `allowed` ids: an exact scan of their vectors for a
    small filter; FAISS with an id selector for a large one (exact for flat, as approximate as
    an unfiltered search otherwise, and the scan again when that finds fewer than k)."""
    if len(allowed) == 0 or store.index is None:
        return np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
    if len(allowed) > FILTER_SCAN_SHARE * store.ntotal:
        scores, ids = search_selected(store, query, k, allowed)
        if (ids[0] >= 0).sum() >= min(k, len(allowed)):
            return scores, ids
    try:
        matrix = vectors_of(store, allowed)
    except RuntimeError:  # images without a vector (see `idx status`) are not in FAISS
        present = np.isin(allowed, store.ids())
        allowed = allowed[present]
        matrix = vectors_of(store, allowed)
    if len(allowed) == 0:
        return np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
    return exact_neighbors(matrix, query, k, ids=allowed)
