"""Category-level insights: how well an embedding space matches dataset labels, class by class.

Inputs are arrays: unit vectors X [n, d], a boolean label matrix Y [n, C] (an image may carry
several positive labels), optionally cluster assignments [n] (-1 = not clustered) and text
embeddings [C, d] for zero-shot classification.

Multi-label rule (the README says the same):
- kNN: each neighbour votes for every positive label it carries; the image's prediction is the
  label with the most votes (ties: the more frequent class, then the first). A prediction is
  correct when it is any of the image's positive labels. Zero-shot is scored the same way.
- Per-class numbers count an image once for each of its positive labels.
- Single-label metrics (purity, NMI, ARI, homogeneity, completeness, V-measure, silhouette) use
  only the images with exactly one positive label; how many were left out is reported.

Every headline number has a baseline: the same computation with the label rows randomly
permuted across images (seeded, averaged over `n_permutations`), i.e. what chance scores with
the same class sizes. Accuracies also get the majority-class baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from idx.analysis.class_geometry import (
    class_geometry,
    cluster_spread,
    per_class_mean,
    silhouette_by_class,
)
from idx.knn import exact_neighbors

CLUSTER_METRICS = ("purity", "nmi", "ari", "homogeneity", "completeness", "v_measure")


def purity(clusters: np.ndarray, labels: np.ndarray) -> float:
    """Share of images whose cluster's majority label is their own label."""
    table = skm.cluster.contingency_matrix(labels, clusters)
    return float(table.max(axis=0).sum() / table.sum())


