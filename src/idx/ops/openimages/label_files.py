"""Open Images' annotation CSVs, streamed: which images have a human-verified positive for the
classes asked (`positives`), and the rows of the images fetched, written out in the same format
for `idx labels import` (`write_rows`). pyarrow reads each file in blocks, so a train file of
hundreds of MB is never in memory whole; only the rows kept become Python objects."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from idx.errors import UsageError
from idx.ops.labels.files import first_row
from idx.ops.openimages.classes import ClassChoice
from idx.ops.openimages.sources import is_image_id
from idx.ops.openimages.transfer import replacing
from idx.progress import Progress, ProgressEvent

#: Bytes pyarrow reads per block.
BLOCK_BYTES = 1 << 22
LABEL_COLUMNS = ("ImageID", "Source", "LabelName", "Confidence")
#: A human-verified positive; 0 is a human-verified absence.
POSITIVE = 1.0


def positives(
    path: Path, choices: Sequence[ClassChoice], progress: Progress | None = None
) -> list[set[str]]:
    """For each choice, the ImageIDs with a positive label (Confidence 1) for one of its members.
    Rows whose ImageID is not 16 hex digits are left out."""
    import pyarrow as pa
    import pyarrow.compute as pc

    member_of: dict[str, list[int]] = {}
    for i, choice in enumerate(choices):
        for member in choice.members:
            member_of.setdefault(member, []).append(i)
    wanted = pa.array(sorted(member_of), pa.string())
    found: list[set[str]] = [set() for _ in choices]
    for batch in _batches(path, LABEL_COLUMNS, progress):
        try:
            confidence = pc.cast(batch.column("Confidence"), pa.float64())
        except pa.ArrowInvalid as exc:
            raise UsageError(
                f"{path}: a Confidence is not a number ({exc}); fetch the file again (delete "
                "it from the metadata folder) or fix the mirror"
            ) from None
        keep = pc.and_(
            pc.is_in(batch.column("LabelName"), value_set=wanted),
            pc.equal(confidence, POSITIVE),
        )
        kept = batch.filter(keep)
        for image_id, label in zip(
            kept.column("ImageID").to_pylist(), kept.column("LabelName").to_pylist()
        ):
            if is_image_id(image_id):
                for i in member_of[label]:
                    found[i].add(image_id)
    return found


def write_rows(
    source: Path, image_ids: set[str], dest: Path, progress: Progress | None = None
) -> dict[str, int]:
    """The rows of `source` (a label or box file) whose ImageID is one of `image_ids`, written to
    `dest` with the same header and columns; counts: rows, images, positives, negatives (the
    last two when the file has a Confidence column)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    header = _header(source, ("ImageID",))
    ids = pa.array(sorted(image_ids), pa.string())
    counts = {"rows": 0, "images": 0, "positives": 0, "negatives": 0}
    seen: set[str] = set()
    with replacing(dest) as partial, open(partial, "x", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        for batch in _batches(source, header, progress):
            kept = batch.filter(pc.is_in(batch.column("ImageID"), value_set=ids))
            columns = [kept.column(name).to_pylist() for name in header]
            for row in zip(*columns):
                writer.writerow(row)
            counts["rows"] += kept.num_rows
            seen.update(columns[0])
            if "Confidence" in header:
                confidence = _numbers(columns[header.index("Confidence")])
                counts["positives"] += sum(c > 0 for c in confidence)
                counts["negatives"] += sum(c <= 0 for c in confidence)
    counts["images"] = len(seen)
    return counts


def _numbers(values: list[Any]) -> list[float]:
    out = []
    for value in values:
        try:
            out.append(float(value))
        except (TypeError, ValueError):
            out.append(0.0)
    return out


def _header(path: Path, required: Sequence[str]) -> list[str]:
    header = [h.strip() for h in first_row(path)]
    missing = [c for c in required if c not in header]
    if missing or len(set(header)) != len(header):
        raise UsageError(
            f"{path}: header {','.join(header)!r} is not an Open Images annotation header (it "
            f"needs {', '.join(required)}, each once); delete the file so the next fetch "
            "downloads it again, or fix the mirror"
        )
    return header


def _batches(path: Path, columns: Sequence[str], progress: Progress | None) -> Iterator[Any]:
    """Record batches of `columns` (all read as text) of a CSV with a header, reporting the share
    read as the phase `read <file name>` (0-100)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    header = _header(path, columns)
    size = max(path.stat().st_size, 1)
    report: Callable[[int], None] = (
        (lambda done: progress(ProgressEvent(f"read {path.name}", done, 100)))
        if progress is not None
        else (lambda done: None)
    )
    with open(path, "rb") as fh:
        try:
            reader = pacsv.open_csv(
                fh,
                read_options=pacsv.ReadOptions(
                    block_size=BLOCK_BYTES, column_names=header, skip_rows=1
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.string() for name in header},
                    include_columns=list(columns),
                    strings_can_be_null=False,
                ),
            )
            for batch in reader:
                report(min(99, int(100 * fh.tell() / size)))
                yield batch
        except pa.ArrowInvalid as exc:
            raise UsageError(
                f"cannot read {path} as CSV ({exc}); delete it so the next fetch downloads it "
                "again, or fix the mirror"
            ) from None
    report(100)
