"""K-means as a scikit-learn style estimator whose Lloyd iterations run in a pluggable engine.

The engine is a callable `engine(X, initial_centres, n_iter) -> centres`, i.e. just the Lloyd
iterations; idx passes a FAISS one from the indexer layer (this package never imports faiss).
Without one, scikit-learn does them. Seeding (k-means++ or random, from random_state), restarts,
final assignments, distances and inertia happen here, the same whatever the engine, and clusters are
numbered by size (0 is the largest) so that runs compare.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from idx.analysis.projection import METHODS as PROJECTION_METHODS
from idx.errors import UsageError

METHODS = ("kmeans",)
#: What K-means can run on: the embeddings themselves, or a 2-D map of them.
SPACES = ("embedding", *PROJECTION_METHODS)

Engine = Callable[[np.ndarray, np.ndarray, int], np.ndarray]
_CHUNK = 16_384
INITS = ("k-means++", "random")
#: Points per centre that k-means++ draws its seeds from (FAISS trains on 256 per centre).
SEED_POINTS_PER_CENTRE = 256


def check_k(k: int, n: int, what: str = "images") -> None:
    """k must split n points into at least 2 clusters, each with room for a neighbour."""
    if n == 0:
        raise UsageError(f"there are no {what} to cluster")
    if k < 2:
        raise UsageError(f"k={k} is too small: clustering needs k >= 2")
    if k >= n:
        raise UsageError(
            f"k={k} is too large for {n} {what}: k must be below the number of {what} "
            f"(choose k between 2 and {max(2, n - 1)})"
            + ("" if n > 2 else f"; add more {what} first")
        )


def sklearn_engine(X: np.ndarray, init: np.ndarray, n_iter: int) -> np.ndarray:
    """Lloyd iterations in scikit-learn from the given centres (tol=0: all n_iter iterations
    unless the assignment stops changing)."""
    from sklearn.cluster import KMeans as SKKMeans

    model = SKKMeans(n_clusters=len(init), init=init, n_init=1, max_iter=n_iter, tol=0.0)
    return model.fit(X).cluster_centers_.astype(np.float32)


def kmeans_plus_plus(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each new centre is drawn with probability
    proportional to its squared distance from the nearest centre so far. It spares sweeps of k
    the bad local minima of random starts. Its k passes over the data are memory-bound, so seeds
    are drawn from a random sample of SEED_POINTS_PER_CENTRE * k points (as FAISS trains on a
    sample); the Lloyd iterations then run on KMeans' training points."""
    if len(X) > SEED_POINTS_PER_CENTRE * k:
        X = X[np.sort(rng.choice(len(X), size=SEED_POINTS_PER_CENTRE * k, replace=False))]
    n = len(X)
    sq = np.einsum("ij,ij->i", X, X).astype(np.float64)
    chosen = [int(rng.integers(n))]
    closest = np.maximum(sq + sq[chosen[0]] - 2.0 * (X @ X[chosen[0]]), 0.0)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # every point sits on a centre already: take any other point
            pick = int(rng.choice(np.setdiff1d(np.arange(n), chosen)))
        else:
            pick = int(np.searchsorted(np.cumsum(closest), rng.random() * total))
            pick = min(pick, n - 1)
        chosen.append(pick)
        closest = np.minimum(closest, np.maximum(sq + sq[pick] - 2.0 * (X @ X[pick]), 0.0))
    return X[chosen].copy()


def nearest_centres(X: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest centre, Euclidean distance to it) for each row of X."""
    X = np.asarray(X, dtype=np.float32)
    centres = np.asarray(centres, dtype=np.float32)
    c_sq = np.einsum("ij,ij->i", centres, centres)
    labels = np.empty(len(X), dtype=np.int64)
    dist = np.empty(len(X), dtype=np.float64)
    for start in range(0, len(X), _CHUNK):
        part = X[start : start + _CHUNK]
        # |x|^2 is the same for every centre, so it does not change the argmin.
        best = (c_sq[None, :] - 2.0 * (part @ centres.T)).argmin(axis=1)
        labels[start : start + len(part)] = best
        # The distance itself is taken directly: the expansion loses precision for near points.
        diff = part - centres[best]
        dist[start : start + len(part)] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return labels, dist


class KMeans:
    """K-means clustering.

    >>> km = KMeans(n_clusters=8, random_state=0).fit(X)
    >>> km.labels_.shape == km.distances_.shape == (len(X),), km.cluster_centers_.shape[0]
    (True, 8)
    >>> bool(km.inertia_ > 0), sorted(set(km.labels_.tolist())) == list(range(8))
    (True, True)

    Parameters are stored unchanged; `fit` validates them. Same data, same random_state and the
    same engine give identical labels and centres.

    `max_points_per_centre` (FAISS's rule, default 256): when there are more than that many
    points per centre, the Lloyd iterations run on a seeded sample of that size and every point
    is then assigned to its nearest final centre; None iterates over every point.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str = "k-means++",
        n_iter: int = 25,
        n_init: int = 1,
        random_state: int = 0,
        engine: Engine | None = None,
        max_points_per_centre: int | None = 256,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_iter = n_iter
        self.n_init = n_init
        self.random_state = random_state
        self.engine = engine
        self.max_points_per_centre = max_points_per_centre

    def fit(self, X: np.ndarray) -> KMeans:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise UsageError(f"K-means needs a 2-D array of points, got shape {X.shape}")
        check_k(int(self.n_clusters), X.shape[0], "points")
        if self.n_iter < 1 or self.n_init < 1:
            raise UsageError(
                f"n_iter={self.n_iter} and n_init={self.n_init} must both be at least 1"
            )
        if self.init not in INITS:
            raise UsageError(f"init {self.init!r} is unknown; use one of {', '.join(INITS)}")
        engine = self.engine or sklearn_engine
        rng = np.random.default_rng(self.random_state)
        train = X
        cap = self.max_points_per_centre
        if cap is not None and len(X) > int(cap) * int(self.n_clusters):
            rows = np.sort(rng.choice(len(X), size=int(cap) * int(self.n_clusters), replace=False))
            train = X[rows]
        best: tuple[float, np.ndarray, np.ndarray, np.ndarray] | None = None
        for _ in range(int(self.n_init)):
            if self.init == "k-means++":
                start = kmeans_plus_plus(train, int(self.n_clusters), rng)
            else:
                start = train[rng.choice(len(train), size=int(self.n_clusters), replace=False)]
            centres = np.asarray(engine(train, start.copy(), int(self.n_iter)), dtype=np.float32)
            labels, distances = nearest_centres(X, centres)
            inertia = float(np.square(distances).sum())
            if best is None or inertia < best[0]:
                best = (inertia, centres, labels, distances)
        assert best is not None
        inertia, centres, labels, distances = best
        # Renumber by size (largest first, ties by engine order) so labels do not depend on
        # the engine's arbitrary numbering.
        sizes = np.bincount(labels, minlength=len(centres))
        order = np.lexsort((np.arange(len(centres)), -sizes))
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        self.cluster_centers_ = centres[order]
        self.labels_ = rank[labels]
        self.distances_ = distances
        self.inertia_ = inertia
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The nearest learned centre of each row of X."""
        return nearest_centres(X, self.cluster_centers_)[0]

    def fit_predict(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).labels_
