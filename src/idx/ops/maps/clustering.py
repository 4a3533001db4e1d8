"""`cluster`: K-means over the index's embeddings (or a 2-D map of them), evaluated (against the
labels too, where the index has them), stored, drawn."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from idx import config
from idx.analysis import baselines, plots
from idx.analysis.clustering import METHODS, SPACES, KMeans, check_k
from idx.analysis.metrics import cluster_metrics
from idx.analysis.projection import Projector
from idx.errors import UsageError
from idx.indexer.index import Index
from idx.indexer.vectors.kmeans import faiss_engine
from idx.ops.maps.label_scores import Truth, label_scores, label_truth
from idx.ops.maps.projection import latest_covering, load_projection, map_of, project
from idx.ops.thumbnails import decode_thumbnails
from idx.progress import Progress, ProgressEvent

#: Lloyd iterations (FAISS's default).
N_ITER = 25
#: Thumbnails per row of a contact sheet (nearest row, farthest row).
SHEET_COLUMNS = 6
THUMBNAIL_SIDE = plots.SHEET_TILE
#: Side of the decoded images the pixel baselines are computed from.
BASELINE_SIDE = 64


@dataclass
class ClusterResult:
    """One stored clustering: image ids[i] is in cluster labels[i] at distances[i] from its centre.

    `metrics` is what the run stored (JSON in cluster_runs.metrics); `silhouette_values` are the
    per-image cosine silhouettes in embedding space.
    """

    run_id: int
    k: int
    method: str
    space: str
    seed: int
    subset: str
    model: str | None
    untrained: bool
    ids: np.ndarray
    labels: np.ndarray
    distances: np.ndarray
    centers: np.ndarray
    metrics: dict[str, Any]
    silhouette_values: np.ndarray | None = None
    projection_run_id: int | None = None
    seconds: float | None = None
    plots: dict[str, Any] = field(default_factory=dict)

    @property
    def sizes(self) -> list[int]:
        return np.bincount(self.labels, minlength=self.k).tolist()

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "k": self.k,
            "method": self.method,
            "space": self.space,
            "seed": self.seed,
            "subset": self.subset,
            "n_images": len(self.ids),
            "model": self.model,
            "untrained": self.untrained,
            "projection_run_id": self.projection_run_id,
            "seconds": self.seconds,
            "sizes": self.sizes,
            "metrics": self.metrics,
            "plots": _paths(self.plots),
        }


def _paths(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value)


def check_choice(value: str, allowed: tuple[str, ...], option: str) -> None:
    if value not in allowed:
        raise UsageError(f"{option} {value!r} is unknown; use one of {', '.join(allowed)}")


def points_in_space(
    index: Index,
    ids: np.ndarray,
    vectors: np.ndarray,
    space: str,
    *,
    seed: int,
    subset: str,
    out: str | os.PathLike[str] | None,
    progress: Progress | None,
) -> tuple[np.ndarray, int | None]:
    """The points to cluster, and the map they come from when the space is 2-D.

    A 2-D space uses the newest stored map of that method holding every image (as the original
    analysis clustered its t-SNE map); without one, a map is computed and stored first.
    """
    check_choice(space, SPACES, "--space")
    if space == "embedding":
        return vectors, None
    run_id = latest_covering(index, ids, space)
    if run_id is None:
        run_id = project(index, space, seed=seed, subset=subset, out=out, progress=progress).run_id
    return map_of(index, run_id, ids), run_id


def cluster(
    index: Index,
    k: int,
    *,
    method: str = "kmeans",
    space: str = "embedding",
    seed: int = 0,
    subset: str = "all",
    baseline: bool = False,
    n_iter: int = N_ITER,
    out: str | os.PathLike[str] | None = None,
    plot: bool = True,
    progress: Progress | None = None,
) -> ClusterResult:
    """Cluster the subset's images into k groups, store the run, and draw its plots."""
    check_choice(method, METHODS, "--method")
    check_choice(space, SPACES, "--space")
    ids, vectors = index.analysis_vectors(subset)
    check_k(k, len(ids))
    model, untrained = index.describe_model()
    points, projection_run = points_in_space(
        index, ids, vectors, space, seed=seed, subset=subset, out=out, progress=progress
    )
    if progress:
        progress(ProgressEvent("k-means", 0, 0))  # no per-iteration callback from FAISS
    start = time.perf_counter()
    km = KMeans(k, n_iter=n_iter, random_state=seed, engine=faiss_engine).fit(points)
    seconds = time.perf_counter() - start
    quality = cluster_metrics(vectors, km.labels_, random_state=seed)
    metrics = quality.as_dict() | {"inertia": km.inertia_, "metric_space": "embedding"}
    if projection_run is not None:
        map_quality = cluster_metrics(points, km.labels_, metric="euclidean", random_state=seed)
        metrics["map"] = map_quality.as_dict()
    truth = label_truth(index, ids)
    scores = label_scores(truth, km.labels_) if truth is not None else None
    if truth is not None and scores is not None:
        metrics |= scores | {"labels_scored": truth.describe()}
    if baseline:
        metrics["baselines"] = baseline_metrics(index, ids, vectors, k, seed, n_iter, progress)
    result = ClusterResult(
        run_id=0,
        k=k,
        method=method,
        space=space,
        seed=seed,
        subset=subset,
        model=model,
        untrained=untrained,
        ids=ids,
        labels=km.labels_,
        distances=km.distances_,
        centers=km.cluster_centers_,
        metrics=metrics,
        silhouette_values=quality.silhouette.values,
        projection_run_id=projection_run,
        seconds=seconds,
    )
    result.metrics["sizes"] = result.sizes
    result.run_id = _store(index, result, n_iter)
    if plot:
        result.plots = draw(
            index, result, points if projection_run is not None else None, out, progress
        )
    return result


