"""Reading label files with DuckDB: fixed-column CSV readers, id keys, a progress-reporting runner.

Used by idx.ops.labels.imports; nothing here writes to the catalog.
"""

from __future__ import annotations

import csv
import gzip
import threading
from pathlib import Path
from typing import Any

import duckdb

from idx.errors import IdxError, UsageError
from idx.progress import Progress, ProgressEvent

#: How an image id in a label file is matched to an indexed file (applied to `images.path`).
ID_FROM = {
    "stem": "parse_filename(path, true)",  # Open Images names files <ImageID>.jpg
    "name": "parse_filename(path)",
    "path": "path",
}
_IMAGE_ID = ("imageid", "image_id", "image")
_LABEL_NAME = ("labelname", "label_name", "label")
_CSV_HEADER_WORDS = {"label", "labels", "label_name", "labelname", "class", "category"}


def first_row(file: Path) -> list[str]:
    opener: Any = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rt", newline="", encoding="utf-8-sig") as fh:
        return next(csv.reader(fh), [])


def read_csv_sql(n_columns: int, header: bool) -> str:
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


def rows_sql(file: Path, kind: str, header: list[str], source: str | None) -> str:
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
            f"'1' AS confidence FROM {read_csv_sql(len(header), has_header)}"
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
        f"{conf_sql} AS confidence FROM {read_csv_sql(len(header), True)}"
    )


def build_keys(
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


def one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> tuple:
    return con.execute(sql, params or []).fetchall()[0]


def execute(
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
