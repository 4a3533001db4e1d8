"""`idx runs`: every stored analysis run; one printed again as its command printed it; one
removed with its rows and plots."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from idx.cli.options import Lazy, LazyChoice, open_index, output_options
from idx.cli.output import render_rows, render_summary
from idx.cli.views.insights import show_insights
from idx.cli.views.leakage import show_leakage
from idx.cli.views.maps import show_clusters, show_projection, show_sweep
from idx.cli.views.robustness import show_injection, show_report

#: run kind -> how its command prints a result, given the index folder for the commands it
#: suggests next (a test checks every kind of KINDS has one).
RENDER: dict[str, Callable[[Any, str, Path], None]] = {
    "projection": lambda r, fmt, _: show_projection(r, fmt),
    "cluster": lambda r, fmt, _: show_clusters({r.subset: r}, fmt, side_by_side=False),
    "sweep": lambda r, fmt, _: show_sweep(r, fmt),
    "insight": lambda r, fmt, _: show_insights(r, fmt),
    "robustness": lambda r, fmt, _: show_report(r, fmt),
    "injection": show_injection,
    "leakage": lambda r, fmt, _: show_leakage(r, fmt),
}
#: Columns of the table view (csv and json also carry the command that makes each kind).
COLUMNS = ("kind", "id", "created_at", "parameters", "headline")

kind_argument = click.argument(
    "kind", type=LazyChoice(Lazy("idx.indexer.catalog.runs", "KINDS")), metavar="KIND"
)


@click.group(invoke_without_command=True)
@click.option(
    "--kind",
    type=LazyChoice(Lazy("idx.indexer.catalog.runs", "KINDS")),
    default=None,
    help="Only runs of this kind.",
)
@output_options(rows=True)
@click.pass_context
def runs(ctx, kind, fmt):
    """List the stored analysis runs of every kind, newest first.

    One row per run: its kind (projection, cluster, sweep, insight, robustness, injection), id,
    time, parameters and one headline figure (cluster: silhouette; sweep: best k; insight: kNN
    accuracy; robustness: the lowest mean cosine to the clean image). Nothing is computed:
    `idx runs show` prints a run again, `idx runs remove` deletes one.

    \b
    Example:
      idx runs
      idx runs --kind cluster --json
      idx runs show insight
      idx runs remove cluster 1 --with-dependents
    """
    if ctx.invoked_subcommand is not None:
        return
    from idx.ops.runs import list_runs

    with open_index(ctx, read_only=True) as index:
        found = [r.as_dict() for r in list_runs(index, kind)]
    columns = COLUMNS if fmt == "table" else (*COLUMNS, "command")
    render_rows(columns, [[r[c] for c in columns] for r in found], fmt)


@runs.command("show")
@kind_argument
@click.argument("run_id", type=int, required=False, metavar="[ID]")
@output_options
@click.pass_context
def show_command(ctx, kind, run_id, fmt):
    """Print a stored run as the command that made it printed it (default: the latest of KIND).

    Read from the catalog, not computed again; its plots are named where they were drawn under
    <index>/plots (runs drawn elsewhere with --out show none).

    \b
    Example:
      idx runs show cluster
      idx runs show insight 1 --json
    """
    from idx.ops.runs import load_run

    with open_index(ctx, read_only=True) as index:
        result = load_run(index, kind, run_id)
    RENDER[kind](result, fmt, index.dir)


@runs.command("remove")
@kind_argument
@click.argument("run_id", type=int, metavar="ID")
@click.option(
    "--with-dependents",
    is_flag=True,
    help="Also remove the runs made from it (insight and robustness runs that used a cluster "
    "run; clusterings and sweeps of a map), and theirs.",
)
@output_options
@click.pass_context
def remove_command(ctx, kind, run_id, with_dependents, fmt):
    """Delete a stored run: its row and stored rows (one transaction), then its plots folder.

    A run that other runs were made from is kept, naming them, unless --with-dependents. An
    injection goes with its images, their vectors and files (as `idx robustness eject`).

    \b
    Example:
      idx runs remove sweep 1
      idx runs remove cluster 1 --with-dependents --json
    """
    from idx.ops.runs import remove_run

    with open_index(ctx) as index:
        removed = remove_run(index, kind, run_id, with_dependents=with_dependents)

    def table() -> None:
        for r in removed:
            rows = ", ".join(f"{n} from {table}" for table, n in r.rows.items())
            of = r.dependent_of
            made_from = f" (made from {of[0]} run {of[1]})" if of is not None else ""
            click.echo(f"removed {r.kind} run {r.run_id}{made_from}: {rows}")
            for path in r.plots:
                click.echo(f"  removed {path}")

    render_summary([r.as_dict() for r in removed], fmt, table)


def register(cli: click.Group) -> None:
    cli.add_command(runs)
