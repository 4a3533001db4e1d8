"""Read what the catalog holds for the report's summary, map and clusters into plain, JSON-able
Python, and the helpers every section shares.

A section whose run does not exist yet (another command not run) carries `missing`, with the
command that produces the data.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from idx import config
from idx.analysis.report_html import counts, metric_rows

if TYPE_CHECKING:
    from idx.indexer.catalog import Catalog
    from idx.indexer.catalog.labels import Labels

SHEET_SIZE = 12
HEATMAP_MAX_LABELS = 40
PAIRS_SHOWN = 8
PAIR_EXAMPLES = 3
SUSPECTS_SHOWN = 24
#: Columns of result tables that hold label keys, shown by their display names.
LABEL_COLUMNS = ("label_name", "nearest_class", "label_a", "label_b", "predicted_label")

#: The command (after `idx --index DIR`) that produces each section's data, shown where it is
#: missing (`command`); the page's own notes (kNN graph, labels) name some too.
COMMANDS = {
    "project": ("project", "--method", "tsne"),
    "cluster": ("cluster", "--k", "8"),
    "sweep": ("sweep",),
    "labels": ("labels", "import", "--from-folders"),
    "insights": ("insights",),
    "robustness": ("robustness", "--perturb", "imagenet-c", "--severity", "1:5", "--sample", "200"),
    "leakage": ("duplicates", "--across", "TRAIN_FOLDER", "VALIDATION_FOLDER"),
    "neighbors": ("neighbors", "--all", "-k", "10"),
}


def command(catalog: Catalog, name: str) -> str:
    """COMMANDS[name] as a command line for the catalog's index, to paste as it is shown (the
    index absolute: the page is read later, from anywhere)."""
    return config.command(catalog.index_dir, *COMMANDS[name], relative=False)


def commands(catalog: Catalog) -> dict[str, str]:
    """Every command of COMMANDS for the catalog's index (the page's `commands`)."""
    return {name: command(catalog, name) for name in COMMANDS}


def missing(what: str, command: str, then: str | None = None) -> dict[str, Any]:
    return {"missing": {"what": what, "command": command, "then": then}}


def latest_run(catalog: Catalog, kind: str) -> dict[str, Any] | None:
    """The newest run of `kind`, JSON columns decoded; None when there is none."""
    run_id = catalog.runs.latest(kind)
    if run_id is None:
        return None
    run = catalog.runs.get(kind, run_id) or {}
    return {k: _decode_json(v) for k, v in run.items()}


def result_table(
    catalog: Catalog, kind: str, stored: str, run_id: int, order_by: Sequence[str] | None = None
) -> dict[str, Any]:
    """{"columns": [{name, numeric}], "rows": [dict]}: a run's rows in one of the tables its
    kind stores, every column but run_id, as the page shows them (order: as `Runs.rows`)."""
    found = catalog.runs.rows(kind, stored, run_id, order_by=order_by)
    rows = found.to_pylist()
    columns = [
        {"name": n, "numeric": bool(rows) and all(_numeric(r[n]) for r in rows)}
        for n in found.column_names
    ]
    return {"columns": columns, "rows": [{k: _plain(v) for k, v in r.items()} for r in rows]}


def _numeric(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _plain(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ", timespec="seconds")
    return value


def _decode_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return _plain(value)


def run_info(run: dict[str, Any], drop: Sequence[str] = ("metrics",)) -> dict[str, Any]:
    """A run row for the page's one-line description (big JSON columns left out)."""
    return {k: v for k, v in run.items() if k not in drop}


def run_counts(run: dict[str, Any]) -> dict[str, float]:
    """The counts and parameters in a run's metrics JSON that its row does not already hold
    (n_images, n_classes...): the page shows them under the run line, not among the metrics."""
    metrics = run.get("metrics")
    found = counts(metrics if isinstance(metrics, dict) else {})
    return {k: v for k, v in found.items() if k not in run}


