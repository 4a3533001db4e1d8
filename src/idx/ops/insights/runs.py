"""Insight runs in the catalog: writing one run's results and reading a stored run back.

Tables: insight_runs, class_insights, confused_pairs, suspect_labels (migration 0004).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from idx.errors import NotFoundError

if TYPE_CHECKING:
    from idx.analysis.insights import LabelInsights
    from idx.indexer.index import Index
    from idx.ops.insights.measure import LabelledSet

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

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "cluster_run_id": self.cluster_run_id,
            "metrics": self.metrics,
            "classes": [dict(zip(CLASS_COLUMNS, r)) for r in self.classes],
            "confused_pairs": [dict(zip(PAIR_COLUMNS, r)) for r in self.pairs],
            "suspect_labels": [dict(zip(SUSPECT_COLUMNS, r)) for r in self.suspects],
            "plots": self.plots,
            "notes": self.notes,
        }


def load_insights(index: Index, run_id: int | None = None) -> InsightsResult:
    """A stored insight run (default: the latest) as computed, without recomputing anything."""
    con = index.catalog.con
    if run_id is None:
        run_id = con.execute("SELECT max(id) FROM insight_runs").fetchall()[0][0]
        if run_id is None:
            raise NotFoundError(
                f"index {index.dir} has no insight runs; make one with `idx insights`"
            )
    found = con.execute(
        "SELECT cluster_run_id, metrics FROM insight_runs WHERE id = ?", [run_id]
    ).fetchall()
    if not found:
        raise NotFoundError(
            f"insight run {run_id} does not exist; list runs with "
            '`idx sql "SELECT id, cluster_run_id, k_nn, created_at FROM insight_runs"`'
        )
    rows = {
        table: index.catalog.query(f"SELECT {', '.join(columns)} FROM {table} {where}", [run_id])[1]
        for table, columns, where in (
            ("class_insights", CLASS_COLUMNS, "WHERE run_id = ? ORDER BY label_name"),
            (
                "confused_pairs",
                PAIR_COLUMNS,
                "WHERE run_id = ? ORDER BY knn_confusions DESC, centroid_similarity DESC",
            ),
            (
                "suspect_labels s JOIN images i ON i.id = s.image_id",
                [f"s.{c}" if c != "path" else "i.path" for c in SUSPECT_COLUMNS],
                "WHERE s.run_id = ? ORDER BY vote_share DESC, own_vote_share, image_id, label_name",
            ),
        )
    }
    return InsightsResult(
        run_id,
        found[0][0],
        json.loads(found[0][1]),
        *rows.values(),
    )


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
) -> InsightsResult:
    """Write one run (insight_runs + its per-class, pair and suspect rows) in one transaction."""
    names = data.label_names
    per = fitted.classes_
    present = np.nonzero(per["size"] > 0)[0]
    classes = [
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
            )
        )
        for c in present
    ]
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
    con = index.catalog.con
    with index.catalog.transaction():
        run_id = con.execute(
            "INSERT INTO insight_runs (cluster_run_id, k_nn, model, metrics) VALUES (?, ?, ?, ?) "
            "RETURNING id",
            [cluster_run_id, fitted.k_, metrics["model"], json.dumps(_jsonable(metrics))],
        ).fetchall()[0][0]
        _insert(con, "class_insights", ("run_id", *CLASS_COLUMNS), [(run_id, *r) for r in classes])
        _insert(con, "confused_pairs", ("run_id", *PAIR_COLUMNS), [(run_id, *p) for p in pairs])
        _insert(
            con,
            "suspect_labels",
            ("run_id", *(c for c in SUSPECT_COLUMNS if c != "path")),
            [(run_id, s[0], *s[2:]) for s in suspects],
        )
    return InsightsResult(run_id, cluster_run_id, metrics, classes, pairs, suspects)


def _insert(con: Any, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Bulk insert through Arrow (executemany is one round trip per row in DuckDB)."""
    if not rows:
        return
    import pyarrow as pa

    batch = pa.table({c: [r[j] for r in rows] for j, c in enumerate(columns)})
    con.register("_idx_rows", batch)
    try:
        con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM _idx_rows")
    finally:
        con.unregister("_idx_rows")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return _nan_to_none(value)
