"""`idx robustness`: measure how corruptions move embeddings; inject / eject / compare."""

from __future__ import annotations

from typing import Any

import click

from idx.cli.options import (
    batch_options,
    cluster_run_option,
    count_option,
    model_options,
    no_plots_option,
    notes_option,
    open_index,
    output_options,
    quiet_option,
    seed_option,
)
from idx.cli.output import note_untrained, render_rows, render_summary, warn
from idx.cli.progress import ProgressBar
from idx.errors import UsageError

# ops.robustness and ops.injection load FAISS, DuckDB and PIL: commands import them when they run.

#: Columns of the table view (csv and json carry every column).
TABLE_COLUMNS = (
    "perturbation",
    "severity",
    "n",
    "cos_mean",
    "cos_p05",
    "topk_overlap",
    "self_found_at_1",
    "self_rank_mean",
    "cluster_change_share",
    "knn_accuracy",
    "zero_shot_accuracy",
)


def _skip_printer(bar: ProgressBar, quiet: bool):
    return lambda path, reason: None if quiet else bar.write(f"skipping {path}: {reason}")


@click.group(invoke_without_command=True)
@click.option(
    "--perturb",
    default="all",
    show_default=True,
    metavar="NAMES",
    help="Comma-separated perturbations (see `idx robustness list`), imagenet-c (its 15 "
    "corruptions) or all.",
)
@click.option(
    "--severity",
    default="1:5",
    show_default=True,
    metavar="LEVELS",
    help="Severity levels 1..5: a range 1:5, a list 1,3,5 or one level.",
)
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Images measured (a seeded sample of the indexed files; injected ones excluded).",
)
@seed_option
@count_option(default=10, help="Neighbours compared.")
@click.option(
    "--depth",
    type=click.IntRange(min=2),
    default=100,
    show_default=True,
    help="Search depth for the rank of the clean image (ranks beyond count as depth+1).",
)
@cluster_run_option("whose centres measure cluster stability")
@click.option(
    "--save",
    "save_dir",
    type=click.Path(file_okay=False),
    default=None,
    metavar="DIR",
    help="Also write every perturbed image as DIR/<perturbation>/severity-<s>/<id>.png.",
)
@no_plots_option
@batch_options
@model_options
@output_options
@quiet_option
@click.pass_context
def robustness(
    ctx,
    perturb,
    severity,
    sample,
    seed,
    k,
    depth,
    cluster_run,
    save_dir,
    no_plots,
    batch_size,
    workers,
    model,
    pretrained,
    checkpoint,
    fmt,
    quiet,
):
    """Measure how image corruptions move embeddings, neighbours, clusters and labels.

    For a seeded sample of indexed images, each perturbation and severity is applied in memory
    and re-embedded; the run reports cosine drift (mean, quantiles), top-k neighbour overlap, the
    rank of the clean image, the share of images changing cluster (needs `idx cluster`), kNN and
    zero-shot accuracy and the most fragile classes (need labels). Severity 0 is the clean
    baseline; per perturbation, each metric's mean over the severities and its drop from clean
    (ImageNet-C's summary), with the mean over ImageNet-C's corruptions measured. Rows go to the tables robustness_runs / _results / _classes; figures to
    <index>/plots/robustness-<run>/.

    \b
    Example:
      idx robustness --perturb gaussian_noise,blur,jpeg,brightness --severity 1:5 --sample 500
      idx robustness --perturb all --severity 1,3,5 --sample 50 --format csv
      idx robustness --perturb imagenet-c --sample 200 --json
      idx robustness list
    """
    if ctx.invoked_subcommand is not None:
        return
    from idx.ops.robustness.inputs import parse_severities, resolve_perturbations
    from idx.ops.robustness.measure import RESULT_COLUMNS, measure

    names = resolve_perturbations(perturb.split(","))
    levels = parse_severities(severity)
    with (
        ProgressBar(quiet) as bar,
        open_index(ctx, model=model, pretrained=pretrained, checkpoint=checkpoint) as index,
    ):
        report = measure(
            index,
            names,
            levels,
            sample=sample,
            seed=seed,
            k=k,
            depth=depth,
            cluster_run=cluster_run,
            save_dir=save_dir,
            plots=not no_plots,
            batch_size=batch_size,
            workers=workers,
            progress=bar,
            on_skip=_skip_printer(bar, quiet),
        )
        bar.close()
    for note in report.notes:
        warn(f"note: {note}")
    if fmt == "csv":
        render_rows(RESULT_COLUMNS, [[r[c] for c in RESULT_COLUMNS] for r in report.results], fmt)
    else:
        render_summary(report.as_dict(), fmt, lambda: _print_table(report))


