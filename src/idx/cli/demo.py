"""`idx demo`: generate a labelled image set and run the whole pipeline on it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from idx import config
from idx.cli import insights, labels
from idx.cli.analysis import demo_step as analysis_step
from idx.cli.common import json_option
from idx.cli.output import echo_json
from idx.cli.progress import ProgressBar
from idx.cli.report import step_report
from idx.cli.robustness import step_robustness
from idx.cli.search import step_search
from idx.indexer import encoder, synthetic
from idx.indexer.index import Index


def _say(message: str) -> None:
    click.echo(message, err=True)


def choose_model(out: Path, tiny: bool) -> dict[str, Any]:
    """The default model when its weights can be had, else a tiny random one (said plainly)."""
    if not tiny:
        default = encoder.identify(
            encoder.ModelSpec(config.DEFAULT_MODEL, config.DEFAULT_PRETRAINED)
        )
        if encoder.weights_available(default):
            return {"model": config.DEFAULT_MODEL, "pretrained": config.DEFAULT_PRETRAINED}
        _say(
            f"demo: weights for {config.DEFAULT_MODEL}/{config.DEFAULT_PRETRAINED} cannot be "
            "downloaded here (offline, not cached). Running with a TINY RANDOM model instead: "
            "every result below comes from UNTRAINED weights and says so."
        )
    cfg = encoder.tiny_config_path()
    ckpt = out / "model" / f"{cfg.stem}-random.safetensors"
    if not ckpt.exists():
        encoder.save_random_checkpoint(cfg, ckpt)
    return {"model": str(cfg), "checkpoint": str(ckpt)}


@dataclass
class DemoRun:
    """What each demo step gets: where things are, which model, and where to report."""

    out: Path
    images: Path
    index_dir: Path
    model: dict[str, Any]
    quiet: bool
    summary: dict[str, Any] = field(default_factory=dict)
    next_commands: list[str] = field(default_factory=list)

    def index(self, read_only: bool = False) -> Index:
        return Index(self.index_dir, read_only=read_only, **({} if read_only else self.model))


def step_add(run: DemoRun) -> None:
    with ProgressBar(run.quiet) as bar, run.index() as index:
        report = index.add(
            [run.images],
            progress=bar,
            on_skip=lambda p, r: None if run.quiet else bar.write(f"skipping {p}: {r}"),
        )
        bar.close()
        ident = index.stored_identity()
    run.summary["add"] = report.as_dict()
    run.summary["model"] = ident.describe() if ident else None
    run.summary["untrained"] = bool(ident and ident.untrained)
    _say(
        f"demo: indexed {report.added} new, {report.unchanged} unchanged images with {run.summary['model']}"
    )
    run.next_commands += [
        f"idx --index {run.index_dir} status",
        f'idx --index {run.index_dir} sql "SELECT format, count(*) FROM images GROUP BY 1"',
    ]


#: The pipeline, in order. Each feature appends its step (a function taking the DemoRun).
STEPS: list[Callable[[DemoRun], None]] = [
    step_add,
    labels.step_labels,
    analysis_step,
    insights.step_insights,  # after clustering: insights compare with it
    step_search,
    step_robustness,
    step_report,  # last: it shows what the steps before it stored
]


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
@json_option
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
def demo(out_dir, per_category, tiny, fresh, as_json, quiet):
    """Generate a labelled demo image set and run the idx pipeline on it.

    Writes procedural images in 8 distinct categories (JPEG and PNG, one folder per category),
    indexes them, and runs each analysis step, printing where the results are.

    \b
    Example:
      idx demo
      idx demo --out /tmp/demo --per-category 40 --json
    """
    out = Path(out_dir)
    if fresh and out.exists():
        shutil.rmtree(out)
    images = out / "images"
    if not (images / "labels.csv").exists():
        _say(f"demo: writing {per_category * len(synthetic.CATEGORIES)} images to {images}")
        synthetic.generate(images, per_category)
    run = DemoRun(
        out=out, images=images, index_dir=out / "index", model=choose_model(out, tiny), quiet=quiet
    )
    run.summary.update(
        out=str(out.resolve()), images_dir=str(images.resolve()), index=str(run.index_dir.resolve())
    )
    for step in STEPS:
        step(run)
    run.summary["next"] = run.next_commands
    if as_json:
        echo_json(run.summary)
        return
    click.echo(f"index:  {run.summary['index']}")
    click.echo(f"model:  {run.summary['model']}")
    if run.summary["untrained"]:
        click.echo(
            "WARNING: results come from an UNTRAINED random model (no downloadable weights here)."
        )
    for key, value in run.summary.get("outputs", {}).items():
        click.echo(f"{key}: {value}")
    click.echo("try:")
    for line in run.next_commands:
        click.echo(f"  {line}")


def register(cli: click.Group) -> None:
    cli.add_command(demo)
