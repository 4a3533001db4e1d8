"""`idx robustness`: perturb a seeded sample of indexed images in memory, re-embed, measure.

Each sampled file is decoded once, exactly as `add` decodes it (so severity 0 is the stored
vector), and resized to the model's input size; then every (perturbation, severity) is applied to
that picture and preprocessed in worker threads while the model encodes earlier batches. Clean vectors and all neighbour searches
come from the index itself.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from idx import config
from idx.analysis import perturbations as registry
from idx.analysis import robustness as metrics
from idx.analysis.perturbations.weather import reference_frost_photos
from idx.errors import DecodeError, EmptyIndexError, UsageError
from idx.indexer.files.decode import open_image
from idx.indexer.index import Index
from idx.knn import drop_self
from idx.ops.labels.positives import load_positives, prompt_vectors
from idx.ops.robustness.inputs import (
    load_clusters,
    parse_severities,
    resolve_perturbations,
    sample_ids,
)
from idx.parallel import ordered_map
from idx.progress import Progress, ProgressEvent

log = logging.getLogger(__name__)

CLEAN = "clean"
RESULT_COLUMNS = (
    "perturbation",
    "severity",
    "n",
    "cos_mean",
    "cos_p05",
    "cos_p50",
    "cos_p95",
    "topk_overlap",
    "self_rank_mean",
    "self_found_at_1",
    "cluster_change_share",
    "knn_accuracy",
    "zero_shot_accuracy",
)
CLASS_COLUMNS = ("label_name", "perturbation", "severity", "n", "cos_mean", "knn_accuracy")
UNTRAINED_NOTE = "the model has UNTRAINED random weights: these numbers describe noise, not CLIP"


@dataclass
class RobustnessReport:
    run_id: int
    model: str
    untrained: bool
    perturbations: list[str]
    severities: list[int]
    sample_size: int
    k: int
    depth: int
    cluster_run_id: int | None
    results: list[dict[str, Any]]
    classes: list[dict[str, Any]]
    notes: list[str]
    seed: int = 0
    plots: dict[str, str] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    encoded: int = 0
    seconds: float = 0.0

    @property
    def by_corruption(self) -> list[dict[str, Any]]:
        """Per perturbation, each metric's mean over the severities and its drop from clean; a
        last row averages ImageNet-C's corruptions when any was measured."""
        return metrics.per_corruption(
            self.results, registry.IMAGENET_C, f"{registry.IMAGENET_C_SUITE} mean"
        )

    @property
    def images_per_s(self) -> float:
        """Perturbed images decoded, perturbed and encoded per second."""
        return self.encoded / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model": self.model,
            "untrained": self.untrained,
            "perturbations": self.perturbations,
            "severities": self.severities,
            "sample_size": self.sample_size,
            "seed": self.seed,
            "k": self.k,
            "depth": self.depth,
            "cluster_run_id": self.cluster_run_id,
            "encoded": self.encoded,
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.images_per_s, 2),
            "results": self.results,
            "by_corruption": self.by_corruption,
            "classes": self.classes,
            "notes": self.notes,
            "plots": self.plots,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }


@dataclass
class _Decoded:
    image_id: int
    tensors: list[Any]  # one preprocessed image per condition
    examples: dict[tuple[str, int], Any] | None = None  # PIL images, for the example sheet


