"""Commands for nearest-neighbour search: search, neighbors, duplicates, reindex."""

from __future__ import annotations

from typing import Any

import click

from idx.cli.options import (
    Lazy,
    LazyChoice,
    LazyHelpOption,
    count_option,
    filter_options,
    model_options,
    notes_option,
    open_index,
    output_options,
    quiet_option,
)
from idx.cli.output import note, note_untrained, render_rows, render_summary, warn
from idx.cli.progress import ProgressBar
from idx.cli.views.leakage import show_leakage

# ops.search, ops.graph and ops.duplicates load FAISS and DuckDB: each command imports them when
# it runs.

k_option = count_option(help="How many results.", default=Lazy("idx.ops.search", "DEFAULT_K"))


def _untrained_note(index: Any) -> None:
    ident = index.stored_identity()
    note_untrained(ident is not None and ident.untrained)


def _note_fewer(k: int, hits: list[Any], held: int, filtered: bool, others: str = "") -> None:
    """Say when -k asked for more results than can come: the index holds fewer images (`held`,
    the query image left out for neighbours: `others`), or fewer pass the filter."""
    if len(hits) >= k or (filtered and not hits):  # all came, or _print_hits says none passed
        return
    if filtered:
        note(f"-k {k} lowered to {len(hits)}: only {len(hits)} {others}images pass the filter")
    elif held < k:
        note(f"-k {k} lowered to {held}: the index holds {held} {others}images")


def _print_hits(hits: list[Any], fmt: str, filtered: bool = False) -> None:
    if filtered and not hits:
        warn("no image passes the filter (--where, --label, --cluster)")
    with_labels = any(h.labels is not None for h in hits)
    columns = ["rank", "score", "id", "path"] + (["labels"] if with_labels else [])
    rows = []
    for h in hits:
        row: list = [h.rank, h.score, h.id, h.path]
        if with_labels:
            row.append(h.labels if fmt in ("json", "jsonl") else ", ".join(h.labels or []))
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
@filter_options
@output_options(rows=True)
@model_options
@notes_option
@click.pass_context
def search(
    ctx, text, image, image_id, k, where, label, cluster, fmt, model, pretrained, checkpoint
):
    """Find the images nearest to a text, an image file or an indexed image.

    Prints rank, score (cosine similarity), id, path, and the image's labels once labels exist.
    Text and images are encoded with the index's own model; a query image is decoded like the
    ingested ones. With --id the image itself comes first (score 1); `idx neighbors` leaves it out.
    --where, --label and --cluster keep only the images the filter passes (all must hold); the
    results are then those of an exact search among them.

    \b
    Example:
      idx search --text "a red apple on a table" -k 10
      idx search --image query.jpg -k 5 --format json
      idx search --id 42 --format csv
      idx search --text "a red apple" --label Banana       # bananas that look like apples
      idx search --text "a dog" --where "folder LIKE '%/2024/%' AND width >= 1000"
    """
    from idx.ops import search as api

    model_args = {"model": model, "pretrained": pretrained, "checkpoint": checkpoint}
    filters = {"where": where, "label": label, "cluster": cluster}
    with open_index(ctx, read_only=True, **model_args) as index:
        hits = api.search(index, text=text, image=image, id=image_id, k=k, **filters)
        _untrained_note(index)
        filtered = any(v is not None for v in filters.values())
        _note_fewer(k, hits, index.vectors.ntotal, filtered)
    _print_hits(hits, fmt, filtered)


@click.command()
@click.argument("image", required=False, metavar="[ID|PATH]")
@click.option(
    "--all",
    "all_images",
    is_flag=True,
    help="Store every image's k nearest neighbours in the `neighbors` table (replaces it).",
)
@k_option
@filter_options
@output_options(rows=True)
@quiet_option
@click.pass_context
def neighbors(ctx, image, all_images, k, where, label, cluster, fmt, quiet):
    """Show the nearest neighbours of an indexed image, or store them for every image.

    With an id or a path, prints the k nearest other images. With --all, writes the k nearest
    others of every image into the table neighbors(image_id, neighbor_id, rank, score) (rank 1 =
    nearest, the image itself excluded), replacing an earlier run; query it with `idx sql`.
    --where, --label and --cluster keep only the neighbours the filter passes.

    \b
    Example:
      idx neighbors 42 -k 10
      idx neighbors photos/cat.jpg --format json
      idx neighbors 42 --cluster 3 --where "format = 'PNG'"
      idx neighbors --all -k 10
      idx sql "SELECT a.path, b.path, n.score FROM neighbors n JOIN images a ON a.id = n.image_id
               JOIN images b ON b.id = n.neighbor_id WHERE n.score > 0.95"
    """
    from idx.ops import search as api

    filters = {"where": where, "label": label, "cluster": cluster}
    filtered = any(v is not None for v in filters.values())
    if all_images == (image is not None):
        raise click.UsageError("give an image id or path, or --all (not both)")
    if all_images and filtered:
        raise click.UsageError("--all stores every image's neighbours; it takes no filter")
    if not all_images:
        with open_index(ctx, read_only=True) as index:
            hits = api.neighbors(index, image, k=k, **filters)
            _untrained_note(index)
            _note_fewer(k, hits, index.vectors.ntotal - 1, filtered, others="other ")
        _print_hits(hits, fmt, filtered)
        return
    from idx.ops.graph import build_neighbor_graph

    with ProgressBar(quiet) as bar, open_index(ctx) as index:
        report = build_neighbor_graph(index, k=k, progress=bar)
        bar.close()
        _untrained_note(index)
    columns = ["images", "k", "rows", "index_type", "recall_at_10", "seconds", "created_at"]
    info = report.as_dict()
    render_summary(
        info, fmt, lambda: render_rows(columns, [[info[c] for c in columns]], "table"), [info]
    )


