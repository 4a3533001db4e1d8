"""Exact k nearest neighbours by inner product (cosine on unit rows), and dropping each query's
own id from a neighbour list: the one implementation for every layer. Pure numpy, so that both
analysis (which may not import FAISS or indexer) and indexer may use it.

Deterministic: among equal scores the lower row comes first and makes the cut (as a stable sort
by descending score would order them). FAISS's own order of exact ties depends on the order in
which its heap saw the rows, so a FAISS search may list such ties otherwise.
"""

from __future__ import annotations

from typing import overload

import numpy as np

#: Scores held by one batch of queries: a [batch, n] matrix of about 128 MB (float32), plus its
#: argpartition indices.
BATCH_CELLS = 2**25


def exact_neighbors(
    matrix: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    ids: np.ndarray | None = None,
    query_ids: np.ndarray | None = None,
    batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k (scores [q, w], ids [q, w]) of each query among the rows of `matrix`, best
    first (brute force, in batches of `batch_size` queries: by default as many as fit
    BATCH_CELLS scores).

    `ids` names the rows (default: their positions). `query_ids`, when given, are the queries'
    own ids (each query is a row of `matrix`): each is left out of its own list, wherever ties put
    it, and w = min(k, n - 1); else w = min(k, n). Scores are computed in float32 at least.

    >>> m = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    >>> exact_neighbors(m, m[:1], 2, ids=np.array([10, 20, 30]))[1]
    array([[10, 30]])
    >>> exact_neighbors(m, m, 1, query_ids=np.arange(3))[1].ravel().tolist()
    [2, 2, 1]
    """
    n = len(matrix)
    width = max(0, min(k, n - 1) if query_ids is not None else min(k, n))
    depth = min(width + 1, n) if query_ids is not None else width
    scores, rows = _top(matrix, queries, depth, batch_size)
    found = rows if ids is None else np.asarray(ids)[rows]
    if query_ids is None:
        return scores, found
    return drop_self(found, np.asarray(query_ids), width, scores)


def _top(
    matrix: np.ndarray, queries: np.ndarray, k: int, batch_size: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of the k best rows of each query, in batches of queries."""
    dtype = np.result_type(matrix, queries, np.float32)
    matrix = np.asarray(matrix, dtype)
    queries = np.atleast_2d(np.asarray(queries, dtype))
    n, nq = len(matrix), len(queries)
    scores = np.empty((nq, k), dtype)
    rows = np.empty((nq, k), np.int64)
    step = batch_size or max(1, BATCH_CELLS // max(n, 1))
    for start in range(0, nq if k else 0, step):
        sims = _similarities(queries[start : start + step], matrix)
        scores[start : start + step], rows[start : start + step] = _best(sims, k)
    return scores, rows


def _similarities(queries: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """queries @ matrix.T; one query without BLAS, whose threads cost a lone query more in
    start-up and contention than they save (a filtered search's scan: as fast as FAISS's own
    one-thread scan, where multi-threaded BLAS was 5-8x slower on a busy 2-core machine)."""
    if len(queries) == 1:
        return np.einsum("nd,qd->qn", matrix, queries)
    return queries @ matrix.T


def _best(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, columns) of the k best columns of each row of `sims` (0 < k <= columns), best
    first, the lower column first among equal scores.

    The k-th best score of each row (a partition of the values, cheaper than argpartition's
    index array) bounds the candidates; only those, about k a row, are sorted, so ties at the
    cut are settled by column too.
    """
    n = sims.shape[1]
    kth = np.partition(sims, n - k, axis=1)[:, n - k : n - k + 1]
    rows, cols = np.nonzero(sims >= kth)
    values = sims[rows, cols]
    order = np.lexsort((cols, -values, rows))
    first = np.searchsorted(rows[order], np.arange(len(sims)))
    take = order[first[:, None] + np.arange(k)]
    return values[take], cols[take]


@overload
def drop_self(found: np.ndarray, query_ids: np.ndarray, k: int) -> np.ndarray: ...


@overload
def drop_self(
    found: np.ndarray, query_ids: np.ndarray, k: int, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]: ...


def drop_self(
    found: np.ndarray, query_ids: np.ndarray, k: int, scores: np.ndarray | None = None
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The first k ids of each row of `found` (a neighbour list, best first, -1 for an empty
    slot) other than the query's own id and the empty slots, -1 padded to k columns; with
    `scores`, (their scores, -inf padded, and the ids).

    >>> drop_self(np.array([[7, 3, 9], [5, -1, 4]]), np.array([7, 4]), 2).tolist()
    [[3, 9], [5, -1]]
    """
    found = np.asarray(found)
    keep = (found != np.asarray(query_ids)[:, None]) & (found >= 0)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    kept = np.take_along_axis(keep, order, axis=1)
    pad = ((0, 0), (0, k - order.shape[1]))
    ids = np.pad(
        np.where(kept, np.take_along_axis(found, order, axis=1), -1), pad, constant_values=-1
    )
    ids = ids.astype(np.int64, copy=False)
    if scores is None:
        return ids
    taken = np.where(kept, np.take_along_axis(scores, order, axis=1), -np.inf)
    return np.pad(taken, pad, constant_values=-np.inf), ids
