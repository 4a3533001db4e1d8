"""Commands over the catalog itself: add, status, sql, export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from idx import config
from idx.cli.options import (
    Lazy,
    LazyChoice,
    batch_options,
    model_options,
    notes_option,
    open_index,
    output_options,
    precision_option,
    quiet_option,
    run_settings,
)
from idx.cli.output import note_untrained, render_rows, render_summary, warn
from idx.cli.progress import ProgressBar
from idx.errors import UsageError

if TYPE_CHECKING:
    from idx.indexer.ingest.report import AddReport

EXPORT_FORMATS = Lazy("idx.indexer.export", "FORMATS")


class FolderOrURL(click.Path):
    """A folder that exists, or an object storage URL (s3://bucket/prefix) passed on as it is."""

    name = "folder or URL"

    def __init__(self) -> None:
        super().__init__(exists=True, file_okay=False)

    def convert(self, value, param, ctx):
        if "://" in str(value):
            return str(value)
        return super().convert(value, param, ctx)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=FolderOrURL())
@model_options
@precision_option
@batch_options
@click.option(
    "--hidden/--no-hidden",
    "include_hidden",
    default=None,
    help="Also index hidden files and folders (names starting with a dot); kept for the folder "
    "(default: what the folder's last add used, else --no-hidden).",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="PATTERN",
    help="Leave out paths matching PATTERN as a .gitignore line would, relative to the folder: "
    "'thumbnails/' at any depth, '/raw' at the top only, '*.tmp.jpg' (repeatable; replaces the "
    "folder's stored excludes).",
)
@click.option(
    "--engine",
    type=click.Choice(config.ENGINES),
    default=None,
    help="Who reads, decodes and embeds: local (threads here) or ray (Ray tasks and an actor "
    "pool, GPUs where the cluster has them; needs idx-clip[ray]). Env IDX_ENGINE, default local.",
)
@click.option(
    "--ray-address",
    metavar="ADDR",
    default=None,
    help="The Ray cluster for --engine ray (env RAY_ADDRESS); default: start Ray on this "
    "machine for the run.",
)
@output_options
@quiet_option
@click.pass_context
def add(
    ctx,
    paths,
    model,
    pretrained,
    checkpoint,
    batch_size,
    workers,
    include_hidden,
    exclude,
    engine,
    ray_address,
    fmt,
    quiet,
):
    """Add folders of images (or s3://bucket/prefix) to the index, incrementally.

    New files are embedded; unchanged ones (size, mtime) are skipped without being read; changed
    ones are re-embedded; moved or renamed ones keep their vector (found by content hash); files
    gone from a given folder are removed. Bad files are skipped with a reason, never fatal.
    Objects on S3 are compared by size and ETag (AWS_* settings; AWS_ENDPOINT_URL for MinIO and
    other S3-compatible servers).

    \b
    Example:
      idx add ~/photos/openimages
      idx add ~/photos --exclude "thumbnails/" --hidden
      idx add ~/photos --model ViT-B-32 --pretrained laion2b_s34b_b79k --json
      idx add imgs --model ViT-B-32 --checkpoint ViT-B-32.safetensors   # local weights
      idx add s3://my-bucket/photos --engine ray --ray-address ray://head:10001
    """
    settings = run_settings(
        ctx,
        model=model,
        pretrained=pretrained,
        checkpoint=checkpoint,
        batch_size=batch_size,
        workers=workers,
        engine=engine,
        ray_address=ray_address,
    )
    with ProgressBar(quiet) as bar, open_index(ctx, create=True, settings=settings) as index:

        def on_skip(path: str, reason: str) -> None:
            if not quiet:
                bar.write(f"skipping {path}: {reason}")

        report = index.add(
            paths,
            progress=bar,
            on_skip=on_skip,
            include_hidden=include_hidden,
            exclude=list(exclude) or None,
            settings=settings,
        )
        bar.close()
        ident = index.stored_identity()
    # exit 0 all the same: the folder is there and readable, an inbox emptied is a normal sync
    for empty in report.empty_folders:
        warn(f"warning: {empty.message()}")

    untrained = ident is not None and ident.untrained
    render_summary(
        report.as_dict() | {"model": ident.describe() if ident else None},
        fmt,
        lambda: _print_add_report(report, untrained),
    )


