"""Commands for nearest-neighbour search: search, neighbors, duplicates, reindex."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from idx.cli.common import json_option, model_options, open_index, quiet_option
from idx.cli.output import echo_json, format_option, render_rows, warn
from idx.cli.progress import ProgressBar
from idx.indexer.index import Index
from idx.indexer.vectors import INDEX_TYPES
from idx.ops import duplicates as dup
from idx.ops import search as api

if TYPE_CHECKING:
    from idx.cli.demo import DemoRun

k_option = click.option(
    "-k",
    "k",
    type=click.IntRange(min=1),
    default=api.DEFAULT_K,
    show_default=True,
    help="How many results.",
)


def _untrained_note(index: Index) -> None:
    ident = index.stored_identity()
    if ident is not None and ident.untrained:
        warn("note: the model has UNTRAINED random weights; similarities are not meaningful")


def _print_hits(hits: list[api.Hit], fmt: str) -> None:
    with_labels = any(h.labels is not None for h in hits)
    columns = ["rank", "score", "id", "path"] + (["labels"] if with_labels else [])
    rows = []
    for h in hits:
        row: list = [h.rank, h.score, h.id, h.path]
        if with_labels:
            row.append(h.labels if fmt == "json" else ", ".join(h.labels or []))
        rows.append(row)
    render_rows(columns, rows, fmt)


@click.command()
@click.option("--text", "text", metavar="TEXT", help="Find images matching this description.")
@click.option(
    "--image",
    "image",
    metavar="FILE",
    help="Find images similar to this image file (indexed or not).",
)
@click.option("--id", "image_id", type=int, metavar="N", help="Query with indexed image N.")
@k_option
@format_option
@model_options
@click.pass_context
def search(ctx, text, image, image_id, k, fmt, model, pretrained, checkpoint):
    """Find the images nearest to a text, an image file or an indexed image.

    Prints rank, score (cosine similarity), id, path, and the image's labels once labels exist.
    Text and images are encoded with the index's own model; a query image is decoded like the
    ingested ones. With --id the image itself comes first (score 1); `idx neighbors` leaves it out.

    \b
    Example:
      idx search --text "a red apple on a table" -k 10
      idx search --image query.jpg -k 5 --format json
      idx search --id 42 --format csv
    """
    model_args = {"model": model, "pretrained": pretrained, "checkpoint": checkpoint}
    with open_index(ctx, read_only=True, **model_args) as index:
        hits = api.search(index, text=text, image=image, id=image_id, k=k)
        _untrained_note(index)
    _print_hits(hits, fmt)


@click.command()
@click.argument("image", required=False, metavar="[ID|PATH]")
@click.option(
    "--all",
    "all_images",
    is_flag=True,
    help="Store every image's k nearest neighbours in the `neighbors` table (replaces it).",
)
@k_option
@format_option
@quiet_option
@click.pass_context
def neighbors(ctx, image, all_images, k, fmt, quiet):
    """Show the nearest neighbours of an indexed image, or store them for every image.

    With an id or a path, prints the k nearest other images. With --all, writes the k nearest
    others of every image into the table neighbors(image_id, neighbor_id, rank, score) (rank 1 =
    nearest, the image itself excluded), replacing an earlier run; query it with `idx sql`.

    \b
    Example:
      idx neighbors 42 -k 10
      idx neighbors photos/cat.jpg --format json
      idx neighbors --all -k 10
      idx sql "SELECT a.path, b.path, n.score FROM neighbors n JOIN images a ON a.id = n.image_id
               JOIN images b ON b.id = n.neighbor_id WHERE n.score > 0.95"
    """
    if all_images == (image is not None):
        raise click.UsageError("give an image id or path, or --all (not both)")
    if not all_images:
        with open_index(ctx, read_only=True) as index:
            hits = api.neighbors(index, image, k=k)
            _untrained_note(index)
        _print_hits(hits, fmt)
        return
    with ProgressBar(quiet) as bar, open_index(ctx) as index:
        report = api.build_neighbor_graph(index, k=k, progress=bar)
        bar.close()
        _untrained_note(index)
    columns = ["images", "k", "rows", "index_type", "recall_at_10", "seconds", "created_at"]
    info = report.as_dict()
    if fmt == "json":
        echo_json(info)
    else:
        render_rows(columns, [[info[c] for c in columns]], fmt)


@click.command()
@click.option(
    "--threshold",
    type=float,
    default=dup.DEFAULT_DUPLICATE_THRESHOLD,
    show_default=True,
    help="Cosine similarity at or above which two images count as near-duplicates.",
)
@format_option
@click.pass_context
def duplicates(ctx, threshold, fmt):
    """List groups of near-duplicate images (exact search over all pairs).

    Two images are linked when their cosine similarity is at or above the threshold; a group is
    every image connected through such links. Byte-identical copies score 1.0.

    \b
    Example:
      idx duplicates
      idx duplicates --threshold 0.99 --format json
    """
    with open_index(ctx, read_only=True) as index:
        groups = dup.duplicates(index, threshold)
        _untrained_note(index)
    if fmt == "json":
        echo_json([g.as_dict() for g in groups])
        return
    rows = [
        [g.group, g.size, g.min_score, image_id, path]
        for g in groups
        for image_id, path in zip(g.ids, g.paths)
    ]
    render_rows(["group", "size", "min_score", "id", "path"], rows, fmt)


@click.command()
@click.option(
    "--type",
    "kind",
    type=click.Choice(("auto", *INDEX_TYPES)),
    default="auto",
    show_default=True,
    help="flat: exact; hnsw: graph, fast and accurate, rebuilt when images are removed; ivfpq: "
    "compressed inverted lists with exact re-ranking, for large collections; auto: flat up to "
    "20,000 images, ivfpq above.",
)
@json_option
@quiet_option
@click.pass_context
def reindex(ctx, kind, as_json, quiet):
    """Rebuild the FAISS index from the catalog, optionally as another index type.

    An approximate index is tuned until its recall@10 against exact search reaches 0.95 on a
    sample of 200 queries; the measured recall is printed and shown by `idx status`. The type is
    kept by later `idx add` runs.

    \b
    Example:
      idx reindex --type hnsw
      idx reindex --type auto --json
    """
    with ProgressBar(quiet) as bar, open_index(ctx) as index:
        report = api.reindex(index, kind, progress=bar)
    if as_json:
        echo_json(report.as_dict())
        return
    recall = (
        f"; recall@10 {report.recall_at_10:.3f} vs exact search"
        if report.recall_at_10 is not None
        else " (exact search)"
    )
    params = ", ".join(f"{k}={v}" for k, v in report.params.items())
    click.echo(
        f"rebuilt {report.count} vectors as {report.type} (asked: {report.requested}; "
        f"was: {report.previous_type or 'none'}) in {report.seconds:.1f}s{recall}"
        + (f"\nparameters: {params}" if params else "")
    )


def step_search(run: DemoRun) -> None:
    """Demo: a text search and the kNN graph in SQL."""
    query = "red circles"
    with run.index() as index:
        hits = api.search(index, text=query, k=5)
        graph = api.build_neighbor_graph(index, k=5)
        same = index.sql(
            "SELECT avg(CASE WHEN split_part(a.path, '/', -2) = split_part(b.path, '/', -2) "
            "THEN 1.0 ELSE 0.0 END) FROM neighbors n JOIN images a ON a.id = n.image_id "
            "JOIN images b ON b.id = n.neighbor_id"
        )[1][0][0]
    run.summary["search"] = {"text": query, "hits": [h.as_dict() for h in hits]}
    run.summary["neighbors"] = graph.as_dict() | {"same_folder_fraction": same}
    top = ", ".join(f"{h.path.rsplit('/', 2)[-2]}/{h.path.rsplit('/', 1)[-1]}" for h in hits[:3])
    note = " (UNTRAINED model: not meaningful)" if run.summary.get("untrained") else ""
    click.echo(f'demo: search "{query}" top hits{note}: {top}', err=True)
    click.echo(
        f"demo: stored {graph.rows} neighbour pairs (k={graph.k}); "
        f"{same:.0%} of them share the image's folder",
        err=True,
    )
    run.summary.setdefault("outputs", {})["neighbors table"] = str(index.catalog.path)
    run.next_commands += [
        f'idx --index {run.index_dir} search --text "{query}" -k 5',
        f"idx --index {run.index_dir} neighbors 1 -k 5",
        f"idx --index {run.index_dir} duplicates --threshold 0.99",
    ]


def register(cli: click.Group) -> None:
    for command in (search, neighbors, duplicates, reindex):
        cli.add_command(command)
