"""`project`: a 2-D map of the index's embeddings, stored as a run and drawn as a scatter plot."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from idx import config
from idx.analysis import plots
from idx.analysis.projection import Projector
from idx.indexer.index import Index
from idx.progress import Progress, forward


@dataclass
class ProjectionResult:
    """One stored 2-D map: coordinates xy[i] belong to image ids[i]."""

    run_id: int
    method: str
    params: dict[str, Any]
    seed: int
    ids: np.ndarray
    xy: np.ndarray
    model: str | None
    untrained: bool
    subset: str = "all"
    seconds: float | None = None
    plots: dict[str, Path] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "method": self.method,
            "params": self.params,
            "seed": self.seed,
            "n_images": len(self.ids),
            "subset": self.subset,
            "model": self.model,
            "untrained": self.untrained,
            "seconds": self.seconds,
            "plots": {k: str(v) for k, v in self.plots.items()},
        }


def project(
    index: Index,
    method: str = "tsne",
    *,
    perplexity: float = 30.0,
    seed: int = 0,
    subset: str = "all",
    out: str | os.PathLike[str] | None = None,
    plot: bool = True,
    progress: Progress | None = None,
) -> ProjectionResult:
    """Compute, store and (by default) plot a 2-D map of the subset's embeddings."""
    ids, vectors = index.analysis_vectors(subset)
    model, untrained = index.describe_model()
    start = time.perf_counter()
    projector = Projector(
        method, perplexity=perplexity, random_state=seed, progress=forward(progress, method)
    ).fit(vectors)
    seconds = time.perf_counter() - start
    with index.catalog.transaction():
        run_id = index.catalog.runs.create(
            "projection",
            {
                "method": method,
                "params": json.dumps(projector.params_),
                "seed": seed,
                "model": model,
                "n_images": len(ids),
                "subset": subset,
                "seconds": seconds,
            },
        )
        index.catalog.runs.add_rows(
            "projection",
            "projections",
            run_id,
            {
                "image_id": ids,
                "x": projector.embedding_[:, 0],
                "y": projector.embedding_[:, 1],
            },
        )
    result = ProjectionResult(
        run_id,
        method,
        projector.params_,
        seed,
        ids,
        projector.embedding_,
        model,
        untrained,
        subset,
        seconds,
    )
    if plot:
        result.plots["map"] = _draw(index, result, out)
    return result


def _draw(index: Index, result: ProjectionResult, out: str | os.PathLike[str] | None) -> Path:
    """The map, coloured by each image's label where the index has labels."""
    from idx.ops.maps.label_scores import label_truth

    folder = config.plots_dir(index.dir, out, f"projection-{result.run_id}")
    truth = label_truth(index, result.ids)
    title = f"{_label(result.method)} of {len(result.ids)} images (run {result.run_id})"
    return plots.plot_map(
        result.xy,
        folder / "map.png",
        labels=truth.primary if truth is not None else None,
        names=truth.names if truth is not None else None,
        legend="class",
        title=title + (", coloured by label" if truth is not None else ""),
        untrained=result.untrained,
    )


def _label(method: str) -> str:
    return {"tsne": "t-SNE", "pca": "PCA", "umap": "UMAP"}[method]


def load_projection(index: Index, run_id: int | None = None) -> ProjectionResult:
    """A stored map (the latest when run_id is None), ordered by image id."""
    run_id = index.catalog.runs.resolve("projection", run_id)
    run = index.catalog.runs.get("projection", run_id)
    assert run is not None  # resolve checked it exists
    table = index.catalog.runs.rows("projection", "projections", run_id, ["image_id", "x", "y"])
    method, params, seed, model, subset, seconds = (
        run[c] for c in ("method", "params", "seed", "model", "subset", "seconds")
    )
    ids = table.column("image_id").to_numpy().astype(np.int64)
    xy = np.column_stack([table.column("x").to_numpy(), table.column("y").to_numpy()])
    untrained = index.describe_model()[1]
    return ProjectionResult(
        run_id, method, json.loads(params), seed, ids, xy, model, untrained, subset, seconds
    )


def latest_covering(index: Index, ids: np.ndarray, method: str | None = None) -> int | None:
    """The newest map (of `method`, if given) holding a point for every one of `ids`."""
    return index.catalog.runs.covering_projection(ids, method)


def map_of(index: Index, run_id: int, ids: np.ndarray) -> np.ndarray:
    """Rows of a stored map for `ids`, in that order."""
    stored = load_projection(index, run_id)
    where = np.searchsorted(stored.ids, ids)
    return stored.xy[where]