class _Measurement:
    """One run: the perturb+encode pipeline, then the metrics per condition."""

    def __init__(self, index: Index, conditions: list[tuple[str, int]], seed: int, **opts: Any):
        self.index = index
        self.encoder = index.encoder
        self.conditions = conditions
        self.seed = seed
        self.save_dir: Path | None = opts["save_dir"]
        self.example_id: int | None = None
        self.batch_size: int = opts["batch_size"]
        self.workers: int = opts["workers"]
        self.progress: Progress = opts["progress"]
        self.on_skip: Callable[[str, str], None] = opts["on_skip"]
        self.skipped: list[tuple[str, str]] = []

    def _decode(self, item: tuple[int, str]) -> _Decoded | tuple[str, str]:
        image_id, path = item
        try:
            # decoded as `add` does, then at model resolution: corruptions act on what the model
            # sees (as ImageNet-C's at 224 px), and pixel work is not spent on discarded detail
            clean = self.encoder.resize_for_model(open_image(path, self.encoder.image_size).image)
        except DecodeError as exc:
            return path, str(exc)
        examples = {(CLEAN, 0): clean} if image_id == self.example_id else None
        tensors = []
        for name, severity in self.conditions:
            img = registry.apply(name, clean, severity, self.seed, key=image_id)
            if self.save_dir is not None:
                folder = self.save_dir / name / f"severity-{severity}"
                folder.mkdir(parents=True, exist_ok=True)
                img.save(folder / f"{image_id}.png")
            if examples is not None:
                examples[(name, severity)] = img
            tensors.append(self.encoder.preprocess(img))
        return _Decoded(image_id, tensors, examples)

    def encode(self, items: list[tuple[int, str]]) -> tuple[np.ndarray, np.ndarray, dict]:
        """(ids that decoded, vectors [conditions, n, d], example images)."""
        self.example_id = items[0][0] if items else None
        dim = int(self.encoder.identity.embed_dim or 0)
        out = np.zeros((len(self.conditions), len(items), dim), dtype=np.float32)
        ok = np.zeros(len(items), dtype=bool)
        pending: list[tuple[int, int, Any]] = []  # (condition, row, tensor)
        examples: dict = {}

        def flush() -> None:
            if pending:
                vectors = self.encoder.encode_preprocessed([t for _, _, t in pending])
                for (c, row, _), v in zip(pending, vectors):
                    out[c, row] = v
                pending.clear()

        self.progress(ProgressEvent("perturb", 0, len(items)))
        for row, result in enumerate(
            ordered_map(self._decode, items, self.workers, "idx-robustness")
        ):
            if isinstance(result, _Decoded):
                ok[row] = True
                examples = examples or result.examples or {}
                pending += [(c, row, t) for c, t in enumerate(result.tensors)]
                if len(pending) >= self.batch_size:
                    flush()
            else:
                self.skipped.append(result)
                self.on_skip(*result)
            self.progress(ProgressEvent("perturb", row + 1, len(items)))
        flush()
        ids = np.array([image_id for image_id, _ in items], dtype=np.int64)
        return ids[ok], out[:, ok], examples


