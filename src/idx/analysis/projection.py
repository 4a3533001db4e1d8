"""2-D maps of embeddings: t-SNE (openTSNE), PCA (scikit-learn), UMAP (umap-learn, optional).

t-SNE runs in openTSNE rather than scikit-learn: its FFT-accelerated gradients (FIt-SNE) scale to
100k points, it starts from a PCA layout (global structure kept, results reproducible from the
seed) and its callbacks give progress and a way to interrupt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from idx.errors import UsageError

METHODS = ("tsne", "pca", "umap")
#: Iterations of t-SNE after the 250 of early exaggeration (openTSNE's defaults).
TSNE_ITERATIONS = 500
TSNE_EARLY_ITERATIONS = 250

#: progress(done, total) in iterations.
Progress = Callable[[int, int], None]


def effective_perplexity(perplexity: float, n: int) -> float:
    """t-SNE needs about 3 x perplexity neighbours per point: lower it for small sets."""
    return float(min(perplexity, max((n - 1) / 3.0, 1.0)))


class Projector:
    """Project rows of X to 2-D.

    >>> xy = Projector("tsne", perplexity=30, random_state=0).fit(X).embedding_
    >>> xy.shape == (len(X), 2)
    True

    `params_` holds what was actually used (e.g. the perplexity lowered for a small set).
    """

    def __init__(
        self,
        method: str = "tsne",
        *,
        perplexity: float = 30.0,
        n_iter: int = TSNE_ITERATIONS,
        early_exaggeration_iter: int = TSNE_EARLY_ITERATIONS,
        random_state: int = 0,
        n_jobs: int = 1,
        progress: Progress | None = None,
    ):
        self.method = method
        self.perplexity = perplexity
        self.n_iter = n_iter
        self.early_exaggeration_iter = early_exaggeration_iter
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.progress = progress

    def fit(self, X: np.ndarray) -> Projector:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if self.method not in METHODS:
            raise UsageError(
                f"projection method {self.method!r} is unknown; use one of {', '.join(METHODS)}"
            )
        n = X.shape[0]
        if n < 2:
            raise UsageError(
                f"a 2-D map needs at least 2 images, the index holds {n}; add more with "
                "`idx add FOLDER`"
            )
        if self.perplexity <= 0:
            raise UsageError(f"perplexity must be positive, not {self.perplexity}")
        fit = {"tsne": self._tsne, "pca": self._pca, "umap": self._umap}[self.method]
        xy, params = fit(X)
        self.embedding_ = np.asarray(xy, dtype=np.float64)
        self.params_ = params
        return self

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).embedding_

    def _tsne(self, X: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        from openTSNE import TSNE

        perplexity = effective_perplexity(self.perplexity, len(X))
        total = self.early_exaggeration_iter + self.n_iter
        every = 25
        done = [0]

        def tick(iteration: int, error: float, embedding: Any) -> bool:
            done[0] += every
            if self.progress:
                self.progress(min(done[0], total), total)
            return False

        tsne = TSNE(
            n_components=2,
            perplexity=perplexity,
            n_iter=self.n_iter,
            early_exaggeration_iter=self.early_exaggeration_iter,
            initialization="pca",
            metric="cosine",
            n_jobs=self.n_jobs,
            random_state=self.random_state,
            callbacks=tick if self.progress else None,
            callbacks_every_iters=every,
            verbose=False,
        )
        xy = np.asarray(tsne.fit(X))
        params = {
            "perplexity": perplexity,
            "perplexity_requested": self.perplexity,
            "n_iter": self.n_iter,
            "early_exaggeration_iter": self.early_exaggeration_iter,
            "initialization": "pca",
            "metric": "cosine",
        }
        return xy, params

    def _pca(self, X: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=self.random_state).fit(X)
        xy = pca.transform(X)
        return xy, {"explained_variance_ratio": [float(v) for v in pca.explained_variance_ratio_]}

    def _umap(self, X: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        try:
            import umap
        except ImportError:
            raise UsageError(
                "UMAP needs the umap-learn package, which is not installed; install it with "
                "`pip install umap-learn` (or `pip install 'idx[umap]'`), or use --method tsne"
            ) from None
        neighbours = int(min(15, len(X) - 1))
        model = umap.UMAP(
            n_components=2, n_neighbors=neighbours, metric="cosine", random_state=self.random_state
        )
        return model.fit_transform(X), {"n_neighbors": neighbours, "metric": "cosine"}