def _print_table(report: Any) -> None:
    columns = [c for c in TABLE_COLUMNS if any(r[c] is not None for r in report.results)]
    render_rows(columns, [[r[c] for c in columns] for r in report.results], "table")
    _print_summary(report)


#: (column, heading) of the per-corruption table: mean over the severities, drop from clean.
CORRUPTION_COLUMNS = (
    ("perturbation", "perturbation"),
    ("severities", "levels"),
    ("knn_accuracy", "knn_acc"),
    ("knn_accuracy_drop", "knn_drop"),
    ("zero_shot_accuracy", "zero_shot"),
    ("zero_shot_accuracy_drop", "zero_shot_drop"),
    ("cos_mean", "cos_mean"),
    ("topk_overlap", "topk_overlap"),
    ("self_found_at_1", "found_at_1"),
    ("self_found_at_1_drop", "found_at_1_drop"),
)


def _print_by_corruption(report: Any) -> None:
    rows = report.by_corruption
    shown = [(c, h) for c, h in CORRUPTION_COLUMNS if any(r.get(c) is not None for r in rows)]
    click.echo(
        "\nper perturbation: mean over the severities measured; drop = clean minus that mean"
    )
    render_rows([h for _, h in shown], [[r.get(c) for c, _ in shown] for r in rows], "table")


def _print_summary(report: Any) -> None:
    _print_by_corruption(report)
    fragile = _most_fragile(report.classes)
    if fragile:
        click.echo("\nmost fragile classes (mean cosine over the perturbed conditions):")
        render_rows(["class", "n", "cos_mean", "knn_accuracy"], fragile, "table")
    click.echo(
        f"\nrun {report.run_id}: {report.sample_size} images x {len(report.perturbations)} "
        f"perturbations x {len(report.severities)} severities with {report.model}; "
        f"{report.images_per_s:.1f} perturbed images/s"
    )
    for name, path in report.plots.items():
        click.echo(f"{name}: {path}")


def _most_fragile(classes: list[dict[str, Any]], top: int = 5) -> list[list[Any]]:
    by_label: dict[str, list[dict[str, Any]]] = {}
    for row in classes:
        if row["severity"] > 0:
            by_label.setdefault(row.get("display_name") or row["label_name"], []).append(row)
    summary = []
    for label, rows in by_label.items():
        cos = sum(r["cos_mean"] for r in rows) / len(rows)
        acc = [r["knn_accuracy"] for r in rows if r["knn_accuracy"] is not None]
        summary.append([label, rows[0]["n"], cos, sum(acc) / len(acc) if acc else None])
    return sorted(summary, key=lambda r: r[2])[:top]


@robustness.command("list")
@output_options(rows=True)
def list_command(fmt):
    """List the registered perturbations and what each severity 1..5 means.

    Parameters follow ImageNet-C (Hendrycks & Dietterich 2019) where it defines the corruption;
    pixel sizes are given for a 224 px image and scaled to the image. Add your own in Python
    with idx.register_perturbation(name, fn).

    \b
    Example:
      idx robustness list
      idx robustness list --format json
    """
    from idx.analysis import perturbations as registry

    columns = ["name", "origin", "s1", "s2", "s3", "s4", "s5", "parameter"]
    rows = []
    for name in registry.perturbation_names():
        p = registry.get_perturbation(name)
        # JSON gets the levels as numbers (and lists of them); a table or CSV as written
        levels: list = list(p.values if fmt in ("json", "jsonl") else p.levels)
        levels += [None if fmt in ("json", "jsonl") else ""] * (5 - len(levels))
        rows.append([p.name, p.origin, *levels[:5], p.description])
    render_rows(columns, rows, fmt)


