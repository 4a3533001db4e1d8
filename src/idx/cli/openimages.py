"""`idx openimages fetch`: an Open Images subset by class, its annotation and label files, and
(with --index) an index of it with the labels and the hierarchy imported."""

from __future__ import annotations

import shlex
from typing import Any

import click

from idx.cli.options import (
    Lazy,
    LazyChoice,
    model_options,
    open_index,
    output_options,
    quiet_option,
    seed_option,
)
from idx.cli.output import note_untrained, render_summary, warn
from idx.cli.progress import ProgressBar
from idx.errors import IdxError


@click.group()
def openimages():
    """Google's Open Images: fetch a subset by class, with its labels and class hierarchy.

    \b
    Example:
      idx openimages fetch oi-fruit --split validation --classes Fruit,Cookie --limit 200
      idx openimages fetch oi-fruit --split validation --classes Fruit --index oi
    """


@openimages.command("fetch")
@click.argument("dest", type=click.Path(file_okay=False))
@click.option(
    "--split",
    type=LazyChoice(Lazy("idx.ops.openimages.sources", "SPLITS")),
    required=True,
    help="Which split's images and labels.",
)
@click.option(
    "--classes",
    "class_names",
    multiple=True,
    required=True,
    metavar="NAMES",
    help="Display names (any case) or label names (/m/...), comma-separated or repeated. A "
    "parent class takes its subclasses through the hierarchy (Fruit: Apple, Banana, ...).",
)
@click.option("--exact", is_flag=True, help="Each class alone, without its subclasses.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="At most N images: a sample balanced across the classes asked for, fixed by --seed "
    "(default: every image with a human-verified positive label).",
)
@seed_option
@click.option(
    "--workers",
    type=click.IntRange(1, 128),
    default=Lazy("idx.ops.openimages.fetch", "DEFAULT_WORKERS"),
    show_default=True,
    help="Downloads at once.",
)
@click.option(
    "--boxes", is_flag=True, help="Also fetch the split's boxes and write a box file for them."
)
@click.option(
    "--index",
    "index_dir",
    metavar="DIR",
    default=None,
    help="Then add the images to this index and import their labels, class names and the "
    "hierarchy (as `idx add` and `idx labels import` would).",
)
@model_options
@output_options
@quiet_option
@click.pass_context
def fetch(
    ctx,
    dest,
    split,
    class_names,
    exact,
    limit,
    seed,
    workers,
    boxes,
    index_dir,
    model,
    pretrained,
    checkpoint,
    fmt,
    quiet,
):
    """Download the images of an Open Images split with a human-verified positive label for the
    classes asked, their annotation files (into DEST/metadata/) and label files for them (into
    DEST/labels/, in Open Images' format, for `idx labels import`).

    Resumable: a rerun fetches only what is missing, and a killed fetch leaves no partial file.
    Failed requests are retried; images the server lacks are skipped and listed. Files come from
    storage.googleapis.com/openimages and the open-images-dataset bucket, or mirrors named by
    IDX_OPENIMAGES_ANNOTATIONS and IDX_OPENIMAGES_IMAGES (http(s):// or s3:// URLs).

    \b
    Example:
      idx openimages fetch oi --split validation --classes Fruit,Cookie --limit 200
      idx openimages fetch oi --split train --classes "/m/014j1m,Ice cream" --exact --boxes
      idx openimages fetch oi --split validation --classes Fruit --index oi.idx
      idx --index oi.idx insights --rollup Fruit
    """
    from idx.ops.openimages.fetch import fetch as fetch_subset

    with ProgressBar(quiet, unit="") as bar:

        def on_skip(url: str, reason: str) -> None:
            if not quiet:
                bar.write(f"skipping {url}: {reason}")

        report = fetch_subset(
            dest,
            split,
            class_names,
            limit=limit,
            seed=seed,
            workers=workers,
            boxes=boxes,
            exact=exact,
            progress=bar,
            on_skip=on_skip,
        )
        if index_dir is not None:
            from idx.ops.openimages.indexing import add_to_index

            ctx.obj["index_dir"] = index_dir
            kw = {"model": model, "pretrained": pretrained, "checkpoint": checkpoint}
            with open_index(ctx, create=True, **kw) as index:
                add_to_index(index, report, progress=bar, on_skip=on_skip)
                ident = index.stored_identity()
            bar.close()
            note_untrained(ident is not None and ident.untrained)
    render_summary(report.as_dict(), fmt, lambda: _table(report))
    if report.failed:
        raise IdxError(
            f"{len(report.failed)} images could not be fetched (first: "
            f"{report.failed[0]['image_id']}: {report.failed[0]['reason']}); run the same "
            "command again to fetch them"
        )
    if report.missing and not quiet:
        warn(f"{len(report.missing)} images are not on the server and were skipped")


def _table(report: Any) -> None:
    lines = []
    for c in report.classes:
        name = f"{c['display_name']} ({c['label_name']})"
        if c["subclasses"]:
            name += (
                f" and its {len(c['subclasses'])} subclasses through the hierarchy ("
                + ", ".join(c["subclasses"][:6])
                + (", ..." if len(c["subclasses"]) > 6 else "")
                + "; --exact for the class alone)"
            )
        lines.append(f"class:     {name}: {c['candidates']} images, {c['selected']} taken")
    limit = f"--limit {report.limit}, --seed {report.seed}" if report.limit else "no --limit"
    lines.append(
        f"selected:  {report.selected} of the {report.candidates} {report.split} images with a "
        f"human-verified positive label ({limit})"
    )
    lines.append(
        f"images:    {report.images_dir}: fetched {report.fetched} ({report.bytes / 1e6:.1f} MB "
        f"in {report.seconds:.1f}s, {report.images_per_s:.1f} images/s, "
        f"{report.mb_per_s:.2f} MB/s), already there {report.present}, missing on the server "
        f"{len(report.missing)}, failed {len(report.failed)}"
    )
    rows = report.label_rows
    lines.append(
        f"labels:    {report.files['label_file']}: {rows['rows']} rows for {rows['images']} "
        f"images ({rows['positives']} positive, {rows['negatives']} verified absent)"
    )
    if report.box_rows is not None:
        lines.append(
            f"boxes:     {report.files['box_file']}: {report.box_rows['rows']} boxes for "
            f"{report.box_rows['images']} images"
        )
    fetched_now = ", ".join(report.downloaded) or "none, all were there"
    lines.append(f"metadata:  {report.dest}/metadata (downloaded now: {fetched_now})")
    if report.index is None:
        lines.append(f"next:      {_next_steps(report)}")
    else:
        add, imports = report.index["add"], report.index["imports"]
        labelled = sum(i["imported"] for i in imports if i["kind"] != "classes")
        lines.append(
            f"index:     {report.index['index']}: added {add['added']}, unchanged "
            f"{add['unchanged']}, skipped {add['skipped']}; {labelled} labels imported, "
            f"hierarchy of {report.index['hierarchy']['classes']} classes"
        )
    click.echo("\n".join(lines))


def _next_steps(report: Any) -> str:
    files = report.files
    labels = ["--classes", files["classes"], "--labels", files["label_file"]]
    labels += ["--boxes", files["box_file"]] if "box_file" in files else []
    return " && ".join(
        shlex.join(command)
        for command in (
            ["idx", "add", report.images_dir],
            ["idx", "labels", "import", *labels],
            ["idx", "labels", "import", "--hierarchy", files["hierarchy"]],
        )
    )


def register(cli: click.Group) -> None:
    cli.add_command(openimages)
