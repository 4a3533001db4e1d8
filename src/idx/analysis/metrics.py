"""Cluster quality: silhouette (exact, or sampled with a confidence interval), Davies-Bouldin,
Calinski-Harabasz.

Cosine silhouettes are always exact: for L2-normalised rows the mean cosine distance from a point to
a cluster is `1 - x . mean(cluster)`, so every a(i) and b(i) costs O(n k d) instead of O(n^2 d).
Euclidean silhouettes (2-D maps) are exact up to `max_exact` points; beyond, s(i) is computed for a
random sample of points against ALL points (an unbiased estimate of the mean, unlike scoring a
sub-sample against itself) and reported with a 95% confidence interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_samples

from idx.errors import UsageError

#: Above this many points a Euclidean silhouette is estimated from a sample.
MAX_EXACT = 10_000
#: Points whose s(i) is computed when sampling.
SAMPLE_SIZE = 4_000
_Z95 = 1.959963984540054
_CHUNK = 2_048


@dataclass
class Silhouette:
    """Mean silhouette and the per-point values it came from (all points, or the sample)."""

    score: float
    values: np.ndarray
    indices: np.ndarray
    metric: str
    exact: bool
    sample_size: int | None = None
    ci95: tuple[float, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "silhouette": self.score,
            "silhouette_metric": self.metric,
            "silhouette_exact": self.exact,
            "silhouette_sample_size": self.sample_size,
            "silhouette_ci95": list(self.ci95) if self.ci95 else None,
        }


@dataclass
class ClusterMetrics:
    """The three metrics of one labelling of one set of vectors."""

    silhouette: Silhouette
    davies_bouldin: float
    calinski_harabasz: float
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return (
            self.silhouette.as_dict()
            | {"davies_bouldin": self.davies_bouldin, "calinski_harabasz": self.calinski_harabasz}
            | self.extra
        )


def check_labels(n: int, labels: np.ndarray) -> int:
    """The number of distinct labels; the metrics need 2 <= that <= n - 1."""
    if len(labels) != n:
        raise UsageError(f"{len(labels)} labels for {n} points; give one label per point")
    found = len(np.unique(labels))
    if not 2 <= found <= n - 1:
        raise UsageError(
            f"cluster metrics need between 2 and n-1 = {n - 1} distinct clusters, got {found}; "
            "choose another k"
        )
    return found


def silhouette(
    X: np.ndarray,
    labels: np.ndarray,
    *,
    metric: str = "cosine",
    max_exact: int = MAX_EXACT,
    sample_size: int = SAMPLE_SIZE,
    random_state: int | None = 0,
) -> Silhouette:
    """Mean silhouette of `labels` on rows of X (metric "cosine" or "euclidean")."""
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    n = X.shape[0]
    check_labels(n, labels)
    if metric == "cosine":
        values = _cosine_silhouette(X, labels)
        return Silhouette(float(values.mean()), values, np.arange(n), metric, exact=True)
    if metric != "euclidean":
        raise UsageError(f"silhouette metric {metric!r} is not supported; use cosine or euclidean")
    if n <= max_exact:
        values = silhouette_samples(X, labels, metric="euclidean")
        return Silhouette(float(values.mean()), values, np.arange(n), metric, exact=True)
    rng = np.random.default_rng(random_state)
    m = min(sample_size, n)
    picked = np.sort(rng.choice(n, size=m, replace=False))
    values = _sampled_euclidean_silhouette(X, labels, picked)
    mean = float(values.mean())
    # Sampling without replacement from a finite population: apply the correction factor.
    half = _Z95 * float(values.std(ddof=1)) / np.sqrt(m) * float(np.sqrt((n - m) / (n - 1)))
    return Silhouette(mean, values, picked, metric, False, m, (mean - half, mean + half))


def _onehot(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cluster index per point, one-hot matrix [n, k], cluster sizes [k])."""
    uniq, inverse = np.unique(labels, return_inverse=True)
    onehot = np.zeros((len(labels), len(uniq)))
    onehot[np.arange(len(labels)), inverse] = 1.0
    return inverse, onehot, onehot.sum(axis=0)


def _from_mean_distances(
    mean_to: np.ndarray, own: np.ndarray, sizes: np.ndarray, self_dist: np.ndarray
) -> np.ndarray:
    """s(i) from each point's mean distance to every cluster (self included in its own)."""
    rows = np.arange(len(own))
    own_size = sizes[own]
    with np.errstate(invalid="ignore", divide="ignore"):
        a = (mean_to[rows, own] * own_size - self_dist) / (own_size - 1)
    others = mean_to.copy()
    others[rows, own] = np.inf
    b = others.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (b - a) / np.maximum(a, b)
    # scikit-learn's convention: a point alone in its cluster scores 0.
    return np.where(own_size > 1, np.nan_to_num(s), 0.0)


def _cosine_silhouette(X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    unit = X / np.where(norms > 0, norms, 1.0)
    own, onehot, sizes = _onehot(labels)
    sums = onehot.T @ unit  # [k, d]
    mean_to = 1.0 - (unit @ sums.T) / sizes  # mean cosine distance to each cluster
    self_dist = 1.0 - np.einsum("ij,ij->i", unit, unit)  # 0 except for zero vectors
    return _from_mean_distances(mean_to, own, sizes, self_dist)


def _sampled_euclidean_silhouette(
    X: np.ndarray, labels: np.ndarray, picked: np.ndarray
) -> np.ndarray:
    own, onehot, sizes = _onehot(labels)
    sq = np.einsum("ij,ij->i", X, X)
    out = np.empty(len(picked))
    for start in range(0, len(picked), _CHUNK):
        rows = picked[start : start + _CHUNK]
        d2 = sq[rows, None] + sq[None, :] - 2.0 * (X[rows] @ X.T)
        dist = np.sqrt(np.maximum(d2, 0.0))
        dist[np.arange(len(rows)), rows] = 0.0
        mean_to = (dist @ onehot) / sizes
        out[start : start + len(rows)] = _from_mean_distances(
            mean_to, own[rows], sizes, np.zeros(len(rows))
        )
    return out


def cluster_metrics(
    X: np.ndarray,
    labels: np.ndarray,
    *,
    metric: str = "cosine",
    random_state: int | None = 0,
) -> ClusterMetrics:
    """Silhouette (`metric`), Davies-Bouldin and Calinski-Harabasz (both Euclidean) of a labelling."""
    sil = silhouette(X, labels, metric=metric, random_state=random_state)
    X64 = np.asarray(X, dtype=np.float64)
    return ClusterMetrics(
        silhouette=sil,
        davies_bouldin=float(davies_bouldin_score(X64, labels)),
        calinski_harabasz=float(calinski_harabasz_score(X64, labels)),
    )
