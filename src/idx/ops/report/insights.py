"""Report sections built on labels: category insights and robustness (see report_data)."""

from __future__ import annotations

from typing import Any

from idx.analysis.report_html import metric_rows
from idx.ops.report.data import (
    COMMANDS,
    PAIR_EXAMPLES,
    PAIRS_SHOWN,
    SUSPECTS_SHOWN,
    LabelIndex,
    Tables,
    label_cluster_counts,
    missing,
    run_info,
)

EMPTY_TABLE: dict[str, Any] = {"columns": [], "rows": []}
LABEL_COLUMNS = ("label_name", "nearest_class", "label_a", "label_b", "predicted_label")


def insights_section(tables: Tables, labels: LabelIndex) -> dict[str, Any]:
    if not labels.keys:
        return missing("No labels imported yet.", COMMANDS["labels"], "then run idx insights.")
    out: dict[str, Any] = {"heatmap": label_cluster_counts(tables, labels)}
    run = tables.latest("insight_runs")
    if run is None:
        out["run_missing"] = missing("No insight run yet.", COMMANDS["insights"])["missing"]
        return out
    metrics = run.get("metrics")
    out["run"] = run_info(run)
    out["metrics"] = metric_rows(metrics if isinstance(metrics, dict) else {})
    out["classes"] = EMPTY_TABLE
    if tables.has("class_insights"):
        out["classes"] = _display(
            tables.table(
                "SELECT * EXCLUDE (run_id) FROM class_insights WHERE run_id = ? "
                "ORDER BY size DESC NULLS LAST",
                [run["id"]],
            ),
            labels,
        )
    out["pairs"] = _pairs(tables, labels, run["id"])
    out["suspects"] = _suspects(tables, labels, run["id"])
    return out


def _display(table: dict[str, Any], labels: LabelIndex) -> dict[str, Any]:
    """Label keys (Open Images ids like /m/0k4j) shown by their display names."""
    for row in table["rows"]:
        for column in LABEL_COLUMNS:
            if isinstance(row.get(column), str):
                row[column] = labels.display(row[column])
    return table


def _pairs(tables: Tables, labels: LabelIndex, run_id: int) -> list[dict[str, Any]]:
    if not tables.has("confused_pairs"):
        return []
    rows = tables.rows(
        "SELECT * EXCLUDE (run_id) FROM confused_pairs WHERE run_id = ? "
        "ORDER BY knn_confusions DESC NULLS LAST, centroid_similarity DESC NULLS LAST LIMIT ?",
        [run_id, PAIRS_SHOWN],
    )
    pairs = []
    for row in rows:
        a, b = row["label_a"], row["label_b"]
        pairs.append(
            {
                "label_a": labels.display(a),
                "label_b": labels.display(b),
                "stats": {
                    k: v
                    for k, v in row.items()
                    if k not in ("label_a", "label_b") and isinstance(v, (int, float))
                },
                "examples_a": _examples(tables, run_id, a, b),
                "examples_b": _examples(tables, run_id, b, a),
            }
        )
    return pairs


def _examples(tables: Tables, run_id: int, label: str, other: str) -> list[dict[str, Any]]:
    """Images of `label`, those whose neighbours vote for `other` first: the confusion itself."""
    if tables.has("suspect_labels"):
        join = (
            "LEFT JOIN suspect_labels s ON s.image_id = l.image_id AND s.run_id = ? "
            "AND s.label_name = l.label_name AND s.predicted_label = ?"
        )
        vote, params = "max(s.vote_share)", [run_id, other, label, PAIR_EXAMPLES]
    else:
        join, vote, params = "", "NULL", [label, PAIR_EXAMPLES]
    rows = tables.con.execute(
        f"SELECT l.image_id, i.path, {vote} AS vote FROM labels l "
        f"JOIN images i ON i.id = l.image_id {join} "
        "WHERE l.label_name = ? AND l.confidence > 0 GROUP BY l.image_id, i.path "
        "ORDER BY vote DESC NULLS LAST, l.image_id LIMIT ?",
        params,
    ).fetchall()
    return [{"id": int(r[0]), "path": r[1]} for r in rows]


def _suspects(tables: Tables, labels: LabelIndex, run_id: int) -> list[dict[str, Any]]:
    if not tables.has("suspect_labels"):
        return []
    rows = tables.rows(
        "SELECT s.image_id, i.path, s.label_name, s.predicted_label, s.vote_share "
        "FROM suspect_labels s JOIN images i ON i.id = s.image_id WHERE s.run_id = ? "
        "ORDER BY s.vote_share DESC NULLS LAST, s.image_id LIMIT ?",
        [run_id, SUSPECTS_SHOWN],
    )
    return [
        {
            "image_id": int(r["image_id"]),
            "path": r["path"],
            "label": labels.display(r["label_name"]),
            "predicted": labels.display(r["predicted_label"]),
            "vote_share": r["vote_share"],
        }
        for r in rows
    ]


def robustness_section(tables: Tables, labels: LabelIndex) -> dict[str, Any]:
    run = tables.latest("robustness_runs")
    if run is None or not tables.has("robustness_results"):
        return missing("No robustness run yet.", COMMANDS["robustness"])
    results = tables.table(
        "SELECT * EXCLUDE (run_id) FROM robustness_results WHERE run_id = ? "
        "ORDER BY perturbation, severity",
        [run["id"]],
    )
    classes = EMPTY_TABLE
    if tables.has("robustness_classes"):
        classes = _display(
            tables.table(
                "SELECT * EXCLUDE (run_id) FROM robustness_classes WHERE run_id = ? "
                "ORDER BY label_name, perturbation, severity",
                [run["id"]],
            ),
            labels,
        )
    return {"run": run_info(run), "results": results, "classes": classes}
