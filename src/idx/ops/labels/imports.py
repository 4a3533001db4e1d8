"""Importing dataset labels into the catalog: Open Images files, plain CSV, folder names.

The catalog reads each file in one streaming pass (`Catalog.label_files`) and writes nothing
until the whole file has been read, so a bad row leaves the catalog as it was.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idx.errors import NotFoundError, UsageError
from idx.ops.labels.files import class_file_header, label_file
from idx.progress import Progress

if TYPE_CHECKING:
    from idx.indexer.index import Index

log = logging.getLogger(__name__)


@dataclass
class ImportReport:
    """What one import did. Rows are counted as they are in the file."""

    file: str
    kind: str  # classes | labels | boxes | csv | folders
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
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"seconds": round(self.seconds, 3)}


def import_classes(
    index: Index, path: str | os.PathLike[str], progress: Progress | None = None
) -> ImportReport:
    """Class descriptions `LabelName,DisplayName`, with or without a header (Open Images v4-v7)."""
    start = time.perf_counter()
    file = _existing(path)
    n_columns, header = class_file_header(file)
    counts = index.catalog.label_files.import_classes(file, n_columns, header, progress)
    return ImportReport(str(file), "classes", **counts, seconds=time.perf_counter() - start)


def import_labels(
    index: Index,
    path: str | os.PathLike[str],
    *,
    kind: str = "labels",
    id_from: str = "stem",
    id_regex: str | None = None,
    source: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import one label file for the indexed images.

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
    index.require_images("label")
    counts = index.catalog.label_files.import_labels(
        label_file(file, kind, source),
        id_from=id_from,
        id_regex=id_regex,
        plain_classes=kind == "csv",
        progress=progress,
    )
    return ImportReport(str(file), kind, **counts, seconds=time.perf_counter() - start)


def import_folders(
    index: Index, roots: list[str | os.PathLike[str]] | None = None, *, source: str = "folder"
) -> ImportReport:
    """Label every indexed image with the name of its parent folder (ImageFolder layout).

    `roots`: only images under these folders (default: every indexed folder). Images directly in
    such a folder get no label (the dataset folder's own name is not a class). Re-importing
    replaces this source's labels, so a file moved to another folder changes label.
    """
    start = time.perf_counter()
    index.require_images("label")
    folders = [os.path.abspath(os.fspath(r)).rstrip("/") for r in roots or []]
    counts = index.catalog.labels.import_folders(folders, source)
    if folders and not counts["rows"]:
        raise NotFoundError(
            f"no indexed images under {', '.join(folders)}; indexed folders: "
            f"{', '.join(index.catalog.images.roots())}"
        )
    return ImportReport(
        ",".join(folders) or "(all indexed folders)",
        "folders",
        **counts,
        seconds=time.perf_counter() - start,
    )


def list_labels(index: Index, *, include_empty: bool = False) -> tuple[list[str], list[tuple]]:
    """Per class: images with it (positives), verified absent, sources. Most images first."""
    return index.catalog.labels.class_counts(include_empty)


def _existing(path: str | os.PathLike[str]) -> Path:
    file = Path(path).expanduser()
    if not file.is_file():
        raise NotFoundError(f"label file {file} does not exist; check the path")
    return file.resolve()
