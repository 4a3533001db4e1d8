"""Printing a 2-D map (`idx project`), a clustering (`idx cluster`) and a k sweep (`idx sweep`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from idx.cli.output import note_untrained, render_rows, render_summary

if TYPE_CHECKING:
    from idx.ops.maps.clustering import ClusterResult
    from idx.ops.maps.projection import ProjectionResult
    from idx.ops.maps.sweep import SweepResult

UNTRAINED = "clusters and maps reflect no learned similarity"


def show_projection(result: ProjectionResult, fmt: str) -> None:
    note_untrained(result.untrained, UNTRAINED)

    def table() -> None:
        used = result.params.get("perplexity")
        detail = f", perplexity {used:g}" if used is not None else ""
        click.echo(
            f"projection run {result.run_id}: {result.method} of {len(result.ids)} images, seed "
            f"{result.seed}{detail}, {result.seconds or 0:.1f}s"
        )
        click.echo(f"model: {result.model}")
        if "map" in result.plots:
            click.echo(f"plot:  {result.plots['map']}")

    render_summary(result.as_dict(), fmt, table)


def show_clusters(results: dict[str, ClusterResult], fmt: str, *, side_by_side: bool) -> None:
    """One run, or (`side_by_side`) runs named by subset, as `idx cluster --compare-clean`."""
    first = next(iter(results.values()))
    note_untrained(first.untrained, UNTRAINED)
    summary = (
        {name: r.as_dict() for name, r in results.items()} if side_by_side else first.as_dict()
    )
    render_summary(summary, fmt, lambda: _print_clusters(results))


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


def _print_clusters(results: dict[str, ClusterResult]) -> None:
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
        drawn = [r.plots[p] for p in ("map", "silhouette") if p in r.plots]
        drawn += r.plots.get("contact_sheets", [])
        if drawn:
            click.echo(f"plots [{name}]:")
        for path in drawn:
            click.echo(f"  {path}")


def show_sweep(result: SweepResult, fmt: str) -> None:
    note_untrained(result.untrained, UNTRAINED)
    rows = result.rows()

    def table() -> None:
        span = f"k {result.ks[0]}:{result.ks[-1]}" + (" (default)" if result.default_range else "")
        click.echo(
            f"sweep run {result.run_id}: K-means on {result.space}, {result.n_images} images, "
            f"{span}, seed {result.seed}"
        )
        click.echo(f"model: {result.model}")
        render_rows(list(rows[0]), [list(r.values()) for r in rows], "table")
        click.echo(f"best k by silhouette: {result.best_k}")
        by = result.best_by
        if "nmi" in by:
            scored = f" ({result.labels})" if result.labels else ""
            click.echo(
                f"best k against the labels{scored}: by NMI {by['nmi']}, "
                f"by ARI {by['ari']}, by purity {by['purity']} (purity grows with k)"
            )
        else:
            click.echo("no labels: import some (`idx labels import`) to score each k against them")
        if "metrics" in result.plots:
            click.echo(f"plot: {result.plots['metrics']}")

    render_summary(result.as_dict(), fmt, table, rows)