class LabelIndex:
    """Positive labels: display names ordered by frequency, each image's label numbers and each
    label's images."""

    def __init__(self, labels: Labels):
        positives = labels.positives()
        image_ids = positives.column("image_id").to_pylist()
        keys = positives.column("label_name").to_pylist()
        counts = Counter(keys)  # one row per image and label: the number of images
        shown = labels.display_names()
        self.shown = shown  # every class's display name, for parent classes of a roll-up too
        self.keys: list[str] = sorted(counts, key=lambda key: (-counts[key], key))
        self.names: list[str] = [shown.get(key, key) for key in self.keys]
        number = {key: i for i, key in enumerate(self.keys)}
        self.of_image: dict[int, list[int]] = defaultdict(list)
        self.members: dict[str, list[int]] = defaultdict(list)
        for image_id, key in zip(image_ids, keys):
            self.of_image[int(image_id)].append(number[key])
            self.members[key].append(int(image_id))
        for found in self.of_image.values():
            found.sort()

    def display(self, key: str) -> str:
        return self.shown.get(key, key)

    def display_columns(self, table: dict[str, Any]) -> dict[str, Any]:
        """The table with label keys (Open Images ids like /m/0k4j) shown by display names."""
        for row in table["rows"]:
            for column in LABEL_COLUMNS:
                if isinstance(row.get(column), str):
                    row[column] = self.display(row[column])
        return table

    def most_specific(self, image_id: int) -> int:
        """The image's rarest label: colours by "Food" or "Snack" would paint everything alike."""
        labels = self.of_image.get(image_id)
        return max(labels) if labels else -1


def summary(catalog: Catalog, status: dict[str, Any], labels: LabelIndex) -> dict[str, Any]:
    out = {k: status[k] for k in ("images", "bytes", "formats", "skipped", "health", "problems")}
    out["model"] = status["model"]
    out["untrained"] = bool(status["model"] and status["model"]["untrained"])
    out["reindex"] = reindex_command(status) if out["untrained"] else None
    out["vectors"] = status["vectors"]
    out["skipped_reasons"] = catalog.images.skip_reasons(20)
    graph = catalog.neighbors.shape()
    out["neighbors"] = graph._asdict() if graph.edges else None
    out["labels"] = None
    if labels.keys:
        out["labels"] = {"classes": len(labels.keys), "labelled_images": len(labels.of_image)}
    return out


def reindex_command(status: dict[str, Any]) -> str:
    """The command that indexes the same folders with trained weights (the default model, named
    outright so IDX_MODEL cannot change it) into a new index beside this one: an existing index
    refuses another model."""
    index = Path(status["index"])
    new = index.with_name(f"{index.name}-{config.DEFAULT_MODEL.lower()}")
    folders = list(status.get("folders") or {}) or ["FOLDER"]
    return config.command(
        new,
        "add",
        *folders,
        "--model",
        config.DEFAULT_MODEL,
        "--pretrained",
        config.DEFAULT_PRETRAINED,
        relative=False,
    )


def split_common_prefix(paths: list[str]) -> tuple[str, list[str]]:
    """The folder all paths share (ending in a separator) and each path after it: the page stores
    the prefix once instead of once per point."""
    if not paths:
        return "", []
    prefix = os.path.join(os.path.commonpath([os.path.dirname(p) for p in paths]), "")
    return prefix, [p[len(prefix) :] for p in paths]


def cluster_of(catalog: Catalog, run_id: int) -> dict[int, int]:
    """image id -> its cluster in a clustering run."""
    rows = catalog.runs.rows("cluster", "clusters", run_id, ["image_id", "cluster"])
    return dict(zip(rows.column("image_id").to_pylist(), rows.column("cluster").to_pylist()))


