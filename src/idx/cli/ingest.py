"""Commands over the catalog itself: add, status, sql, export."""

from __future__ import annotations

import click

from idx.cli.common import json_option, model_options, open_index, quiet_option
from idx.cli.output import echo_json, format_option, render_rows
from idx.cli.progress import ProgressBar
from idx.indexer.export import FORMATS as EXPORT_FORMATS


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@model_options
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Images per model call (env IDX_BATCH_SIZE, default 64).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Threads that read and decode while the model runs (default: cores + 1, max 4).",
)
@json_option
@quiet_option
@click.pass_context
def add(ctx, paths, model, pretrained, checkpoint, batch_size, workers, as_json, quiet):
    """Add folders of images to the index, incrementally.

    New files are embedded; unchanged ones (size, mtime) are skipped without being read; changed
    ones are re-embedded; moved or renamed ones keep their vector (found by content hash); files
    gone from a given folder are removed. Bad files are skipped with a reason, never fatal.

    \b
    Example:
      idx add ~/photos/openimages
      idx add ~/photos --model ViT-B-32 --pretrained laion2b_s34b_b79k --json
      idx add imgs --model tiny.json --checkpoint tiny.safetensors   # offline weights
    """
    with (
        ProgressBar(quiet) as bar,
        open_index(ctx, model=model, pretrained=pretrained, checkpoint=checkpoint) as index,
    ):

        def on_skip(path: str, reason: str) -> None:
            if not quiet:
                bar.write(f"skipping {path}: {reason}")

        report = index.add(
            paths, batch_size=batch_size, workers=workers, progress=bar, on_skip=on_skip
        )
        bar.close()
        ident = index.stored_identity()
    if as_json:
        echo_json(report.as_dict() | {"model": ident.describe() if ident else None})
        return
    rate = f" ({report.images_per_s:.1f} images/s)" if report.embedded else ""
    click.echo(
        f"added {report.added}, unchanged {report.unchanged}, updated {report.updated}, "
        f"moved {report.moved}, removed {report.removed}, skipped {report.skipped}; "
        f"embedded {report.embedded} in {report.seconds:.1f}s{rate}"
    )
    if ident is not None and ident.untrained:
        click.echo(
            "note: the model has UNTRAINED random weights; similarities are not meaningful",
            err=True,
        )


@click.command()
@json_option
@click.pass_context
def status(ctx, as_json):
    """Show what the index holds: images, model, vectors, skipped files, health.

    \b
    Example:
      idx status
      idx --index photos.idx status --json
    """
    with open_index(ctx, read_only=True) as index:
        info = index.status()
    if as_json:
        echo_json(info)
        return
    model = info["model"]["description"] if info["model"] else "none yet (set on first add)"
    v = info["vectors"]
    lines = [
        f"index:     {info['index']}",
        f"images:    {info['images']} ({info['bytes'] / 1e6:.1f} MB; "
        + ", ".join(f"{k} {n}" for k, n in info["formats"].items())
        + ")",
        f"model:     {model}",
        f"vectors:   {v['count']} in FAISS ({v['type']}), "
        + ("in sync" if v["in_sync"] else "behind the catalog (rebuilt on next use)"),
        f'skipped:   {info["skipped"]} files (see: idx sql "SELECT * FROM skipped")',
        f"health:    {info['health']}",
    ]
    if "recall_at_10" in v:
        lines.insert(4, f"recall@10: {v['recall_at_10']:.3f} (approximate index vs exact search)")
    lines += [f"  - {p}" for p in info["problems"]]
    click.echo("\n".join(lines))


@click.command()
@click.argument("query")
@format_option
@click.pass_context
def sql(ctx, query, fmt):
    """Run a read-only SQL query over the catalog (DuckDB dialect).

    Tables: images, embeddings, skipped, meta, and those of the analysis commands. Write
    statements are refused.

    \b
    Example:
      idx sql "SELECT format, count(*) FROM images GROUP BY 1"
      idx sql "SELECT path, reason FROM skipped" --format csv
    """
    import duckdb

    from idx.errors import UsageError

    with open_index(ctx, read_only=True) as index:
        try:
            columns, rows = index.sql(query)
        except duckdb.InvalidInputException as exc:
            if "read-only" in str(exc).lower() or "read only" in str(exc).lower():
                raise UsageError(
                    "idx sql is read-only: write statements are refused; change the index "
                    "through idx commands"
                ) from None
            raise UsageError(f"SQL error: {exc}") from None
        except duckdb.Error as exc:
            raise UsageError(f"SQL error: {exc}") from None
    render_rows(columns, rows, fmt)


@click.command()
@click.argument("out", type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    required=True,
    help="parquet: one file (id, path, sha256, embedding); npy: a folder with "
    "embeddings.npy, ids.npy, paths.json, model.json.",
)
@json_option
@click.pass_context
def export(ctx, out, fmt, as_json):
    """Export ids, paths and embeddings (float32, L2-normalised, as stored).

    \b
    Example:
      idx export embeddings.parquet --format parquet
      idx export emb/ --format npy && python -c "import numpy; print(numpy.load('emb/embeddings.npy').shape)"
    """
    with open_index(ctx, read_only=True) as index:
        files = index.export(out, fmt)
        count = index.catalog.images.count()
    if as_json:
        echo_json({"files": [str(f) for f in files], "images": count, "format": fmt})
    else:
        for f in files:
            click.echo(str(f))


def register(cli: click.Group) -> None:
    for command in (add, status, sql, export):
        cli.add_command(command)
