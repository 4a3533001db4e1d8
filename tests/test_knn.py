"""idx.knn, the one exact kNN: against a stable sort by score and FAISS's flat index, its ties,
leaving each query out of its own list, and dropping a query's id from a neighbour list."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from idx import knn


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _stable(sims: np.ndarray, k: int) -> np.ndarray:
    """Columns of each row's k best scores: a stable sort, so the lower column first on ties."""
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("nq", [1, 5, 40])
def test_equals_faiss_flat_without_ties(nq):
    rng = np.random.default_rng(nq)
    matrix, queries = _unit(rng.normal(size=(500, 24))), _unit(rng.normal(size=(nq, 24)))
    ids = np.sort(rng.choice(10**6, 500, replace=False)).astype(np.int64)
    scores, found = knn.exact_neighbors(matrix, queries, 10, ids=ids)
    want_scores, pos = faiss.knn(queries, matrix, 10, metric=faiss.METRIC_INNER_PRODUCT)
    np.testing.assert_array_equal(found, ids[pos])
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert (scores.dtype, found.dtype) == (np.float32, np.int64)


@pytest.mark.parametrize("batch_size", [None, 1, 7])
def test_ties_lower_row_first_and_at_the_cut(batch_size):
    """Integer vectors make many exactly equal scores, some across the k-th place."""
    rng = np.random.default_rng(1)
    matrix = np.round(rng.normal(size=(300, 3)) * 2).astype(np.float32)
    queries = matrix[rng.integers(0, 300, 20)]
    scores, rows = knn.exact_neighbors(matrix, queries, 12, batch_size=batch_size)
    sims = queries @ matrix.T
    np.testing.assert_array_equal(rows, _stable(sims, 12))
    np.testing.assert_array_equal(scores, np.take_along_axis(sims, rows, axis=1))


def test_query_left_out_of_its_own_list_wherever_ties_put_it():
    rng = np.random.default_rng(2)
    matrix = _unit(rng.normal(size=(40, 8)))[rng.integers(0, 10, 120)]  # each vector 12x over
    ids = np.arange(1000, 1120)
    picked = rng.integers(0, 120, 30)
    scores, found = knn.exact_neighbors(matrix, matrix[picked], 5, ids=ids, query_ids=ids[picked])
    sims = matrix[picked] @ matrix.T
    sims[np.arange(30), picked] = -np.inf
    np.testing.assert_array_equal(found, ids[_stable(sims, 5)])
    assert not (found == ids[picked][:, None]).any()


def test_widths_when_k_reaches_the_rows():
    x = _unit(np.random.default_rng(3).normal(size=(4, 3)))
    assert knn.exact_neighbors(x, x, 10)[1].shape == (4, 4)
    assert knn.exact_neighbors(x, x, 10, query_ids=np.arange(4))[1].shape == (4, 3)
    assert knn.exact_neighbors(x[:1], x[:1], 3, query_ids=np.arange(1))[1].shape == (1, 0)
    assert knn.exact_neighbors(x, x[:0], 3)[1].shape == (0, 3)


def test_drop_self_keeps_order_pads_and_carries_scores():
    found = np.array([[7, 3, 9], [5, -1, 4], [1, 2, 6]])
    scores = np.array([[0.9, 0.8, 0.7], [0.6, -np.inf, 0.4], [0.3, 0.2, 0.1]], np.float32)
    kept_scores, kept = knn.drop_self(found, np.array([7, 4, 8]), 4, scores)
    assert kept.tolist() == [[3, 9, -1, -1], [5, -1, -1, -1], [1, 2, 6, -1]]
    assert kept_scores.dtype == np.float32 and kept.dtype == np.int64
    np.testing.assert_array_equal(kept_scores[0], [*scores[0, 1:], -np.inf, -np.inf])
    assert knn.drop_self(found, np.array([7, 4, 8]), 1).tolist() == [[3], [5], [1]]
