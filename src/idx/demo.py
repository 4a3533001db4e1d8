"""The demo as a library pipeline: generate a labelled image set, index it, run every analysis on
it, and return a summary of what each step found (what `idx demo --json` prints).

    from idx.demo import run_demo
    summary = run_demo("idx-demo", per_category=20)
    summary["cluster"]["silhouette"], summary["reuse"]   # '--model idx-tiny --checkpoint ...'

Steps report progress through `progress` and say what they found through `on_message` (one line
each); the library itself prints nothing.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from idx import config, synthetic
from idx.indexer.index import Index
from idx.indexer.model import identity, weights
from idx.progress import Progress

Message = Callable[[str], None]

#: The demo's text query, and the number of clusters (the generated categories).
QUERY = "red circles"
K = len(synthetic.CATEGORIES)


class ModelChoice(TypedDict, total=False):
    """The demo's model as Index's keyword arguments (and the CLI's flags of the same names)."""

    model: str
    pretrained: str
    checkpoint: str


def choose_model(out: Path, tiny: bool, say: Message) -> ModelChoice:
    """The default model when its weights can be had, else a tiny random one (said plainly)."""
    if not tiny:
        default = identity.identify(
            identity.ModelSpec(config.DEFAULT_MODEL, config.DEFAULT_PRETRAINED)
        )
        if weights.available(default):
            return {"model": config.DEFAULT_MODEL, "pretrained": config.DEFAULT_PRETRAINED}
        say(
            f"demo: weights for {config.DEFAULT_MODEL}/{config.DEFAULT_PRETRAINED} cannot be "
            "downloaded here (offline, not cached). Running with a TINY RANDOM model instead: "
            "every result below comes from UNTRAINED weights and says so."
        )
    ckpt = out / "model" / f"{identity.TINY_CONFIG}-random.safetensors"
    if not ckpt.exists():
        weights.save_random_checkpoint(identity.tiny_config_path(), ckpt)
    return {"model": identity.TINY_CONFIG, "checkpoint": str(ckpt.resolve())}


def model_flags(model: ModelChoice) -> str:
    """The command-line flags that name `model`: `--model idx-tiny --checkpoint FILE`."""
    return " ".join(f"--{name} {shlex.quote(str(value))}" for name, value in model.items())


@dataclass
class DemoRun:
    """What each step gets: where things are, which model, where to report; what it found."""

    out: Path
    images: Path
    index_dir: Path
    model: ModelChoice
    progress: Progress | None
    say: Message
    on_skip: Callable[[str, str], None] | None
    device: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    next_commands: list[str] = field(default_factory=list)
    #: Commands that add or remove images, suggested after every other: run in order, the
    #: `try:` lines then look at the demo's own images until these change them.
    last_commands: list[str] = field(default_factory=list)

    def index(self, read_only: bool = False) -> Index:
        model: ModelChoice = {} if read_only else self.model
        return Index(self.index_dir, read_only=read_only, device=self.device, **model)

    def outputs(self) -> dict[str, Any]:
        return self.summary.setdefault("outputs", {})

    def suggest(self, *commands: str, changes_images: bool = False) -> None:
        """`commands` as shell words after `idx --index DIR`, quoted where they need it."""
        lines = [config.command(self.index_dir, *shlex.split(c)) for c in commands]
        if changes_images:
            self.last_commands += lines
        else:
            self.next_commands += lines


def run_demo(
    out: str | Path = "idx-demo",
    *,
    per_category: int = 20,
    tiny: bool = False,
    fresh: bool = False,
    progress: Progress | None = None,
    on_message: Message | None = None,
    on_skip: Callable[[str, str], None] | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Generate `per_category` images in each of 8 categories under `out` (kept between runs
    unless `fresh`), then add, label, map, cluster, measure, search and report on them; the
    model runs on `device` (auto|cpu|cuda|cuda:N|mps, default IDX_DEVICE or auto)."""
    out = Path(out)
    say = on_message or (lambda message: None)
    if fresh and out.exists():
        shutil.rmtree(out)
    images = out / "images"
    if not (images / "labels.csv").exists():
        say(f"demo: writing {per_category * len(synthetic.CATEGORIES)} images to {images}")
        synthetic.generate(images, per_category)
    run = DemoRun(
        out=out,
        images=images,
        index_dir=out / "index",
        model=choose_model(out, tiny, say),
        progress=progress,
        say=say,
        on_skip=on_skip,
        device=device,
    )
    run.summary.update(
        out=str(out.resolve()), images_dir=str(images.resolve()), index=str(run.index_dir.resolve())
    )
    for step in STEPS:
        step(run)
    run.summary["next"] = run.next_commands + run.last_commands
    return run.summary


def _add(run: DemoRun) -> None:
    with run.index() as index:
        report = index.add([run.images], progress=run.progress, on_skip=run.on_skip)
        ident = index.stored_identity()
    run.summary["add"] = report.as_dict()
    run.summary["model"] = ident.describe() if ident else None
    run.summary["untrained"] = bool(ident and ident.untrained)
    run.summary["reuse"] = model_flags(run.model)
    run.say(
        f"demo: indexed {report.added} new, {report.unchanged} unchanged images with "
        f"{run.summary['model']}"
    )
    run.suggest("status", 'sql "SELECT format, count(*) FROM images GROUP BY 1"')


def _labels(run: DemoRun) -> None:
    """The generated images live in one folder per category, so folders are labels."""
    from idx.ops.labels.imports import import_folders

    with run.index() as index:
        report = import_folders(index)
    run.summary["labels"] = report.as_dict()
    run.say(f"demo: labelled {report.imported} images with their folder names")
    run.suggest("labels list")


def _maps(run: DemoRun) -> None:
    """A t-SNE map, a k sweep (2 to 20, scored against the labels too), then K-means with
    k = the number of generated categories."""
    from idx.ops.maps.clustering import cluster
    from idx.ops.maps.projection import project
    from idx.ops.maps.sweep import sweep

    with run.index() as index:
        projection = project(index, "tsne", progress=run.progress)
        swept = sweep(index, progress=run.progress)
        result = cluster(index, K, baseline=True, progress=run.progress)
    by = swept.best_by
    run.say(
        f"demo: sweep run {swept.run_id}: k {swept.ks[0]} to {swept.ks[-1]}, best k by "
        f"silhouette {by['silhouette']}"
        + (f", by NMI against the labels {by['nmi']}" if "nmi" in by else "")
        + f" ({K} categories were generated)"
    )
    run.summary["sweep"] = {"run_id": swept.run_id, "ks": swept.ks, "best_k_by": by}
    m = result.metrics
    run.say(
        f"demo: cluster run {result.run_id}: k={K}, silhouette {m['silhouette']:.3f} "
        f"(random vectors {m['baselines']['random']['silhouette']:.3f}, colour histograms "
        f"{m['baselines']['colour_histogram']['silhouette']:.3f})"
    )
    run.summary["cluster"] = {
        "run_id": result.run_id,
        "k": result.k,
        "silhouette": m["silhouette"],
        "davies_bouldin": m["davies_bouldin"],
        "calinski_harabasz": m["calinski_harabasz"],
        "baselines": {name: b.get("silhouette") for name, b in m["baselines"].items()},
        "sizes": result.sizes,
    }
    run.outputs().update(
        tsne_map=str(projection.plots["map"]),
        cluster_map=str(result.plots["map"]),
        silhouette_plot=str(result.plots["silhouette"]),
        contact_sheets=str(result.plots["contact_sheets"][0].parent),
        sweep_plot=str(swept.plots["metrics"]),
    )
    run.suggest(
        f"cluster --k {K} --space tsne --baseline",
        "sweep --k 2:30 --space tsne",
        f'sql "SELECT cluster, count(*) FROM clusters WHERE run_id = {result.run_id} '
        'GROUP BY 1 ORDER BY 1"',
    )


def _insights(run: DemoRun) -> None:
    """Class-level insights against the clustering run of the step before."""
    from idx.ops.insights.measure import insights as measure_insights

    with run.index() as index:
        result = measure_insights(index)
    m = result.metrics
    keys = ("knn_accuracy", "zero_shot_accuracy", "linear_probe_accuracy", "nmi", "purity")
    run.summary["insights"] = {
        "run_id": result.run_id,
        **{k: m[k] for k in keys if k in m},
        "random_labels": m["baselines"]["random_labels"],
        "baselines": m["baselines"],
        "notes": result.notes,
    }
    run.outputs().update({f"insights_{name}": path for name, path in result.plots.items()})
    run.say(
        f"demo: insights on {m['n_images']} labelled images in {m['n_classes']} classes: kNN "
        f"accuracy {m['knn_accuracy']:.2f} (random labels "
        f"{m['baselines']['random_labels']['knn_accuracy']:.2f})"
    )
    if "linear_probe_accuracy" in m:
        low, high = m["linear_probe"]["ci95"]
        run.say(
            f"demo: linear probe accuracy {m['linear_probe_accuracy']:.2f} (95% CI {low:.2f} to "
            f"{high:.2f}; random vectors "
            f"{m['baselines']['random_vectors']['linear_probe_accuracy']:.2f}, colour histograms "
            f"{m['baselines']['colour_histogram']['linear_probe_accuracy']:.2f})"
        )
    run.suggest(
        "insights --no-plots",
        'sql "SELECT display_name, knn_accuracy, nearest_class FROM class_insights '
        'WHERE run_id = (SELECT max(id) FROM insight_runs) ORDER BY 2"',
    )


def _search(run: DemoRun) -> None:
    """A text search, and the kNN graph: how often an image's neighbours share its folder."""
    from idx.ops.graph import build_neighbor_graph
    from idx.ops.search import search as find

    with run.index() as index:
        hits = find(index, text=QUERY, k=5)
        graph = build_neighbor_graph(index, k=5)
        same = index.catalog.neighbors.same_folder_share()
        catalog_path = str(index.catalog.path)
    run.summary["search"] = {"text": QUERY, "hits": [h.as_dict() for h in hits]}
    run.summary["neighbors"] = graph.as_dict() | {"same_folder_fraction": same}
    top = ", ".join(f"{h.path.rsplit('/', 2)[-2]}/{h.path.rsplit('/', 1)[-1]}" for h in hits[:3])
    note = " (UNTRAINED model: not meaningful)" if run.summary.get("untrained") else ""
    run.say(f'demo: search "{QUERY}" top hits{note}: {top}')
    run.say(
        f"demo: stored {graph.rows} neighbour pairs (k={graph.k}); "
        f"{same:.0%} of them share the image's folder"
    )
    run.outputs()["neighbors_table"] = catalog_path
    run.suggest(f'search --text "{QUERY}" -k 5', "neighbors 1 -k 5", "duplicates --threshold 0.99")


def _robustness(run: DemoRun) -> None:
    """A small measurement: 3 perturbations at severities 1, 3, 5 on 40 images."""
    from idx.ops.robustness.measure import measure

    with run.index() as index:
        report = measure(
            index,
            ["gaussian_noise", "gaussian_blur", "jpeg"],
            [1, 3, 5],
            sample=40,
            k=5,
            progress=run.progress,
        )
    worst = min(report.results, key=lambda r: r["cos_mean"])
    run.say(
        f"demo: robustness run {report.run_id}: lowest mean cosine {worst['cos_mean']:.3f} "
        f"({worst['perturbation']} severity {worst['severity']})"
    )
    run.summary["robustness"] = {"run_id": report.run_id, "results": report.results}
    run.outputs().update({f"robustness_{name}": path for name, path in report.plots.items()})
    run.suggest("robustness --perturb all --severity 1:5 --sample 48")
    # corrupted copies in, the clusters with and without them, and out again
    run.suggest(
        "robustness inject --kind gaussian_noise --severity 5 --fraction 0.2",
        "robustness compare",
        "robustness eject",
        changes_images=True,
    )


def _report(run: DemoRun) -> None:
    """Last: the HTML report shows what the steps before stored."""
    from idx.ops.report.write import write_report

    with run.index(read_only=True) as index:
        result = write_report(index, run.out / "report.html", progress=run.progress)
    run.outputs()["report"] = result.path
    run.say(f"demo: report written to {result.path} ({result.bytes / 1e3:.0f} kB)")
    run.suggest("report --out report.html")


#: The pipeline, in order: insights after clustering (they compare with it), report last.
STEPS: tuple[Callable[[DemoRun], None], ...] = (
    _add,
    _labels,
    _maps,
    _insights,
    _search,
    _robustness,
    _report,
)
