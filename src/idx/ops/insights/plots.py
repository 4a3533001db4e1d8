"""Draw the insight plots: picks what to show and the thumbnails of the contact sheet."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from idx.analysis import plots_labels
from idx.errors import DecodeError
from idx.ops.insights.runs import plot_path
from idx.ops.thumbnails import thumbnail

if TYPE_CHECKING:
    from idx.analysis.insights import LabelInsights
    from idx.ops.insights.labelled import LabelledSet
    from idx.ops.insights.runs import InsightsResult

log = logging.getLogger(__name__)

PAIRS_SHOWN = 4
THUMBS_PER_SIDE = 3
THUMB_SIDE = 96


def draw_insights(
    data: LabelledSet, fitted: LabelInsights, result: InsightsResult, out: Path
) -> dict[str, str]:
    """Write the PNGs under `out` (names carry the run id); returns {plot name: path}."""
    untrained = bool(result.metrics.get("untrained"))
    names = data.display_names
    written: dict[str, Path] = {}

    def path(name: str) -> Path:
        return plot_path(out, result.run_id, name)

    if fitted.cluster_table_ is not None and fitted.cluster_table_.size:
        assert fitted.cluster_ids_ is not None  # fit sets both together
        written["label_cluster_heatmap"] = plots_labels.label_cluster_heatmap(
            fitted.cluster_table_,
            names,
            fitted.cluster_ids_,
            path("label_cluster_heatmap"),
            untrained,
        )
    per = fitted.classes_
    measures = {
        k: per[k]
        for k in (
            "knn_accuracy",
            "zero_shot_accuracy",
            "cohesion",
            "separation_margin",
            "silhouette",
        )
        if not np.all(np.isnan(per[k]))
    }
    written["class_bars"] = plots_labels.class_bars(names, measures, path("class_bars"), untrained)
    written["knn_confusion"] = plots_labels.knn_confusion_heatmap(
        fitted.confusion_, names, path("knn_confusion"), untrained
    )
    pairs = [(a, b) for a, b, n, _ in fitted.pairs_ if n > 0][:PAIRS_SHOWN]
    if pairs:
        sheet = [
            (names[a], names[b], _thumbs(data, fitted, a, b), _thumbs(data, fitted, b, a))
            for a, b in pairs
        ]
        written["confused_pairs_sheet"] = plots_labels.confused_pairs_sheet(
            sheet, path("confused_pairs_sheet"), untrained
        )
    return {name: str(file) for name, file in written.items()}


def _thumbs(data: LabelledSet, fitted: LabelInsights, label: int, other: int) -> list[np.ndarray]:
    """Images of `label` that kNN took for `other` first, then other images of `label`."""
    members = np.nonzero(data.y[:, label])[0]
    mistaken = members[fitted.knn_pred_[members] == other]
    chosen = list(dict.fromkeys([*mistaken.tolist(), *members.tolist()]))[:THUMBS_PER_SIDE]
    thumbs = []
    for row in chosen:
        try:
            thumbs.append(thumbnail(data.paths[row], THUMB_SIDE))
        except DecodeError as exc:
            log.warning("no thumbnail for %s: %s", data.paths[row], exc)
    return thumbs
