"""Robustness metrics on arrays: how far a corruption moves embeddings, neighbours and clusters.

Inputs are row-aligned: row i of `clean` and `perturbed` is the same image (its id `query_ids[i]`);
neighbour lists are image ids from the same index, best first, with -1 for empty slots.
Labels come as a list of label names and a boolean matrix `truth[i, j]` (image i has label j);
a prediction is correct when the predicted label is one of the image's labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from idx.knn import drop_self


def cosine(clean: np.ndarray, perturbed: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity between clean and perturbed embeddings."""
    a = clean / np.linalg.norm(clean, axis=1, keepdims=True)
    b = perturbed / np.linalg.norm(perturbed, axis=1, keepdims=True)
    return np.einsum("ij,ij->i", a, b)


def drift_summary(cos: np.ndarray) -> dict[str, float]:
    """Mean and 5/50/95 % quantiles of the clean-vs-perturbed cosine."""
    p05, p50, p95 = np.quantile(cos, [0.05, 0.5, 0.95])
    return {
        "cos_mean": float(np.mean(cos)),
        "cos_p05": float(p05),
        "cos_p50": float(p50),
        "cos_p95": float(p95),
    }


def topk_overlap(clean_neighbors: np.ndarray, perturbed_neighbors: np.ndarray) -> np.ndarray:
    """Per row, the share of the clean top-k found in the perturbed top-k (k = columns)."""
    k = clean_neighbors.shape[1]
    shares = np.empty(len(clean_neighbors))
    for i, (a, b) in enumerate(zip(clean_neighbors, perturbed_neighbors)):
        a_set = set(a[a >= 0].tolist())
        shares[i] = len(a_set & set(b[b >= 0].tolist())) / k if a_set else np.nan
    return shares


def self_ranks(neighbor_ids: np.ndarray, query_ids: np.ndarray) -> np.ndarray:
    """1-based rank of each query's own clean image among its neighbours; depth + 1 if absent.

    The rank is censored at the search depth (columns), so its mean is a lower bound when images
    fall out of the list; `self_found_at_1` (rank == 1) is exact.
    """
    depth = neighbor_ids.shape[1]
    hits = neighbor_ids == query_ids[:, None]
    return np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, depth + 1).astype(np.float64)


