"""Insight runs in the catalog: writing one run's results and reading a stored run back, the
newest run with a command's inputs (`idx insights --show`), and the kind's entry for `idx runs`.

Tables: insight_runs, class_insights, confused_pairs, suspect_labels (migration 0004),
linear_probes (0010).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from idx import config
from idx.jsonable import to_jsonable
from idx.ops.insights.probe import FEATURES
from idx.ops.run_type import RunType, figure, latest_matching

if TYPE_CHECKING:
    from idx.analysis.insights import LabelInsights
    from idx.indexer.index import Index
    from idx.ops.insights.labelled import LabelledSet
    from idx.ops.labels.hierarchy import Rollup

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

#: The plots of a run, {plot name: file suffix}: <plots>/insights-<run>-<suffix>.png.
PLOT_FILES = {
    "label_cluster_heatmap": "label-cluster",
    "class_bars": "classes",
    "knn_confusion": "knn-confusion",
    "confused_pairs_sheet": "confused-pairs",
}


def plot_path(folder: Path, run_id: int, name: str) -> Path:
    return folder / f"insights-{run_id}-{PLOT_FILES[name]}.png"


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
        ["-knn_confusions", "-centroid_similarity", "label_a", "label_b"],
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


def inputs(
    index: Index,
    *,
    cluster_run_id: int | None,
    k_nn: int = 10,
    zero_shot: bool = True,
    probe: bool = True,
    folds: int = 5,
    sources: list[str] | None = None,
    rollup: Rollup | None = None,
    suspect_vote_share: float = 0.6,
    random_state: int = 0,
) -> dict[str, Any]:
    """What an insight run is asked (the cluster run resolved; the defaults are `insights`'s)
    and how many images and positive labels the index holds: stored in its metrics, and a later
    `--show` reuses the run only when these are equal."""
    asked = {
        "cluster_run_id": cluster_run_id,
        "k_nn": k_nn,
        "zero_shot": zero_shot,
        "probe": probe,
        "folds": folds,
        "sources": sorted(sources) if sources else None,
        "rollup": None if rollup is None else {"level": rollup.level, "names": list(rollup.names)},
        "suspect_vote_share": suspect_vote_share,
        "random_state": random_state,
        "images": index.catalog.images.count(),
        "positive_labels": index.catalog.labels.count_positive(),
    }
    return json.loads(json.dumps(to_jsonable(asked)))


def find_insights(
    index: Index, *, cluster_run: int | None = None, **asked: Any
) -> InsightsResult | None:
    """The newest stored run that `insights` with these arguments (those of `inputs`; cluster_run:
    the run asked for, default the latest) would make now: None when there is none (or the
    cluster run does not exist: `insights` says so)."""
    if cluster_run is None:
        cluster_run = index.catalog.runs.latest("cluster")
    wanted = inputs(index, cluster_run_id=cluster_run, **asked)
    run_id = latest_matching(
        index, "insight", lambda row: json.loads(row["metrics"]).get("inputs") == wanted
    )
    return None if run_id is None else load_insight_run(index, run_id)


def load_insight_run(index: Index, run_id: int) -> InsightsResult:
    """A stored run with the plots it drew under <index>/plots."""
    result = load_insights(index, run_id)
    folder = Path(index.dir) / config.PLOTS_DIR
    result.plots = {
        name: str(plot_path(folder, run_id, name))
        for name in PLOT_FILES
        if plot_path(folder, run_id, name).is_file()
    }
    return result


def _parameters(row: dict[str, Any]) -> str:
    metrics = json.loads(row.get("metrics") or "{}")
    rollup = metrics.get("rollup")
    at = ""
    if rollup:
        at = f", at level {rollup['level']}" if rollup.get("level") is not None else ""
        at = at or f", rolled up to {', '.join(rollup.get('classes') or [])}"
    cluster = row.get("cluster_run_id")
    return (
        f"k_nn={row['k_nn']}, cluster run {cluster if cluster is not None else 'none'}, "
        f"{metrics.get('n_images')} labelled images{at}"
    )


RUNS = {
    "insight": RunType(
        _parameters,
        lambda index, row: (
            "kNN accuracy " + figure(json.loads(row.get("metrics") or "{}").get("knn_accuracy"))
        ),
        load_insight_run,
        lambda root, run_id: [
            plot_path(root, run_id, name)
            for name in PLOT_FILES
            if plot_path(root, run_id, name).is_file()
        ],
    )
}
