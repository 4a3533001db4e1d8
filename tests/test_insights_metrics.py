"""Each insight metric against scikit-learn, scipy-free direct loops, or hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.neighbors import NearestNeighbors

from idx import knn
from idx.analysis import class_geometry as geometry
from idx.analysis import insights as ins


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _blobs(n_per: int, n_classes: int, d: int = 16, spread: float = 0.15, seed: int = 0):
    """Well separated classes on the sphere: (unit vectors, one-hot labels)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, d))
    x = np.repeat(centers, n_per, axis=0) + spread * rng.normal(size=(n_per * n_classes, d))
    labels = np.repeat(np.arange(n_classes), n_per)
    return _unit(x), np.eye(n_classes, dtype=bool)[labels], labels


def test_purity_by_hand():
    clusters = np.array([0, 0, 0, 1, 1, 1, 2])
    labels = np.array([0, 0, 1, 1, 1, 2, 2])
    # cluster 0: majority 2 of 3; cluster 1: 2 of 3; cluster 2: 1 of 1 -> 5/7
    assert ins.purity(clusters, labels) == pytest.approx(5 / 7)


def test_cluster_scores_match_scikit_learn():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 200)
    clusters = np.where(rng.random(200) < 0.7, labels, rng.integers(0, 5, 200))
    got = ins.cluster_label_scores(clusters, labels)
    h, c, v = skm.homogeneity_completeness_v_measure(labels, clusters)
    assert got["nmi"] == pytest.approx(skm.normalized_mutual_info_score(labels, clusters))
    assert got["ari"] == pytest.approx(skm.adjusted_rand_score(labels, clusters))
    assert (got["homogeneity"], got["completeness"], got["v_measure"]) == pytest.approx((h, c, v))
    majority = sum(np.bincount(labels[clusters == k]).max() for k in np.unique(clusters))
    assert got["purity"] == pytest.approx(majority / len(labels))


@pytest.mark.parametrize("batch_size", [7, 4096])
def test_nearest_neighbors_match_scikit_learn_cosine(batch_size):
    x = _unit(np.random.default_rng(2).normal(size=(60, 8)))
    got = knn.exact_neighbors(x, x, 5, query_ids=np.arange(60), batch_size=batch_size)[1]
    ref = NearestNeighbors(n_neighbors=6, metric="cosine").fit(x).kneighbors(x)[1][:, 1:]
    np.testing.assert_array_equal(got, ref)
    assert not (got == np.arange(60)[:, None]).any()  # leave-one-out: never itself


def test_nearest_neighbors_caps_k_at_n_minus_one():
    x = _unit(np.random.default_rng(3).normal(size=(4, 3)))
    got = knn.exact_neighbors(x, x, 10, query_ids=np.arange(4))[1]
    assert got.shape == (4, 3)
    assert all(sorted(row) == sorted(set(range(4)) - {i}) for i, row in enumerate(got))


def test_knn_votes_and_multilabel_hits_by_hand():
    # image 0 has labels {A, B}; its neighbours carry A, C, C -> prediction C (2 votes): a miss.
    # image 1 has {C}; neighbours A, B, A -> prediction A: a miss.
    # image 2 has {A}; neighbours A, B, A -> A: a hit. image 3 has {B}; neighbours {A,B}, B -> B.
    y = np.array([[1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]], bool)
    neighbors = np.array([[2, 5, 1], [2, 3, 4], [4, 3, 0], [0, 3, 3], [0, 1, 2], [1, 1, 1]])
    votes = ins.vote(neighbors, y)
    np.testing.assert_array_equal(votes[0], [1, 0, 2])
    np.testing.assert_array_equal(votes[3], [1, 3, 0])
    pred = ins.predict(votes, y.sum(axis=0))
    np.testing.assert_array_equal(pred[:4], [2, 0, 0, 1])
    np.testing.assert_array_equal(ins.hits(pred, y)[:4], [False, False, True, True])
    batched, top = ins.knn_predict(neighbors, y, y.sum(axis=0), batch_size=4)
    np.testing.assert_array_equal(batched, pred)
    np.testing.assert_array_equal(top, votes[np.arange(6), pred])


def test_zero_shot_predict_is_the_most_similar_text_in_any_batch_size():
    x = _unit(np.random.default_rng(11).normal(size=(50, 8)))
    texts = _unit(np.random.default_rng(12).normal(size=(5, 8)))
    expected = np.argmax(x @ texts.T, axis=1)
    sizes = np.ones(5)
    np.testing.assert_array_equal(ins.zero_shot_predict(x, texts, sizes, batch_size=7), expected)
    np.testing.assert_array_equal(ins.zero_shot_predict(x, texts, sizes), expected)


def test_ties_go_to_the_larger_class():
    sizes = np.array([2, 5, 5])
    assert ins.predict(np.array([[1.0, 1.0, 0.0]]), sizes)[0] == 1
    assert ins.predict(np.array([[3.0, 3.0, 3.0]]), sizes)[0] == 1  # equal sizes: the first


