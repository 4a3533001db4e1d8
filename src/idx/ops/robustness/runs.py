"""Robustness runs and injections for `idx runs`: a stored measurement read back as `measure`
returned it, the newest one with a command's parameters (`idx robustness --show`), and each
kind's entry.

Light on purpose: measure.py and ops/injection.py load the model code, FAISS and PIL, so they
are imported only when a run is read back or removed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idx import config
from idx.ops.run_type import RunType, existing, figure, latest_matching, run_folder

if TYPE_CHECKING:
    from idx.indexer.index import Index
    from idx.ops.robustness.measure import RobustnessReport

#: The plots `measure` draws in <index>/plots/robustness-<run>/: {plot name: file}.
PLOTS = {"curves": "curves.png", "examples": "examples.png", "classes": "classes.png"}
CLEAN = "clean"


def load_robustness(index: Index, run_id: int | None = None) -> RobustnessReport:
    """A stored measurement (default: the latest) in the order `measure` made it: clean first,
    then each perturbation as asked, severities rising; per class, by label key. Its notes and
    skipped files are not stored: of the notes, only the untrained model's comes back."""
    from idx.ops.robustness.measure import (
        CLASS_COLUMNS,
        RESULT_COLUMNS,
        UNTRAINED_NOTE,
        RobustnessReport,
    )

    runs = index.catalog.runs
    run_id = runs.resolve("robustness", run_id)
    run = runs.get("robustness", run_id)
    assert run is not None  # resolve checked it exists
    names, levels = json.loads(run["perturbations"]), json.loads(run["severities"])
    order = {(CLEAN, 0): 0} | {
        (n, s): 1 + i * len(levels) + j for i, n in enumerate(names) for j, s in enumerate(levels)
    }

    def condition(row: dict[str, Any]) -> int:
        return order.get((row["perturbation"], row["severity"]), len(order))

    results = runs.rows("robustness", "robustness_results", run_id, RESULT_COLUMNS).to_pylist()
    shown = index.catalog.labels.display_names()
    classes = [
        {
            "perturbation": r["perturbation"],
            "severity": r["severity"],
            "label_name": r["label_name"],
            "display_name": shown.get(r["label_name"], r["label_name"]),
        }
        | {c: r[c] for c in CLASS_COLUMNS[3:]}
        for r in runs.rows("robustness", "robustness_classes", run_id).to_pylist()
    ]
    ident = index.stored_identity()
    untrained = bool(ident and ident.untrained)
    report = RobustnessReport(
        run_id=run_id,
        model=run["model"],
        untrained=untrained,
        perturbations=names,
        severities=levels,
        sample_size=run["sample_size"],
        k=run["k"],
        depth=run["depth"],
        cluster_run_id=run["cluster_run_id"],
        results=sorted(results, key=condition),
        classes=sorted(classes, key=lambda r: (condition(r), r["label_name"])),
        notes=[UNTRAINED_NOTE] if untrained else [],
        seed=run["seed"],
        seconds=run["seconds"] or 0.0,
        encoded=len(names) * len(levels) * run["sample_size"],
    )
    folder = Path(index.dir) / config.PLOTS_DIR / f"robustness-{run_id}"
    report.plots = {name: str(path) for name, path in existing(folder, PLOTS).items()}
    return report


def find_robustness(
    index: Index,
    perturbations: Sequence[str],
    severities: Sequence[int],
    *,
    sample: int,
    seed: int,
    k: int,
    depth: int,
    cluster_run: int | None,
) -> RobustnessReport | None:
    """The newest stored measurement with these parameters, as `measure` would resolve them now
    (the sample drawn, k and depth capped by the index's size, the cluster run chosen)."""
    from idx.ops.robustness.inputs import load_clusters, sample_ids

    ident = index.stored_identity()
    dim = int(ident.embed_dim or 0) if ident is not None else 0
    clusters = load_clusters(index.catalog, cluster_run, dim)
    depth = min(depth, index.catalog.images.count())
    wanted = {
        "perturbations": list(perturbations),
        "severities": list(severities),
        "sample_size": len(sample_ids(index.catalog, sample, seed)),
        "seed": seed,
        "k": min(k, depth - 1),
        "depth": depth,
        "cluster_run_id": clusters.run_id if clusters else None,
    }

    def same(row: dict[str, Any]) -> bool:
        found = {c: row[c] for c in wanted}
        found["perturbations"] = json.loads(row["perturbations"])
        found["severities"] = json.loads(row["severities"])
        return found == wanted

    run_id = latest_matching(index, "robustness", same)
    return None if run_id is None else load_robustness(index, run_id)


def _parameters(row: dict[str, Any]) -> str:
    names, levels = json.loads(row["perturbations"]), json.loads(row["severities"])
    what = ", ".join(names) if len(names) <= 3 else f"{len(names)} perturbations"
    return (
        f"{what} x severity {','.join(map(str, levels))}, sample {row['sample_size']}, "
        f"seed {row['seed']}, k={row['k']}"
    )


def _headline(index: Index, row: dict[str, Any]) -> str:
    """The lowest mean cosine between a perturbed image and its clean self, and where."""
    found = index.catalog.runs.rows(
        "robustness",
        "robustness_results",
        int(row["id"]),
        ["perturbation", "severity", "cos_mean"],
        ["cos_mean", "perturbation", "severity"],
    ).to_pylist()
    worst = next((r for r in found if r["severity"] > 0), None)
    if worst is None:
        return "lowest mean cosine -"
    where = f"{worst['perturbation']} s{worst['severity']}"
    return f"lowest mean cosine {figure(worst['cos_mean'])} ({where})"


def _load_injection(index: Index, run_id: int) -> Any:
    from idx.ops.injection import get_injection

    return get_injection(index, run_id)


def _remove_injection(index: Index, run_id: int) -> dict[str, int]:
    """Its images, their vectors and files go too (as `idx robustness eject`)."""
    from idx.ops.injection import eject

    (removed,) = eject(index, run_id)
    return {"injections": 1, "images": int(removed["removed"])}


def _injection_parameters(row: dict[str, Any]) -> str:
    level = f" severity {row['severity']}" if row.get("severity") else ""
    return f"{row['kind']}{level}, fraction {row['fraction']:g}, seed {row['seed']}"


RUNS = {
    "robustness": RunType(
        _parameters,
        _headline,
        load_robustness,
        run_folder("robustness"),
    ),
    "injection": RunType(
        _injection_parameters,
        lambda index, row: f"{row['n_images']} images added",
        _load_injection,
        lambda root, run_id: [],
        _remove_injection,
    ),
}
