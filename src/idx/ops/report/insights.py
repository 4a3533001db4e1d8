"""The report's category insights: the label × cluster heatmap, per-class figures, the most
confused pairs of labels with example images, and suspect labels (see report_data)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from idx.analysis.report_html import metric_rows
from idx.ops.report.data import (
    PAIR_EXAMPLES,
    PAIRS_SHOWN,
    SUSPECTS_SHOWN,
    LabelIndex,
    command,
    label_cluster_counts,
    latest_run,
    missing,
    result_table,
    run_counts,
    run_info,
)

if TYPE_CHECKING:
    from idx.indexer.catalog import Catalog

#: (image id, its label, the label its neighbours vote for) -> the share of that vote
Votes = dict[tuple[int, str, str], float]


def insights_section(catalog: Catalog, labels: LabelIndex) -> dict[str, Any]:
    if not labels.keys:
        then = f"then run {command(catalog, 'insights')}."
        return missing("No labels imported yet.", command(catalog, "labels"), then)
    out: dict[str, Any] = {"heatmap": label_cluster_counts(catalog, labels)}
    run = latest_run(catalog, "insight")
    if run is None:
        out["run_missing"] = missing("No insight run yet.", command(catalog, "insights"))["missing"]
        return out
    metrics = run.get("metrics")
    out["run"] = run_info(run)
    out["counts"] = run_counts(run)
    out["metrics"] = metric_rows(metrics if isinstance(metrics, dict) else {})
    probe = metrics.get("linear_probe") if isinstance(metrics, dict) else None
    for row in out["metrics"]:
        if row["name"] == "linear_probe_accuracy" and isinstance(probe, dict):
            row["notes"] = {"95% CI": probe.get("ci95"), "folds": probe.get("folds")}
    out["probes"] = result_table(catalog, "insight", "linear_probes", run["id"], ["-accuracy"])
    out["classes"] = labels.display_columns(
        result_table(catalog, "insight", "class_insights", run["id"], ["-size"])
    )
    suspects = catalog.runs.rows(
        "insight",
        "suspect_labels",
        run["id"],
        ["image_id", "label_name", "predicted_label", "vote_share"],
        order_by=["-vote_share", "image_id"],
    ).to_pylist()
    votes = {
        (s["image_id"], s["label_name"], s["predicted_label"]): s["vote_share"] for s in suspects
    }
    out["pairs"] = _pairs(catalog, labels, run["id"], votes)
    out["suspects"] = _suspects(catalog, labels, suspects)
    return out


def _pairs(catalog: Catalog, labels: LabelIndex, run_id: int, votes: Votes) -> list[dict[str, Any]]:
    order = ["-knn_confusions", "-centroid_similarity"]
    rows = result_table(catalog, "insight", "confused_pairs", run_id, order)["rows"][:PAIRS_SHOWN]
    pairs = []
    for row in rows:
        a, b = row["label_a"], row["label_b"]
        near = _nearest_to_the_other(catalog, labels, a, b)
        pairs.append(
            {
                "label_a": labels.display(a),
                "label_b": labels.display(b),
                "stats": {
                    k: v
                    for k, v in row.items()
                    if k not in ("label_a", "label_b") and isinstance(v, (int, float))
                },
                "examples_a": _examples(catalog, labels, votes, a, b, near),
                "examples_b": _examples(catalog, labels, votes, b, a, near),
            }
        )
    return pairs


def _nearest_to_the_other(
    catalog: Catalog, labels: LabelIndex, a: str, b: str
) -> dict[tuple[int, str], float]:
    """(image of a or b, its label) -> cosine similarity to the other class's centroid: the
    images of each class that look most like the other one, different for every pair."""
    members = {a: labels.members.get(a, []), b: labels.members.get(b, [])}
    vectors = {}
    for label, wanted in members.items():
        found, matrix = catalog.images.vectors(wanted)
        vectors[label] = (found, matrix)
    out: dict[tuple[int, str], float] = {}
    for label, other in ((a, b), (b, a)):
        ids, matrix = vectors[label]
        others = vectors[other][1]
        if len(ids) == 0 or len(others) == 0:
            continue
        centroid = others.mean(axis=0)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
        out.update({(int(i), label): float(s) for i, s in zip(ids, matrix @ centroid)})
    return out


def _examples(
    catalog: Catalog,
    labels: LabelIndex,
    votes: Votes,
    label: str,
    other: str,
    near: dict[tuple[int, str], float],
) -> list[dict[str, Any]]:
    """Images of `label`, those whose neighbours vote for `other` first (the confusion itself),
    then those most similar to `other`'s centroid."""

    def rank(image_id: int) -> tuple[bool, float, float, int]:
        vote = votes.get((image_id, label, other))
        return vote is None, -(vote or 0.0), -near.get((image_id, label), -1.0), image_id

    chosen = sorted(labels.members.get(label, ()), key=rank)[:PAIR_EXAMPLES]
    paths = catalog.images.paths_for(chosen)
    return [{"id": i, "path": paths[i]} for i in chosen if i in paths]


def _suspects(
    catalog: Catalog, labels: LabelIndex, suspects: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    shown = suspects[:SUSPECTS_SHOWN]
    paths = catalog.images.paths_for([s["image_id"] for s in shown])
    return [
        {
            "image_id": int(s["image_id"]),
            "path": paths[s["image_id"]],
            "label": labels.display(s["label_name"]),
            "predicted": labels.display(s["predicted_label"]),
            "vote_share": s["vote_share"],
        }
        for s in shown
        if s["image_id"] in paths
    ]