def baseline_metrics(
    index: Index,
    ids: np.ndarray,
    vectors: np.ndarray,
    k: int,
    seed: int,
    n_iter: int,
    progress: Progress | None,
) -> dict[str, dict[str, Any]]:
    """The same K-means and metrics on random vectors of the same shape and on pixel features."""
    decoded = decode_thumbnails(index, ids, BASELINE_SIDE, progress, "baseline")
    n, d = vectors.shape
    features = {"random": baselines.random_vectors(n, d, random_state=seed)}
    features |= {name: fn(decoded) for name, fn in baselines.IMAGE_FEATURES.items()}
    out = {}
    for name, X in features.items():
        km = KMeans(k, n_iter=n_iter, random_state=seed, engine=faiss_engine).fit(X)
        try:
            m = cluster_metrics(X, km.labels_, random_state=seed).as_dict()
        except UsageError as exc:  # e.g. identical pixel features: one cluster
            m = {"error": str(exc)}
        out[name] = m | {"dim": int(X.shape[1])}
    return out


def _store(index: Index, r: ClusterResult, n_iter: int) -> int:
    with index.catalog.transaction():
        run_id = index.catalog.runs.create(
            "cluster",
            {
                "k": r.k,
                "method": r.method,
                "space": r.space,
                "seed": r.seed,
                "model": r.model,
                "metrics": json.dumps(r.metrics),
                "n_images": len(r.ids),
                "projection_run_id": r.projection_run_id,
                "subset": r.subset,
                "n_iter": n_iter,
                "seconds": r.seconds,
            },
        )
        index.catalog.runs.add_rows(
            "cluster",
            "clusters",
            run_id,
            {
                "image_id": r.ids,
                "cluster": r.labels.astype(np.int32),
                "distance": r.distances,
            },
        )
        index.catalog.runs.add_rows(
            "cluster",
            "cluster_centers",
            run_id,
            {
                "cluster": np.arange(r.k, dtype=np.int32),
                "vector": r.centers,
            },
        )
    return run_id


