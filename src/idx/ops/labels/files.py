"""What a label file holds, read from its first row: which column is the image, the label, the
source and the confidence. The catalog reads the rows (`idx.indexer.catalog.label_files`)."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import Any

from idx.errors import UsageError
from idx.indexer.catalog.label_files import ID_FROM, LabelFile, not_utf8

__all__ = ["ID_FROM", "class_file_header", "first_row", "label_file"]

# Open Images' own column names: a plain `image,label` file is a --csv file, not --labels.
_IMAGE_ID = ("imageid", "image_id")
_LABEL_NAME = ("labelname", "label_name")
_CSV_HEADER_WORDS = {"label", "labels", "label_name", "labelname", "class", "category"}
_CLASS_HEADER_WORDS = {"labelname", "label_name", "label", "name", "mid"}


def first_row(file: Path) -> list[str]:
    """The first row of a CSV file (UTF-8, with or without a byte-order mark)."""
    opener: Any = gzip.open if file.suffix == ".gz" else open
    try:
        with opener(file, "rt", newline="", encoding="utf-8-sig") as fh:
            return next(csv.reader(fh), [])
    except UnicodeDecodeError:
        raise UsageError(not_utf8(file)) from None


def class_file_header(file: Path) -> tuple[int, bool]:
    """(columns, whether the first row is a header) of a `LabelName,DisplayName` class file."""
    header = first_row(file)
    lowered = [h.strip().lower() for h in header]
    if _optional(header, _IMAGE_ID) is not None or "confidence" in lowered:
        raise UsageError(
            f"class file {file}: its header {','.join(header)!r} is a label file's; pass it with "
            "--labels FILE and the class descriptions (LabelName,DisplayName) with --classes; "
            "nothing was imported"
        )
    if len(header) != 2:
        raise UsageError(
            f"class file {file}: expected two columns `LabelName,DisplayName`, found "
            f"{len(header)}; pass the Open Images class-descriptions file; nothing was imported"
        )
    return len(header), lowered[0] in _CLASS_HEADER_WORDS


def label_file(file: Path, kind: str, source: str | None) -> LabelFile:
    """The layout of a label file of `kind` (labels, boxes, csv); `source` overrides the file's."""
    header = first_row(file)
    if kind == "csv":
        if len(header) < 2:
            raise UsageError(
                f"{file}: expected two columns `path_or_id,label`; nothing was imported"
            )
        has_header = header[1].strip().lower() in _CSV_HEADER_WORDS
        return LabelFile(
            file, len(header), has_header, 0, 1, default_source=source or "csv", relative_paths=True
        )
    expected = "ImageID,Source,LabelName,Confidence" + (",XMin,XMax,YMin,YMax" * (kind == "boxes"))
    image = _required(header, _IMAGE_ID, file, expected)
    label = _required(header, _LABEL_NAME, file, expected)
    if source:
        column, default = None, source
    elif kind == "boxes":
        column, default = None, "bbox"
    else:
        column, default = _optional(header, ("source",)), "labels"
    # A box row implies the object is there, whatever its Confidence column says.
    confidence = _optional(header, ("confidence",)) if kind == "labels" else None
    return LabelFile(
        file, len(header), True, image, label, column, default_source=default, confidence=confidence
    )


def _optional(header: list[str], names: tuple[str, ...]) -> int | None:
    """The index of the first of `names` in the header, None when none is there."""
    lowered = [h.strip().lower() for h in header]
    return next((lowered.index(n) for n in names if n in lowered), None)


def _required(header: list[str], names: tuple[str, ...], file: Path, expected: str) -> int:
    found = _optional(header, names)
    if found is None:
        raise UsageError(
            f"{file}: header {','.join(header)!r} has no {names[0]!r} column; expected "
            f"{expected} (for a plain `path_or_id,label` file use --csv); nothing was imported"
        )
    return found