def test_class_geometry_against_direct_loops():
    x, y, _ = _blobs(5, 3, d=6, spread=0.8, seed=4)
    y[0, 1] = True  # one multi-label image counts in both classes
    got = geometry.class_geometry(x, y)
    members = [np.nonzero(y[:, c])[0] for c in range(3)]
    for c, m in enumerate(members):
        pairs = [float(x[i] @ x[j]) for i in m for j in m if i != j]
        assert got["cohesion"][c] == pytest.approx(np.mean(pairs), abs=1e-6)
        centroids = np.stack([x[mm].mean(axis=0) for mm in members])
        sims = _unit(centroids) @ _unit(centroids).T
        np.testing.assert_allclose(got["centroid_similarity"], sims, atol=1e-6)
        other = [o for o in range(3) if o != c]
        nearest = other[int(np.argmax(sims[c, other]))]
        assert got["nearest"][c] == nearest
        cross = np.mean([float(x[i] @ x[j]) for i in m for j in members[nearest]])
        assert got["margin"][c] == pytest.approx(np.mean(pairs) - cross, abs=1e-6)


def test_singleton_class_has_no_cohesion():
    x, y, _ = _blobs(3, 2, seed=5)
    y = np.column_stack([y, np.eye(len(x), dtype=bool)[0]])
    assert np.isnan(geometry.class_geometry(x, y)["cohesion"][2])


def test_cluster_spread_share_and_entropy_by_hand():
    clusters = np.array([3, 3, 3, 7, 7, 5])
    y = np.array([[1, 0], [1, 0], [0, 1], [1, 0], [0, 1], [1, 1]], bool)
    table, spread = geometry.cluster_spread(clusters, y)
    np.testing.assert_array_equal(spread["cluster_ids"], [3, 5, 7])
    np.testing.assert_array_equal(table, [[2, 1, 1], [1, 1, 1]])
    assert spread["main_cluster"][0] == 3 and spread["main_cluster_share"][0] == 0.5
    assert spread["cluster_entropy"][0] == pytest.approx(1.5)  # shares 1/2, 1/4, 1/4
    assert spread["cluster_entropy"][1] == pytest.approx(np.log2(3))


def test_silhouette_by_class_matches_scikit_learn():
    x, _, labels = _blobs(8, 3, spread=0.9, seed=6)
    got = geometry.silhouette_by_class(x, labels, 4)
    samples = skm.silhouette_samples(x, labels, metric="cosine")
    np.testing.assert_allclose(got[:3], [samples[labels == c].mean() for c in range(3)])
    assert np.isnan(got[3])


def test_separated_classes_score_high_and_baselines_stay_at_chance():
    x, y, labels = _blobs(30, 4, seed=7)
    texts = _unit(np.stack([x[labels == c].mean(axis=0) for c in range(4)]))
    fitted = ins.LabelInsights(k_nn=5, n_permutations=5, random_state=0).fit(
        x, y, clusters=labels + 10, text_embeddings=texts
    )
    s = fitted.summary_
    base = s["baselines"]["random_labels"]
    assert s["knn_accuracy"] == 1.0 and s["zero_shot_accuracy"] == 1.0
    assert s["nmi"] == pytest.approx(1.0) and s["purity"] == 1.0 and s["ari"] == pytest.approx(1.0)
    assert base["knn_accuracy"] < 0.45 and base["zero_shot_accuracy"] < 0.45
    assert base["nmi"] < 0.2 and base["purity"] < 0.5
    assert s["baselines"]["majority_class"]["knn_accuracy"] == pytest.approx(0.25)
    np.testing.assert_array_equal(fitted.classes_["main_cluster"], [10, 11, 12, 13])
    np.testing.assert_array_equal(np.diag(fitted.confusion_), [30, 30, 30, 30])
    assert fitted.suspects_ == []


def test_baseline_is_seeded():
    x, y, _ = _blobs(10, 3, spread=1.5, seed=8)
    a = ins.LabelInsights(k_nn=3, random_state=3).fit(x, y).summary_
    b = ins.LabelInsights(k_nn=3, random_state=3).fit(x, y).summary_
    assert a["baselines"] == b["baselines"]


def test_a_mislabelled_image_is_a_suspect_and_a_confusion():
    x, y, labels = _blobs(10, 3, seed=9)
    wrong = int(np.nonzero(labels == 0)[0][0])
    y[wrong] = [False, True, False]  # a class-0 image labelled as class 1
    fitted = ins.LabelInsights(k_nn=5, suspect_vote_share=0.6).fit(x, y)
    assert [(s.image, s.label, s.predicted) for s in fitted.suspects_] == [(wrong, 1, 0)]
    assert fitted.suspects_[0].vote_share == 1.0 and fitted.suspects_[0].own_vote_share == 0.0
    assert fitted.confusion_[1, 0] == 1
    assert fitted.pairs_[0][:3] == (0, 1, 1)
    assert fitted.classes_["knn_accuracy"][1] == pytest.approx(10 / 11)


def test_multilabel_images_count_for_each_label_and_leave_single_label_metrics():
    x, y, labels = _blobs(6, 2, seed=10)
    y[0, 1] = True
    fitted = ins.LabelInsights(k_nn=3).fit(x, y, clusters=labels)
    assert fitted.summary_["n_multi_label"] == 1 and fitted.summary_["n_single_label"] == 11
    assert fitted.summary_["n_clustered"] == 11
    np.testing.assert_array_equal(fitted.classes_["size"], [6, 7])
