"""`idx insights`: how well the embedding space matches the labels, class by class."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    stored_run,
)
from idx.cli.progress import ProgressBar
from idx.cli.views.insights import TABLES, show_insights
from idx.errors import UsageError

if TYPE_CHECKING:
    from idx.ops.insights.runs import InsightsResult


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
    type=click.Choice(TABLES),
    default=None,
    help="Which table to print (default: all for table, else classes). Given, it is printed "
    "from the newest stored run with these parameters, of the images and labels there are "
    "now; one is computed when there is none.",
)
@click.option(
    "--recompute",
    is_flag=True,
    help="With --show: compute a new run even when one with these parameters is stored.",
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
    recompute,
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
    <index>/plots. --show TABLE prints one table of the newest stored run made with the same
    parameters (no new run), --show TABLE --recompute of a new one.

    \b
    Example:
      idx insights
      idx insights --run 2 -k 20 --json
      idx insights --show pairs
      idx insights --show suspects --format csv > suspects.csv
      idx insights --folds 10 --show summary
      idx insights --level 2
      idx insights --rollup Fruit,Dessert,Snack --json
    """
    from idx.ops.labels.hierarchy import Rollup

    if level is not None and rollup:
        raise UsageError("give --level N or --rollup NAMES, not both")
    parents = None
    if level is not None or rollup:
        names = [n.strip() for n in (rollup or "").split(",") if n.strip()]
        if rollup is not None and not names:
            raise UsageError("--rollup needs class names, e.g. --rollup Fruit,Dessert")
        parents = Rollup(level=level, names=names)

    asked = {
        "cluster_run": cluster_run,
        "k_nn": k_nn,
        "zero_shot": not no_zero_shot,
        "probe": not no_probe,
        "folds": folds,
        "rollup": parents,
        "sources": list(sources) or None,
    }
    stored = show is not None and not recompute
    result = _stored_or_new(ctx, asked, stored, quiet=quiet, plots=not no_plots, plots_dir=out)
    show_insights(result, fmt, show, limit)


def _stored_or_new(
    ctx: click.Context,
    asked: dict[str, Any],
    stored: bool,
    *,
    quiet: bool,
    plots: bool,
    plots_dir: str | None,
) -> InsightsResult:
    """The run to show: when `stored`, the newest stored one asked the same; else, or when there
    is none, a new one measured with a progress bar."""
    from idx.ops.insights.measure import insights as measure_insights
    from idx.ops.insights.runs import find_insights

    result = stored_run(ctx, stored, lambda index: find_insights(index, **asked), "insight run")
    if result is None:
        with ProgressBar(quiet, unit="step") as bar, open_index(ctx) as index:
            result = measure_insights(
                index, plots=plots, plots_dir=plots_dir, progress=bar, **asked
            )
    return result


def register(cli: click.Group) -> None:
    cli.add_command(insights)