def measure(
    index: Index,
    perturbations: Sequence[str] = ("all",),
    severities: Sequence[int] = registry.SEVERITIES,
    *,
    sample: int = 200,
    seed: int = 0,
    k: int = 10,
    depth: int = 100,
    cluster_run: int | None = None,
    save_dir: str | os.PathLike[str] | None = None,
    plots: bool = True,
    batch_size: int | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> RobustnessReport:
    """Measure how perturbations move embeddings, neighbours, clusters and label accuracy.

    Stores one `robustness_runs` row with its `robustness_results` (severity 0 = clean baseline)
    and `robustness_classes`, and draws the plots under `<index>/plots/robustness-<run>/`.
    """
    names = resolve_perturbations(perturbations)
    levels = parse_severities(",".join(map(str, severities)))
    if k < 1 or depth < k + 1:
        raise UsageError(f"--k must be at least 1 and --depth above it (k={k}, depth={depth})")
    index.require_images("measure robustness on")
    ids = sample_ids(index.catalog, sample, seed)
    if len(ids) == 0:
        raise EmptyIndexError(
            "the index holds only injected images; add your own with "
            f"`{config.command(index.dir, 'add')}`"
        )
    start = time.perf_counter()
    paths = index.catalog.images.paths_for(ids)
    run = _Measurement(
        index,
        [(n, s) for n in names for s in levels],
        seed,
        save_dir=Path(save_dir) if save_dir else None,
        batch_size=config.batch_size(batch_size),
        workers=config.workers(workers),
        progress=progress or (lambda event: None),
        on_skip=on_skip or (lambda path, reason: None),
    )
    ok_ids, perturbed, examples = run.encode([(i, paths[i]) for i in ids.tolist()])
    if len(ok_ids) == 0:
        raise DecodeError("no sampled image could be decoded; see the skipped files above")
    seconds = time.perf_counter() - start
    report = _score(index, names, levels, ok_ids, perturbed, k, depth, cluster_run)
    if len(ids) < sample:
        report.notes.insert(
            0,
            f"--sample {sample} lowered to {len(ids)}: the index holds {len(ids)} images of "
            "its own (injected ones are never sampled)",
        )
    report.seed, report.skipped, report.seconds = seed, run.skipped, seconds
    report.encoded = perturbed.shape[0] * perturbed.shape[1]
    _store(index, report)
    if plots:
        report.plots = _draw(index, report, examples)
    return report


def _score(index, names, levels, ids, perturbed, k, depth, cluster_run) -> RobustnessReport:
    _, clean = index.embeddings(ids)
    depth = min(depth, index.vectors.ntotal)
    k = min(k, depth - 1)
    _, clean_search = index.vectors.search(clean, k + 1)
    clean_neighbors = drop_self(clean_search, ids, k)
    labels = load_positives(index.catalog)
    clusters = load_clusters(index.catalog, cluster_run, clean.shape[1])
    ident = index.stored_identity()
    notes = []
    if clusters is None:
        notes.append(
            "cluster stability unavailable: no cluster run in the embedding space; "
            f"make one with `{config.command(index.dir, 'cluster', '--k', 'K')}`"
        )
    if labels is None:
        notes.append(
            "kNN / zero-shot accuracy and per-class fragility unavailable: the index has no "
            "labels; add them first (see `idx labels --help`)"
        )
    text_vectors = None
    if labels is not None:
        text_vectors = prompt_vectors(index, labels.display)
    truth = labels.matrix(ids) if labels is not None else None
    results, classes = [], []
    for name, severity, vectors in [(CLEAN, 0, clean)] + [
        (n, s, perturbed[i * len(levels) + j])
        for i, n in enumerate(names)
        for j, s in enumerate(levels)
    ]:
        _, search = index.vectors.search(vectors, depth)
        values = metrics.per_image(
            metrics.ConditionInputs(
                query_ids=ids,
                clean=clean,
                perturbed=vectors,
                clean_neighbors=clean_neighbors,
                perturbed_search=search,
                k=k,
                centers=clusters.centers if clusters else None,
                primary_labels=(labels.ids, labels.primary) if labels else None,
                truth=truth,
                text_vectors=text_vectors,
            )
        )
        results.append({"perturbation": name, "severity": severity, **metrics.summarize(values)})
        if labels is not None and truth is not None:
            classes += [
                {"perturbation": name, "severity": severity, **row}
                for row in metrics.per_class(values, truth, labels.names, labels.display)
            ]
    if ident is not None and ident.untrained:
        notes.append(UNTRAINED_NOTE)
    if "frost" in names and reference_frost_photos() is None:
        notes.append(
            "frost used idx's synthetic frost (ImageNet-C's frost photographs come with the "
            "optional extra: pip install 'idx-clip[imagenet-c]')"
        )
    return RobustnessReport(
        run_id=0,
        model=ident.describe() if ident else index.identity().describe(),
        untrained=bool(ident and ident.untrained),
        perturbations=names,
        severities=levels,
        sample_size=len(ids),
        k=k,
        depth=depth,
        cluster_run_id=clusters.run_id if clusters else None,
        results=results,
        classes=classes,
        notes=notes,
    )


def _store(index: Index, report: RobustnessReport) -> None:
    runs = index.catalog.runs
    with index.catalog.transaction():
        report.run_id = runs.create(
            "robustness",
            {
                "perturbations": json.dumps(report.perturbations),
                "severities": json.dumps(report.severities),
                "sample_size": report.sample_size,
                "seed": report.seed,
                "k": report.k,
                "cluster_run_id": report.cluster_run_id,
                "model": report.model,
                "depth": report.depth,
                "seconds": report.seconds,
            },
        )
        for table, columns, rows in (
            ("robustness_results", RESULT_COLUMNS, report.results),
            ("robustness_classes", CLASS_COLUMNS, report.classes),
        ):
            if rows:
                runs.add_rows(
                    "robustness", table, report.run_id, {c: [r[c] for r in rows] for c in columns}
                )


def _draw(index: Index, report: RobustnessReport, examples: dict) -> dict[str, str]:
    # matplotlib takes a second to import: only runs that draw pay for it
    from idx.analysis.robustness_plots import plot_class_heatmap, plot_curves, plot_examples

    folder = config.plots_dir(index.dir, None, f"robustness-{report.run_id}")
    title = f"{report.model}, {report.sample_size} images"
    curves = plot_curves(report.results, folder / "curves.png", title, report.perturbations)
    out = {"curves": str(curves)}
    if examples:
        out["examples"] = str(
            plot_examples(
                examples, report.perturbations, report.severities, folder / "examples.png", title
            )
        )
    if report.classes:
        out["classes"] = str(plot_class_heatmap(report.classes, folder / "classes.png", title))
    return out
