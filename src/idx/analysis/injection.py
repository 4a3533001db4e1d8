"""Clustering with and without injected (corrupted) images, side by side.

`InjectionComparison(k).fit(vectors, injected, labels)` clusters all images, then only the clean
ones, with the same k-means settings, and records silhouette (cosine), label purity, where the
injected images land and how much the clean images' grouping moved (adjusted Rand index).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Kinds of injected image that are not a registered perturbation of a sampled image.
SYNTHETIC_KINDS = ("pure_noise", "blank")


def synthetic_image(kind: str, like: Image.Image, rng: np.random.Generator) -> Image.Image:
    """An image of `like`'s size: uniform RGB noise, or one flat colour (its mean colour)."""
    w, h = like.size
    if kind == "pure_noise":
        return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    if kind == "blank":
        mean = np.asarray(like, dtype=np.float32).reshape(-1, 3).mean(axis=0)
        return Image.new("RGB", (w, h), tuple(int(round(c)) for c in mean))
    raise ValueError(f"unknown synthetic kind {kind!r}; use one of {SYNTHETIC_KINDS}")


def purity(assignments: np.ndarray, labels: np.ndarray) -> float | None:
    """Share of labelled images whose cluster's majority label is theirs (labels -1 = none)."""
    mask = labels >= 0
    if not mask.any():
        return None
    hits = 0
    for c in np.unique(assignments[mask]):
        in_c = labels[mask & (assignments == c)]
        hits += np.bincount(in_c).max()
    return float(hits / mask.sum())


def silhouette(vectors: np.ndarray, assignments: np.ndarray, seed: int) -> float | None:
    from sklearn.metrics import silhouette_score  # scikit-learn takes seconds to import

    n_clusters = len(np.unique(assignments))
    if n_clusters < 2 or n_clusters >= len(vectors):
        return None
    size = min(len(vectors), 5000)  # silhouette is quadratic; a seeded sample bounds it
    return float(
        silhouette_score(vectors, assignments, metric="cosine", sample_size=size, random_state=seed)
    )


class InjectionComparison:
    """Parameters: k (clusters), random_state. Learned: with_, without_, landing_, clean_ari_."""

    def __init__(self, k: int = 8, random_state: int = 0):
        self.k = k
        self.random_state = random_state

    def _cluster(self, vectors: np.ndarray) -> np.ndarray:
        from sklearn.cluster import KMeans

        k = min(self.k, len(vectors))
        return KMeans(k, n_init=4, random_state=self.random_state).fit_predict(vectors)

    def fit(
        self, vectors: np.ndarray, injected: np.ndarray, labels: np.ndarray | None = None
    ) -> InjectionComparison:
        """vectors [n, d]; injected [n] bool; labels [n] label index (-1 none) or None."""
        from sklearn.metrics import adjusted_rand_score

        injected = np.asarray(injected, dtype=bool)
        clean = ~injected
        if clean.sum() < 2 or not injected.any():
            raise ValueError("need at least 2 clean images and 1 injected image to compare")
        if labels is None:
            labels = np.full(len(vectors), -1, dtype=np.int64)
        all_assign = self._cluster(vectors)
        clean_assign = self._cluster(vectors[clean])
        self.with_ = self._summary(vectors, all_assign, labels, int(injected.sum()))
        self.without_ = self._summary(vectors[clean], clean_assign, labels[clean], 0)
        self.clean_ari_ = float(adjusted_rand_score(clean_assign, all_assign[clean]))
        self.landing_ = []
        for c in np.unique(all_assign):
            members = all_assign == c
            n_inj = int((members & injected).sum())
            self.landing_.append(
                {
                    "cluster": int(c),
                    "size": int(members.sum()),
                    "injected": n_inj,
                    "injected_share": n_inj / int(members.sum()),
                    "share_of_injected": n_inj / int(injected.sum()),
                }
            )
        self.assignments_ = all_assign
        return self

    def _summary(self, vectors, assignments, labels, n_injected) -> dict[str, float | int | None]:
        return {
            "n": len(vectors),
            "injected": n_injected,
            "k": int(len(np.unique(assignments))),
            "silhouette": silhouette(vectors, assignments, self.random_state),
            "purity": purity(assignments, labels),
        }
