"""`idx labels import|list|remove`: dataset labels (Open Images files, plain CSV, folder names),
each import recorded and undoable."""

from __future__ import annotations

from typing import Any

import click

from idx.cli.options import Lazy, LazyChoice, open_index, output_options, quiet_option
from idx.cli.output import render_rows, render_summary, warn
from idx.cli.progress import ProgressBar
from idx.errors import UsageError

_files = click.Path(exists=True, dir_okay=False)
REPORT_COLUMNS = (
    "name",
    "kind",
    "file",
    "rows",
    "imported",
    "new",
    "positives",
    "negatives",
    "duplicate_rows",
    "unknown_image_rows",
    "unknown_images",
)


@click.group()
def labels():
    """Dataset labels: import them (Open Images, CSV, folder names) and list them.

    \b
    Example:
      idx labels import --classes class-descriptions-boxable.csv --labels image-labels.csv
      idx labels list
    """


@labels.command("import")
@click.option(
    "--classes",
    "class_files",
    multiple=True,
    type=_files,
    metavar="FILE",
    help="Class descriptions `LabelName,DisplayName`, with or without a header.",
)
@click.option(
    "--labels",
    "label_files",
    multiple=True,
    type=_files,
    metavar="FILE",
    help="Open Images image-level labels `ImageID,Source,LabelName,Confidence` "
    "(Confidence 0 = verified absent: kept, never a positive).",
)
@click.option(
    "--boxes",
    "box_files",
    multiple=True,
    type=_files,
    metavar="FILE",
    help="Open Images box file; each row implies a positive label (source 'bbox').",
)
@click.option(
    "--csv",
    "csv_files",
    multiple=True,
    type=_files,
    metavar="FILE",
    help="Plain CSV `path_or_id,label` (header optional; paths relative to the CSV).",
)
@click.option(
    "--from-folders",
    is_flag=True,
    help="Label each indexed image with its parent folder's name (ImageFolder layout).",
)
@click.option(
    "--root",
    "roots",
    multiple=True,
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="With --from-folders: only images under DIR, whose subfolders are the classes (repeatable).",
)
@click.option(
    "--id-from",
    type=LazyChoice(Lazy("idx.ops.labels.files", "ID_FROM")),
    default="stem",
    show_default=True,
    help="Which part of an indexed file's path a label file's image id is.",
)
@click.option(
    "--id-regex",
    metavar="REGEX",
    default=None,
    help="Instead of --id-from: the first group of REGEX applied to the path.",
)
@click.option(
    "--source",
    default=None,
    metavar="NAME",
    help="Name the import NAME (default: the file's name) and store its labels under this "
    "source instead of the file's own; one file per --source.",
)
@click.option(
    "--hierarchy",
    "hierarchy_file",
    type=_files,
    metavar="FILE",
    help="A class hierarchy (Open Images' bbox_labels_600_hierarchy.json): stored so "
    "`idx insights --level N / --rollup NAMES` roll labels up to parent classes.",
)
@click.option(
    "--dry-run", is_flag=True, help="Check the files and print the counts; write nothing."
)
@output_options
@quiet_option
@click.pass_context
def import_(
    ctx,
    class_files,
    label_files,
    box_files,
    csv_files,
    from_folders,
    roots,
    id_from,
    id_regex,
    source,
    dry_run,
    fmt,
    quiet,
    hierarchy_file=None,
):
    """Import labels for the indexed images; re-importing the same file changes nothing.

    Only rows for indexed images are kept: rows for other images are counted and reported.
    Millions of rows are read by DuckDB in one streaming pass. Each file is one import, checked
    before anything is written and recorded under its name (the file's, or --source): `idx
    labels list --imports` lists them, `idx labels remove --source NAME` undoes one exactly.

    \b
    Example:
      idx labels import --classes class-descriptions-boxable.csv --labels image-labels.csv
      idx labels import --boxes bbox-annotations.csv --json
      idx labels import --from-folders
      idx labels import --csv labels.csv --id-from name
      idx labels import --labels image-labels.csv --dry-run
      idx labels import --hierarchy bbox_labels_600_hierarchy.json
    """
    if hierarchy_file:
        _import_hierarchy(ctx, hierarchy_file, dry_run, fmt)
        if not (class_files or label_files or box_files or csv_files or from_folders):
            return
    files = {"classes": class_files, "labels": label_files, "boxes": box_files, "csv": csv_files}
    _check_import(files, from_folders, roots, source)
    with ProgressBar(quiet, unit="%") as bar, open_index(ctx) as index:
        reports = _run_imports(
            index, files, from_folders, roots, id_from, id_regex, source, dry_run, bar
        )
    imports = [r.as_dict() for r in reports]
    render_summary(
        {"imports": imports},
        fmt,
        lambda: render_rows(
            REPORT_COLUMNS, [[getattr(r, c) for c in REPORT_COLUMNS] for r in reports], "table"
        ),
        imports,
    )
    for r in reports:
        _warn_about(r, quiet)


def _check_import(
    files: dict[str, tuple], from_folders: bool, roots: tuple, source: str | None
) -> None:
    """Something to import, and --root and --source only where they apply."""
    if not (any(files.values()) or from_folders):
        raise UsageError(
            "nothing to import: give --classes, --labels, --boxes, --csv FILE or --from-folders"
        )
    if roots and not from_folders:
        raise UsageError("--root only applies to --from-folders")
    n_imports = sum(len(f) for f in files.values()) + bool(from_folders)
    if source and n_imports > 1:
        raise UsageError(
            f"--source {source} names one import, but {n_imports} were given; import the files "
            "one by one, each with its own --source (or none: each is named after its file)"
        )


