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
    show_option,
    stored_run,
)
from idx.cli.progress import ProgressBar
from idx.cli.views.maps import show_clusters, show_projection, show_sweep

if TYPE_CHECKING:
    from idx.indexer.index import Index
    from idx.ops.maps.clustering import ClusterResult

# The ops modules pull in scikit-learn, matplotlib and FAISS (seconds to import): each command
# imports them when it runs, so that `idx --help` and other commands start fast.

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
@show_option
@output_options
@quiet_option
@click.pass_context
def project_command(ctx, method, perplexity, seed, out, show_stored, fmt, quiet):
    """Compute a 2-D map of the embeddings, store it, and plot it.

    The map is stored as a run (projection_runs) with one row per image (projections: run_id,
    image_id, x, y); `idx cluster --space tsne` clusters the newest t-SNE map. With --show, the
    newest stored map made with the same parameters is printed instead (`idx runs` lists them).

    \b
    Example:
      idx project
      idx project --method pca --json
      idx project --method pca --show
      idx sql "SELECT * FROM projections WHERE run_id = 1 LIMIT 5"
    """
    from idx.ops.maps.projection import project
    from idx.ops.maps.runs import find_projection

    result = stored_run(
        ctx,
        show_stored,
        lambda index: find_projection(index, method, perplexity=perplexity, seed=seed),
        "projection run",
    )
    if result is None:
        with ProgressBar(quiet, unit="it") as bar, open_index(ctx) as index:
            result = project(index, method, perplexity=perplexity, seed=seed, out=out, progress=bar)
    show_projection(result, fmt)


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
@show_option
@output_options
@quiet_option
@click.pass_context
def cluster_command(
    ctx, k, method, space, seed, baseline, compare_clean, out, show_stored, fmt, quiet
) -> None:
    """Cluster the images with K-means; print and store the quality metrics; draw plots.

    Prints the silhouette (cosine, in embedding space), Davies-Bouldin and Calinski-Harabasz
    indices, with labels also NMI, ARI and purity against them (images with one label), and
    the cluster sizes; writes a 2-D map coloured by cluster, a silhouette plot and one
    contact sheet per cluster (images nearest to and farthest from its centre). The run is stored
    in cluster_runs, clusters (run_id, image_id, cluster, distance) and cluster_centers. With
    --show, the newest stored run made with the same parameters is printed instead.

    \b
    Example:
      idx cluster --k 8
      idx cluster --k 8 --space tsne --baseline
      idx cluster --k 8 --compare-clean --json
      idx cluster --k 8 --show
      idx sql "SELECT cluster, count(*) FROM clusters WHERE run_id = 1 GROUP BY 1"
    """
    from idx.ops.maps.clustering import cluster
    from idx.ops.maps.runs import find_cluster

    subsets = ("all", "clean") if compare_clean else ("all",)
    options: dict[str, Any] = {"method": method, "space": space, "seed": seed, "baseline": baseline}

    def find(index: Index) -> dict[str, ClusterResult] | None:
        found = {s: find_cluster(index, k, subset=s, **options) for s in subsets}
        stored = {s: r for s, r in found.items() if r is not None}
        return stored if len(stored) == len(subsets) else None

    results = stored_run(ctx, show_stored, find, "cluster run")
    if results is None:
        results = {}
        with ProgressBar(quiet) as bar, open_index(ctx) as index:
            for subset in subsets:
                results[subset] = cluster(index, k, subset=subset, out=out, progress=bar, **options)
    show_clusters(results, fmt, side_by_side=compare_clean)


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
@show_option
@output_options
@quiet_option
@click.pass_context
def sweep_command(ctx, k_range, space, seed, out, show_stored, fmt, quiet):
    """Run K-means for each k in a range; print and plot the metrics; name the best k.

    The best k is the one with the highest silhouette (cosine, embedding space). Where the index
    has labels, each k is also scored against them (NMI, ARI, purity over the images with one
    label) and the best k by each is named: with labelled classes, NMI and ARI say which k
    matches the classes, where silhouette only says which k separates the points best.
    Results are stored in sweep_runs (best_k, best_k_by) and sweep_results (run_id, k,
    silhouette, davies_bouldin, calinski_harabasz, nmi, ari, purity). With --show, the newest
    stored sweep over the same ks with the same parameters is printed instead.

    \b
    Example:
      idx sweep
      idx sweep --k 2:40
      idx sweep --k 2:12 --space tsne --json
      idx sweep --show
    """
    from idx.ops.maps.runs import find_sweep
    from idx.ops.maps.sweep import parse_k_range, sweep

    ks = parse_k_range(k_range) if k_range is not None else None
    result = stored_run(
        ctx, show_stored, lambda index: find_sweep(index, ks, space=space, seed=seed), "sweep run"
    )
    if result is None:
        with ProgressBar(quiet, unit="k") as bar, open_index(ctx) as index:
            result = sweep(index, ks, space=space, seed=seed, out=out, progress=bar)
    show_sweep(result, fmt)


def register(cli: click.Group) -> None:
    cli.add_command(project_command, "project")
    cli.add_command(cluster_command, "cluster")
    cli.add_command(sweep_command, "sweep")