def _print_add_report(report: AddReport, untrained: bool) -> None:
    """`idx add`'s table: the counts, the hashes taken, where the time went, the untrained note."""
    rate = f" ({report.images_per_s:.1f} images/s)" if report.embedded else ""
    click.echo(
        f"added {report.added}, unchanged {report.unchanged}, updated {report.updated}, "
        f"moved {report.moved}, removed {report.removed}, skipped {report.skipped}; "
        f"embedded {report.embedded} in {report.seconds:.1f}s{rate}"
    )
    if report.hashed:
        click.echo(
            f"perceptual hashes taken for {report.hashed} images indexed before idx took "
            "them (idx duplicates uses them)"
        )
    if report.embedded:
        t = report.timings
        work = (
            f"the cluster reading and embedding {t['read']:.1f}s"
            if report.engine == "ray"
            else f"reading and decoding {t['read']:.1f}s, model {t['embed']:.1f}s"
        )
        click.echo(
            f"time: scan {t['scan']:.1f}s, start-up {t['start']:.1f}s, {work}, catalog "
            f"{t['store']:.1f}s in the background ({t['store_wait']:.1f}s waited for)"
        )
    note_untrained(untrained)


@click.command()
@output_options
@notes_option
@click.pass_context
def status(ctx, fmt):
    """Show what the index holds: images, model, vectors, skipped files, health.

    \b
    Example:
      idx status
      idx --index photos.idx status --json
    """
    with open_index(ctx, read_only=True) as index:
        info = index.status()

    def table() -> None:
        model = info["model"]["description"] if info["model"] else "none yet (set on first add)"
        v = info["vectors"]
        formats = "".join(f"; {k} {n}" for k, n in info["formats"].items())
        lines = [
            f"index:     {info['index']}",
            f"images:    {info['images']}"
            + (f" ({info['bytes'] / 1e6:.1f} MB{formats})" if info["images"] else ""),
            f"model:     {model}",
            f"vectors:   {v['count']} in FAISS ({v['type']}), "
            + (
                "in sync"
                if v["in_sync"]
                else "behind the catalog (rebuilt in memory until the next `idx add` saves it)"
            ),
            f"skipped:   {info['skipped']} files "
            f"(see: {config.command(info['index'], 'sql', 'SELECT * FROM skipped')})",
            f"health:    {info['health']}",
        ]
        if "recall_at_10" in v:
            lines.insert(
                4, f"recall@10: {v['recall_at_10']:.3f} (approximate index vs exact search)"
            )
        if info.get("precision"):
            lines.insert(4, f"precision: {_precision_line(info['precision'])}")
        for folder, rules in (info.get("folders") or {}).items():
            excludes = "".join(f", --exclude {g}" for g in rules["excludes"])
            hidden = "hidden taken" if rules["include_hidden"] else "hidden left out"
            lines.append(f"folder:    {folder} ({hidden}{excludes})")
        if info.get("job"):
            lines.append(f"job:       {_job_line(info['job'])}")
        lines += [f"  - {p}" for p in info["problems"]]
        click.echo("\n".join(lines))

    render_summary(info, fmt, table)


def _precision_line(precision: dict) -> str:
    """The precisions the vectors were made in, and int8's measured agreement with fp32."""
    text = " + ".join(precision["used"]) or "none yet"
    if "int8_agreement" in precision:
        text += (
            f" (int8 agrees with fp32: mean cosine {precision['int8_agreement']:.4f} on "
            f"{precision['int8_sample']} of the index's images)"
        )
    return text


def _job_line(job: dict) -> str:
    """The add that is running (phase, progress, speed) or that stopped (and how to resume)."""
    if job["status"] != "running":
        error = f": {job['error']}" if job.get("error") else ""
        return f"{job['status']} `{job['command']}`{error}; resume with `{job['resume']}`"
    rate = f", {job['images_per_s']:.1f} images/s" if job.get("images_per_s") else ""
    eta = f", about {job['eta_s']:.0f}s left" if job.get("eta_s") else ""
    return f"running `{job['command']}`: {job['phase']} {job['done']}/{job['total']}{rate}{eta}"


