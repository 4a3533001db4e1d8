"""`idx demo`: generate a labelled image set and run the whole pipeline on it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import click

from idx import config
from idx.cli.common import json_option
from idx.cli.output import echo_json
from idx.cli.progress import ProgressBar
from idx.indexer import encoder, synthetic
from idx.indexer.index import Index


def _say(message: str) -> None:
    click.echo(message, err=True)


def choose_model(out: Path, tiny: bool) -> dict[str, Any]:
    """The default model when its weights can be had, else a tiny random one (said plainly)."""
    if not tiny:
        default = encoder.identify(encoder.ModelSpec(config.DEFAULT_MODEL, config.DEFAULT_PRETRAINED))
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


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="idx-demo",
              show_default=True, help="Folder for the demo images, index and plots.")
@click.option("--per-category", type=click.IntRange(min=2), default=20, show_default=True,
              help="Images generated per category (8 categories).")
@click.option("--tiny", is_flag=True, help="Use the tiny random model even if real weights are available.")
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
    summary: dict[str, Any] = {"out": str(out.resolve()), "images_dir": str(images.resolve())}
    if not (images / "labels.csv").exists():
        _say(f"demo: writing {per_category * len(synthetic.CATEGORIES)} images to {images}")
        synthetic.generate(images, per_category)
    model = choose_model(out, tiny)
    index_dir = out / "index"
    summary["index"] = str(index_dir.resolve())
    with ProgressBar(quiet) as bar, Index(index_dir, **model) as index:
        report = index.add([images], progress=bar,
                           on_skip=lambda p, r: None if quiet else bar.write(f"skipping {p}: {r}"))
        bar.close()
        ident = index.stored_identity()
        summary["add"] = report.as_dict()
        summary["model"] = ident.describe() if ident else None
        summary["untrained"] = bool(ident and ident.untrained)
        _say(f"demo: indexed {report.added} new, {report.unchanged} unchanged images with {summary['model']}")
    summary["next"] = [
        f"idx --index {index_dir} status",
        f"idx --index {index_dir} sql \"SELECT format, count(*) FROM images GROUP BY 1\"",
    ]
    if as_json:
        echo_json(summary)
        return
    click.echo(f"index:  {summary['index']}")
    click.echo(f"model:  {summary['model']}")
    if summary["untrained"]:
        click.echo("WARNING: results come from an UNTRAINED random model (no downloadable weights here).")
    click.echo("try:")
    for line in summary["next"]:
        click.echo(f"  {line}")


def register(cli: click.Group) -> None:
    cli.add_command(demo)
