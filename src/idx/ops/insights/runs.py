"""Insight runs in the catalog: writing one run's results and reading a stored run back.

Tables: insight_runs, class_insights, confused_pairs, suspect_labels (migration 0004),
linear_probes (0010).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from idx.jsonable import to_jsonable
from idx.ops.insights.probe import FEATURES

if TYPE_CHECKING:
    from idx.analysis.insights import LabelInsights
    from idx.indexer.index import Index
    from idx.ops.insights.labelled import LabelledSet

CLASS_COLUMNS = (
    "label_name",
    "display_name",
    "size",
    "main_cluster",
    "main_cluster_share",
    "cluster_entropy",
    "cohesion",
    "nearest_class",
    "separation_margin",
    "silhouette",
    "knn_accuracy",
    "zero_shot_accuracy",
    "linear_probe_accuracy",
)

PROBE_COLUMNS = (
    "features",
    "n_images",
    "folds",
    "c",
    "accuracy",
    "ci_low",
    "ci_high",
    "fold_accuracies",
    "fold_sd",
    "knn_accuracy",
)


PAIR_COLUMNS = ("label_a", "label_b", "knn_confusions", "centroid_similarity")


SUSPECT_COLUMNS = (
    "image_id",
    "path",
    "label_name",
    "predicted_label",
    "vote_share",
    "own_vote_share",
)


@dataclass
class InsightsResult:
    run_id: int
    cluster_run_id: int | None
    metrics: dict[str, Any]
    classes: list[tuple]  # rows in CLASS_COLUMNS order
    pairs: list[tuple]  # rows in PAIR_COLUMNS order
    suspects: list[tuple]  # rows in SUSPECT_COLUMNS order
    plots: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    probes: list[tuple] = field(default_factory=list)  # rows in PROBE_COLUMNS order

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "cluster_run_id": self.cluster_run_id,
            "metrics": self.metrics,
            "classes": [dict(zip(CLASS_COLUMNS, r)) for r in self.classes],
            "confused_pairs": [dict(zip(PAIR_COLUMNS, r)) for r in self.pairs],
            "suspect_labels": [dict(zip(SUSPECT_COLUMNS, r)) for r in self.suspects],
            "linear_probes": [dict(zip(PROBE_COLUMNS, r)) for r in self.probes],
            "plots": self.plots,
            "notes": self.notes,
        }


def load_insights(index: Index, run_id: int | None = None) -> InsightsResult:
    """A stored insight run (default: the latest) as computed, without recomputing anything."""
    runs = index.catalog.runs
    run_id = runs.resolve("insight", run_id)
    run = runs.get("insight", run_id)
    assert run is not None  # resolve checked it exists
    classes = runs.rows("insight", "class_insights", run_id, CLASS_COLUMNS)  # by label_name
    pairs = runs.rows(
        "insight",
        "confused_pairs",
        run_id,
        PAIR_COLUMNS,
        ["-knn_confusions", "-centroid_similarity"],
    )
    stored = [c for c in SUSPECT_COLUMNS if c != "path"]
    suspects = runs.rows(
        "insight",
        "suspect_labels",
        run_id,
        stored,
        ["-vote_share", "own_vote_share", "image_id", "label_name"],
    ).to_pylist()
    paths = index.catalog.images.paths_for([s["image_id"] for s in suspects])
    probes = runs.rows("insight", "linear_probes", run_id, PROBE_COLUMNS)  # by features
    order = {name: i for i, name in enumerate(FEATURES)}
    return InsightsResult(
        run_id,
        run["cluster_run_id"],
        json.loads(run["metrics"]),
        _tuples(classes.to_pylist(), CLASS_COLUMNS),
        _tuples(pairs.to_pylist(), PAIR_COLUMNS),
        _tuples([s | {"path": paths[s["image_id"]]} for s in suspects], SUSPECT_COLUMNS),
        probes=sorted(
            _tuples(probes.to_pylist(), PROBE_COLUMNS), key=lambda r: order.get(r[0], len(order))
        ),
    )


def _tuples(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[tuple]:
    return [tuple(r[c] for c in columns) for r in rows]


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def store_insights(
    index: Index,
    data: LabelledSet,
    fitted: LabelInsights,
    metrics: dict[str, Any],
    cluster_run_id: int | None,
    probes: dict[str, dict[str, Any]] | None = None,
) -> InsightsResult:
    """Write one run (insight_runs + its per-class, pair, suspect and linear probe rows) in one
    transaction."""
    names = data.label_names
    classes = _class_rows(data, fitted, probes)
    probe_rows = _probe_rows(probes)
    pairs = [(names[a], names[b], n, _nan_to_none(sim)) for a, b, n, sim in fitted.pairs_]
    suspects = [
        (
            int(data.ids[s.image]),
            data.paths[s.image],
            names[s.label],
            names[s.predicted],
            s.vote_share,
            s.own_vote_share,
        )
        for s in fitted.suspects_
    ]
    runs = index.catalog.runs
    with index.catalog.transaction():
        run_id = runs.create(
            "insight",
            {
                "cluster_run_id": cluster_run_id,
                "k_nn": fitted.k_,
                "model": metrics["model"],
                "metrics": json.dumps(to_jsonable(metrics)),
            },
        )
        for table, columns, rows in (
            ("class_insights", CLASS_COLUMNS, classes),
            ("confused_pairs", PAIR_COLUMNS, pairs),
            ("suspect_labels", SUSPECT_COLUMNS, suspects),
            ("linear_probes", PROBE_COLUMNS, probe_rows),
        ):
            if rows:
                runs.add_rows(
                    "insight",
                    table,
                    run_id,
                    {c: [r[j] for r in rows] for j, c in enumerate(columns) if c != "path"},
                )
    return InsightsResult(
        run_id, cluster_run_id, metrics, classes, pairs, suspects, probes=probe_rows
    )


def _class_rows(
    data: LabelledSet, fitted: LabelInsights, probes: dict[str, dict[str, Any]] | None
) -> list[tuple]:
    """One row (CLASS_COLUMNS) for each class with at least one image."""
    names = data.label_names
    per = fitted.classes_
    probe_per_class = (probes or {}).get("clip", {}).get("per_class") or [None] * len(names)
    present = np.nonzero(per["size"] > 0)[0]
    return [
        tuple(
            _nan_to_none(v)
            for v in (
                names[c],
                data.display_names[c],
                per["size"][c],
                per["main_cluster"][c] if per["main_cluster"][c] >= 0 else None,
                per["main_cluster_share"][c],
                per["cluster_entropy"][c],
                per["cohesion"][c],
                names[per["nearest_class"][c]] if len(present) > 1 else None,
                per["separation_margin"][c],
                per["silhouette"][c],
                per["knn_accuracy"][c],
                per["zero_shot_accuracy"][c],
                probe_per_class[c],
            )
        )
        for c in present
    ]


def _probe_rows(probes: dict[str, dict[str, Any]] | None) -> list[tuple]:
    """One row (PROBE_COLUMNS) for each set of features probed."""
    return [
        (
            name,
            p["n_images"],
            p["folds"],
            p["C"],
            p["accuracy"],
            p["ci95"][0],
            p["ci95"][1],
            p["fold_accuracies"],
            _nan_to_none(p["fold_sd"]),
            p.get("knn_accuracy"),
        )
        for name, p in (probes or {}).items()
    ]
