"""Importing dataset labels into the catalog: Open Images files, plain CSV, folder names.

The catalog reads each file in one streaming pass (`Catalog.label_files`) and writes nothing
until the whole file has been read, so a bad row leaves the catalog as it was.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idx import config
from idx.errors import NotFoundError, UsageError
from idx.ops.labels.files import class_file_header, label_file
from idx.progress import Progress

if TYPE_CHECKING:
    from idx.indexer.catalog.labels import ClassCount, ImportRow
    from idx.indexer.index import Index

log = logging.getLogger(__name__)

#: Below this share of the indexed images named by a label file, the import warns with figures.
MATCHED_SHARE_WARNING = 0.10


@dataclass
class ImportReport:
    """What one import did. Rows are counted as they are in the file."""

    file: str
    kind: str  # classes | labels | boxes | csv | folders
    name: str = ""  # the import's source name (`idx labels remove --source NAME` undoes it)
    dry_run: bool = False  # counted only: nothing was written
    rows: int = 0
    imported: int = 0  # distinct (image, label, source) rows written, or classes written
    new: int = 0  # of those, not in the catalog before
    positives: int = 0
    negatives: int = 0  # confidence 0: verified absent, kept but never a positive
    duplicate_rows: int = 0
    unknown_image_rows: int = 0  # rows for images that are not in the index
    unknown_images: int = 0
    unknown_classes: int = 0  # label names without a `classes` row (no display name)
    ambiguous_ids: int = 0  # ids that match more than one indexed file (each gets the label)
    blank_rows: int = 0
    unlabelled_images: int = 0  # folders: images directly in the dataset folder, not a class one
    matched_images: int = 0  # indexed images that a row of the file names
    indexed_images: int = 0  # indexed images when the file was imported
    seconds: float = 0.0
    #: the index imported into, named in the warnings' commands (not part of as_dict)
    index_dir: str = field(default="", init=False, repr=False)

    @property
    def warnings(self) -> list[str]:
        """What the user should look at: few indexed images matched."""
        out = []
        if self.kind in ("labels", "boxes", "csv") and self.indexed_images:
            share = self.matched_images / self.indexed_images
            if share < MATCHED_SHARE_WARNING:
                undo = config.command(self.index_dir, "labels", "remove", "--source", self.name)
                out.append(
                    f"{self.file}: only {self.matched_images} of the {self.indexed_images} "
                    f"indexed images ({share:.1%}) have a row in it; if that is not expected, "
                    f"check --id-from/--id-regex, then `{undo}`"
                )
        return out

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "index_dir"}
        return out | {"seconds": round(self.seconds, 3), "warnings": self.warnings}


def import_classes(
    index: Index,
    path: str | os.PathLike[str],
    progress: Progress | None = None,
    *,
    name: str | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Class descriptions `LabelName,DisplayName`, with or without a header (Open Images v4-v7),
    as the import `name` (default: the file's name; an earlier import of that name is replaced).
    """
    start = time.perf_counter()
    file = _existing(path)
    n_columns, header = class_file_header(file)
    name = name or file.name
    counts = index.catalog.label_files.import_classes(
        file, n_columns, header, progress, name=name, dry_run=dry_run
    )
    return ImportReport(
        str(file), "classes", name, dry_run, **counts, seconds=time.perf_counter() - start
    )


def import_labels(
    index: Index,
    path: str | os.PathLike[str],
    *,
    kind: str = "labels",
    id_from: str = "stem",
    id_regex: str | None = None,
    source: str | None = None,
    progress: Progress | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Import one label file for the indexed images, as one undoable import named `source`
    (default: the file's name; an earlier import of that name is replaced).

    kind "labels": Open Images image-level labels `ImageID,Source,LabelName,Confidence` (header
    required; Confidence 0 rows are kept as verified negatives). kind "boxes": a box file
    `ImageID,Source,LabelName,Confidence,XMin,...`; each row implies a positive image-level label
    (source "bbox" unless `source` says otherwise). kind "csv": `path_or_id,label` with or
    without a header; paths are relative to the CSV's folder. `source` overrides the file's.
    """
    if kind not in ("labels", "boxes", "csv"):
        raise UsageError(f"unknown label file kind {kind!r}; use labels, boxes or csv")
    start = time.perf_counter()
    file = _existing(path)
    indexed = index.require_images("label")
    name = source or file.name
    counts = index.catalog.label_files.import_labels(
        label_file(file, kind, source),
        name=name,
        kind=kind,
        id_from=id_from,
        id_regex=id_regex,
        plain_classes=kind == "csv",
        progress=progress,
        dry_run=dry_run,
    )
    report = ImportReport(
        str(file),
        kind,
        name,
        dry_run,
        **counts,
        indexed_images=indexed,
        seconds=time.perf_counter() - start,
    )
    report.index_dir = str(index.dir)
    return report


def import_folders(
    index: Index,
    roots: list[str | os.PathLike[str]] | None = None,
    *,
    source: str = "folder",
    name: str | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Label every indexed image with the name of its parent folder (ImageFolder layout).

    `roots`: only images under these folders (default: every indexed folder). Images directly in
    such a folder get no label (the dataset folder's own name is not a class). Re-importing
    replaces the earlier import of the same name (default: "folders", or "folders:" and the
    roots), so a file moved to another folder changes label.
    """
    start = time.perf_counter()
    index.require_images("label")
    folders = [os.path.abspath(os.fspath(r)).rstrip("/") for r in roots or []]
    name = name or ":".join(["folders", *folders])
    counts = index.catalog.labels.import_folders(folders, source, name, dry_run=dry_run)
    if folders and not counts["rows"]:
        raise NotFoundError(
            f"no indexed images under {', '.join(folders)}; indexed folders: "
            f"{', '.join(index.catalog.images.roots())}"
        )
    return ImportReport(
        ",".join(folders) or "(all indexed folders)",
        "folders",
        name,
        dry_run,
        **counts,
        seconds=time.perf_counter() - start,
    )


def remove_import(index: Index, name: str, *, dry_run: bool = False) -> dict[str, Any]:
    """Undo the import `name` exactly (the label tables return to what they were without it);
    what it held: name, kind, file, label_rows, class_rows."""
    return index.catalog.labels.remove_import(name, dry_run=dry_run) | {"dry_run": dry_run}


def list_imports(index: Index) -> tuple[list[str], list[ImportRow]]:
    """Every recorded import, oldest first, with the rows it holds: (column names, rows)."""
    return index.catalog.labels.imports()


def list_labels(index: Index, *, include_empty: bool = False) -> tuple[list[str], list[ClassCount]]:
    """Per class: images with it (positives), verified absent, sources. Most images first:
    (column names, rows)."""
    return index.catalog.labels.class_counts(include_empty)


def _existing(path: str | os.PathLike[str]) -> Path:
    """The file as an absolute path made the way `add` makes the images' (os.path.abspath, links
    kept), so that a --csv path relative to it names an image as the catalog stored it."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise NotFoundError(f"label file {file} does not exist; check the path")
    return Path(os.path.abspath(file))
