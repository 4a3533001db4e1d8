"""Clusterings and maps against the index's labels, wherever it has them: purity, NMI and ARI over
the images with exactly one positive label (the rule of `idx insights`), and each image's class
for colouring a map."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from idx.indexer.index import Index
from idx.ops.labels.positives import load_positives

#: The clustering-versus-labels scores sweep and cluster report, in that order.
SCORES = ("nmi", "ari", "purity")


@dataclass
class Truth:
    """The labels of some images (ids, in the caller's order)."""

    single: np.ndarray  # bool [n]: images with exactly one positive label
    codes: np.ndarray  # [n] each image's class for scoring (-1 unless single)
    primary: np.ndarray  # [n] each image's best label (-1 when it has none), for colouring
    names: list[str]  # display name of each class

    @property
    def n_scored(self) -> int:
        return int(self.single.sum())

    @property
    def n_classes(self) -> int:
        return len(np.unique(self.codes[self.single]))

    def describe(self) -> str:
        return f"{self.n_scored} single-label images in {self.n_classes} classes"


def label_truth(index: Index, ids: np.ndarray) -> Truth | None:
    """The positive labels of `ids`; None when the index has no labels for any of them."""
    positives = load_positives(index.catalog)
    if positives is None:
        return None
    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    y = np.zeros((len(ids), len(positives.names)), dtype=bool)
    y[order] = positives.matrix(ids[order])
    if not y.any():
        return None
    single = y.sum(axis=1) == 1
    at = np.clip(np.searchsorted(positives.ids, ids), 0, len(positives.ids) - 1)
    labelled = y.any(axis=1)
    primary = np.where(labelled, positives.primary[at], -1)
    return Truth(single, np.where(single, y.argmax(axis=1), -1), primary, positives.display)


def label_scores(truth: Truth, clusters: np.ndarray) -> dict[str, float] | None:
    """NMI, ARI and purity of `clusters` (aligned with the truth's images) against the labels of
    the single-label images; None when fewer than two of them carry a label."""
    if truth.n_scored < 2:
        return None
    from idx.analysis.insights import cluster_label_scores  # scikit-learn: load when used

    scores = cluster_label_scores(np.asarray(clusters)[truth.single], truth.codes[truth.single])
    return {name: scores[name] for name in SCORES}
