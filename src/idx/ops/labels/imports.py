"""Importing dataset labels into the catalog: Open Images files, plain CSV, folder names.

Label files are read by DuckDB's CSV reader and joined against the indexed images inside one
streaming query, so a several-GB Open Images file costs one parallel scan and only the rows of
indexed images are ever materialised. Nothing is written until the whole file has been read, so
a bad row leaves the catalog as it was.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from idx.errors import NotFoundError, UsageError
from idx.ops.labels.files import (
    build_keys,
    execute,
    first_row,
    one,
    read_csv_sql,
    rows_sql,
)
from idx.progress import Progress

if TYPE_CHECKING:
    from idx.indexer.index import Index

log = logging.getLogger(__name__)

_CLASS_HEADER_WORDS = {"labelname", "label_name", "label", "name", "mid"}
_BAD_CONFIDENCE = "r.confidence IS NOT NULL AND TRY_CAST(r.confidence AS DOUBLE) IS NULL"


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
    header = first_row(file)
    has_header = bool(header) and header[0].strip().lower() in _CLASS_HEADER_WORDS
    if len(header) < 2:
        raise UsageError(
            f"class file {file}: expected two columns `LabelName,DisplayName`, found "
            f"{len(header)}; pass the Open Images class-descriptions file"
        )
    con = index.catalog.con
    source = read_csv_sql(len(header), has_header)
    sql = (
        "CREATE OR REPLACE TEMP TABLE _idx_classes AS SELECT c0 AS label_name, "
        f"any_value(c1) AS display_name, count(*) AS n FROM {source} "
        "WHERE c0 IS NOT NULL GROUP BY c0"
    )
    execute(con, sql, [str(file)], progress, f"read {file.name}", file)
    report = ImportReport(str(file), "classes")
    with index.catalog.transaction():
        report.rows, report.imported = one(con, "SELECT sum(n), count(*) FROM _idx_classes")
        report.duplicate_rows = report.rows - report.imported
        report.new = one(
            con,
            "SELECT count(*) FROM _idx_classes WHERE label_name NOT IN "
            "(SELECT label_name FROM classes)",
        )[0]
        con.execute(
            "INSERT INTO classes SELECT label_name, display_name FROM _idx_classes "
            "ON CONFLICT (label_name) DO UPDATE SET display_name = excluded.display_name"
        )
        _sync_display_names(con)
        con.execute("DROP TABLE _idx_classes")
    report.seconds = time.perf_counter() - start
    return report


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
    header = first_row(file)
    con = index.catalog.con
    report = ImportReport(str(file), kind)
    rows = rows_sql(file, kind, header, source)
    # One pass over the file. Rows of indexed images are grouped per (image, label, source);
    # rows of other images collapse to one group per unknown id, so they are counted exactly
    # without being kept.
    sql = f"""
        CREATE OR REPLACE TEMP TABLE _idx_import AS
        SELECT k.kid,
               CASE WHEN k.kid IS NOT NULL THEN r.label_name END AS label_name,
               CASE WHEN k.kid IS NOT NULL THEN r.source END AS source,
               CASE WHEN k.kid IS NULL THEN r.key END AS unknown_id,
               r.key IS NULL OR r.label_name IS NULL AS blank,
               max(TRY_CAST(r.confidence AS DOUBLE)) AS confidence,
               count(*) AS n_rows,
               count(*) FILTER (WHERE {_BAD_CONFIDENCE}) AS bad,
               min(r.confidence) FILTER (WHERE {_BAD_CONFIDENCE}) AS bad_value
        FROM ({rows}) r LEFT JOIN _idx_keys k ON r.key = k.key
        GROUP BY ALL
    """
    try:
        build_keys(con, id_from, id_regex, with_paths=kind == "csv")
        execute(con, sql, [str(file)], progress, f"read {file.name}", file)
        bad, bad_value = one(con, "SELECT sum(bad), min(bad_value) FROM _idx_import WHERE bad > 0")
        if bad:
            raise UsageError(
                f"{file}: {bad} rows have a Confidence that is not a number (e.g. {bad_value!r}); "
                "fix those rows, nothing was imported"
            )
        _store(index, report, kind)
    finally:
        con.execute("DROP TABLE IF EXISTS _idx_import")
        con.execute("DROP TABLE IF EXISTS _idx_keys")
    report.seconds = time.perf_counter() - start
    return report


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
    con = index.catalog.con
    folders = [os.path.abspath(os.fspath(r)).rstrip("/") for r in roots or []]
    # Each image's dataset folder: the given folder it lies under, else the root it was added from.
    base = (
        "(SELECT max(f) FROM unnest(?::VARCHAR[]) t(f) WHERE starts_with(path, f || '/'))"
        if folders
        else "rtrim(root, '/')"
    )
    report = ImportReport(",".join(folders) or "(all indexed folders)", "folders")
    with index.catalog.transaction():
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _idx_import AS SELECT image_id, label_name, "
            "parent <> base AS labelled FROM (SELECT id AS image_id, parse_dirpath(path) AS "
            f"parent, parse_filename(parse_dirpath(path)) AS label_name, {base} AS base "
            "FROM images) WHERE base IS NOT NULL",
            [folders] if folders else [],
        )
        if folders and not one(con, "SELECT count(*) FROM _idx_import")[0]:
            _, indexed = index.catalog.query("SELECT DISTINCT root FROM images ORDER BY 1")
            raise NotFoundError(
                f"no indexed images under {', '.join(folders)}; indexed folders: "
                f"{', '.join(r[0] for r in indexed)}"
            )
        report.rows, report.imported, report.unlabelled_images = one(
            con,
            "SELECT count(*), count(*) FILTER (WHERE labelled), "
            "count(*) FILTER (WHERE NOT labelled) FROM _idx_import",
        )
        report.positives = report.imported
        report.new = one(
            con,
            "SELECT count(*) FROM _idx_import i WHERE labelled AND NOT EXISTS (SELECT 1 FROM "
            "labels l WHERE l.image_id = i.image_id AND l.label_name = i.label_name "
            "AND l.source = ?)",
            [source],
        )[0]
        con.execute(
            "DELETE FROM labels l WHERE source = ? AND image_id IN (SELECT image_id FROM "
            "_idx_import) AND NOT EXISTS (SELECT 1 FROM _idx_import i WHERE i.labelled AND "
            "i.image_id = l.image_id AND i.label_name = l.label_name)",
            [source],
        )
        con.execute(
            "INSERT INTO labels (image_id, label_name, source, confidence) SELECT image_id, "
            "label_name, ?, 1.0 FROM _idx_import WHERE labelled ON CONFLICT DO NOTHING",
            [source],
        )
        _add_plain_classes(con, "SELECT label_name FROM _idx_import WHERE labelled")
        _sync_display_names(con)
        con.execute("DROP TABLE _idx_import")
    report.seconds = time.perf_counter() - start
    return report


def list_labels(index: Index, *, include_empty: bool = False) -> tuple[list[str], list[tuple]]:
    """Per class: images with it (positives), verified absent, sources. Most images first."""
    join = "LEFT JOIN" if include_empty else "JOIN"
    return index.catalog.query(
        f"""
        SELECT c.label_name, coalesce(c.display_name, c.label_name) AS display_name,
               count(DISTINCT l.image_id) FILTER (WHERE l.confidence > 0) AS images,
               count(DISTINCT l.image_id) FILTER (WHERE l.confidence = 0) AS verified_absent,
               coalesce(string_agg(DISTINCT l.source, ',' ORDER BY l.source), '') AS sources
        FROM (SELECT label_name, display_name FROM classes
              UNION SELECT DISTINCT label_name, NULL FROM labels
                    WHERE label_name NOT IN (SELECT label_name FROM classes)) c
        {join} labels l USING (label_name)
        GROUP BY ALL ORDER BY images DESC, display_name
        """
    )


# -- internals ------------------------------------------------------------------------------


def _existing(path: str | os.PathLike[str]) -> Path:
    file = Path(path).expanduser()
    if not file.is_file():
        raise NotFoundError(f"label file {file} does not exist; check the path")
    return file.resolve()


def _store(index: Index, report: ImportReport, kind: str) -> None:
    con = index.catalog.con
    (
        report.rows,
        report.blank_rows,
        report.unknown_image_rows,
        report.unknown_images,
        report.duplicate_rows,
        report.ambiguous_ids,
    ) = one(
        con,
        "SELECT coalesce(sum(n_rows), 0), coalesce(sum(n_rows) FILTER (WHERE blank), 0), "
        "coalesce(sum(n_rows) FILTER (WHERE NOT blank AND kid IS NULL), 0), "
        "count(DISTINCT unknown_id) FILTER (WHERE NOT blank), "
        "coalesce(sum(n_rows - 1) FILTER (WHERE NOT blank AND kid IS NOT NULL), 0), "
        "count(DISTINCT i.kid) FILTER (WHERE NOT blank AND len(k.image_ids) > 1) "
        "FROM _idx_import i LEFT JOIN _idx_keys k USING (kid)",
    )
    with index.catalog.transaction():
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _idx_new AS SELECT unnest(k.image_ids) AS image_id, "
            "i.label_name, i.source, coalesce(i.confidence, 1.0) AS confidence "
            "FROM _idx_import i JOIN _idx_keys k USING (kid) WHERE NOT i.blank"
        )
        report.imported, report.positives, report.negatives, report.new = one(
            con,
            "SELECT count(*), count(*) FILTER (WHERE confidence > 0), "
            "count(*) FILTER (WHERE confidence <= 0), count(*) FILTER (WHERE NOT EXISTS ("
            "SELECT 1 FROM labels l WHERE l.image_id = n.image_id AND l.label_name = "
            "n.label_name AND l.source = n.source)) FROM _idx_new n",
        )
        con.execute(
            "INSERT INTO labels (image_id, label_name, source, confidence) "
            "SELECT image_id, label_name, source, confidence FROM _idx_new "
            "ON CONFLICT (image_id, label_name, source) DO UPDATE SET "
            "confidence = excluded.confidence, imported_at = now()::TIMESTAMP"
        )
        if kind == "csv":
            _add_plain_classes(con, "SELECT label_name FROM _idx_new")
        _sync_display_names(con)
        report.unknown_classes = one(
            con,
            "SELECT count(DISTINCT label_name) FROM _idx_new WHERE label_name NOT IN "
            "(SELECT label_name FROM classes)",
        )[0]
        con.execute("DROP TABLE _idx_new")


def _sync_display_names(con: duckdb.DuckDBPyConnection) -> None:
    """Keep labels.display_name equal to the class's display name (else its label_name)."""
    con.execute(
        "UPDATE labels SET display_name = coalesce(c.display_name, labels.label_name) "
        "FROM classes c WHERE c.label_name = labels.label_name "
        "AND labels.display_name IS DISTINCT FROM coalesce(c.display_name, labels.label_name)"
    )
    con.execute(
        "UPDATE labels SET display_name = label_name WHERE display_name IS NULL "
        "AND label_name NOT IN (SELECT label_name FROM classes)"
    )


def _add_plain_classes(con: duckdb.DuckDBPyConnection, names_sql: str) -> None:
    """Folder and CSV labels are their own display names."""
    con.execute(
        f"INSERT INTO classes SELECT DISTINCT label_name, label_name FROM ({names_sql}) "
        "ON CONFLICT DO NOTHING"
    )
