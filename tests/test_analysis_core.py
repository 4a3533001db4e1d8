"""idx.analysis on arrays: metrics against scikit-learn, K-means, projections, baselines, plots."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.decomposition import PCA
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_samples,
)

from idx.analysis import baselines, plots
from idx.analysis.clustering import KMeans, check_k, sklearn_engine
from idx.analysis.metrics import cluster_metrics, silhouette
from idx.analysis.projection import Projector
from idx.errors import UsageError
from idx.indexer.vectors.kmeans import faiss_engine

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def blobs(n_per: int, centres: int, dim: int, spread: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, dim)) * 3
    X = np.concatenate([m + spread * rng.normal(size=(n_per, dim)) for m in means])
    return X.astype(np.float32), np.repeat(np.arange(centres), n_per)


# -- metrics ------------------------------------------------------------------------------------


@settings(max_examples=25, derandomize=True, deadline=None)
@given(
    n=st.integers(6, 60),
    k=st.integers(2, 5),
    dim=st.integers(2, 12),
    seed=st.integers(0, 10_000),
)
def test_cosine_silhouette_equals_scikit_learn(n, k, dim, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim)) * rng.uniform(0.1, 5, size=(n, 1))  # not unit length
    labels = rng.integers(0, k, size=n)
    labels[: min(k, n - 1)] = np.arange(min(k, n - 1))  # a few clusters, some may be singletons
    if not 2 <= len(np.unique(labels)) <= n - 1:
        return
    ours = silhouette(X, labels)
    ref = silhouette_samples(X, labels, metric="cosine")
    assert ours.exact and ours.sample_size is None and ours.ci95 is None
    np.testing.assert_allclose(ours.values, ref, atol=1e-9)
    assert ours.score == pytest.approx(ref.mean(), abs=1e-9)


def test_euclidean_silhouette_exact_equals_scikit_learn():
    X, truth = blobs(30, 4, 2, 1.5)
    s = silhouette(X, truth, metric="euclidean")
    assert s.exact
    np.testing.assert_allclose(s.values, silhouette_samples(X.astype(np.float64), truth), atol=1e-9)


def test_sampled_silhouette_is_flagged_and_its_interval_holds_the_exact_value():
    X, truth = blobs(500, 4, 2, 2.5, seed=3)
    exact = silhouette_samples(X.astype(np.float64), truth).mean()
    s = silhouette(X, truth, metric="euclidean", max_exact=1000, sample_size=600, random_state=1)
    assert not s.exact
    assert s.sample_size == 600 and len(s.values) == 600 and len(np.unique(s.indices)) == 600
    low, high = s.ci95
    assert low < s.score < high
    assert low <= exact <= high
    assert high - low < 0.05
    # each sampled s(i) is the exact s(i) of that point (computed against every point)
    np.testing.assert_allclose(
        s.values, silhouette_samples(X.astype(np.float64), truth)[s.indices], atol=1e-9
    )
    again = silhouette(
        X, truth, metric="euclidean", max_exact=1000, sample_size=600, random_state=1
    )
    assert again.score == s.score


def test_cluster_metrics_match_scikit_learn():
    X, truth = blobs(20, 3, 5, 1.0)
    m = cluster_metrics(X, truth)
    assert m.davies_bouldin == pytest.approx(davies_bouldin_score(X, truth))
    assert m.calinski_harabasz == pytest.approx(calinski_harabasz_score(X, truth))
    assert m.as_dict()["silhouette_metric"] == "cosine"


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([0, 0, 0, 0], "distinct clusters"),
        ([0, 1, 2, 3], "distinct clusters"),
        ([0, 1], "one label"),
    ],
)
def test_metrics_refuse_degenerate_labellings(labels, message):
    with pytest.raises(UsageError, match=message):
        silhouette(np.eye(4)[:, :3], np.array(labels))


# -- K-means ------------------------------------------------------------------------------------


def test_kmeans_follows_scikit_learn_conventions():
    km = KMeans(3, n_iter=10, random_state=7)
    assert (km.n_clusters, km.n_iter, km.random_state, km.engine) == (3, 10, 7, None)
    X, _ = blobs(10, 3, 4, 0.5)
    assert km.fit(X) is km
    assert km.labels_.shape == (30,) and km.cluster_centers_.shape == (3, 4)
    assert km.n_features_in_ == 4


@pytest.mark.parametrize("engine", [faiss_engine, sklearn_engine])
def test_kmeans_recovers_separated_blobs_and_is_deterministic(engine):
    X, truth = blobs(25, 5, 8, 0.3)
    a = KMeans(5, random_state=3, engine=engine).fit(X)
    b = KMeans(5, random_state=3, engine=engine).fit(X)
    assert adjusted_rand_score(truth, a.labels_) == 1.0
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_
    sizes = np.bincount(a.labels_)
    assert (np.diff(sizes) <= 0).all(), "cluster 0 is the largest"


def test_kmeans_seeds_from_a_sample_of_large_sets_and_still_finds_the_blobs():
    X, truth = blobs(400, 2, 8, 0.5)  # 800 points > 256 per centre: seeds come from a sample
    a = KMeans(2, random_state=1, engine=faiss_engine).fit(X)
    assert adjusted_rand_score(truth, a.labels_) == 1.0
    np.testing.assert_array_equal(a.labels_, KMeans(2, random_state=1).fit(X).labels_)


def test_kmeans_attributes_agree_with_a_direct_computation():
    X, _ = blobs(40, 4, 6, 2.0, seed=5)
    km = KMeans(4, random_state=0, engine=faiss_engine, n_init=2).fit(X)
    d = np.linalg.norm(X[:, None, :] - km.cluster_centers_[None, :, :], axis=2)
    np.testing.assert_array_equal(km.labels_, d.argmin(axis=1))
    np.testing.assert_allclose(km.distances_, d.min(axis=1), rtol=1e-5, atol=1e-5)
    assert km.inertia_ == pytest.approx(float((d.min(axis=1) ** 2).sum()), rel=1e-5)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    for c in range(4):  # after Lloyd iterations, a centre is the mean of its members
        np.testing.assert_allclose(
            km.cluster_centers_[c], X[km.labels_ == c].mean(axis=0), atol=1e-4
        )


def test_faiss_and_scikit_learn_engines_agree_from_the_same_seed():
    X, _ = blobs(60, 6, 16, 2.5, seed=2)
    a = KMeans(6, random_state=4, engine=faiss_engine).fit(X)
    b = KMeans(6, random_state=4, engine=sklearn_engine).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)


@pytest.mark.parametrize(
    ("k", "n", "message"),
    [(1, 10, "too small"), (10, 10, "too large for 10"), (50, 10, "between 2 and 9"), (2, 0, "no")],
)
def test_bad_k_is_refused_with_a_reason(k, n, message):
    with pytest.raises(UsageError, match=message):
        check_k(k, n)


# -- projections --------------------------------------------------------------------------------


def test_projection_of_one_image_is_refused():
    with pytest.raises(UsageError, match="at least 2 images"):
        Projector("pca").fit(np.ones((1, 8)))


def test_pca_projection_matches_scikit_learn():
    X, _ = blobs(10, 3, 6, 1.0)
    xy = Projector("pca").fit_transform(X)
    np.testing.assert_allclose(xy, PCA(2, random_state=0).fit_transform(X), atol=1e-4)


def test_tsne_is_reproducible_and_lowers_perplexity_for_small_sets():
    X, truth = blobs(8, 3, 16, 0.2)
    p = Projector("tsne", perplexity=30, n_iter=100, random_state=1).fit(X)
    q = Projector("tsne", perplexity=30, n_iter=100, random_state=1).fit(X)
    np.testing.assert_array_equal(p.embedding_, q.embedding_)
    assert p.embedding_.shape == (24, 2)
    assert p.params_["perplexity"] == pytest.approx(23 / 3)
    assert p.params_["perplexity_requested"] == 30
    assert p.perplexity == 30  # the parameter itself is stored unchanged


def test_umap_without_umap_learn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)
    with pytest.raises(UsageError, match="pip install umap-learn"):
        Projector("umap").fit(np.random.default_rng(0).normal(size=(10, 4)))


# -- baselines ----------------------------------------------------------------------------------


def test_random_baseline_vectors_are_unit_and_seeded():
    v = baselines.random_vectors(50, 16, random_state=2)
    assert v.shape == (50, 16) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(v, baselines.random_vectors(50, 16, random_state=2))


def test_colour_histogram_of_a_flat_image_is_one_bin():
    red = np.zeros((10, 12, 3), dtype=np.uint8)
    red[..., 0] = 250
    half = red.copy()
    half[:5] = 0  # half black
    h = baselines.colour_histograms([red, half], bins=4)
    assert h.shape == (2, 64)
    red_bin = (3 * 4 + 0) * 4 + 0
    assert h[0, red_bin] == pytest.approx(1.0) and np.count_nonzero(h[0]) == 1
    assert h[1, red_bin] == pytest.approx(h[1, 0]) == pytest.approx(np.sqrt(0.5))


def test_thumbnail_pixels_are_centred_unit_vectors():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8) for _ in range(3)]
    t = baselines.thumbnail_pixels(images, side=4)
    assert t.shape == (3, 48)
    np.testing.assert_allclose(t.sum(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-6)


# -- plots --------------------------------------------------------------------------------------


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1000


def test_plots_are_png_files(tmp_path):
    X, truth = blobs(15, 3, 2, 1.0)
    sil = silhouette(X, truth)
    rng = np.random.default_rng(0)
    thumbs = [rng.integers(0, 256, size=(40, 30, 3), dtype=np.uint8) for _ in range(3)]
    written = [
        plots.plot_map(X, tmp_path / "a" / "map.png", labels=truth, title="t", untrained=True),
        plots.plot_map(X, tmp_path / "plain.png"),
        plots.plot_silhouette(sil.values, truth, tmp_path / "s.png", score=sil.score),
        plots.contact_sheet(thumbs, thumbs[:1], tmp_path / "c.png", title="cluster 0"),
        plots.plot_sweep([2, 3, 4], {"silhouette": [0.1, 0.3, 0.2]}, tmp_path / "w.png", best_k=3),
    ]
    assert all(_is_png(p) for p in written)