@click.command()
@click.option(
    "--across",
    nargs=2,
    metavar="A B",
    help="Pairs with one image in set A and the other in set B, and how many images of each "
    "have a copy in the other (stored as a leakage run). A set is a folder, label:NAME or "
    "where:SQL (over image_info).",
)
@click.option(
    "--by",
    "by",
    type=LazyChoice(Lazy("idx.ops.duplicates", "LINKS")),
    default="both",
    show_default=True,
    help="What links two images: both (CLIP similarity and perceptual hash), clip or hash alone.",
)
@click.option(
    "--threshold",
    type=float,
    default=None,  # the default depends on --by: ops.duplicates.Criteria.of fills it in
    cls=LazyHelpOption,
    values={
        "hash": Lazy("idx.ops.duplicates", "DEFAULT_CONFIRMED_THRESHOLD"),
        "clip": Lazy("idx.ops.duplicates", "DEFAULT_DUPLICATE_THRESHOLD"),
    },
    help="CLIP cosine similarity at or above which two images are near-duplicates [default: "
    "{hash} with the hash, {clip} with --by clip].",
)
@click.option(
    "--max-distance",
    type=int,
    default=None,  # None, not the default: --by clip takes no --max-distance
    metavar="BITS",
    cls=LazyHelpOption,
    values={"bits": Lazy("idx.ops.duplicates", "DEFAULT_MAX_DISTANCE")},
    help="Hamming distance of the 64-bit perceptual hashes at or below which two images are "
    "near-duplicates [default: {bits}].",
)
@output_options(rows=True)
@notes_option
@click.pass_context
def duplicates(ctx, across, by, threshold, max_distance, fmt):
    """List groups of near-duplicate images, or the near-duplicates across two sets.

    Two images are linked when their CLIP cosine similarity is at or above --threshold and the
    Hamming distance of their perceptual hashes (pHash, taken by `idx add`) is at or below
    --max-distance: a resized, re-encoded, brightened or lightly cropped copy. --by clip links by
    the similarity alone, --by hash by the hash alone. A group is every image connected through
    such links; byte-identical copies score 1.0 at distance 0. JSON gives one object per group
    with its pairs; table and CSV one row per image.

    With --across A B: every pair with one image in A and one in B (similarity, distance, both
    paths), closest first, after a line that says how many images of B have a copy in A and of
    A in B. The run is stored for `idx report` and `idx serve`.

    \b
    Example:
      idx duplicates
      idx duplicates --threshold 0.99 --format json
      idx duplicates --by hash --max-distance 6
      idx duplicates --across photos/train photos/validation
      idx duplicates --across label:Cat "where:folder LIKE '%/test/%'" --json
    """
    if across:
        _duplicates_across(ctx, across, by, threshold, max_distance, fmt)
        return
    from idx.ops.duplicates import duplicates as find_duplicates

    with open_index(ctx, read_only=True) as index:
        groups = find_duplicates(index, threshold, max_distance=max_distance, by=by)
        _untrained_note(index)
    if fmt in ("json", "jsonl"):
        render_summary([g.as_dict() for g in groups], fmt, lambda: None)
        return
    rows = [
        [g.group, g.size, g.min_score, g.max_distance, image_id, path]
        for g in groups
        for image_id, path in zip(g.ids, g.paths)
    ]
    render_rows(["group", "size", "min_score", "max_distance", "id", "path"], rows, fmt)


def _duplicates_across(ctx, across, by, threshold, max_distance, fmt) -> None:
    from idx.ops.leakage import leakage

    with open_index(ctx) as index:
        found = leakage(
            index, across[0], across[1], threshold=threshold, max_distance=max_distance, by=by
        )
        _untrained_note(index)
    show_leakage(found, fmt)


@click.command()
@click.option(
    "--type",
    "kind",
    type=LazyChoice(
        Lazy("idx.indexer.vectors.store", "INDEX_TYPES", lambda types: ("auto", *types))
    ),
    default="auto",
    show_default=True,
    help="flat: exact; hnsw: graph, fast and accurate, rebuilt when images are removed; ivfpq: "
    "compressed inverted lists with exact re-ranking, for large collections; auto: flat up to "
    "20,000 images, ivfpq above.",
)
@output_options
@quiet_option
@click.pass_context
def reindex(ctx, kind, fmt, quiet):
    """Rebuild the FAISS index from the catalog, optionally as another index type.

    An approximate index promises recall@10 >= 0.95 against exact search: it is tuned until a
    sample of 200 queries reaches 0.97, a margin over the promise; the measured recall is printed and shown by `idx status`. The type is
    kept by later `idx add` runs.

    \b
    Example:
      idx reindex --type hnsw
      idx reindex --type auto --json
    """
    from idx.ops import search as api

    with ProgressBar(quiet) as bar, open_index(ctx) as index:
        report = api.reindex(index, kind, progress=bar)

    def table() -> None:
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

    render_summary(report.as_dict(), fmt, table)


def register(cli: click.Group) -> None:
    for command in (search, neighbors, duplicates, reindex):
        cli.add_command(command)
