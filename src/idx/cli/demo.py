"""`idx demo`: run the demo pipeline (idx.demo) and print its summary."""

from __future__ import annotations

import click

from idx.cli.options import device_option, output_options, quiet_option
from idx.cli.output import render_summary
from idx.cli.progress import ProgressBar


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="idx-demo",
    show_default=True,
    help="Folder for the demo images, index and plots.",
)
@click.option(
    "--per-category",
    type=click.IntRange(min=2),
    default=20,
    show_default=True,
    help="Images generated per category (8 categories).",
)
@click.option(
    "--tiny", is_flag=True, help="Use the tiny random model even if real weights are available."
)
@click.option("--fresh", is_flag=True, help="Delete an earlier demo folder first.")
@device_option
@output_options
@quiet_option
@click.pass_context
def demo(ctx, out_dir, per_category, tiny, fresh, fmt, quiet):
    """Generate a labelled demo image set and run the idx pipeline on it.

    Writes procedural images in 8 distinct categories (JPEG and PNG, one folder per category),
    indexes them, and runs each analysis step, printing where the results are and the
    --model/--checkpoint flags that reuse the demo's model.

    \b
    Example:
      idx demo
      idx demo --out /tmp/demo --per-category 40 --json
    """
    from idx.demo import run_demo

    with ProgressBar(quiet) as bar:
        summary = run_demo(
            out_dir,
            per_category=per_category,
            tiny=tiny,
            fresh=fresh,
            progress=bar,
            on_message=bar.write,
            device=(ctx.obj or {}).get("device"),
            on_skip=None if quiet else lambda path, reason: bar.write(f"skipping {path}: {reason}"),
        )

    def table() -> None:
        click.echo(f"index:  {summary['index']}")
        click.echo(f"model:  {summary['model']}")
        click.echo(f"reuse:  {summary['reuse']}")
        if summary["untrained"]:
            click.echo(
                "WARNING: results come from an UNTRAINED random model (no downloadable weights "
                "here)."
            )
        for key, value in summary.get("outputs", {}).items():
            click.echo(f"{key}: {value}")
        click.echo("try:")
        for line in summary["next"]:
            click.echo(f"  {line}")

    render_summary(summary, fmt, table)


def register(cli: click.Group) -> None:
    cli.add_command(demo)
