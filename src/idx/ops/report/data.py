"""Read what the catalog holds for each report section into plain, JSON-able Python.

Every section works when its tables are absent or empty (another feature not run yet, or an index
from an older idx): it then carries `missing`, with the command that produces the data.
Tables are looked up in information_schema, never assumed.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from idx.analysis.report_html import metric_rows

SHEET_SIZE = 12
HEATMAP_MAX_LABELS = 40
PAIRS_SHOWN = 8
PAIR_EXAMPLES = 3
SUSPECTS_SHOWN = 24

COMMANDS = {
    "project": "idx project --method tsne",
    "cluster": "idx cluster --k 8",
    "sweep": "idx sweep --k 2:20",
    "labels": "idx labels import --from-folders",
    "insights": "idx insights",
    "robustness": "idx robustness --perturb gaussian_noise,blur,jpeg,brightness --severity 1:5 --sample 500",
}


def missing(what: str, command: str, then: str | None = None) -> dict[str, Any]:
    return {"missing": {"what": what, "command": command, "then": then}}


class Tables:
    """Small read helpers over the catalog connection."""

    def __init__(self, con: Any):
        self.con = con
        rows = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()
        self.names = {r[0] for r in rows}

    def has(self, *tables: str) -> bool:
        return all(t in self.names for t in tables)

    def rows(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        cur = self.con.execute(sql, list(params or []))
        columns = [d[0] for d in cur.description]
        return [dict(zip(columns, row)) for row in cur.fetchall()]

    def table(self, sql: str, params: Sequence[Any] | None = None) -> dict[str, Any]:
        """{"columns": [{name, numeric}], "rows": [dict]} for generic tables in the page."""
        cur = self.con.execute(sql, list(params or []))
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, row)) for row in cur.fetchall()]
        columns = [
            {"name": n, "numeric": bool(rows) and all(_numeric(r[n]) for r in rows)} for n in names
        ]
        return {"columns": columns, "rows": [{k: _plain(v) for k, v in r.items()} for r in rows]}

    def latest(self, table: str) -> dict[str, Any] | None:
        """The latest run (max id) of a run table, JSON columns decoded; None when there is none."""
        if not self.has(table):
            return None
        found = self.rows(f'SELECT * FROM "{table}" ORDER BY id DESC LIMIT 1')
        return {k: _decode_json(v) for k, v in found[0].items()} if found else None


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


def summary(tables: Tables, status: dict[str, Any]) -> dict[str, Any]:
    out = {k: status[k] for k in ("images", "bytes", "formats", "skipped", "health", "problems")}
    out["model"] = status["model"]
    out["untrained"] = bool(status["model"] and status["model"]["untrained"])
    out["vectors"] = status["vectors"]
    out["skipped_reasons"] = tables.rows(
        "SELECT reason, count(*) AS count, min(path) AS example FROM skipped "
        "GROUP BY reason ORDER BY count DESC, reason LIMIT 20"
    )
    out["neighbors"] = None
    if tables.has("neighbors"):
        edges, k = tables.con.execute("SELECT count(*), max(rank) FROM neighbors").fetchall()[0]
        if edges:
            out["neighbors"] = {"edges": int(edges), "k": int(k)}
    out["labels"] = None
    if tables.has("labels"):
        classes, images = tables.con.execute(
            "SELECT count(DISTINCT label_name), count(DISTINCT image_id) FROM labels "
            "WHERE confidence > 0"
        ).fetchall()[0]
        if classes:
            out["labels"] = {"classes": int(classes), "labelled_images": int(images)}
    return out


class LabelIndex:
    """Positive labels: display names ordered by frequency, and each image's label numbers."""

    def __init__(self, tables: Tables):
        self.names: list[str] = []
        self.keys: list[str] = []
        self.of_image: dict[int, list[int]] = defaultdict(list)
        if not tables.has("labels"):
            return
        join = "LEFT JOIN classes c USING (label_name)" if tables.has("classes") else ""
        shown = "coalesce(c.display_name, l.label_name)" if join else "l.label_name"
        rows = tables.con.execute(
            f"SELECT l.label_name, any_value({shown}), count(DISTINCT l.image_id) AS n "
            f"FROM labels l {join} WHERE l.confidence > 0 GROUP BY 1 ORDER BY n DESC, 1"
        ).fetchall()
        self.keys = [r[0] for r in rows]
        self.names = [r[1] for r in rows]
        self.counts = [int(r[2]) for r in rows]
        number = {key: i for i, key in enumerate(self.keys)}
        pairs = tables.con.execute(
            "SELECT DISTINCT image_id, label_name FROM labels WHERE confidence > 0"
        ).fetchall()
        for image_id, key in pairs:
            self.of_image[int(image_id)].append(number[key])
        for labels in self.of_image.values():
            labels.sort()

    def display(self, key: str) -> str:
        try:
            return self.names[self.keys.index(key)]
        except ValueError:
            return key

    def most_specific(self, image_id: int) -> int:
        """The image's rarest label: colours by "Food" or "Snack" would paint everything alike."""
        labels = self.of_image.get(image_id)
        return max(labels) if labels else -1


