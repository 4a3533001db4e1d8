"""`idx insights`: how well the embedding space matches the labels, class by class."""

from __future__ import annotations

from typing import Any

import click

from idx.cli.options import (
    cluster_run_option,
    count_option,
    device_option,
    no_plots_option,
    open_index,
    output_options,
    plots_option,
    quiet_option,
)
from idx.cli.output import echo_json, render_rows, warn
from idx.cli.progress import ProgressBar
from idx.errors import UsageError


@click.command()
@device_option
@cluster_run_option("to compare with")
@count_option(
    "k_nn",
    extra=("--k-nn",),
    default=10,
    help="Neighbours that vote in the leave-one-out kNN label check.",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="NAME",
    help="Only labels from this source (repeatable; default: all).",
)
@click.option("--no-zero-shot", is_flag=True, help="Skip zero-shot classification.")
@click.option(
    "--folds",
    type=click.IntRange(min=2),
    default=5,
    show_default=True,
    help="Folds of the linear probe's stratified cross-validation.",
)
@click.option(
    "--no-probe",
    is_flag=True,
    help="Skip the linear probe and its baselines (random vectors, colour histograms: these "
    "decode every labelled image).",
)
@click.option(
    "--level",
    type=click.IntRange(min=0),
    default=None,
    help="Report at the classes N is-a steps below the hierarchy's root (needs `idx labels "
    "import --hierarchy FILE`; Open Images: 1 = Food, Drink..., 2 = Fruit, Dessert...).",
)
@click.option(
    "--rollup",
    metavar="NAMES",
    default=None,
    help="Report at these parent classes (comma-separated display or label names, e.g. "
    "Fruit,Dessert,Snack): an image counts for each one above any of its labels.",
)
@no_plots_option
@plots_option
@click.option(
    "--show",
    type=click.Choice(("all", "summary", "classes", "pairs", "suspects")),
    default=None,
    help="Which table to print (default: all for table, else classes).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Rows of pairs and suspect labels printed in the table view.",
)
@output_options
@quiet_option
@click.pass_context
def insights(
    ctx,
    cluster_run,
    k_nn,
    sources,
    no_zero_shot,
    folds,
    no_probe,
    level,
    rollup,
    no_plots,
    out,
    show,
    limit,
    fmt,
    quiet,
):
    """How well the embedding space matches the labels, class by class.

    Whole set: purity, NMI, ARI, homogeneity / completeness / V-measure against the latest
    clustering run; leave-one-out kNN accuracy; zero-shot accuracy ("a photo of a {label}");
    the linear probe (logistic regression, stratified k-fold cross-validation, accuracy with a
    95% interval). Each beside its baselines: random labels, the majority class, and the same
    kNN and probe on random vectors and on colour histograms. Per class: size, cluster spread,
    cohesion, nearest class and margin, silhouette, kNN, zero-shot and probe accuracy. Also the
    most confused pairs and images whose label disagrees with a strong kNN vote. With --level
    or --rollup, all of it at parent classes of the imported class hierarchy. Stored in
    insight_runs, class_insights, confused_pairs, suspect_labels, linear_probes; plots go to
    <index>/plots.

    \b
    Example:
      idx insights
      idx insights --run 2 -k 20 --json
      idx insights --show suspects --format csv > suspects.csv
      idx insights --folds 10 --show summary
      idx insights --level 2
      idx insights --rollup Fruit,Dessert,Snack --json
    """
    from idx.ops.insights.measure import insights as measure_insights
    from idx.ops.labels.hierarchy import Rollup

    if level is not None and rollup:
        raise UsageError("give --level N or --rollup NAMES, not both")
    parents = None
    if level is not None or rollup:
        names = [n.strip() for n in (rollup or "").split(",") if n.strip()]
        if rollup is not None and not names:
            raise UsageError("--rollup needs class names, e.g. --rollup Fruit,Dessert")
        parents = Rollup(level=level, names=names)

    with ProgressBar(quiet, unit="step") as bar, open_index(ctx) as index:
        result = measure_insights(
            index,
            cluster_run=cluster_run,
            k_nn=k_nn,
            zero_shot=not no_zero_shot,
            probe=not no_probe,
            folds=folds,
            rollup=parents,
            sources=list(sources) or None,
            plots=not no_plots,
            plots_dir=out,
            progress=bar,
        )
    for note in result.notes:
        warn(f"note: {note}")
    if fmt == "json" and show is None:
        echo_json(result.as_dict())
        return
    show = show or ("all" if fmt == "table" else "classes")
    tables = _tables(result, limit if fmt == "table" else None)
    for name in ("summary", "classes", "pairs", "suspects") if show == "all" else (show,):
        title, columns, rows = tables[name]
        if show == "all":
            click.echo(f"\n{title}")
        render_rows(columns, rows, fmt)
    if fmt == "table" and show == "all":
        for name, path in result.plots.items():
            click.echo(f"plot {name}: {path}")


def _tables(result: Any, limit: int | None) -> dict:
    from idx.ops.insights import runs as insight_runs

    m = result.metrics
    display = {row[0]: row[1] for row in result.classes}
    bases = ("random_labels", "majority_class", "random_vectors", "colour_histogram")
    shown = [b for b in bases if b in m["baselines"]]
    names = (
        "purity",
        "nmi",
        "ari",
        "homogeneity",
        "completeness",
        "v_measure",
        "knn_accuracy",
        "zero_shot_accuracy",
        "linear_probe_accuracy",
    )
    summary = [(n, m.get(n), *(m["baselines"][b].get(n) for b in shown)) for n in names if n in m]
    cluster = result.cluster_run_id if result.cluster_run_id is not None else "none"
    head = (
        f"insight run {result.run_id}: {m['n_images']} labelled images "
        f"({m['n_multi_label']} multi-label), {m['n_classes']} classes, k={m['k_nn']}, "
        f"cluster run {cluster}, model {m['model']}"
    )
    probe = m.get("linear_probe")
    if probe:
        low, high = probe["ci95"]
        head += (
            f"\nlinear probe: {m['linear_probe_accuracy']:.3f} (95% CI {low:.3f} to {high:.3f}), "
            f"{probe['folds']}-fold stratified CV, fold sd {probe['fold_sd']:.3f}"
        )
    pairs = [(display.get(a, a), display.get(b, b), n, s) for a, b, n, s in result.pairs]
    suspects = [
        (i, p, display.get(lab, lab), display.get(pred, pred), share, own)
        for i, p, lab, pred, share, own in result.suspects
    ]
    # Best-separated classes first (kNN accuracy), the ones CLIP confuses at the bottom.
    ranked = sorted(result.classes, key=lambda r: (-(r[10] if r[10] is not None else -1), r[1]))
    classes = [(r[1], *r[2:7], display.get(r[7], r[7]), *r[8:]) for r in ranked]
    return {
        "summary": (head, ("metric", "value", *shown), summary),
        "classes": ("per class:", ("class", *insight_runs.CLASS_COLUMNS[2:]), classes),
        "pairs": (f"most confused pairs ({len(pairs)}):", insight_runs.PAIR_COLUMNS, pairs[:limit]),
        "suspects": (
            f"suspect labels ({len(suspects)}; label disagrees with a strong kNN vote):",
            insight_runs.SUSPECT_COLUMNS,
            suspects[:limit],
        ),
    }


def register(cli: click.Group) -> None:
    cli.add_command(insights)