@robustness.command("inject")
@click.option(
    "--kind",
    required=True,
    metavar="KIND",
    help="A perturbation name (see `idx robustness list`), pure_noise or blank.",
)
@click.option(
    "--severity",
    type=int,
    default=3,
    show_default=True,
    help="Severity 1..5 (ignored for pure_noise and blank).",
)
@click.option(
    "--fraction",
    type=float,
    default=0.1,
    show_default=True,
    help="Share of the indexed files to add a corrupted copy of (0.2 = 20 %).",
)
@seed_option
@output_options
@quiet_option
@click.pass_context
def inject_command(ctx, kind, severity, fraction, seed, fmt, quiet):
    """Add corrupted copies (or pure-noise / blank images) of a sample as real image files.

    The files go to <index>/injected/<id>/ and are indexed with images.source = 'inject:<id>',
    so clustering and insights can be run with them and, after `idx robustness eject`, without.

    \b
    Example:
      idx robustness inject --kind gaussian_noise --severity 3 --fraction 0.2
      idx robustness inject --kind pure_noise --fraction 0.05 --json
    """
    from idx.ops import injection

    with ProgressBar(quiet) as bar, open_index(ctx) as index:
        inj = injection.inject(
            index,
            kind,
            severity=severity,
            fraction=fraction,
            seed=seed,
            progress=bar,
            on_skip=_skip_printer(bar, quiet),
        )
        bar.close()

    def table() -> None:
        level = f" severity {inj.severity}" if inj.severity else ""
        click.echo(
            f"injection {inj.id}: added {inj.n_images} {inj.kind}{level} images "
            f"(source '{inj.source}') from {inj.folder}"
        )
        click.echo(
            f"compare with: idx robustness compare --id {inj.id}; remove with: "
            f"idx robustness eject --id {inj.id}"
        )

    render_summary(inj.as_dict(), fmt, table)


@robustness.command("eject")
@click.option("--id", "injection_id", type=int, default=None, help="Injection to remove.")
@click.option("--all", "all_", is_flag=True, help="Remove every injection.")
@output_options
@click.pass_context
def eject_command(ctx, injection_id, all_, fmt):
    """Remove injected images: catalog rows, vectors and files (default: the latest injection).

    \b
    Example:
      idx robustness eject --id 1
      idx robustness eject --all --json
    """
    if all_ and injection_id is not None:
        raise UsageError("give --id N or --all, not both")
    from idx.ops import injection

    with open_index(ctx) as index:
        removed = injection.eject(index, injection_id, all_=all_)

    def table() -> None:
        if not removed:
            click.echo("nothing injected; nothing removed")
        for item in removed:
            click.echo(f"injection {item['id']}: removed {item['removed']} {item['kind']} images")

    render_summary(removed, fmt, table)


@robustness.command("compare")
@click.option("--id", "injection_id", type=int, default=None, help="Injection (default: latest).")
@count_option(
    type=click.IntRange(min=2), help="Clusters (default: k of the latest cluster run, else 8)."
)
@seed_option
@output_options
@notes_option
@click.pass_context
def compare_command(ctx, injection_id, k, seed, fmt):
    """Cluster with and without an injection's images, side by side.

    Reports silhouette (cosine) and, with labels, purity for the clean images alone and with the
    injected ones; where the injected images land (cluster, their share of it); and how much the
    clean images' grouping moved (adjusted Rand index, 1 = unchanged).

    \b
    Example:
      idx robustness compare
      idx robustness compare --id 2 --k 20 --json
    """
    from idx.ops import injection

    with open_index(ctx, read_only=True) as index:
        result = injection.compare(index, injection_id, k=k, seed=seed)
    render_summary(result, fmt, lambda: _print_comparison(result))
    note_untrained(result["untrained"], "clusters are not meaningful")


def _print_comparison(result: dict[str, Any]) -> None:
    inj, without, with_ = result["injection"], result["without_injected"], result["with_injected"]
    click.echo(
        f"injection {inj['id']} ({inj['n_images']} {inj['kind']} images), k-means k={result['k']}"
    )
    render_rows(
        ["metric", "without_injected", "with_injected"],
        [[m, without[m], with_[m]] for m in ("n", "injected", "silhouette", "purity")],
        "table",
    )
    click.echo(f"clean images' clusters kept (ARI): {result['clean_agreement_ari']:.3f}\n")
    click.echo("where the injected images land:")
    rows = [r for r in result["landing"] if r["injected"]]
    render_rows(list(rows[0]), [list(r.values()) for r in rows], "table")


def register(cli: click.Group) -> None:
    cli.add_command(robustness)
