"""What a robustness measurement reads besides images: its arguments, the sample, labels and
cluster centres.

Labels (tables `classes`, `labels`) and cluster runs (`cluster_runs`, `cluster_centers`) belong to
other commands; when their tables are absent or empty the measurement says what is unavailable
and which command produces it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from idx.analysis import perturbations as registry
from idx.errors import NotFoundError, UsageError
from idx.indexer.catalog import Catalog

#: images.source of the files a user added (injected images are 'inject:<id>').
FILES_SOURCE = "files"


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
    """Canonical registry names ('all' = every registered one), unknown names refused."""
    out: list[str] = []
    for name in names:
        name = name.strip()
        chosen = (
            registry.perturbation_names()
            if name == "all"
            else [registry.get_perturbation(name).name]
        )
        out += [n for n in chosen if n not in out]
    if not out:
        raise UsageError("--perturb needs at least one name; see `idx robustness list`")
    return out


def has_tables(catalog: Catalog, *names: str) -> bool:
    rows = catalog.con.execute(
        "SELECT count(DISTINCT table_name) FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_name IN (SELECT unnest(?::VARCHAR[]))",
        [list(names)],
    ).fetchall()
    return int(rows[0][0]) == len(names)


def sample_ids(catalog: Catalog, size: int, seed: int) -> np.ndarray:
    """A seeded sample of the user's images (injected ones are left out), sorted by id."""
    if size < 1:
        raise UsageError(f"--sample must be at least 1, not {size}")
    ids = np.array(
        [
            r[0]
            for r in catalog.con.execute(
                "SELECT id FROM images WHERE source = ? ORDER BY id", [FILES_SOURCE]
            ).fetchall()
        ],
        dtype=np.int64,
    )
    if len(ids) <= size:
        return ids
    return np.sort(np.random.default_rng(seed).choice(ids, size, replace=False))


@dataclass
class Labels:
    """Positive labels of the images, as the metrics want them."""

    names: list[str]  # label_name, one per column
    display: list[str]  # display name for prompts
    ids: np.ndarray  # sorted image ids that have a positive label
    primary: np.ndarray  # label index each of `ids` votes for in kNN (highest confidence)
    positives: dict[int, set[int]]

    def truth(self, query_ids: np.ndarray) -> np.ndarray:
        out = np.zeros((len(query_ids), len(self.names)), dtype=bool)
        for i, image_id in enumerate(query_ids.tolist()):
            for j in self.positives.get(image_id, ()):
                out[i, j] = True
        return out


def load_labels(catalog: Catalog) -> Labels | None:
    """Positive labels (confidence > 0) of indexed images, or None when there are none."""
    if not has_tables(catalog, "labels"):
        return None
    rows = catalog.con.execute(
        "SELECT l.image_id, l.label_name, l.confidence FROM labels l "
        "JOIN images i ON i.id = l.image_id WHERE l.confidence > 0 "
        "ORDER BY l.image_id, l.confidence DESC, l.label_name"
    ).fetchall()
    if not rows:
        return None
    names = sorted({r[1] for r in rows})
    column = {n: j for j, n in enumerate(names)}
    display = dict.fromkeys(names)
    if has_tables(catalog, "classes"):
        for label, shown in catalog.con.execute(
            "SELECT label_name, display_name FROM classes"
        ).fetchall():
            if label in display and shown:
                display[label] = shown
    positives: dict[int, set[int]] = {}
    primary: dict[int, int] = {}
    for image_id, label, _ in rows:
        positives.setdefault(image_id, set()).add(column[label])
        primary.setdefault(image_id, column[label])  # rows come best first
    ids = np.array(sorted(primary), dtype=np.int64)
    return Labels(
        names=names,
        display=[display[n] or n for n in names],
        ids=ids,
        primary=np.array([primary[i] for i in ids.tolist()], dtype=np.int64),
        positives=positives,
    )


@dataclass
class Clusters:
    run_id: int
    k: int
    centers: np.ndarray


def load_clusters(catalog: Catalog, run_id: int | None, dim: int) -> Clusters | None:
    """Centres of cluster run `run_id`, else of the latest run in the embedding space (None if
    there is none). A run in another space (e.g. a 2-D projection) has centres of another size."""
    if not has_tables(catalog, "cluster_runs", "cluster_centers"):
        if run_id is not None:
            raise NotFoundError(
                f"cluster run {run_id} does not exist: this index has no cluster runs; "
                "make one with `idx cluster --k K`"
            )
        return None
    runs = catalog.con.execute(
        "SELECT r.id, r.k, c.cluster, c.vector FROM cluster_runs r "
        "JOIN cluster_centers c ON c.run_id = r.id "
        + ("WHERE r.id = ? " if run_id is not None else "")
        + "ORDER BY r.id DESC, c.cluster",
        [run_id] if run_id is not None else [],
    ).fetchall()
    by_run: dict[int, list] = {}
    for rid, k, _, vector in runs:
        by_run.setdefault(rid, [k]).append(vector)
    if run_id is not None and run_id not in by_run:
        raise NotFoundError(
            f"cluster run {run_id} does not exist or has no centres; list runs with "
            '`idx sql "SELECT * FROM cluster_runs"` or make one with `idx cluster --k K`'
        )
    for rid, (k, *vectors) in by_run.items():
        centers = np.asarray(vectors, dtype=np.float32)
        if centers.ndim == 2 and centers.shape[1] == dim:
            return Clusters(rid, int(k), centers)
        if run_id is not None:
            raise UsageError(
                f"cluster run {run_id} has {centers.shape[-1]}-dimensional centres, not the "
                f"{dim}-dimensional embedding space; pick a run made on the embeddings "
                "(`idx cluster --k K`)"
            )
    return None
