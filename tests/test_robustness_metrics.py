"""Every robustness metric against a direct computation (loops, scikit-learn) on small arrays."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import (
    accuracy_score,
    adjusted_rand_score,
    pairwise_distances,
    silhouette_score,
)

from idx import knn
from idx.analysis import robustness as m
from idx.analysis.injection import InjectionComparison, purity


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_cosine_and_drift_summary(rng):
    a, b = rng.normal(size=(30, 8)), rng.normal(size=(30, 8))
    direct = [np.dot(x, y) / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a, b)]
    cos = m.cosine(a, b)
    np.testing.assert_allclose(cos, direct, rtol=1e-6)
    summary = m.drift_summary(cos)
    ordered = np.sort(cos)
    # linear-interpolated quantile by hand: position q * (n - 1)
    for key, q in (("cos_p05", 0.05), ("cos_p50", 0.5), ("cos_p95", 0.95)):
        pos = q * (len(ordered) - 1)
        lo = int(np.floor(pos))
        expected = ordered[lo] + (pos - lo) * (ordered[min(lo + 1, len(ordered) - 1)] - ordered[lo])
        assert summary[key] == pytest.approx(expected)
    assert summary["cos_mean"] == pytest.approx(sum(direct) / len(direct))


def test_drop_self_topk_overlap_and_self_ranks():
    query = np.array([10, 20, 30])
    clean = np.array([[10, 1, 2, 3], [20, 4, 5, 6], [30, 7, 8, 9]])
    pert = np.array([[1, 10, 3, 99], [7, 8, 9, 4], [30, 8, 7, -1]])
    clean_nb = knn.drop_self(clean, query, 3)
    pert_nb = knn.drop_self(pert, query, 3)
    assert clean_nb.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert pert_nb.tolist() == [[1, 3, 99], [7, 8, 9], [8, 7, -1]]
    direct = [len(set(a) & set(b)) / 3 for a, b in zip(clean_nb.tolist(), pert_nb.tolist())]
    np.testing.assert_allclose(m.topk_overlap(clean_nb, pert_nb), direct)
    ranks = [row.index(q) + 1 if q in row else 5 for row, q in zip(pert.tolist(), query.tolist())]
    assert m.self_ranks(pert, query).tolist() == ranks == [2, 5, 1]


def test_nearest_center_and_cluster_changes_match_pairwise_distances(rng):
    x, y, centers = rng.normal(size=(40, 5)), rng.normal(size=(40, 5)), rng.normal(size=(6, 5))
    expected_x = pairwise_distances(x, centers).argmin(axis=1)
    expected_y = pairwise_distances(y, centers).argmin(axis=1)
    assert m.nearest_center(x, centers).tolist() == expected_x.tolist()
    assert m.cluster_changed(x, y, centers).tolist() == (expected_x != expected_y).tolist()


def _knn_direct(row):
    votes = [v for v in row if v >= 0]
    if not votes:
        return -1
    counts = Counter(votes)
    best = max(counts.values())
    return next(v for v in votes if counts[v] == best)  # ties: nearest neighbour's label


def test_knn_predict_majority_with_nearest_tie_break(rng):
    rows = rng.integers(-1, 4, size=(200, 7))
    rows[0] = -1
    assert m.knn_predict(rows).tolist() == [_knn_direct(r) for r in rows.tolist()]
    assert m.knn_predict(np.array([[2, 1, 1, 2, 3]])).tolist() == [2]


def test_correct_and_zero_shot_match_accuracy_score(rng):
    vectors, texts = unit(rng.normal(size=(50, 6))), unit(rng.normal(size=(4, 6)))
    true = rng.integers(0, 4, size=50)
    truth = np.eye(4, dtype=bool)[true]
    pred = m.zero_shot_predict(vectors, texts)
    assert pred.tolist() == (vectors @ texts.T).argmax(axis=1).tolist()
    assert np.mean(m.correct(pred, truth)) == pytest.approx(accuracy_score(true, pred))
    truth[3] = False  # an unlabelled image does not count
    truth[4] = False
    truth[4, [pred[4], (pred[4] + 1) % 4]] = True  # two labels: predicting either is right
    hits = m.correct(pred, truth)
    assert np.isnan(hits[3]) and hits[4] == 1.0
    assert m.correct(np.array([-1]), np.array([[True, False]])).tolist() == [0.0]


def test_lookup():
    keys, values = np.array([2, 5, 9]), np.array([7, 8, 9])
    assert m.lookup(np.array([[9, 1], [5, 10]]), keys, values).tolist() == [[9, -1], [8, -1]]
    assert m.lookup(np.array([1]), np.array([], dtype=np.int64), values[:0]).tolist() == [-1]


def test_per_image_summary_and_per_class_against_direct(rng):
    n, d, depth, k = 12, 6, 8, 3
    ids = np.arange(100, 100 + n)
    clean, pert = unit(rng.normal(size=(n, d))), unit(rng.normal(size=(n, d)))
    index_ids = np.arange(100, 100 + 20)
    index_vecs = np.vstack([clean, unit(rng.normal(size=(8, d)))])
    search = lambda q: index_ids[np.argsort(-(q @ index_vecs.T), axis=1)[:, :depth]]  # noqa: E731
    labels_of = {i: int(i % 3) for i in index_ids.tolist()}
    truth = np.eye(3, dtype=bool)[[labels_of[i] for i in ids.tolist()]]
    centers = rng.normal(size=(4, d))
    texts = unit(rng.normal(size=(3, d)))
    values = m.per_image(
        m.ConditionInputs(
            query_ids=ids,
            clean=clean,
            perturbed=pert,
            clean_neighbors=knn.drop_self(search(clean), ids, k),
            perturbed_search=search(pert),
            k=k,
            centers=centers,
            primary_labels=(index_ids, np.array([labels_of[i] for i in index_ids.tolist()])),
            truth=truth,
            text_vectors=texts,
        )
    )
    row = m.summarize(values)
    cs, ps = search(clean).tolist(), search(pert).tolist()
    knn_hits, overlaps, ranks = [], [], []
    for i, q in enumerate(ids.tolist()):
        a = [x for x in cs[i] if x != q][:k]
        b = [x for x in ps[i] if x != q][:k]
        overlaps.append(len(set(a) & set(b)) / k)
        ranks.append(ps[i].index(q) + 1 if q in ps[i] else depth + 1)
        knn_hits.append(_knn_direct([labels_of[x] for x in b]) == labels_of[q])
    assert row["n"] == n
    assert row["topk_overlap"] == pytest.approx(np.mean(overlaps))
    assert row["self_rank_mean"] == pytest.approx(np.mean(ranks))
    assert row["self_found_at_1"] == pytest.approx(np.mean(np.array(ranks) == 1))
    assert row["knn_accuracy"] == pytest.approx(np.mean(knn_hits))
    zs = (pert @ texts.T).argmax(axis=1) == np.array([labels_of[i] for i in ids.tolist()])
    assert row["zero_shot_accuracy"] == pytest.approx(zs.mean())
    moved = pairwise_distances(clean, centers).argmin(1) != pairwise_distances(
        pert, centers
    ).argmin(1)
    assert row["cluster_change_share"] == pytest.approx(moved.mean())
    classes = m.per_class(values, truth, ["a", "b", "c"])
    for j, c in enumerate(classes):
        mask = truth[:, j]
        assert c["n"] == mask.sum()
        assert c["cos_mean"] == pytest.approx(np.sum(clean[mask] * pert[mask], axis=1).mean())
        assert c["knn_accuracy"] == pytest.approx(np.mean(np.array(knn_hits)[mask]))


def test_summary_without_clusters_or_labels_is_null(rng):
    x = unit(rng.normal(size=(4, 3)))
    ids = np.arange(4)
    nb = np.tile(ids, (4, 1))
    row = m.summarize(m.per_image(m.ConditionInputs(ids, x, x, knn.drop_self(nb, ids, 2), nb, 2)))
    assert row["cos_mean"] == pytest.approx(1.0)
    assert row["cluster_change_share"] is None and row["knn_accuracy"] is None
    assert row["zero_shot_accuracy"] is None


def test_purity_direct():
    assign = np.array([0, 0, 0, 1, 1, 2])
    labels = np.array([1, 1, 2, 3, 3, -1])
    assert purity(assign, labels) == pytest.approx((2 + 2) / 5)
    assert purity(assign, np.full(6, -1)) is None


def test_injection_comparison_against_sklearn(rng):
    centers = rng.normal(size=(3, 4)) * 5
    clean = np.vstack([c + rng.normal(size=(15, 4)) for c in centers])
    noise = rng.normal(size=(6, 4)) * 8
    vectors = np.vstack([clean, noise])
    injected = np.r_[np.zeros(45, bool), np.ones(6, bool)]
    labels = np.r_[np.repeat([0, 1, 2], 15), np.full(6, -1)]
    cmp = InjectionComparison(k=3, random_state=0).fit(vectors, injected, labels)
    all_assign = KMeans(3, n_init=4, random_state=0).fit_predict(vectors)
    clean_assign = KMeans(3, n_init=4, random_state=0).fit_predict(clean)
    assert cmp.with_["silhouette"] == pytest.approx(
        silhouette_score(vectors, all_assign, metric="cosine")
    )
    assert cmp.without_["silhouette"] == pytest.approx(
        silhouette_score(clean, clean_assign, metric="cosine")
    )
    assert cmp.without_["purity"] == pytest.approx(purity(clean_assign, labels[:45]))
    assert cmp.clean_ari_ == pytest.approx(adjusted_rand_score(clean_assign, all_assign[:45]))
    assert sum(r["injected"] for r in cmp.landing_) == 6
    assert sum(r["size"] for r in cmp.landing_) == 51
    for r in cmp.landing_:
        assert r["injected"] == int(np.sum((all_assign == r["cluster"]) & injected))