def nearest_center(vectors: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest centre (Euclidean, as k-means assigns) for each row."""
    d2 = (
        (vectors**2).sum(axis=1, keepdims=True)
        - 2.0 * vectors @ centers.T
        + (centers**2).sum(axis=1)[None, :]
    )
    return d2.argmin(axis=1)


def cluster_changed(clean: np.ndarray, perturbed: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Whether each image's nearest cluster centre differs between clean and perturbed."""
    return nearest_center(clean, centers) != nearest_center(perturbed, centers)


def knn_predict(neighbor_labels: np.ndarray) -> np.ndarray:
    """Majority label among each row's neighbours (label index, -1 for unlabelled slots).

    A tie goes to the label met first in rank order (the nearest neighbour's), -1 if the row
    has no labelled neighbour.
    """
    predicted = np.full(len(neighbor_labels), -1, dtype=np.int64)
    for i, row in enumerate(neighbor_labels):
        row = row[row >= 0]
        if len(row) == 0:
            continue
        values, first, counts = np.unique(row, return_index=True, return_counts=True)
        best = counts == counts.max()
        predicted[i] = values[best][np.argmin(first[best])]
    return predicted


def correct(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per row: 1.0 if the predicted label is one of the row's labels, 0.0 if not, NaN when the
    row has no label (it does not count)."""
    has_label = truth.any(axis=1)
    hit = np.zeros(len(predicted), dtype=np.float64)
    ok = predicted >= 0
    hit[ok] = truth[np.flatnonzero(ok), predicted[ok]]
    hit[~has_label] = np.nan
    return hit


def zero_shot_predict(vectors: np.ndarray, text_vectors: np.ndarray) -> np.ndarray:
    """Label whose prompt embedding is most similar to each image embedding."""
    return (vectors @ text_vectors.T).argmax(axis=1)


def lookup(ids: np.ndarray, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values[j] where keys[j] == id (keys sorted), -1 for ids not in keys."""
    if len(keys) == 0:
        return np.full(ids.shape, -1, dtype=np.int64)
    pos = np.clip(np.searchsorted(keys, ids), 0, len(keys) - 1)
    return np.where(keys[pos] == ids, values[pos], -1)


def nanmean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else None


@dataclass
class ConditionInputs:
    """Everything measured for one (perturbation, severity) over the sampled images."""

    query_ids: np.ndarray  # [n] image ids
    clean: np.ndarray  # [n, d]
    perturbed: np.ndarray  # [n, d]
    clean_neighbors: np.ndarray  # [n, k] clean query, itself excluded
    perturbed_search: np.ndarray  # [n, depth] perturbed query, itself included
    k: int
    centers: np.ndarray | None = None  # [c, d] cluster centres in embedding space
    #: (sorted image ids, label index of each): the label a neighbour votes for in kNN.
    primary_labels: tuple[np.ndarray, np.ndarray] | None = None
    truth: np.ndarray | None = None  # [n, L] bool
    text_vectors: np.ndarray | None = None  # [L, d] zero-shot prompts


def per_image(inputs: ConditionInputs) -> dict[str, np.ndarray]:
    """Per-image metric arrays for one condition (NaN where not applicable)."""
    n = len(inputs.query_ids)
    nan = np.full(n, np.nan)
    perturbed_neighbors = drop_self(inputs.perturbed_search, inputs.query_ids, inputs.k)
    out = {
        "cos": cosine(inputs.clean, inputs.perturbed),
        "overlap": topk_overlap(inputs.clean_neighbors, perturbed_neighbors),
        "self_rank": self_ranks(inputs.perturbed_search, inputs.query_ids),
        "cluster_changed": nan,
        "knn_correct": nan,
        "zero_shot_correct": nan,
    }
    if inputs.centers is not None:
        out["cluster_changed"] = cluster_changed(
            inputs.clean, inputs.perturbed, inputs.centers
        ).astype(np.float64)
    if inputs.truth is not None and inputs.primary_labels is not None:
        votes = lookup(perturbed_neighbors, *inputs.primary_labels)
        out["knn_correct"] = correct(knn_predict(votes), inputs.truth)
    if inputs.truth is not None and inputs.text_vectors is not None:
        out["zero_shot_correct"] = correct(
            zero_shot_predict(inputs.perturbed, inputs.text_vectors), inputs.truth
        )
    return out


def summarize(values: dict[str, np.ndarray]) -> dict[str, float | int | None]:
    """One results row (the columns of `robustness_results`) from per-image arrays."""
    ranks = values["self_rank"]
    return {
        "n": len(values["cos"]),
        **drift_summary(values["cos"]),
        "topk_overlap": nanmean(values["overlap"]),
        "self_rank_mean": float(ranks.mean()),
        "self_found_at_1": float((ranks == 1).mean()),
        "cluster_change_share": nanmean(values["cluster_changed"]),
        "knn_accuracy": nanmean(values["knn_correct"]),
        "zero_shot_accuracy": nanmean(values["zero_shot_correct"]),
    }


def per_class(
    values: dict[str, np.ndarray],
    truth: np.ndarray,
    label_names: list[str],
    display_names: list[str] | None = None,
) -> list[dict[str, float | int | str | None]]:
    """Per label: how many sampled images carry it, their mean cosine and kNN accuracy."""
    rows: list[dict[str, float | int | str | None]] = []
    for j, name in enumerate(label_names):
        mask = truth[:, j]
        if not mask.any():
            continue
        rows.append(
            {
                "label_name": name,
                "display_name": display_names[j] if display_names else name,
                "n": int(mask.sum()),
                "cos_mean": float(values["cos"][mask].mean()),
                "knn_accuracy": nanmean(values["knn_correct"][mask]),
            }
        )
    return rows


#: Metrics summarised per corruption; higher is better for each, so clean - mean is a drop.
SUMMARY_METRICS = (
    "cos_mean",
    "topk_overlap",
    "self_found_at_1",
    "knn_accuracy",
    "zero_shot_accuracy",
)


def per_corruption(
    results: list[dict], suite: tuple[str, ...] = (), suite_name: str = ""
) -> list[dict[str, float | int | str | None]]:
    """ImageNet-C's summary: per perturbation, each metric's mean over the severities measured
    and its drop from the clean row (severity 0): `<metric>` and `<metric>_drop`. When any of
    `suite` was measured, a last row "`suite_name` (m of n)" averages those perturbations' rows
    (as ImageNet-C's mean over its corruptions)."""
    clean = next((r for r in results if r["severity"] == 0), {})
    names = list(dict.fromkeys(r["perturbation"] for r in results if r["severity"] > 0))
    rows: list[dict[str, float | int | str | None]] = []
    for name in names:
        mine = [r for r in results if r["perturbation"] == name and r["severity"] > 0]
        row: dict[str, float | int | str | None] = {"perturbation": name, "severities": len(mine)}
        for metric in SUMMARY_METRICS:
            row[metric] = nanmean(
                np.array([np.nan if r[metric] is None else r[metric] for r in mine], dtype=float)
            )
        rows.append(row)
    in_suite = [r for r in rows if r["perturbation"] in suite]
    if in_suite:
        mean: dict[str, float | int | str | None] = {
            "perturbation": f"{suite_name} ({len(in_suite)} of {len(suite)})",
            "severities": None,
        }
        for metric in SUMMARY_METRICS:
            mean[metric] = nanmean(
                np.array(
                    [np.nan if r[metric] is None else r[metric] for r in in_suite], dtype=float
                )
            )
        rows.append(mean)
    for row in rows:
        for metric in SUMMARY_METRICS:
            base, value = clean.get(metric), row[metric]
            # rounded: a drop of nothing reads 0, not the -1e-17 of a float mean
            drop = None if base is None or value is None else round(base - value, 12) + 0.0
            row[f"{metric}_drop"] = drop
    return rows
