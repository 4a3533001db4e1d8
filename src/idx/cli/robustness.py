"""`idx robustness`: measure how corruptions move embeddings; inject / eject / compare."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    show_option,
    stored_run,
)
from idx.cli.output import QUIET_NOTES, note_untrained, render_rows, render_summary
from idx.cli.progress import ProgressBar
from idx.cli.views.robustness import show_injection, show_report
from idx.errors import UsageError

if TYPE_CHECKING:
    from idx.ops.robustness.measure import RobustnessReport

# ops.robustness and ops.injection load FAISS, DuckDB and PIL: commands import them when they run.


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
@show_option
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
    show_stored,
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
    <index>/plots/robustness-<run>/. With --show, the newest stored run made with the same
    parameters is printed instead (`idx runs --kind robustness` lists them).

    \b
    Example:
      idx robustness --perturb gaussian_noise,blur,jpeg,brightness --severity 1:5 --sample 500
      idx robustness --perturb all --severity 1,3,5 --sample 50 --format csv
      idx robustness --perturb imagenet-c --sample 200 --json
      idx robustness --perturb imagenet-c --sample 200 --show
      idx robustness list
    """
    if ctx.invoked_subcommand is not None:
        return
    from idx.ops.robustness.inputs import parse_severities, resolve_perturbations

    names = resolve_perturbations(perturb.split(","))
    levels = parse_severities(severity)
    asked = {"sample": sample, "seed": seed, "k": k, "depth": depth, "cluster_run": cluster_run}
    report = _stored_or_new(
        ctx,
        names,
        levels,
        asked,
        show_stored,
        quiet=quiet,
        model={"model": model, "pretrained": pretrained, "checkpoint": checkpoint},
        save_dir=save_dir,
        plots=not no_plots,
        batch_size=batch_size,
        workers=workers,
    )
    if quiet:  # -q here also leaves out the notes, as it leaves out the bar and the skips
        ctx.meta[QUIET_NOTES] = True
    show_report(report, fmt)


def _stored_or_new(
    ctx: click.Context,
    names: list[str],
    levels: list[int],
    asked: dict[str, Any],
    stored: bool,
    *,
    quiet: bool,
    model: dict[str, Any],
    **run: Any,
) -> RobustnessReport:
    """The run to show: when `stored` (--show), the newest stored one asked the same; else, or
    when there is none, a new one measured with `run` (save_dir, plots, batch_size, workers) in
    the index opened with the `model` flags, its progress and skipped images shown unless quiet."""
    from idx.ops.robustness.measure import measure
    from idx.ops.robustness.runs import find_robustness

    report = stored_run(
        ctx,
        stored,
        lambda index: find_robustness(index, names, levels, **asked),
        "robustness run",
    )
    if report is None:
        with ProgressBar(quiet) as bar, open_index(ctx, **model) as index:
            report = measure(
                index,
                names,
                levels,
                progress=bar,
                on_skip=_skip_printer(bar, quiet),
                **run,
                **asked,
            )
            bar.close()
    return report


@robustness.command("list")
@output_options(rows=True)
def list_command(fmt: str) -> None:
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

    injection.check_arguments(kind, severity, fraction)  # a typo is exit 2 before anything opens
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

    show_injection(inj, fmt, index.dir)


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
