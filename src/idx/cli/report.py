"""`idx report`: write the self-contained HTML report; the demo's last step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from idx.cli.common import json_option, open_index, quiet_option
from idx.cli.output import echo_json
from idx.cli.progress import ProgressBar
from idx.ops.report.write import DEFAULT_MAX_THUMBNAILS, write_report

if TYPE_CHECKING:
    from idx.cli.demo import DemoRun


@click.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default="report.html",
    show_default=True,
    help="HTML file to write (replaced if it exists).",
)
@click.option(
    "--max-thumbnails",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_THUMBNAILS,
    show_default=True,
    help="Thumbnails embedded at most (~4 kB each): contact sheets and examples first, then a "
    "random sample of map points for hovering.",
)
@json_option
@quiet_option
@click.pass_context
def report(ctx, out, max_thumbnails, as_json, quiet):
    """Write one self-contained HTML report of the index (opens offline, no server).

    Summary and index health, the interactive 2-D map, clusters with their metrics and contact
    sheets, category insights and robustness: whatever the catalog holds. Sections not computed
    yet name the command that produces them.

    \b
    Example:
      idx report --out report.html
      idx --index photos.idx report --max-thumbnails 5000 --json
    """
    with ProgressBar(quiet, unit="thumb") as bar, open_index(ctx, read_only=True) as index:
        result = write_report(index, out, max_thumbnails=max_thumbnails, progress=bar)
    if result.untrained:
        click.echo("note: the index uses UNTRAINED random weights; the report says so", err=True)
    if as_json:
        echo_json(result.as_dict())
        return
    present = [name for name, ok in result.sections.items() if ok]
    click.echo(
        f"wrote {result.path} ({_size(result.bytes)}, {result.thumbnails} thumbnails; "
        f"sections: {', '.join(present)})"
    )


def step_report(run: DemoRun) -> None:
    """Demo step: write the report beside the demo's index and print where it is."""
    with ProgressBar(run.quiet, unit="thumb") as bar, run.index(read_only=True) as index:
        result = write_report(index, run.out / "report.html", progress=bar)
    run.summary.setdefault("outputs", {})["report"] = result.path
    click.echo(f"demo: report written to {result.path} ({_size(result.bytes)})", err=True)
    run.next_commands.append(f"idx --index {run.index_dir} report --out report.html")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def register(cli: click.Group) -> None:
    cli.add_command(report)
