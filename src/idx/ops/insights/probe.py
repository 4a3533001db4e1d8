"""The linear probe of an insight run, on the CLIP embeddings and on the same baselines as
`idx cluster --baseline`: random unit vectors of the same shape (no structure) and colour
histograms of the same images (what needs no model). kNN accuracy is measured on the baselines too,
so each label metric that the features alone decide has both baselines beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from idx.analysis import baselines
from idx.knn import exact_neighbors
from idx.ops.thumbnails import decode_thumbnails
from idx.progress import Progress

if TYPE_CHECKING:
    from idx.indexer.index import Index
    from idx.ops.insights.labelled import LabelledSet

#: Side of the decoded images the colour histograms are computed from (as `idx cluster`).
BASELINE_SIDE = 64
#: Features probed, in the order stored; "clip" is the index's own embeddings.
FEATURES = ("clip", "random_vectors", "colour_histogram")


def baseline_features(
    index: Index, data: LabelledSet, seed: int, progress: Progress | None
) -> dict[str, np.ndarray]:
    """The baselines' feature rows for the labelled images, in their order."""
    decoded = decode_thumbnails(index, data.ids, BASELINE_SIDE, progress, "baseline")
    n, d = data.vectors.shape
    return {
        "random_vectors": baselines.random_vectors(n, d, random_state=seed),
        "colour_histogram": baselines.colour_histograms(decoded),
    }


def probe_all(
    index: Index,
    data: LabelledSet,
    *,
    folds: int,
    k_nn: int,
    seed: int,
    progress: Progress | None = None,
) -> dict[str, dict[str, Any]]:
    """features -> the linear probe's summary (and, for a baseline, its kNN accuracy)."""
    # scikit-learn is slow to import: load it with the probe
    from idx.analysis.insights import hits, knn_predict
    from idx.analysis.linear_probe import LinearProbe

    features = {"clip": data.vectors} | baseline_features(index, data, seed, progress)
    sizes = data.y.sum(axis=0)
    out: dict[str, dict[str, Any]] = {}
    for name in FEATURES:
        x = features[name]
        probe = LinearProbe(n_splits=folds, random_state=seed).fit(x, data.primary, data.y)
        out[name] = probe.summary()
        if name != "clip":
            unit = baselines.normalise_rows(x)
            neighbors = exact_neighbors(unit, unit, k_nn, query_ids=np.arange(len(unit)))[1]
            out[name]["knn_accuracy"] = float(
                hits(knn_predict(neighbors, data.y, sizes)[0], data.y).mean()
            )
        out[name]["per_class"] = _per_class(probe.hits_, data.y)
    return out


def _per_class(hits: np.ndarray, y: np.ndarray) -> list[float | None]:
    """Probe accuracy over each class's images (an image counts for each of its labels)."""
    sizes = y.sum(axis=0)
    correct = y.T.astype(np.int64) @ hits.astype(np.int64)
    return [float(c / s) if s else None for c, s in zip(correct, sizes)]
