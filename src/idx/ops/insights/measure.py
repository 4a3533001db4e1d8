"""`insights`: compare the index's embedding space with its labels and store what was found.

Reads the positive labels of indexed images and their vectors, the latest (or a given) clustering
run when there is one, and the text encoder's embeddings of each class's prompt
(`config.prompt`), runs `idx.analysis.insights.LabelInsights`, and writes insight_runs,
class_insights, confused_pairs and suspect_labels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from idx import config
from idx.errors import EmptyIndexError, ModelLoadError, NotFoundError, UsageError
from idx.ops.insights.labelled import LabelledSet, load_labelled
from idx.ops.insights.runs import InsightsResult, inputs, store_insights
from idx.ops.labels.hierarchy import Rollup
from idx.ops.labels.positives import load_positives, prompt_vectors
from idx.progress import Progress, ProgressEvent

if TYPE_CHECKING:
    from idx.analysis.insights import LabelInsights
    from idx.indexer.index import Index

log = logging.getLogger(__name__)


def latest_cluster_run(index: Index, run: int | None = None) -> int | None:
    """The clustering run to compare with: `run`, else the newest; None when there is none."""
    if run is None:
        return index.catalog.runs.latest("cluster")
    if index.catalog.runs.get("cluster", run) is None:
        listing = config.command(
            index.dir, "sql", "SELECT id, k, method, created_at FROM cluster_runs"
        )
        raise NotFoundError(
            f"cluster run {run} does not exist; list runs with `{listing}` "
            f"or make one with `{config.command(index.dir, 'cluster', '--k', 'K')}`"
        )
    return run


def cluster_assignments(index: Index, run_id: int, ids: np.ndarray) -> np.ndarray:
    """Cluster of each image in `ids` (sorted) for a clustering run; -1 where the run has none."""
    table = index.catalog.runs.rows("cluster", "clusters", run_id, ["image_id", "cluster"])
    found = table.column("image_id").to_numpy()
    out = np.full(len(ids), -1, dtype=np.int64)
    if len(found):
        at = np.minimum(np.searchsorted(found, ids), len(found) - 1)
        hit = found[at] == ids
        out[hit] = table.column("cluster").to_numpy()[at[hit]]
    return out


def insights(
    index: Index,
    *,
    cluster_run: int | None = None,
    k_nn: int = 10,
    zero_shot: bool = True,
    sources: list[str] | None = None,
    suspect_vote_share: float = 0.6,
    plots_dir: str | os.PathLike[str] | None = None,
    plots: bool = True,
    random_state: int = 0,
    probe: bool = True,
    folds: int = 5,
    rollup: Rollup | None = None,
    progress: Progress | None = None,
) -> InsightsResult:
    """Measure how well the embedding space matches the labels; store and return the results.

    With `probe`, also the linear probe (logistic regression, stratified `folds`-fold
    cross-validation) on the embeddings and on the baselines (random vectors, colour histograms),
    with kNN accuracy on the baselines too. With `rollup`, every insight is at parent classes of
    the stored hierarchy: an image counts for each is-a ancestor of its labels there."""
    _check(k_nn, folds, suspect_vote_share)
    index.require_images("analyse")
    step = _stepper(progress)
    notes: list[str] = []
    step("load labels")
    data = _labelled(index, sources, rollup, k_nn, notes)
    run_id = latest_cluster_run(index, cluster_run)
    clusters = _clusters(index, run_id, data.ids, notes)
    texts = _prompt_vectors(index, data, step, notes) if zero_shot else None
    step("neighbours and metrics")
    from idx.analysis.insights import LabelInsights  # scikit-learn: slow to import, load late

    fitted = LabelInsights(
        k_nn=k_nn, suspect_vote_share=suspect_vote_share, random_state=random_state
    ).fit(data.vectors, data.y, clusters=clusters, text_embeddings=texts)
    metrics = _metrics(
        index,
        fitted,
        run_id,
        notes,
        sources=sources,
        zero_shot=zero_shot,
        rollup=rollup,
        k_nn=k_nn,
        probe=probe,
        folds=folds,
        suspect_vote_share=suspect_vote_share,
        random_state=random_state,
    )
    probes = None
    if probe:
        probes = _probe(index, data, folds, fitted.k_, random_state, metrics, notes, step, progress)
    result = store_insights(index, data, fitted, metrics, run_id, probes)
    result.notes = notes
    if plots:
        step("plots")
        from idx.ops.insights.plots import draw_insights

        result.plots = draw_insights(data, fitted, result, config.plots_dir(index.dir, plots_dir))
    step("done")
    return result


def _metrics(
    index: Index,
    fitted: LabelInsights,
    run_id: int | None,
    notes: list[str],
    *,
    sources: list[str] | None,
    zero_shot: bool,
    rollup: Rollup | None,
    **asked: Any,
) -> dict[str, Any]:
    """The run's metrics: the fitted summary, what the run was made with (model, sources,
    cluster run, prompt, rollup) and its `inputs`, which a later --show matches on; a note when
    the model is untrained."""
    ident = index.stored_identity()
    if ident is not None and ident.untrained:
        notes.append("the model has UNTRAINED random weights: these numbers say nothing about CLIP")
    return fitted.summary_ | {
        "model": ident.describe() if ident else None,
        "untrained": bool(ident and ident.untrained),
        "sources": sources,
        "cluster_run_id": run_id,
        "prompt": config.PROMPT_TEMPLATE.format("{display_name}") if zero_shot else None,
        "rollup": None
        if rollup is None
        else {"level": rollup.level, "classes": list(rollup.names) or None},
        "inputs": inputs(
            index,
            cluster_run_id=run_id,
            zero_shot=zero_shot,
            sources=sources,
            rollup=rollup,
            **asked,
        ),
    }


def _check(k_nn: int, folds: int, suspect_vote_share: float) -> None:
    if k_nn < 1:
        raise UsageError(f"--k-nn must be at least 1, not {k_nn}")
    if folds < 2:
        raise UsageError(f"--folds must be at least 2, not {folds}")
    if not 0 < suspect_vote_share <= 1:
        raise UsageError(f"suspect vote share must be in (0, 1], not {suspect_vote_share}")


def _labelled(
    index: Index, sources: list[str] | None, rollup: Rollup | None, k_nn: int, notes: list[str]
) -> LabelledSet:
    """The labelled images (at the rollup's classes, if any); at least 2 of them."""
    data = load_labelled(index, sources, rollup)
    if rollup is not None:
        positives = load_positives(index.catalog, sources)
        assert positives is not None  # the rolled-up labels came from these
        left_out = len(positives.ids) - len(data.ids)
        notes.append(
            f"labels rolled up to {rollup.describe()}: {len(data.label_names)} classes"
            + (
                f"; {left_out} labelled images have no class there and are left out"
                if left_out
                else ""
            )
        )
    if len(data.ids) < 2:
        raise EmptyIndexError("insights need at least 2 labelled images; import more labels")
    if k_nn >= len(data.ids):
        notes.append(
            f"--k-nn {k_nn} lowered to {len(data.ids) - 1}: only {len(data.ids)} labelled images"
        )
    return data


def _clusters(
    index: Index, run_id: int | None, ids: np.ndarray, notes: list[str]
) -> np.ndarray | None:
    """Each image's cluster in the clustering run, None (and a note) when there is no run."""
    if run_id is None:
        notes.append(
            "cluster metrics unavailable: no clustering run in this index; run "
            f"`{config.command(index.dir, 'cluster', '--k', 'K')}` and then "
            f"`{config.command(index.dir, 'insights')}` again"
        )
        return None
    return cluster_assignments(index, run_id, ids)


def _prompt_vectors(
    index: Index, data: LabelledSet, step: Callable[[str], None], notes: list[str]
) -> np.ndarray | None:
    """The text embeddings of each class's prompt, None (and a note) when the model cannot
    encode text."""
    step("encode class prompts")
    try:
        return prompt_vectors(index, data.display_names)
    except ModelLoadError as exc:
        notes.append(f"zero-shot accuracy unavailable: {exc}")
        return None


def _probe(index, data, folds, k_nn, seed, metrics, notes, step, progress) -> dict | None:
    """The linear probes, their figures added to `metrics` beside the other baselines."""
    if len(np.unique(data.primary)) < 2 or len(data.ids) < 4:
        notes.append("linear probe unavailable: it needs at least 2 classes and 4 labelled images")
        return None
    step("linear probe")
    from idx.ops.insights.probe import probe_all

    probes = probe_all(index, data, folds=folds, k_nn=k_nn, seed=seed, progress=progress)
    clip = probes["clip"]
    metrics["linear_probe_accuracy"] = clip["accuracy"]
    metrics["linear_probe"] = {k: v for k, v in clip.items() if k not in ("accuracy", "per_class")}
    base = metrics["baselines"]
    base["majority_class"]["linear_probe_accuracy"] = base["majority_class"]["knn_accuracy"]
    for name in ("random_vectors", "colour_histogram"):
        base[name] = {
            "knn_accuracy": probes[name]["knn_accuracy"],
            "linear_probe_accuracy": probes[name]["accuracy"],
        }
    if clip["folds"] < folds:
        notes.append(
            f"linear probe: {clip['folds']} folds, not {folds}: the largest class has "
            f"{clip['folds']} images"
        )
    return probes


def _stepper(progress: Progress | None):
    phases = (
        "load labels",
        "encode class prompts",
        "neighbours and metrics",
        "linear probe",
        "plots",
        "done",
    )

    def step(phase: str) -> None:
        log.info("insights: %s", phase)
        if progress is not None:
            progress(ProgressEvent(phase, phases.index(phase), len(phases) - 1))

    return step
