"""FAISS Lloyd iterations: the engine of idx.analysis.clustering.KMeans (analysis never imports
faiss)."""

from __future__ import annotations

import faiss
import numpy as np


def faiss_engine(X: np.ndarray, init: np.ndarray, n_iter: int) -> np.ndarray:
    """Centres after `n_iter` Lloyd iterations over every row of X, starting from `init`."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    n, d = X.shape
    k = len(init)
    km = faiss.Kmeans(
        d,
        k,
        niter=n_iter,
        verbose=False,
        # FAISS by default trains on at most 256 points per centre and warns below 39; idx
        # clusters every image it was given, however few.
        max_points_per_centroid=max(n, 1),
        min_points_per_centroid=1,
    )
    km.train(X, init_centroids=np.ascontiguousarray(init, dtype=np.float32))
    return np.array(km.centroids, dtype=np.float32).reshape(k, d)