def map_section(catalog: Catalog, labels: LabelIndex) -> dict[str, Any]:
    run = latest_run(catalog, "projection")
    if run is None:
        return missing("No 2-D map yet.", command(catalog, "project"))
    table = catalog.runs.rows("projection", "projections", run["id"], ["image_id", "x", "y"])
    found = catalog.images.paths_for(table.column("image_id").to_numpy())
    points = [
        (int(i), x, y, found[i])
        for i, x, y in zip(*(table.column(c).to_pylist() for c in ("image_id", "x", "y")))
        if i in found
    ]
    if not points:
        return missing(f"Projection run {run['id']} holds no points.", command(catalog, "project"))
    ids = [p[0] for p in points]
    prefix, paths = split_common_prefix([p[3] for p in points])
    out: dict[str, Any] = {
        "run": run_info(run, drop=()),
        "ids": ids,
        "x": [round(float(p[1]), 5) for p in points],
        "y": [round(float(p[2]), 5) for p in points],
        "prefix": prefix,
        "paths": paths,
        "cluster": None,
        "cluster_run": None,
        "label": None,
        "labels": None,
    }
    cluster_run = latest_run(catalog, "cluster")
    if cluster_run is not None:
        assigned = cluster_of(catalog, cluster_run["id"])
        out["cluster"] = [int(assigned.get(i, -1)) for i in ids]
        out["cluster_run"] = {"id": cluster_run["id"], "k": cluster_run.get("k")}
    if labels.keys:
        out["label"] = [labels.most_specific(i) for i in ids]
        out["labels"] = [labels.of_image.get(i, []) for i in ids]
    return out


def clusters_section(catalog: Catalog, labels: LabelIndex) -> dict[str, Any]:
    run = latest_run(catalog, "cluster")
    if run is None:
        return missing("No clustering run yet.", command(catalog, "cluster"))
    metrics = run.get("metrics")
    out: dict[str, Any] = {
        "run": run_info(run),
        "counts": run_counts(run),
        "metrics": metric_rows(metrics if isinstance(metrics, dict) else {}),
        "sweep": sweep(catalog),
    }
    assigned = cluster_of(catalog, run["id"])
    sizes = Counter(assigned.values())
    nearest = catalog.runs.nearest_to_centres(run["id"], SHEET_SIZE)
    paths = catalog.images.paths_for([i for ids in nearest.values() for i in ids])
    top = top_labels_per_cluster(assigned, labels)
    out["sheets"] = [
        {
            "cluster": c,
            "size": int(sizes[c]),
            "images": [{"id": i, "path": paths[i]} for i in nearest.get(c, ()) if i in paths],
            "top_labels": top.get(c, []),
        }
        for c in sorted(sizes)
    ]
    return out


def sweep(catalog: Catalog) -> dict[str, Any]:
    run = latest_run(catalog, "sweep")
    if run is None:
        return missing("No k sweep yet.", command(catalog, "sweep"))
    return {
        "run": run_info(run),
        "rows": result_table(catalog, "sweep", "sweep_results", run["id"])["rows"],
    }


def top_labels_per_cluster(
    assigned: dict[int, int], labels: LabelIndex, top: int = 5
) -> dict[int, list[tuple[str, int]]]:
    if not labels.keys:
        return {}
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    for image_id, cluster in assigned.items():
        for label in labels.of_image.get(int(image_id), []):
            counts[int(cluster)][labels.names[label]] += 1
    return {c: counter.most_common(top) for c, counter in counts.items()}


def label_cluster_counts(catalog: Catalog, labels: LabelIndex) -> dict[str, Any]:
    run = latest_run(catalog, "cluster")
    if run is None:
        return missing(
            "The label × cluster heatmap needs a clustering run.", command(catalog, "cluster")
        )
    assigned = cluster_of(catalog, run["id"])
    clusters = sorted({int(c) for c in assigned.values()})
    column = {c: j for j, c in enumerate(clusters)}
    shown = labels.keys[:HEATMAP_MAX_LABELS]
    counts = np.zeros((len(shown), len(clusters)), dtype=np.int64)
    for image_id, cluster in assigned.items():
        for label in labels.of_image.get(int(image_id), []):
            if label < len(shown):
                counts[label, column[int(cluster)]] += 1
    # Rows grouped by their main cluster, strongest first: a good clustering reads as a diagonal.
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    order = np.lexsort((-share.max(axis=1), share.argmax(axis=1)))
    return {
        "run_id": run["id"],
        "rows": [labels.names[i] for i in order],
        "cols": clusters,
        "counts": counts[order].tolist(),
        "truncated": len(labels.keys) > len(shown),
        "total_labels": len(labels.keys),
    }
