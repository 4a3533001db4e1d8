"""Importing dataset labels into the catalog: Open Images files, plain CSV, folder names.

Label files are read by DuckDB's CSV reader and joined against the indexed images inside one
streaming query, so a several-GB Open Images file costs one parallel scan and only the rows of
indexed images are ever materialised. Nothing is written until the whole file has been read, so
a bad row leaves the catalog as it was.
"""

from __future__ import annotations

import gzip
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from idx.errors import IdxError, NotFoundError, UsageError
from idx.indexer.ingest import Progress, ProgressEvent

if TYPE_CHECKING:
    from idx.indexer.index import Index

log = logging.getLogger(__name__)

#: How an image id in a label file is matched to an indexed file (applied to `images.path`).
ID_FROM = {
    "stem": "parse_filename(path, true)",  # Open Images names files <ImageID>.jpg
    "name": "parse_filename(path)",
    "path": "path",
}
_IMAGE_ID = ("imageid", "image_id", "image")
_LABEL_NAME = ("labelname", "label_name", "label")
_CSV_HEADER_WORDS = {"label", "labels", "label_name", "labelname", "class", "category"}
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
    unlabelled_images: int = 0  # folders: images directly in an indexed root folder
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"seconds": round(self.seconds, 3)}


def import_classes(
    index: Index, path: str | os.PathLike[str], progress: Progress | None = None
) -> ImportReport:
    """Class descriptions `LabelName,DisplayName`, with or without a header (Open Images v4-v7)."""
    start = time.perf_counter()
    file = _existing(path)
    header = _first_row(file)
    has_header = bool(header) and header[0].strip().lower() in _CLASS_HEADER_WORDS
    if len(header) < 2:
        raise UsageError(
            f"class file {file}: expected two columns `LabelName,DisplayName`, found "
            f"{len(header)}; pass the Open Images class-descriptions file"
        )
    con = index.catalog.con
    source = _read_csv_sql(len(header), has_header)
    sql = (
        "CREATE OR REPLACE TEMP TABLE _idx_classes AS SELECT c0 AS label_name, "
        f"any_value(c1) AS display_name, count(*) AS n FROM {source} "
        "WHERE c0 IS NOT NULL GROUP BY c0"
    )
    _execute(con, sql, [str(file)], progress, f"read {file.name}", file)
    report = ImportReport(str(file), "classes")
    with index.catalog.transaction():
        report.rows, report.imported = _one(con, "SELECT sum(n), count(*) FROM _idx_classes")
        report.duplicate_rows = report.rows - report.imported
        report.new = _one(
            con,
            "SELECT count(*) FROM _idx_classes WHERE label_name NOT IN "
            "(SELECT label_name FROM classes)",
        )[0]
        con.execute(
            "INSERT INTO classes SELECT label_name, display_name FROM _idx_classes "
            "ON CONFLICT (label_name) DO UPDATE SET display_name = excluded.display_name"
        )
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
    header = _first_row(file)
    con = index.catalog.con
    report = ImportReport(str(file), kind)
    _build_keys(con, id_from, id_regex, with_paths=kind == "csv")
    rows_sql = _rows_sql(file, kind, header, source)
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
        FROM ({rows_sql}) r LEFT JOIN _idx_keys k ON r.key = k.key
        GROUP BY ALL
    """
    _execute(con, sql, [str(file)], progress, f"read {file.name}", file)
    try:
        bad, bad_value = _one(con, "SELECT sum(bad), min(bad_value) FROM _idx_import WHERE bad > 0")
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

    Images directly in an indexed root folder get no label (the root's name is not a class).
    Re-importing replaces this source's labels, so a file moved to another folder changes label.
    """
    start = time.perf_counter()
    index.require_images("label")
    con = index.catalog.con
    where, params = "", []
    if roots:
        where = "WHERE rtrim(root, '/') IN (SELECT unnest(?::VARCHAR[]))"
        params = [[os.path.abspath(os.fspath(r)).rstrip("/") for r in roots]]
    report = ImportReport(",".join(map(str, roots or [])) or "(all roots)", "folders")
    with index.catalog.transaction():
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _idx_import AS SELECT id AS image_id, "
            "parse_filename(parse_dirpath(path)) AS label_name, "
            f"parse_dirpath(path) <> rtrim(root, '/') AS labelled FROM images {where}",
            params,
        )
        report.rows, report.imported, report.unlabelled_images = _one(
            con,
            "SELECT count(*), count(*) FILTER (WHERE labelled), "
            "count(*) FILTER (WHERE NOT labelled) FROM _idx_import",
        )
        report.positives = report.imported
        report.new = _one(
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


def _first_row(file: Path) -> list[str]:
    import csv

    opener: Any = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rt", newline="", encoding="utf-8-sig") as fh:
        return next(csv.reader(fh), [])


def _read_csv_sql(n_columns: int, header: bool) -> str:
    """DuckDB's reader with fixed VARCHAR columns c0..cN: no sniffing, no type surprises.

    Not strict: real Open Images files mix CRLF and LF line ends, which strict mode rejects.
    """
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(n_columns))
    return (
        f"read_csv(?, header = {str(header).lower()}, auto_detect = false, delim = ',', "
        f"quote = '\"', escape = '\"', strict_mode = false, columns = {{{columns}}})"
    )


