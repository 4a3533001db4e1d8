"""What a robustness measurement reads besides images: its arguments, the sample, labels and
cluster centres.

Labels and cluster runs belong to other commands; when the index has none the measurement says
what is unavailable and which command produces it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from idx import config
from idx.analysis import perturbations as registry
from idx.errors import NotFoundError, UsageError
from idx.indexer.catalog import Catalog


def parse_severities(text: str) -> list[int]:
    """'1:5' (a range), '1,3,5' (a list) or '3'; every level within 1..5."""
    try:
        if ":" in text:
            lo, hi = (int(part) for part in text.split(":"))
            levels = list(range(lo, hi + 1))
        else:
            levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        levels = []
    if not levels or any(s not in registry.SEVERITIES for s in levels):
        raise UsageError(
            f"--severity {text!r} is not a level list; use a range like 1:5, a list like "
            "1,3,5 or one level, each from 1 to 5"
        )
    return sorted(set(levels))


def resolve_perturbations(names: Iterable[str]) -> list[str]:
    """Canonical registry names ('all' = every registered one, 'imagenet-c' = ImageNet-C's 15
    in its tables' order), unknown names refused."""
    out: list[str] = []
    for name in names:
        name = name.strip()
        if name == "all":
            chosen = registry.perturbation_names()
        elif name == registry.IMAGENET_C_SUITE:
            chosen = list(registry.IMAGENET_C)
        else:
            chosen = [registry.get_perturbation(name).name]
        out += [n for n in chosen if n not in out]
    if not out:
        raise UsageError("--perturb needs at least one name; see `idx robustness list`")
    return out


def sample_ids(catalog: Catalog, size: int, seed: int) -> np.ndarray:
    """A seeded sample of the user's images (injected ones are left out), sorted by id."""
    if size < 1:
        raise UsageError(f"--sample must be at least 1, not {size}")
    return catalog.images.sample(size, seed, config.FILES_SOURCE)


@dataclass
class Clusters:
    run_id: int
    k: int
    centers: np.ndarray


def load_clusters(catalog: Catalog, run_id: int | None, dim: int) -> Clusters | None:
    """Centres of cluster run `run_id`, else of the latest run in the embedding space (None if
    there is none). A run in another space (e.g. a 2-D projection) has centres of another size."""
    runs = catalog.runs.all("cluster")
    if run_id is not None:
        runs = [r for r in runs if r["id"] == run_id]
    for run in runs:
        vectors = catalog.runs.rows("cluster", "cluster_centers", run["id"], ["vector"])
        if vectors.num_rows == 0:
            continue
        centers = np.asarray(vectors.column("vector").to_pylist(), dtype=np.float32)
        if centers.ndim == 2 and centers.shape[1] == dim:
            return Clusters(int(run["id"]), int(run["k"]), centers)
        if run_id is not None:
            raise UsageError(
                f"cluster run {run_id} has {centers.shape[-1]}-dimensional centres, not the "
                f"{dim}-dimensional embedding space; pick a run made on the embeddings "
                f"(`{config.command(catalog.index_dir, 'cluster', '--k', 'K')}`)"
            )
    if run_id is not None:
        raise NotFoundError(
            f"cluster run {run_id} does not exist or has no centres; list runs with "
            f"`{config.command(catalog.index_dir, 'sql', 'SELECT * FROM cluster_runs')}` "
            f"or make one with `{config.command(catalog.index_dir, 'cluster', '--k', 'K')}`"
        )
    return None