def _run_imports(
    index, files, from_folders, roots, id_from, id_regex, source, dry_run, bar
) -> list[Any]:
    """Each import in turn (classes first, so later label files find their display names)."""
    from idx.ops.labels import imports as labels_api

    reports = [
        labels_api.import_classes(index, f, bar, name=source, dry_run=dry_run)
        for f in files["classes"]
    ]
    for kind in ("labels", "boxes", "csv"):
        reports += [
            labels_api.import_labels(
                index,
                f,
                kind=kind,
                id_from=id_from,
                id_regex=id_regex,
                source=source,
                progress=bar,
                dry_run=dry_run,
            )
            for f in files[kind]
        ]
    if from_folders:
        reports.append(
            labels_api.import_folders(
                index,
                list(roots) or None,
                source=source or "folder",
                name=source,
                dry_run=dry_run,
            )
        )
    return reports


def _warn_about(r: Any, quiet: bool) -> None:
    for line in r.warnings:  # shown even with --quiet: the import may be the wrong file
        warn(f"warning: {line}")
    if r.dry_run:
        warn(f"{r.file}: dry run, nothing was written")
    if quiet:
        return
    if r.unknown_image_rows:
        warn(
            f"{r.file}: {r.unknown_image_rows} rows for {r.unknown_images} images not in the "
            "index were skipped (add the images with `idx add`, or check --id-from)"
        )
    if r.unknown_classes:
        warn(
            f"{r.file}: {r.unknown_classes} label names have no display name; import the class "
            "descriptions with --classes FILE"
        )
    if r.ambiguous_ids:
        warn(
            f"{r.file}: {r.ambiguous_ids} ids match several indexed files; each file got the "
            "label (use --id-from path or --id-regex to tell them apart)"
        )
    if r.blank_rows:
        warn(f"{r.file}: {r.blank_rows} rows without an image id or label were skipped")
    if r.unlabelled_images:
        warn(
            f"{r.unlabelled_images} images lie directly in an indexed folder, not in a class "
            "subfolder, and got no folder label"
        )


@labels.command("list")
@click.option(
    "--all",
    "include_empty",
    is_flag=True,
    help="Also classes with no labelled image (e.g. the rest of a class file).",
)
@click.option(
    "--imports", is_flag=True, help="List the imports instead: name, kind, file, rows, time."
)
@output_options(rows=True)
@click.pass_context
def list_(ctx, include_empty, imports, fmt):
    """Show each class with how many indexed images carry it, or (--imports) each import.

    images = positives (confidence > 0); verified_absent = Confidence 0 rows.

    \b
    Example:
      idx labels list
      idx labels list --format csv > classes.csv
      idx labels list --imports
    """
    from idx.ops.labels.imports import list_imports, list_labels

    with open_index(ctx, read_only=True) as index:
        if imports:
            columns, rows = list_imports(index)
        else:
            columns, rows = list_labels(index, include_empty=include_empty)
    render_rows(columns, rows, fmt)


@labels.command("remove")
@click.option(
    "--source",
    "name",
    required=True,
    metavar="NAME",
    help="The import to undo, as `idx labels list --imports` names it.",
)
@click.option("--dry-run", is_flag=True, help="Print what would be removed; write nothing.")
@output_options
@click.pass_context
def remove(ctx, name, dry_run, fmt):
    """Undo one label import exactly: its labels and classes go, and where an earlier import
    had written the same label, that one is back.

    \b
    Example:
      idx labels list --imports
      idx labels remove --source image-labels.csv
    """
    from idx.ops.labels.imports import remove_import

    with open_index(ctx) as index:
        removed = remove_import(index, name, dry_run=dry_run)
    render_summary(
        removed,
        fmt,
        lambda: click.echo(
            f"{'would remove' if dry_run else 'removed'} import {removed['name']} "
            f"({removed['kind']}, {removed['file'] or '-'}): {removed['label_rows']} label rows, "
            f"{removed['class_rows']} class rows"
        ),
    )


def _import_hierarchy(ctx: Any, path: str, dry_run: bool, fmt: str) -> None:
    from idx.ops.labels.hierarchy import import_hierarchy

    with open_index(ctx) as index:
        report = import_hierarchy(index, path, dry_run=dry_run)
    summary = report.as_dict()

    def table() -> None:
        click.echo(
            f"hierarchy {report.file}: {report.classes} classes, {report.is_a_edges} is-a and "
            f"{report.part_of_edges} part-of edges, {report.classes_with_several_parents} "
            f"classes under several parents"
            + (
                f", {report.roots} root(s), {report.deepest_level + 1} levels"
                if not dry_run
                else ""
            )
        )

    render_summary(summary, fmt, table)
    if dry_run:
        warn(f"{path}: dry run, nothing was written")
    elif report.labelled_outside:
        shown = ", ".join(report.labelled_outside[:10])
        warn(
            f"{path}: {len(report.labelled_outside)} labelled classes are not in the hierarchy "
            f"and never roll up ({shown}{', ...' if len(report.labelled_outside) > 10 else ''})"
        )


def register(cli: click.Group) -> None:
    cli.add_command(labels)