def _column(header: list[str], names: tuple[str, ...], file: Path, expected: str) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    if expected:
        raise UsageError(
            f"{file}: header {','.join(header)!r} has no {names[0]!r} column; expected "
            f"{expected} (for a plain `path_or_id,label` file use --csv)"
        )
    return None


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _rows_sql(file: Path, kind: str, header: list[str], source: str | None) -> str:
    """SELECT key, label_name, source, confidence (all text) from the file."""
    if kind == "csv":
        if len(header) < 2:
            raise UsageError(f"{file}: expected two columns `path_or_id,label`")
        has_header = header[1].strip().lower() in _CSV_HEADER_WORDS
        folder = _quote(str(file.parent).rstrip("/") + "/")
        key = (
            "CASE WHEN NOT contains(c0, '/') THEN c0 WHEN starts_with(c0, '/') THEN c0 "
            f"ELSE {folder} || regexp_replace(c0, '^(\\./)+', '') END"
        )
        return (
            f"SELECT {key} AS key, c1 AS label_name, {_quote(source or 'csv')} AS source, "
            f"'1' AS confidence FROM {_read_csv_sql(len(header), has_header)}"
        )
    expected = "ImageID,Source,LabelName,Confidence" + (",XMin,XMax,YMin,YMax" * (kind == "boxes"))
    image = _column(header, _IMAGE_ID, file, expected)
    label = _column(header, _LABEL_NAME, file, expected)
    src = _column(header, ("source",), file, "")
    conf = _column(header, ("confidence",), file, "")
    if source:
        source_sql = _quote(source)
    elif kind == "boxes":
        source_sql = "'bbox'"
    else:
        source_sql = f"coalesce(c{src}, 'labels')" if src is not None else "'labels'"
    # A box row implies the object is there, whatever its Confidence column says.
    conf_sql = f"c{conf}" if conf is not None and kind == "labels" else "'1'"
    return (
        f"SELECT c{image} AS key, c{label} AS label_name, {source_sql} AS source, "
        f"{conf_sql} AS confidence FROM {_read_csv_sql(len(header), True)}"
    )


def _build_keys(
    con: duckdb.DuckDBPyConnection, id_from: str, id_regex: str | None, with_paths: bool
) -> None:
    """Temp table _idx_keys(key, image_ids): label-file ids -> the indexed images they name."""
    if id_regex:
        try:
            con.execute("SELECT regexp_extract('', ?, 1)", [id_regex]).fetchall()
        except duckdb.Error as exc:
            raise UsageError(
                f"--id-regex {id_regex!r} is not a valid regular expression ({exc}); "
                "give one whose first group captures the id, e.g. '([0-9a-f]{16})'"
            ) from None
        expr, params = "regexp_extract(path, ?, 1)", [id_regex]
    elif id_from in ID_FROM:
        expr, params = ID_FROM[id_from], []
    else:
        raise UsageError(f"--id-from {id_from!r} is not one of {', '.join(ID_FROM)}")
    # Paths start with "/" and ids from a file name never contain one, so they share one column.
    paths = "UNION SELECT path, id FROM images" if with_paths else ""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _idx_keys AS SELECT row_number() OVER () AS kid, key, "
        "image_ids FROM (SELECT key, list(DISTINCT id ORDER BY id) AS image_ids FROM ("
        f"SELECT * FROM (SELECT {expr} AS key, id FROM images) WHERE key <> '' {paths}) "
        "GROUP BY key)",
        params,
    )


def _store(index: Index, report: ImportReport, kind: str) -> None:
    con = index.catalog.con
    (
        report.rows,
        report.blank_rows,
        report.unknown_image_rows,
        report.unknown_images,
        report.duplicate_rows,
        report.ambiguous_ids,
    ) = _one(
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
        report.imported, report.positives, report.negatives, report.new = _one(
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
        report.unknown_classes = _one(
            con,
            "SELECT count(DISTINCT label_name) FROM _idx_new WHERE label_name NOT IN "
            "(SELECT label_name FROM classes)",
        )[0]
        con.execute("DROP TABLE _idx_new")


def _add_plain_classes(con: duckdb.DuckDBPyConnection, names_sql: str) -> None:
    """Folder and CSV labels are their own display names."""
    con.execute(
        f"INSERT INTO classes SELECT DISTINCT label_name, label_name FROM ({names_sql}) "
        "ON CONFLICT DO NOTHING"
    )


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> tuple:
    return con.execute(sql, params or []).fetchall()[0]


def _execute(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: list[Any],
    progress: Progress | None,
    phase: str,
    file: Path,
) -> None:
    """Run one long statement in a worker thread, reporting DuckDB's progress; Ctrl-C stops it."""
    failure: list[BaseException] = []

    def work() -> None:
        try:
            con.execute(sql, params)
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=work, name="idx-label-import", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.25)
            if progress is not None and worker.is_alive():
                done = con.query_progress()
                if done >= 0:
                    progress(ProgressEvent(phase, int(done), 100))
    except KeyboardInterrupt:
        con.interrupt()
        worker.join()
        raise
    if failure:
        exc = failure[0]
        if isinstance(exc, duckdb.Error):
            detail = str(exc).split("\n\n")[0].split("Possible fixes")[0].strip()
            detail = "; ".join(line for line in detail.splitlines() if line.strip())
            raise UsageError(f"cannot read {file}: {detail}; nothing was imported") from None
        raise IdxError(f"cannot import {file}: {exc}") from exc
    if progress is not None:
        progress(ProgressEvent(phase, 100, 100))
