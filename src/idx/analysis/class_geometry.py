"""Where each class sits in an embedding space, from unit vectors X [n, d] and a boolean label
matrix Y [n, C]: how close its images are to each other (cohesion) and to the nearest other class
(separation margin), how it spreads over clusters, and its silhouette. Pure numpy and
scikit-learn; `analysis.insights.LabelInsights` puts them together with kNN and zero-shot."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def per_class_mean(values: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean of a per-image value over each class's images (an image counts for each label)."""
    sizes = y.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (y.T.astype(np.float64) @ values.astype(np.float64)) / sizes


def class_geometry(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Cohesion, centroid similarity, nearest class and separation margin, per class.

    cohesion[c] = mean cosine between two different images of c; cross[a, b] = mean cosine
    between an image of a and one of b; margin[c] = cohesion[c] - cross[c, nearest[c]], where
    nearest[c] is the other class whose centroid is most cosine-similar to c's.
    """
    yf = y.astype(np.float64)
    sizes = yf.sum(axis=0)
    sums = yf.T @ x.astype(np.float64)  # [C, d]
    sq_norms = yf.T @ np.einsum("ij,ij->i", x, x).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        pairs = sizes * (sizes - 1)
        cohesion = np.where(
            pairs > 0, (np.einsum("ij,ij->i", sums, sums) - sq_norms) / np.maximum(pairs, 1), np.nan
        )
        cross = (sums @ sums.T) / np.outer(sizes, sizes)
        norms = np.linalg.norm(sums, axis=1)
        centroid_sim = (sums @ sums.T) / np.outer(norms, norms)
    masked = np.where(
        np.eye(len(sizes), dtype=bool), -np.inf, np.nan_to_num(centroid_sim, nan=-np.inf)
    )
    nearest = np.argmax(masked, axis=1) if len(sizes) > 1 else np.zeros(len(sizes), np.int64)
    margin = cohesion - cross[np.arange(len(sizes)), nearest]
    if len(sizes) < 2:
        margin = np.full(len(sizes), np.nan)
    return {
        "cohesion": cohesion,
        "centroid_similarity": centroid_sim,
        "nearest": nearest,
        "margin": margin,
    }


def cluster_spread(clusters: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Label x cluster counts [C, K] and per class: main cluster, its share, entropy in bits."""
    ids = np.unique(clusters)
    onehot = (clusters[:, None] == ids[None, :]).astype(np.int64)
    table = y.T.astype(np.int64) @ onehot
    totals = table.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = table / totals
        logs = np.where(share > 0, np.log2(np.where(share > 0, share, 1)), 0.0)
    entropy = -(share * logs).sum(axis=1)
    main = table.argmax(axis=1)
    empty = totals[:, 0] == 0
    return table, {
        "cluster_ids": ids,
        "main_cluster": np.where(empty, -1, ids[main]),
        "main_cluster_share": np.where(empty, np.nan, share[np.arange(len(main)), main]),
        "cluster_entropy": np.where(empty, np.nan, entropy),
    }


def silhouette_by_class(x: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean cosine silhouette per class over single-label images (NaN when undefined)."""
    out = np.full(n_classes, np.nan)
    if len(np.unique(labels)) < 2 or len(labels) < 3:
        return out
    samples = skm.silhouette_samples(x, labels, metric="cosine")
    for c in np.unique(labels):
        out[c] = samples[labels == c].mean()
    return out
