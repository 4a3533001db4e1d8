"""`sweep`: K-means for each k of a range, the three metrics per k, and the best k by silhouette;
where the index has labels, also NMI, ARI and purity against them per k and the best k by each."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from idx import config
from idx.analysis import plots
from idx.analysis.clustering import KMeans, check_k
from idx.analysis.metrics import cluster_metrics
from idx.errors import UsageError
from idx.indexer.index import Index
from idx.indexer.vectors.kmeans import faiss_engine
from idx.ops.maps.clustering import N_ITER, points_in_space
from idx.ops.maps.label_scores import SCORES, Truth, label_scores, label_truth
from idx.progress import Progress, ProgressEvent

CURVES = ("silhouette", "davies_bouldin", "calinski_harabasz", "inertia")
#: One column each in sweep_results; inertia goes to sweep_runs.inertia (JSON by k).
STORED_CURVES = (*CURVES[:3], *SCORES)
#: The range swept when none is given: 2 to 20 clusters (fewer when the index is small).
DEFAULT_K_RANGE = (2, 20)


def default_k_range(n_images: int) -> list[int]:
    """DEFAULT_K_RANGE, its top lowered below the number of images."""
    low, high = DEFAULT_K_RANGE
    return list(range(low, max(low, min(high, n_images - 1)) + 1))


def parse_k_range(text: str) -> list[int]:
    """'2:20' -> [2, ..., 20] (both ends included); '8' -> [8]."""
    parts = str(text).split(":")
    try:
        low, high = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (None, None)
    except ValueError:
        low = high = None
    if low is None or high is None or low > high:
        raise UsageError(f"--k {text!r} is not a range A:B with A <= B (for example --k 2:20)")
    return list(range(low, high + 1))


@dataclass
class SweepResult:
    run_id: int
    space: str
    seed: int
    subset: str
    model: str | None
    untrained: bool
    n_images: int
    ks: list[int]
    curves: dict[str, list[float]]
    best_k: int
    projection_run_id: int | None = None
    plots: dict[str, Path] = field(default_factory=dict)
    #: metric -> the best k by it: silhouette always; nmi, ari, purity when there are labels
    best_by: dict[str, int] = field(default_factory=dict)
    #: what the label scores were computed on ("412 single-label images in 20 classes")
    labels: str | None = None
    default_range: bool = False

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"k": k} | {name: values[i] for name, values in self.curves.items()}
            for i, k in enumerate(self.ks)
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "space": self.space,
            "seed": self.seed,
            "subset": self.subset,
            "n_images": self.n_images,
            "model": self.model,
            "untrained": self.untrained,
            "projection_run_id": self.projection_run_id,
            "best_k": self.best_k,
            "best_by": "silhouette",
            "best_k_by": self.best_by,
            "labels": self.labels,
            "default_range": self.default_range,
            "results": self.rows(),
            "plots": {k: str(v) for k, v in self.plots.items()},
        }


def sweep(
    index: Index,
    ks: Sequence[int] | None = None,
    *,
    space: str = "embedding",
    seed: int = 0,
    subset: str = "all",
    n_iter: int = N_ITER,
    out: str | os.PathLike[str] | None = None,
    plot: bool = True,
    progress: Progress | None = None,
) -> SweepResult:
    """Cluster for every k in ks (default: 2 to 20); store each k's metrics; the best k has the
    highest silhouette, and, with labels, the highest NMI, ARI and purity."""
    ids, vectors = index.analysis_vectors(subset)
    default_range = ks is None
    ks = default_k_range(len(ids)) if ks is None else sorted(set(int(k) for k in ks))
    if not ks:
        raise UsageError("a sweep needs at least one k, for example --k 2:20")
    check_k(ks[0], len(ids))
    check_k(ks[-1], len(ids))
    model, untrained = index.describe_model()
    points, projection_run = points_in_space(
        index, ids, vectors, space, seed=seed, subset=subset, out=out, progress=progress
    )
    truth = label_truth(index, ids)
    if truth is not None and truth.n_scored < 2:
        truth = None  # too few single-label images to score the clusters against
    curves = _curves(points, vectors, ks, truth, n_iter=n_iter, seed=seed, progress=progress)
    best_by = {
        name: ks[int(np.argmax(curves[name]))] for name in ("silhouette", *SCORES) if name in curves
    }
    best_k = best_by["silhouette"]
    with index.catalog.transaction():
        run_id = index.catalog.runs.create(
            "sweep",
            {
                "space": space,
                "seed": seed,
                "model": model,
                "n_images": len(ids),
                "best_k": best_k,
                "projection_run_id": projection_run,
                "subset": subset,
                "inertia": json.dumps(dict(zip(map(str, ks), curves["inertia"]))),
                "best_k_by": json.dumps(best_by),
            },
        )
        index.catalog.runs.add_rows(
            "sweep",
            "sweep_results",
            run_id,
            {"k": ks} | {name: curves[name] for name in STORED_CURVES if name in curves},
        )
    result = SweepResult(
        run_id, space, seed, subset, model, untrained, len(ids), ks, curves, best_k, projection_run
    )
    result.best_by = best_by
    result.labels = truth.describe() if truth is not None else None
    result.default_range = default_range
    if plot:
        folder = config.plots_dir(index.dir, out, f"sweep-{run_id}")
        result.plots["metrics"] = _plot_metrics(result, folder / "metrics.png")
    return result


def _curves(
    points: np.ndarray,
    vectors: np.ndarray,
    ks: Sequence[int],
    truth: Truth | None,
    *,
    n_iter: int,
    seed: int,
    progress: Progress | None,
) -> dict[str, list[float]]:
    """K-means on points for each k; per k, the three metrics (on vectors) and the inertia, and
    NMI, ARI and purity against truth when there is one."""
    curves: dict[str, list[float]] = {
        name: [] for name in (*CURVES, *(SCORES if truth is not None else ()))
    }
    for done, k in enumerate(ks, 1):
        km = KMeans(k, n_iter=n_iter, random_state=seed, engine=faiss_engine).fit(points)
        m = cluster_metrics(vectors, km.labels_, random_state=seed)
        curves["silhouette"].append(m.silhouette.score)
        curves["davies_bouldin"].append(m.davies_bouldin)
        curves["calinski_harabasz"].append(m.calinski_harabasz)
        curves["inertia"].append(km.inertia_)
        if truth is not None:
            for name, value in (label_scores(truth, km.labels_) or {}).items():
                curves[name].append(value)
        if progress:
            progress(ProgressEvent("sweep", done, len(ks)))
    return curves


def _plot_metrics(result: SweepResult, path: Path) -> Path:
    """The curves against k, each metric's best k marked, titled with the best ks."""
    best_by = result.best_by
    by_labels = ", ".join(f"{n.upper()} {best_by[n]}" for n in SCORES if n in best_by)
    return plots.plot_sweep(
        result.ks,
        result.curves,
        path,
        best_by=best_by,
        title=f"K-means on {result.space}, {result.n_images} images (run {result.run_id}): best k "
        f"by silhouette {result.best_k}"
        + (f"; against the labels: {by_labels}" if by_labels else ""),
        untrained=result.untrained,
    )