def cluster_label_scores(clusters: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Purity, NMI, ARI, homogeneity, completeness and V-measure of clusters against labels."""
    h, c, v = skm.homogeneity_completeness_v_measure(labels, clusters)
    return {
        "purity": purity(clusters, labels),
        "nmi": float(skm.normalized_mutual_info_score(labels, clusters)),
        "ari": float(skm.adjusted_rand_score(labels, clusters)),
        "homogeneity": float(h),
        "completeness": float(c),
        "v_measure": float(v),
    }


#: Floats held by one batch of a [batch, n] or [batch, C] matrix (about 128 MB of float32).
BATCH_CELLS = 2**25


def _rows_per_batch(width: int, batch_size: int | None) -> int:
    return batch_size or max(16, BATCH_CELLS // max(width, 1))


def vote(neighbors: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Votes [n, C]: how many of each image's neighbours carry each label."""
    votes = np.zeros((len(neighbors), y.shape[1]), dtype=np.int64)
    for column in neighbors.T:  # one neighbour rank at a time: memory n x C, not n x k x C
        votes += y[column]
    return votes


def knn_predict(
    neighbors: np.ndarray, y: np.ndarray, class_sizes: np.ndarray, batch_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Most-voted label of each image and its number of votes, computed in batches of rows."""
    n = len(neighbors)
    pred = np.empty(n, dtype=np.int64)
    top = np.empty(n, dtype=np.int64)
    batch_size = _rows_per_batch(y.shape[1], batch_size)
    for start in range(0, n, batch_size):
        votes = vote(neighbors[start : start + batch_size], y)
        pred[start : start + batch_size] = predict(votes, class_sizes)
        top[start : start + batch_size] = votes[
            np.arange(len(votes)), pred[start : start + batch_size]
        ]
    return pred, top


def predict(scores: np.ndarray, class_sizes: np.ndarray) -> np.ndarray:
    """Argmax per row; ties go to the larger class, then to the first one."""
    n = len(class_sizes)
    rank = np.empty(n)
    rank[np.lexsort((-np.arange(n), class_sizes))] = np.arange(1, n + 1)  # larger, then first
    tied = scores == scores.max(axis=1, keepdims=True)
    return np.argmax(np.where(tied, rank[None, :], 0), axis=1)


def zero_shot_predict(
    x: np.ndarray,
    text_embeddings: np.ndarray,
    class_sizes: np.ndarray,
    batch_size: int | None = None,
) -> np.ndarray:
    """The class whose text embedding is most cosine-similar to each image, in batches of rows."""
    texts = np.asarray(text_embeddings, dtype=np.float32).T
    batch_size = _rows_per_batch(texts.shape[1], batch_size)
    return np.concatenate(
        [predict(x[i : i + batch_size] @ texts, class_sizes) for i in range(0, len(x), batch_size)]
    )


def hits(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether each prediction is one of the image's positive labels."""
    return y[np.arange(len(pred)), pred]


def permutation_baseline(
    y: np.ndarray, perms: list[np.ndarray], score: Callable[[np.ndarray], float]
) -> float:
    """Mean score with the label rows shuffled across images: chance at the same class sizes."""
    if not perms:
        return float("nan")
    return float(np.mean([score(y[p]) for p in perms]))


@dataclass
class Suspect:
    image: int  # row in X
    label: int  # the image's label its neighbours disagree with
    predicted: int
    vote_share: float
    own_vote_share: float


class LabelInsights:
    """How well an embedding space matches labels; scikit-learn style (`fit` returns self).

    >>> ins = LabelInsights(k_nn=10).fit(x, y, clusters=assignments)
    >>> ins.k_, sorted(ins.summary_["baselines"])
    (10, ['majority_class', 'random_labels'])
    >>> all(0 <= ins.summary_[m] <= 1 for m in ("knn_accuracy", "purity", "nmi"))
    True
    """

    def __init__(
        self,
        k_nn: int = 10,
        suspect_vote_share: float = 0.6,
        n_permutations: int = 5,
        n_top_pairs: int = 20,
        random_state: int | None = 0,
    ):
        self.k_nn = k_nn
        self.suspect_vote_share = suspect_vote_share
        self.n_permutations = n_permutations
        self.n_top_pairs = n_top_pairs
        self.random_state = random_state

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        clusters: np.ndarray | None = None,
        text_embeddings: np.ndarray | None = None,
        neighbors: np.ndarray | None = None,
    ) -> LabelInsights:
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=bool)
        if x.ndim != 2 or y.shape != (len(x), y.shape[1]) or len(x) < 2:
            raise ValueError("need x [n>=2, d] and y [n, C] with the same n")
        rng = np.random.default_rng(self.random_state)
        perms = [rng.permutation(len(x)) for _ in range(self.n_permutations)]
        self.sizes_ = y.sum(axis=0)
        summary, random_base, top_votes, knn_hit = self._fit_knn(x, y, perms, neighbors)
        majority_base = {"knn_accuracy": float(y[:, int(np.argmax(self.sizes_))].mean())}
        zs_hit = self._fit_zero_shot(x, y, perms, text_embeddings, summary, random_base)
        if text_embeddings is not None:
            majority_base["zero_shot_accuracy"] = majority_base["knn_accuracy"]
        single = y.sum(axis=1) == 1
        summary["n_single_label"] = int(single.sum())
        spread = self._fit_clusters(y, single, clusters, rng, summary, random_base)
        summary["baselines"] = {"random_labels": random_base, "majority_class": majority_base}
        self.summary_ = summary
        self._fit_classes(x, y, single, knn_hit, zs_hit, spread)
        self.pairs_ = self._pairs()
        self.suspects_ = self._suspects(y, top_votes, knn_hit)
        return self

    def _fit_knn(
        self, x: np.ndarray, y: np.ndarray, perms: list[np.ndarray], neighbors: np.ndarray | None
    ) -> tuple[dict, dict[str, float], np.ndarray, np.ndarray]:
        """Neighbours and kNN predictions: (the summary so far, the random-labels baseline so
        far, each image's top vote count, whether its prediction is right)."""
        n, sizes = len(x), self.sizes_
        self.neighbors_ = (
            exact_neighbors(x, x, self.k_nn, query_ids=np.arange(n))[1]
            if neighbors is None
            else np.asarray(neighbors)
        )
        k = self.neighbors_.shape[1]
        self.k_ = k
        self.knn_pred_, top_votes = knn_predict(self.neighbors_, y, sizes)
        knn_hit = hits(self.knn_pred_, y)
        summary: dict = {"n_images": n, "n_classes": int((sizes > 0).sum()), "k_nn": k}
        summary["n_multi_label"] = int((y.sum(axis=1) > 1).sum())
        summary["knn_accuracy"] = float(knn_hit.mean())
        random_base: dict[str, float] = {
            "knn_accuracy": permutation_baseline(
                y, perms, lambda yp: hits(knn_predict(self.neighbors_, yp, sizes)[0], yp).mean()
            )
        }
        return summary, random_base, top_votes, knn_hit

    def _fit_zero_shot(
        self,
        x: np.ndarray,
        y: np.ndarray,
        perms: list[np.ndarray],
        text_embeddings: np.ndarray | None,
        summary: dict,
        random_base: dict[str, float],
    ) -> np.ndarray:
        """Zero-shot predictions and accuracy (added to `summary` and `random_base`); whether
        each image's prediction is right (NaN without text embeddings)."""
        self.zero_shot_pred_ = None
        if text_embeddings is None:
            return np.full(len(x), np.nan)
        self.zero_shot_pred_ = zs_pred = zero_shot_predict(x, text_embeddings, self.sizes_)
        zs_hit = hits(zs_pred, y)
        summary["zero_shot_accuracy"] = float(zs_hit.mean())
        random_base["zero_shot_accuracy"] = permutation_baseline(
            y, perms, lambda yp: hits(zs_pred, yp).mean()
        )
        return zs_hit

    def _fit_clusters(
        self,
        y: np.ndarray,
        single: np.ndarray,
        clusters: np.ndarray | None,
        rng: np.random.Generator,
        summary: dict,
        random_base: dict[str, float],
    ) -> dict[str, np.ndarray]:
        """Cluster-vs-label scores of the single-label clustered images (added to `summary` and
        `random_base`) and how each class spreads over the clusters."""
        self.cluster_table_ = None
        self.cluster_ids_ = None
        if clusters is None:
            return {}
        clusters = np.asarray(clusters)
        clustered = clusters >= 0
        use = single & clustered
        summary["n_clustered"] = int(use.sum())
        if use.sum() >= 2:
            assigned, truth = clusters[use], np.argmax(y, axis=1)[use]
            summary.update(cluster_label_scores(assigned, truth))
            shuffled = [
                cluster_label_scores(assigned, rng.permutation(truth))
                for _ in range(self.n_permutations)
            ]
            for name in CLUSTER_METRICS:
                random_base[name] = (
                    float(np.mean([s[name] for s in shuffled])) if shuffled else float("nan")
                )
        self.cluster_table_, spread = cluster_spread(clusters[clustered], y[clustered])
        self.cluster_ids_ = spread["cluster_ids"]
        return spread

    def _fit_classes(
        self,
        x: np.ndarray,
        y: np.ndarray,
        single: np.ndarray,
        knn_hit: np.ndarray,
        zs_hit: np.ndarray,
        spread: dict[str, np.ndarray],
    ) -> None:
        """Per-class figures: geometry, clusters, accuracies; the kNN confusion matrix."""
        n_classes = y.shape[1]
        geometry = class_geometry(x, y)
        self.centroid_similarity_ = geometry["centroid_similarity"]
        self.confusion_ = self._confusion(y, knn_hit)
        primary = np.argmax(y, axis=1)
        self.classes_ = {
            "size": self.sizes_,
            "main_cluster": spread.get("main_cluster", np.full(n_classes, -1)),
            "main_cluster_share": spread.get("main_cluster_share", np.full(n_classes, np.nan)),
            "cluster_entropy": spread.get("cluster_entropy", np.full(n_classes, np.nan)),
            "cohesion": geometry["cohesion"],
            "nearest_class": geometry["nearest"],
            "separation_margin": geometry["margin"],
            "silhouette": silhouette_by_class(x[single], primary[single], n_classes),
            "knn_accuracy": per_class_mean(knn_hit, y),
            "zero_shot_accuracy": per_class_mean(zs_hit, y),
        }

    def _confusion(self, y: np.ndarray, knn_hit: np.ndarray) -> np.ndarray:
        """[C, C] true x predicted, one count per (image, positive label); correct on the diagonal."""
        n_classes = y.shape[1]
        conf = np.zeros((n_classes, n_classes), dtype=np.int64)
        rows, labels = np.nonzero(y)
        predicted = np.where(knn_hit[rows], labels, self.knn_pred_[rows])
        np.add.at(conf, (labels, predicted), 1)
        return conf

    def _pairs(self) -> list[tuple[int, int, int, float]]:
        """(a, b, kNN confusions both ways, centroid similarity): confused ones, then similar ones."""
        n_classes = len(self.confusion_)
        both = self.confusion_ + self.confusion_.T
        a, b = np.triu_indices(n_classes, k=1)
        sim = np.nan_to_num(self.centroid_similarity_[a, b], nan=-np.inf)
        keep = both[a, b] > 0
        keep[np.argsort(-sim, kind="stable")[: self.n_top_pairs]] = True
        order = np.lexsort((-sim, -both[a, b]))
        return [
            (
                int(a[i]),
                int(b[i]),
                int(both[a[i], b[i]]),
                float(self.centroid_similarity_[a[i], b[i]]),
            )
            for i in order
            if keep[i]
        ]

    def _suspects(self, y: np.ndarray, top_votes: np.ndarray, knn_hit: np.ndarray) -> list[Suspect]:
        """Images whose label disagrees with a strong kNN vote, strongest disagreement first."""
        pred_share = top_votes / float(self.k_)
        rows = np.nonzero(~knn_hit & (pred_share >= self.suspect_vote_share))[0]
        share = vote(self.neighbors_[rows], y) / float(self.k_)
        found = [
            Suspect(
                int(i), int(c), int(self.knn_pred_[i]), float(pred_share[i]), float(share[r, c])
            )
            for r, i in enumerate(rows)
            for c in np.nonzero(y[i])[0]
        ]
        return sorted(found, key=lambda s: (-s.vote_share, s.own_vote_share, s.image, s.label))
