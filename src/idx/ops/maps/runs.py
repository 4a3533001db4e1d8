"""The stored runs of the maps (projection, cluster, sweep) for `idx runs`, and the newest stored
run with a command's parameters for its `--show`.

Light on purpose: projection.py, clustering.py and sweep.py load scikit-learn, matplotlib and
FAISS, so they are imported only when a run is read back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idx import config
from idx.analysis.projection import effective_perplexity
from idx.ops.run_type import RunType, existing, figure, latest_matching, run_folder

if TYPE_CHECKING:
    from idx.indexer.index import Index
    from idx.ops.maps.clustering import ClusterResult
    from idx.ops.maps.projection import ProjectionResult
    from idx.ops.maps.sweep import SweepResult

#: The plots each command draws in its run's folder: {plot name: file}.
PROJECTION_PLOTS = {"map": "map.png"}
CLUSTER_PLOTS = {"map": "map.png", "silhouette": "silhouette.png"}
SWEEP_PLOTS = {"metrics": "metrics.png"}
METHOD_NAMES = {"tsne": "t-SNE", "pca": "PCA", "umap": "UMAP"}


def _root(index: Index) -> Path:
    return Path(index.dir) / config.PLOTS_DIR


def _images(row: dict[str, Any]) -> str:
    clean = " clean" if row.get("subset") == "clean" else ""
    return f"{row.get('n_images')}{clean} images"


def subset_size(index: Index, subset: str) -> int:
    """How many images a run on `subset` would read now (all, or clean: added from files)."""
    return index.catalog.images.count(config.FILES_SOURCE if subset == "clean" else None)


# -- projection --------------------------------------------------------------------------------


def _projection_parameters(row: dict[str, Any]) -> str:
    used = json.loads(row.get("params") or "{}").get("perplexity")
    perplexity = f"perplexity {used:g}, " if used is not None else ""
    return f"{row['method']}, {perplexity}seed {row['seed']}, {_images(row)}"


def load_projection_run(index: Index, run_id: int) -> ProjectionResult:
    from idx.ops.maps.projection import load_projection

    result = load_projection(index, run_id)
    result.plots = existing(_root(index) / f"projection-{run_id}", PROJECTION_PLOTS)
    return result


def find_projection(
    index: Index, method: str, *, perplexity: float, seed: int, subset: str = "all"
) -> ProjectionResult | None:
    """The newest stored map made with these parameters of the images there are now."""
    n = subset_size(index, subset)

    def same(row: dict[str, Any]) -> bool:
        used = json.loads(row.get("params") or "{}").get("perplexity")
        return (row["method"], row["seed"], row["subset"], row["n_images"]) == (
            method,
            seed,
            subset,
            n,
        ) and (method != "tsne" or used == effective_perplexity(perplexity, n))

    run_id = latest_matching(index, "projection", same)
    return None if run_id is None else load_projection_run(index, run_id)


# -- cluster -----------------------------------------------------------------------------------


def _cluster_parameters(row: dict[str, Any]) -> str:
    baseline = ", baselines" if "baselines" in json.loads(row.get("metrics") or "{}") else ""
    return (
        f"k={row['k']} {row['method']} on {row['space']}, seed {row['seed']}, "
        f"{_images(row)}{baseline}"
    )


def _cluster_headline(index: Index, row: dict[str, Any]) -> str:
    return f"silhouette {figure(json.loads(row.get('metrics') or '{}').get('silhouette'))}"


def load_cluster_run(index: Index, run_id: int) -> ClusterResult:
    from idx.ops.maps.clustering import load_clusters

    result = load_clusters(index, run_id)
    folder = _root(index) / f"cluster-{run_id}"
    result.plots = dict(existing(folder, CLUSTER_PLOTS))
    if folder.is_dir():
        result.plots["contact_sheets"] = sorted(folder.glob("cluster-*.png"))
    return result


def find_cluster(
    index: Index,
    k: int,
    *,
    method: str,
    space: str,
    seed: int,
    subset: str = "all",
    baseline: bool = False,
) -> ClusterResult | None:
    """The newest stored clustering made with these parameters of the images there are now."""
    from idx.ops.maps.clustering import N_ITER

    wanted = (k, method, space, seed, subset, subset_size(index, subset), N_ITER, baseline)

    def same(row: dict[str, Any]) -> bool:
        baselines = "baselines" in json.loads(row.get("metrics") or "{}")
        found = ("k", "method", "space", "seed", "subset", "n_images", "n_iter")
        return (*(row[c] for c in found), baselines) == wanted

    run_id = latest_matching(index, "cluster", same)
    return None if run_id is None else load_cluster_run(index, run_id)


# -- sweep -------------------------------------------------------------------------------------


def _swept(row: dict[str, Any]) -> list[int]:
    """The ks of a sweep, from its inertia (JSON by k)."""
    return sorted(int(k) for k in json.loads(row.get("inertia") or "{}"))


def _sweep_parameters(row: dict[str, Any]) -> str:
    ks = _swept(row)
    span = f"k {ks[0]}:{ks[-1]}" if ks else "k ?"
    return f"{span} on {row['space']}, seed {row['seed']}, {_images(row)}"


def load_sweep_run(index: Index, run_id: int) -> SweepResult:
    from idx.ops.maps.sweep import load_sweep

    result = load_sweep(index, run_id)
    result.plots = existing(_root(index) / f"sweep-{run_id}", SWEEP_PLOTS)
    return result


def find_sweep(
    index: Index, ks: list[int] | None, *, space: str, seed: int, subset: str = "all"
) -> SweepResult | None:
    """The newest stored sweep over these ks (default: the default range) with these parameters
    of the images there are now."""
    from idx.ops.maps.sweep import default_k_range

    n = subset_size(index, subset)
    wanted = default_k_range(n) if ks is None else sorted(set(ks))

    def same(row: dict[str, Any]) -> bool:
        found = (row["space"], row["seed"], row["subset"], row["n_images"])
        return found == (space, seed, subset, n) and _swept(row) == wanted

    run_id = latest_matching(index, "sweep", same)
    return None if run_id is None else load_sweep_run(index, run_id)


RUNS = {
    "projection": RunType(
        _projection_parameters,
        lambda index, row: f"{METHOD_NAMES.get(row['method'], row['method'])} map",
        load_projection_run,
        run_folder("projection"),
    ),
    "cluster": RunType(
        _cluster_parameters,
        _cluster_headline,
        load_cluster_run,
        run_folder("cluster"),
    ),
    "sweep": RunType(
        _sweep_parameters,
        lambda index, row: f"best k {row['best_k']} (silhouette)",
        load_sweep_run,
        run_folder("sweep"),
    ),
}