def split_common_prefix(paths: list[str]) -> tuple[str, list[str]]:
    """The folder all paths share (ending in a separator) and each path after it: the page stores
    the prefix once instead of once per point."""
    if not paths:
        return "", []
    prefix = os.path.join(os.path.commonpath([os.path.dirname(p) for p in paths]), "")
    return prefix, [p[len(prefix) :] for p in paths]


def map_section(tables: Tables, labels: LabelIndex) -> dict[str, Any]:
    run = tables.latest("projection_runs")
    if run is None:
        return missing("No 2-D map yet.", COMMANDS["project"])
    points = tables.con.execute(
        "SELECT p.image_id, p.x, p.y, i.path FROM projections p JOIN images i ON i.id = p.image_id "
        "WHERE p.run_id = ? ORDER BY p.image_id",
        [run["id"]],
    ).fetchall()
    if not points:
        return missing(f"Projection run {run['id']} holds no points.", COMMANDS["project"])
    ids = [int(p[0]) for p in points]
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
    cluster_run = tables.latest("cluster_runs")
    if cluster_run is not None and tables.has("clusters"):
        assigned = dict(
            tables.con.execute(
                "SELECT image_id, cluster FROM clusters WHERE run_id = ?", [cluster_run["id"]]
            ).fetchall()
        )
        out["cluster"] = [int(assigned.get(i, -1)) for i in ids]
        out["cluster_run"] = {"id": cluster_run["id"], "k": cluster_run.get("k")}
    if labels.keys:
        out["label"] = [labels.most_specific(i) for i in ids]
        out["labels"] = [labels.of_image.get(i, []) for i in ids]
    return out


def clusters_section(tables: Tables, labels: LabelIndex) -> dict[str, Any]:
    run = tables.latest("cluster_runs")
    if run is None or not tables.has("clusters"):
        return missing("No clustering run yet.", COMMANDS["cluster"])
    metrics = run.get("metrics")
    out: dict[str, Any] = {
        "run": run_info(run),
        "metrics": metric_rows(metrics if isinstance(metrics, dict) else {}),
        "sweep": sweep(tables),
    }
    sizes = dict(
        tables.con.execute(
            "SELECT cluster, count(*) FROM clusters WHERE run_id = ? GROUP BY 1", [run["id"]]
        ).fetchall()
    )
    nearest = tables.con.execute(
        "SELECT c.cluster, c.image_id, i.path FROM ("
        "  SELECT *, row_number() OVER (PARTITION BY cluster ORDER BY distance NULLS LAST, "
        "  image_id) AS rn FROM clusters WHERE run_id = ?) c "
        "JOIN images i ON i.id = c.image_id WHERE rn <= ? ORDER BY c.cluster, rn",
        [run["id"], SHEET_SIZE],
    ).fetchall()
    members: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for cluster, image_id, path in nearest:
        members[int(cluster)].append({"id": int(image_id), "path": path})
    top = top_labels_per_cluster(tables, labels, run["id"])
    out["sheets"] = [
        {"cluster": c, "size": int(sizes[c]), "images": members[c], "top_labels": top.get(c, [])}
        for c in sorted(sizes)
    ]
    return out


def sweep(tables: Tables) -> dict[str, Any]:
    run = tables.latest("sweep_runs")
    if run is None or not tables.has("sweep_results"):
        return missing("No k sweep yet.", COMMANDS["sweep"])
    table = tables.table(
        "SELECT * EXCLUDE (run_id) FROM sweep_results WHERE run_id = ? ORDER BY k", [run["id"]]
    )
    return {"run": run_info(run), "rows": table["rows"]}


def top_labels_per_cluster(
    tables: Tables, labels: LabelIndex, run_id: int, top: int = 5
) -> dict[int, list[tuple[str, int]]]:
    if not labels.keys:
        return {}
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    for cluster, image_id in tables.con.execute(
        "SELECT cluster, image_id FROM clusters WHERE run_id = ?", [run_id]
    ).fetchall():
        for label in labels.of_image.get(int(image_id), []):
            counts[int(cluster)][labels.names[label]] += 1
    return {c: counter.most_common(top) for c, counter in counts.items()}


def label_cluster_counts(tables: Tables, labels: LabelIndex) -> dict[str, Any]:
    run = tables.latest("cluster_runs")
    if run is None or not tables.has("clusters"):
        return missing("The label × cluster heatmap needs a clustering run.", COMMANDS["cluster"])
    assigned = tables.con.execute(
        "SELECT image_id, cluster FROM clusters WHERE run_id = ?", [run["id"]]
    ).fetchall()
    clusters = sorted({int(c) for _, c in assigned})
    column = {c: j for j, c in enumerate(clusters)}
    shown = labels.keys[:HEATMAP_MAX_LABELS]
    counts = np.zeros((len(shown), len(clusters)), dtype=np.int64)
    for image_id, cluster in assigned:
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