def draw(
    index: Index,
    r: ClusterResult,
    xy: np.ndarray | None,
    out: str | os.PathLike[str] | None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Map coloured by cluster, silhouette plot, one contact sheet per cluster."""
    folder = config.plots_dir(index.dir, out, f"cluster-{r.run_id}")
    what = f"k={r.k} on {r.space}, {len(r.ids)} images (run {r.run_id})"
    if xy is None:
        xy, map_name = _map_for_plot(index, r)
    else:
        map_name = r.space
    assert r.silhouette_values is not None  # drawn when computed (cluster), not when loaded
    drawn: dict[str, Any] = {
        "map": plots.plot_map(
            xy,
            folder / "map.png",
            labels=r.labels,
            title=f"{map_name} map, {what}",
            untrained=r.untrained,
        ),
        "silhouette": plots.plot_silhouette(
            r.silhouette_values,
            r.labels,
            folder / "silhouette.png",
            score=r.metrics["silhouette"],
            title=f"cosine silhouette, {what}",
            untrained=r.untrained,
        ),
    }
    drawn["contact_sheets"] = _contact_sheets(index, r, folder, progress)
    return drawn


def _map_for_plot(index: Index, r: ClusterResult) -> tuple[np.ndarray, str]:
    """The newest stored map of these images, else a PCA computed for the picture only."""
    run_id = latest_covering(index, r.ids)
    if run_id is not None:
        return map_of(index, run_id, r.ids), load_projection(index, run_id).method
    vectors = index.embeddings(r.ids)[1]
    return Projector("pca", random_state=r.seed).fit(vectors).embedding_, "pca"


def _contact_sheets(
    index: Index, r: ClusterResult, folder: Path, progress: Progress | None
) -> list[Path]:
    picks: list[tuple[np.ndarray, np.ndarray]] = []
    for c in range(r.k):
        members = np.flatnonzero(r.labels == c)
        ordered = members[np.argsort(r.distances[members], kind="stable")]
        near = ordered[:SHEET_COLUMNS]
        far = ordered[len(near) :][-SHEET_COLUMNS:][::-1]
        picks.append((near, far))
    wanted = np.unique(np.concatenate([np.concatenate(p) for p in picks]).astype(np.int64))
    thumbs = dict(
        zip(
            wanted.tolist(),
            decode_thumbnails(index, r.ids[wanted], THUMBNAIL_SIDE, progress, "thumbnails"),
        )
    )
    truth = label_truth(index, r.ids)
    sheets = []
    for c, (near, far) in enumerate(picks):
        sheets.append(
            plots.contact_sheet(
                [thumbs[i] for i in near.tolist()],
                [thumbs[i] for i in far.tolist()],
                folder / f"cluster-{c:02d}.png",
                title=f"cluster {c} of run {r.run_id}: {len(near) + len(far)} of "
                f"{int((r.labels == c).sum())} images, nearest and farthest from the centre",
                tile=THUMBNAIL_SIDE,
                captions=(_captions(r, truth, near), _captions(r, truth, far)),
                untrained=r.untrained,
            )
        )
    return sheets


def _captions(r: ClusterResult, truth: Truth | None, rows: np.ndarray) -> list[str]:
    """The id of each image at `rows`, and its label where the index has labels."""
    ids = r.ids[rows].tolist()
    if truth is None:
        return [f"#{i}" for i in ids]
    names = [truth.names[c] if c >= 0 else "unlabelled" for c in truth.primary[rows].tolist()]
    return [f"#{i}\n{name}" for i, name in zip(ids, names)]


def load_clusters(index: Index, run_id: int | None = None) -> ClusterResult:
    """A stored clustering (the latest when run_id is None) with its centres, ordered by image id."""
    run_id = index.catalog.runs.resolve("cluster", run_id)
    run = index.catalog.runs.get("cluster", run_id)
    assert run is not None  # resolve checked it exists
    k, method, space, seed, subset, model, metrics, projection_run, seconds = (
        run[c]
        for c in (
            "k",
            "method",
            "space",
            "seed",
            "subset",
            "model",
            "metrics",
            "projection_run_id",
            "seconds",
        )
    )
    rows = index.catalog.runs.rows(
        "cluster", "clusters", run_id, ["image_id", "cluster", "distance"]
    )
    centres = index.catalog.runs.rows("cluster", "cluster_centers", run_id, ["vector"])
    matrix = np.stack(
        [np.asarray(v, dtype=np.float32) for v in centres.column("vector").to_pylist()]
    )
    return ClusterResult(
        run_id=run_id,
        k=k,
        method=method,
        space=space,
        seed=seed,
        subset=subset,
        model=model,
        untrained=index.describe_model()[1],
        ids=rows.column(0).to_numpy().astype(np.int64),
        labels=rows.column(1).to_numpy().astype(np.int64),
        distances=rows.column(2).to_numpy(),
        centers=matrix,
        metrics=json.loads(metrics),
        projection_run_id=projection_run,
        seconds=seconds,
    )