@click.command()
@click.argument("query")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop the query after this many seconds [default: IDX_SQL_TIMEOUT, else no limit].",
)
@output_options(rows=True)
@notes_option
@click.pass_context
def sql(ctx, query, timeout, fmt):
    """Run one read-only SQL statement over the catalog (DuckDB dialect).

    Tables: images, embeddings, skipped, meta, and those of the analysis commands; the view
    image_info (one row per image: path, folder, size, labels, cluster, ...). Vectors: the view
    image_vectors(id, vector FLOAT[d]), image_embedding(id) and text_embedding('words') (the
    index's model, loaded when used), for array_cosine_similarity.

    Allowed: one SELECT (with WITH, VALUES, FROM-first, DESCRIBE, SHOW, SUMMARIZE) or an
    EXPLAIN of one. It may read files (read_csv, read_parquet: this is your own shell, unlike
    `idx serve`), but nothing that writes is allowed: no COPY, EXPORT, ATTACH, CREATE (TEMP
    too), INSERT, SET, PRAGMA, INSTALL or LOAD. DuckDB may use IDX_SQL_MEMORY_MB of memory
    (default 2048) and IDX_SQL_THREADS threads (default: every core).

    \b
    Example:
      idx sql "SELECT format, count(*) FROM images GROUP BY 1"
      idx sql "SELECT path, reason FROM skipped" --format csv
      idx sql "SELECT i.path, array_cosine_similarity(v.vector, text_embedding('a red apple'))
               AS score FROM image_info i JOIN image_vectors v USING (id)
               WHERE list_contains(i.labels, 'Banana') ORDER BY score DESC LIMIT 5"
    """
    import os

    from idx import config
    from idx.ops.sql import run_sql

    threads = config.env("SQL_THREADS")
    with open_index(ctx, read_only=True) as index:
        index.catalog.limit_user_sql(
            memory_mb=config.sql_memory_mb(),
            threads=config.sql_threads() if threads else os.cpu_count() or 1,
            file_access=True,
        )
        result = run_sql(index, query, timeout=timeout or config.sql_timeout(default=None))
    render_rows(result.columns, result.rows, fmt)


def export_format(out: str, given: str | None) -> str:
    """The export format: --format, else read from OUT (x.parquet; a folder, x/ or x.npy)."""
    if given is not None:
        return given
    path = Path(out)
    if path.suffix.lower() == ".parquet":
        return "parquet"
    if path.suffix.lower() == ".npy" or path.is_dir() or out.endswith(("/", "\\")):
        return "npy"
    raise UsageError(
        f"cannot tell the export format from {out!r}: name a .parquet file or a folder "
        "(ending in /), or give --format parquet or --format npy"
    )


@click.command()
@click.argument("out", type=click.Path())
@click.option(
    "--format",
    "file_format",
    type=LazyChoice(EXPORT_FORMATS),
    default=None,
    help="parquet: one file (id, path, sha256, embedding); npy: a folder with "
    "embeddings.npy, ids.npy, paths.json, model.json. Default: read from OUT "
    "(x.parquet -> parquet; a folder, x/ or x.npy -> npy).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as one JSON object.")
@click.pass_context
def export(ctx, out, file_format, as_json):
    """Export ids, paths and embeddings (float32, L2-normalised, as stored).

    --format names the file format written (it can be read from OUT); the files written are
    listed on stdout, or described as one JSON object with --json.

    \b
    Example:
      idx export embeddings.parquet
      idx export emb/ && python -c "import numpy; print(numpy.load('emb/embeddings.npy').shape)"
    """
    fmt = export_format(out, file_format)
    with open_index(ctx, read_only=True) as index:
        files = index.export(out, fmt)
        count = index.catalog.images.count()
    summary = {"files": [str(f) for f in files], "images": count, "format": fmt}
    render_summary(
        summary, "json" if as_json else "table", lambda: click.echo("\n".join(summary["files"]))
    )


def register(cli: click.Group) -> None:
    for command in (add, status, sql, export):
        cli.add_command(command)
