"""`idx report`: write the self-contained HTML report."""

from __future__ import annotations

import click

from idx.cli.options import Lazy, open_index, output_options, quiet_option
from idx.cli.output import note, render_summary
from idx.cli.progress import ProgressBar


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
    default=Lazy("idx.ops.report.write", "DEFAULT_MAX_THUMBNAILS"),
    show_default=True,
    help="Thumbnails embedded at most (~4 kB each): contact sheets and examples first, then a "
    "random sample of map points for hovering.",
)
@output_options
@quiet_option
@click.pass_context
def report(ctx, out, max_thumbnails, fmt, quiet):
    """Write one self-contained HTML report of the index (opens offline, no server).

    Summary and index health, the interactive 2-D map, clusters with their metrics and contact
    sheets, category insights and robustness: whatever the catalog holds. Sections not computed
    yet name the command that produces them.

    \b
    Example:
      idx report --out report.html
      idx --index photos.idx report --max-thumbnails 5000 --json
    """
    from idx.ops.report.write import write_report

    with ProgressBar(quiet, unit="thumb") as bar, open_index(ctx, read_only=True) as index:
        result = write_report(index, out, max_thumbnails=max_thumbnails, progress=bar)
    if result.untrained:
        note("the index uses UNTRAINED random weights; the report says so")

    def table() -> None:
        present = [name for name, ok in result.sections.items() if ok]
        click.echo(
            f"wrote {result.path} ({size(result.bytes)}, {result.thumbnails} thumbnails; "
            f"sections: {', '.join(present)})"
        )

    render_summary(result.as_dict(), fmt, table)


def size(n: int) -> str:
    """A file size for people: 432 kB, 1.2 MB."""
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def register(cli: click.Group) -> None:
    cli.add_command(report)