def load_sweep(index: Index, run_id: int | None = None) -> SweepResult:
    """A stored sweep (the latest when run_id is None) as `sweep` returned it, without plots and
    without the description of the labels it was scored against."""
    runs = index.catalog.runs
    run_id = runs.resolve("sweep", run_id)
    run = runs.get("sweep", run_id)
    assert run is not None  # resolve checked it exists
    rows = runs.rows("sweep", "sweep_results", run_id).to_pylist()
    ks = [int(r["k"]) for r in rows]
    inertia = json.loads(run["inertia"] or "{}")
    curves: dict[str, list[float]] = {name: [r[name] for r in rows] for name in CURVES[:3]}
    curves["inertia"] = [inertia.get(str(k)) for k in ks]
    curves |= {
        name: [r[name] for r in rows] for name in SCORES if any(r[name] is not None for r in rows)
    }
    result = SweepResult(
        run_id,
        run["space"],
        run["seed"],
        run["subset"],
        run["model"],
        index.describe_model()[1],
        run["n_images"],
        ks,
        curves,
        run["best_k"],
        run["projection_run_id"],
    )
    result.best_by = json.loads(run["best_k_by"] or "{}") or {"silhouette": run["best_k"]}
    result.default_range = ks == default_k_range(run["n_images"])
    return result
