"""Commands for the analysis: project (2-D maps), cluster (K-means), sweep (choice of k)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from idx.cli.options import (
    Lazy,
    LazyChoice,
    count_option,
    open_index,
    output_options,
    plots_option,
    quiet_option,
    seed_option,
)
from idx.cli.output import note_untrained, render_rows, render_summary
from idx.cli.progress import ProgressBar

if TYPE_CHECKING:
    from idx.ops.maps.clustering import ClusterResult

# The ops modules pull in scikit-learn, matplotlib and FAISS (seconds to import): each command
# imports them when it runs, so that `idx --help` and other commands start fast.

UNTRAINED = "clusters and maps reflect no learned similarity"

space_option = click.option(
    "--space",
    type=LazyChoice(Lazy("idx.analysis.clustering", "SPACES")),
    default="embedding",
    show_default=True,
    help="What K-means runs on: the embeddings, or a 2-D map of them (the newest stored map "
    "of that method, computed first if there is none).",
)


@click.command()
@click.option(
    "--method",
    type=LazyChoice(Lazy("idx.analysis.projection", "METHODS")),
    default="tsne",
    show_default=True,
    help="t-SNE (openTSNE, PCA initialisation, cosine), PCA, or UMAP (needs umap-learn).",
)
@click.option(
    "--perplexity",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="t-SNE perplexity (lowered automatically for small sets; the value used is stored).",
)
@seed_option
@plots_option
@output_options
@quiet_option
@click.pass_context
def project_command(ctx, method, perplexity, seed, out, fmt, quiet):
    """Compute a 2-D map of the embeddings, store it, and plot it.

    The map is stored as a run (projection_runs) with one row per image (projections: run_id,
    image_id, x, y); `idx cluster --space tsne` clusters the newest t-SNE map.

    \b
    Example:
      idx project
      idx project --method pca --json
      idx sql "SELECT * FROM projections WHERE run_id = 1 LIMIT 5"
    """
    from idx.ops.maps.projection import project

    with ProgressBar(quiet, unit="it") as bar, open_index(ctx) as index:
        result = project(index, method, perplexity=perplexity, seed=seed, out=out, progress=bar)
    note_untrained(result.untrained, UNTRAINED)

    def table() -> None:
        used = result.params.get("perplexity")
        detail = f", perplexity {used:g}" if used is not None else ""
        click.echo(
            f"projection run {result.run_id}: {method} of {len(result.ids)} images, seed {seed}"
            f"{detail}, {result.seconds:.1f}s"
        )
        click.echo(f"model: {result.model}")
        click.echo(f"plot:  {result.plots['map']}")

    render_summary(result.as_dict(), fmt, table)


def _metric_rows(results: dict[str, ClusterResult]) -> tuple[list[str], list[list[Any]]]:
    """Rows metric x (each run, then each baseline of the first run)."""
    names = [
        ("silhouette", "silhouette (cosine, higher is better)"),
        ("davies_bouldin", "davies-bouldin (lower is better)"),
        ("calinski_harabasz", "calinski-harabasz (higher is better)"),
        ("nmi", "NMI vs labels (0..1, higher is better)"),
        ("ari", "ARI vs labels (0 = chance, higher is better)"),
        ("purity", "purity vs labels (grows with k)"),
    ]
    names = [
        (key, label) for key, label in names if any(key in r.metrics for r in results.values())
    ]
    first = next(iter(results.values()))
    base = first.metrics.get("baselines", {})
    columns = ["metric", *results, *(f"baseline: {b}" for b in base)]
    rows = [
        [
            label,
            *(r.metrics.get(key) for r in results.values()),
            *(b.get(key) for b in base.values()),
        ]
        for key, label in names
    ]
    return columns, rows


def _silhouette_note(metrics: dict[str, Any], space: str) -> str:
    if metrics.get("silhouette_exact"):
        return f"exact over every image ({metrics['silhouette_metric']}, {space})"
    low, high = metrics["silhouette_ci95"]
    return (
        f"{metrics['silhouette']:.4f} estimated from {metrics['silhouette_sample_size']} sampled "
        f"images, 95% CI {low:.4f} to {high:.4f} ({metrics['silhouette_metric']}, {space})"
    )


def _print_cluster(results: dict[str, ClusterResult]) -> None:
    first = next(iter(results.values()))
    for name, r in results.items():
        map_note = f" (map: projection run {r.projection_run_id})" if r.projection_run_id else ""
        click.echo(
            f"cluster run {r.run_id} [{name}]: k={r.k} {r.method} on {r.space}{map_note}, "
            f"{len(r.ids)} images, seed {r.seed}"
        )
    click.echo(f"model: {first.model}")
    columns, rows = _metric_rows(results)
    render_rows(columns, rows, "table")
    for name, r in results.items():
        click.echo(f"silhouette [{name}]: {_silhouette_note(r.metrics, 'embedding space')}")
        if "labels_scored" in r.metrics:
            click.echo(f"against the labels [{name}]: {r.metrics['labels_scored']}")
        if "map" in r.metrics:
            m = r.metrics["map"]
            click.echo(
                f"on the {r.space} map [{name}]: silhouette {_silhouette_note(m, r.space + ' map')}; "
                f"davies-bouldin {m['davies_bouldin']:.4f}; calinski-harabasz "
                f"{m['calinski_harabasz']:.1f}"
            )
        click.echo(f"sizes [{name}]: " + " ".join(f"{c}:{n}" for c, n in enumerate(r.sizes)))
    for name, r in results.items():
        click.echo(f"plots [{name}]:")
        click.echo(f"  {r.plots['map']}")
        click.echo(f"  {r.plots['silhouette']}")
        for sheet in r.plots["contact_sheets"]:
            click.echo(f"  {sheet}")


@click.command("cluster")
@count_option(type=int, required=True, help="Number of clusters (2 <= k < images).")
@click.option(
    "--method",
    type=LazyChoice(Lazy("idx.analysis.clustering", "METHODS")),
    default="kmeans",
    show_default=True,
    help="Clustering algorithm (K-means, run by FAISS).",
)
@space_option
@seed_option
@click.option(
    "--baseline",
    is_flag=True,
    help="Also score random vectors of the same shape and two non-CLIP embeddings of the same "
    "images (colour histograms, 8x8 thumbnails), clustered with the same k.",
)
@click.option(
    "--compare-clean",
    is_flag=True,
    help="Also cluster only the images added from files (source = 'files'), and show both runs' "
    "metrics side by side.",
)
@plots_option
@output_options
@quiet_option
@click.pass_context
def cluster_command(ctx, k, method, space, seed, baseline, compare_clean, out, fmt, quiet) -> None:
    """Cluster the images with K-means; print and store the quality metrics; draw plots.

    Prints the silhouette (cosine, in embedding space), Davies-Bouldin and Calinski-Harabasz
    indices, with labels also NMI, ARI and purity against them (images with one label), and
    the cluster sizes; writes a 2-D map coloured by cluster, a silhouette plot and one
    contact sheet per cluster (images nearest to and farthest from its centre). The run is stored
    in cluster_runs, clusters (run_id, image_id, cluster, distance) and cluster_centers.

    \b
    Example:
      idx cluster --k 8
      idx cluster --k 8 --space tsne --baseline
      idx cluster --k 8 --compare-clean --json
      idx sql "SELECT cluster, count(*) FROM clusters WHERE run_id = 1 GROUP BY 1"
    """
    from idx.ops.maps.clustering import cluster

    subsets = ("all", "clean") if compare_clean else ("all",)
    results: dict[str, ClusterResult] = {}
    with ProgressBar(quiet) as bar, open_index(ctx) as index:
        for subset in subsets:
            results[subset] = cluster(
                index,
                k,
                method=method,
                space=space,
                seed=seed,
                subset=subset,
                baseline=baseline,
                out=out,
                progress=bar,
            )
    note_untrained(results["all"].untrained, UNTRAINED)
    summary = (
        {name: r.as_dict() for name, r in results.items()}
        if compare_clean
        else results["all"].as_dict()
    )
    render_summary(summary, fmt, lambda: _print_cluster(results))


@click.command("sweep")
@count_option(
    "k_range",
    type=str,
    default=None,
    metavar="A:B",
    help="Range of k to try, both ends included, e.g. 2:30 (default: 2:20, capped below the "
    "number of images).",
)
@space_option
@seed_option
@plots_option
@output_options
@quiet_option
@click.pass_context
def sweep_command(ctx, k_range, space, seed, out, fmt, quiet):
    """Run K-means for each k in a range; print and plot the metrics; name the best k.

    The best k is the one with the highest silhouette (cosine, embedding space). Where the index
    has labels, each k is also scored against them (NMI, ARI, purity over the images with one
    label) and the best k by each is named: with labelled classes, NMI and ARI say which k
    matches the classes, where silhouette only says which k separates the points best.
    Results are stored in sweep_runs (best_k, best_k_by) and sweep_results (run_id, k,
    silhouette, davies_bouldin, calinski_harabasz, nmi, ari, purity).

    \b
    Example:
      idx sweep
      idx sweep --k 2:40
      idx sweep --k 2:12 --space tsne --json
    """
    from idx.ops.maps.sweep import parse_k_range, sweep

    ks = parse_k_range(k_range) if k_range is not None else None
    with ProgressBar(quiet, unit="k") as bar, open_index(ctx) as index:
        result = sweep(index, ks, space=space, seed=seed, out=out, progress=bar)
    note_untrained(result.untrained, UNTRAINED)
    rows = result.rows()

    def table() -> None:
        span = f"k {result.ks[0]}:{result.ks[-1]}" + (" (default)" if result.default_range else "")
        click.echo(
            f"sweep run {result.run_id}: K-means on {space}, {result.n_images} images, {span}, "
            f"seed {seed}"
        )
        click.echo(f"model: {result.model}")
        render_rows(list(rows[0]), [list(r.values()) for r in rows], "table")
        click.echo(f"best k by silhouette: {result.best_k}")
        if result.labels:
            by = result.best_by
            click.echo(
                f"best k against the labels ({result.labels}): by NMI {by['nmi']}, "
                f"by ARI {by['ari']}, by purity {by['purity']} (purity grows with k)"
            )
        else:
            click.echo("no labels: import some (`idx labels import`) to score each k against them")
        click.echo(f"plot: {result.plots['metrics']}")

    render_summary(result.as_dict(), fmt, table, rows)


def register(cli: click.Group) -> None:
    cli.add_command(project_command, "project")
    cli.add_command(cluster_command, "cluster")
    cli.add_command(sweep_command, "sweep")
