"""Label files read with DuckDB's CSV reader and staged against the indexed images.

A label file is joined against the indexed images inside one streaming query, so a several-GB
Open Images file costs one parallel scan and only the rows of indexed images are ever
materialised. Nothing is written until the whole file has been read, so a bad row leaves the
catalog as it was.
"""

from __future__ import annotations

import gzip
import posixpath
import shlex
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from idx.errors import IdxError, UsageError
from idx.progress import Progress, ProgressEvent

if TYPE_CHECKING:
    from idx.indexer.catalog.db import Database
    from idx.indexer.catalog.labels import Labels

#: How an image id in a label file is matched to an indexed file (applied to `images.path`).
ID_FROM = {
    "stem": "parse_filename(path, true)",  # Open Images names files <ImageID>.jpg
    "name": "parse_filename(path)",
    "path": "path",
}
_BAD_CONFIDENCE = "r.confidence IS NOT NULL AND TRY_CAST(r.confidence AS DOUBLE) IS NULL"
#: The SQL function that normalises a label file's paths the way `add` stored the images' paths
#: (os.path.abspath: '.', '..' and '//' resolved without following links).
_NORMPATH = "idx_normpath"


@dataclass(frozen=True)
class LabelFile:
    """Where each field of a label file is: 0-based columns, all read as text."""

    path: Path
    n_columns: int
    header: bool
    key: int  # the image: an id matched through `id_from`, or (relative_paths) a path
    label: int
    source: int | None = None  # the column naming each row's source, else default_source
    default_source: str = "labels"
    confidence: int | None = None  # the confidence column; without one every row is a positive
    relative_paths: bool = False  # keys holding a '/' are paths relative to the file's folder


class LabelFiles:
    """Imports of label and class files into `labels` and `classes`."""

    def __init__(self, db: Database, labels: Labels):
        self.db = db
        self.labels = labels

    def import_classes(
        self,
        path: Path,
        n_columns: int,
        header: bool,
        progress: Progress | None = None,
        *,
        name: str,
        dry_run: bool = False,
    ) -> dict[str, int]:
        """`LabelName,DisplayName` rows into `classes` as the import `name` (a repeated name
        keeps one display name); counts: rows, imported, duplicate_rows, new. A file whose keys
        are mostly ids of indexed images (a label file given as classes) is refused."""
        self._run(
            "CREATE OR REPLACE TEMP TABLE _idx_classes AS SELECT c0 AS label_name, "
            "any_value(c1) AS display_name, count(*) AS n "
            f"FROM {_read_csv(n_columns, header)} WHERE c0 IS NOT NULL GROUP BY c0",
            [str(path)],
            progress,
            path,
        )
        try:
            rows, imported = self.db.rows("SELECT coalesce(sum(n), 0), count(*) FROM _idx_classes")[
                0
            ]
            image_keys = self.db.value(
                f"SELECT count(*) FROM _idx_classes WHERE label_name IN (SELECT {ID_FROM['stem']} "
                "FROM images)"
            )
            if imported and image_keys * 2 > imported:
                raise UsageError(
                    f"class file {path}: {image_keys} of its {imported} keys are ids of indexed "
                    "images, not label names, so it is a label file; pass it with --labels FILE "
                    "and the class descriptions (LabelName,DisplayName) with --classes; nothing "
                    "was imported"
                )

            def write(import_id: int) -> dict[str, Any]:
                new = self.db.value(
                    "SELECT count(*) FROM _idx_classes WHERE label_name NOT IN "
                    "(SELECT label_name FROM classes)"
                )
                self.db.rows(
                    "INSERT INTO class_rows SELECT ?, label_name, display_name FROM _idx_classes",
                    [import_id],
                )
                return {
                    "rows": int(rows),
                    "imported": int(imported),
                    "duplicate_rows": int(rows - imported),
                    "new": int(new),
                }

            return self.labels.record_import(name, "classes", str(path), write, dry_run=dry_run)
        finally:
            self.db.rows("DROP TABLE IF EXISTS _idx_classes")

    def import_labels(
        self,
        file: LabelFile,
        *,
        name: str,
        kind: str,
        id_from: str = "stem",
        id_regex: str | None = None,
        plain_classes: bool = False,
        progress: Progress | None = None,
        dry_run: bool = False,
    ) -> dict[str, int]:
        """Rows of `file` into `labels` as the import `name` (the latest import of a key wins);
        `plain_classes` makes each new label name its own class. Refused, with nothing written,
        when a Confidence is not a number or no row names an indexed image. Counts under the
        names of ImportReport: rows, blank_rows, unknown_image_rows, unknown_images,
        duplicate_rows, ambiguous_ids, matched_images, imported, positives, negatives, new,
        unknown_classes."""
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
            FROM ({_rows(file)}) r LEFT JOIN _idx_keys k ON r.key = k.key
            GROUP BY ALL
        """
        try:
            self._build_keys(id_from, id_regex, with_paths=file.relative_paths)
            with self._normpath():
                self._run(sql, [str(file.path)], progress, file.path)
            bad, bad_value = self.db.rows(
                "SELECT sum(bad), min(bad_value) FROM _idx_import WHERE bad > 0"
            )[0]
            if bad:
                raise UsageError(
                    f"{file.path}: {bad} rows have a Confidence that is not a number (e.g. "
                    f"{bad_value!r}); fix those rows, nothing was imported"
                )
            counts = self._count_rows()
            if counts["rows"] > counts["blank_rows"] and not counts["matched_images"]:
                how = f"--id-regex {id_regex!r}" if id_regex else f"--id-from {id_from}"
                raise UsageError(
                    f"{file.path}: none of its {counts['unknown_images']} image ids names an "
                    f"indexed image (matched with {how}); check that the file is for these "
                    "images, or match ids another way (--id-from path|name|stem, --id-regex); "
                    "nothing was imported"
                )
            return self.labels.record_import(
                name,
                kind,
                str(file.path),
                lambda import_id: counts | self._store(import_id, plain_classes),
                dry_run=dry_run,
            )
        finally:
            self.db.rows("DROP TABLE IF EXISTS _idx_import")
            self.db.rows("DROP TABLE IF EXISTS _idx_keys")
            self.db.rows("DROP TABLE IF EXISTS _idx_new")

    def _count_rows(self) -> dict[str, int]:
        names = (
            "rows",
            "blank_rows",
            "unknown_image_rows",
            "unknown_images",
            "duplicate_rows",
            "ambiguous_ids",
            "matched_images",
        )
        found = self.db.rows(
            "SELECT coalesce(sum(n_rows), 0), coalesce(sum(n_rows) FILTER (WHERE blank), 0), "
            "coalesce(sum(n_rows) FILTER (WHERE NOT blank AND kid IS NULL), 0), "
            "count(DISTINCT unknown_id) FILTER (WHERE NOT blank), "
            "coalesce(sum(n_rows - 1) FILTER (WHERE NOT blank AND kid IS NOT NULL), 0), "
            "count(DISTINCT i.kid) FILTER (WHERE NOT blank AND len(k.image_ids) > 1), "
            "(SELECT count(DISTINCT image_id) FROM (SELECT unnest(k2.image_ids) AS image_id "
            "FROM _idx_import i2 JOIN _idx_keys k2 USING (kid) WHERE NOT i2.blank)) "
            "FROM _idx_import i LEFT JOIN _idx_keys k USING (kid)"
        )[0]
        return dict(zip(names, map(int, found)))

    def _store(self, import_id: int, plain_classes: bool) -> dict[str, int]:
        """This import's rows into label_rows (inside record_import's transaction)."""
        self.db.rows(
            "CREATE OR REPLACE TEMP TABLE _idx_new AS SELECT image_id, label_name, source, "
            "max(confidence) AS confidence FROM (SELECT unnest(k.image_ids) AS image_id, "
            "i.label_name, i.source, coalesce(i.confidence, 1.0) AS confidence "
            "FROM _idx_import i JOIN _idx_keys k USING (kid) WHERE NOT i.blank) GROUP BY ALL"
        )
        found = self.db.rows(
            "SELECT count(*), count(*) FILTER (WHERE confidence > 0), "
            "count(*) FILTER (WHERE confidence <= 0), count(*) FILTER (WHERE NOT EXISTS ("
            "SELECT 1 FROM labels l WHERE l.image_id = n.image_id AND l.label_name = "
            "n.label_name AND l.source = n.source)) FROM _idx_new n"
        )[0]
        counts = dict(zip(("imported", "positives", "negatives", "new"), map(int, found)))
        self.db.rows(
            "INSERT INTO label_rows SELECT ?, image_id, label_name, source, confidence "
            "FROM _idx_new",
            [import_id],
        )
        if plain_classes:
            self.labels.add_plain_classes(import_id, "SELECT label_name FROM _idx_new")
        counts["unknown_classes"] = int(
            self.db.value(
                "SELECT count(DISTINCT label_name) FROM _idx_new WHERE label_name NOT IN "
                "(SELECT label_name FROM classes UNION SELECT label_name FROM class_rows "
                "WHERE import_id = ?)",
                [import_id],
            )
        )
        return counts

    def _build_keys(self, id_from: str, id_regex: str | None, with_paths: bool) -> None:
        """Temp table _idx_keys(kid, key, image_ids): label-file ids -> the images they name."""
        if id_regex:
            try:
                self.db.rows("SELECT regexp_extract('', ?, 1)", [id_regex])
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
        # Paths start with "/" and ids from a file name never contain one, so they share a column.
        paths = "UNION SELECT path, id FROM images" if with_paths else ""
        self.db.con.execute(
            "CREATE OR REPLACE TEMP TABLE _idx_keys AS SELECT row_number() OVER () AS kid, key, "
            "image_ids FROM (SELECT key, list(DISTINCT id ORDER BY id) AS image_ids FROM ("
            f"SELECT * FROM (SELECT {expr} AS key, id FROM images) WHERE key <> '' {paths}) "
            "GROUP BY key)",
            params,
        )

    @contextmanager
    def _normpath(self) -> Iterator[None]:
        """_NORMPATH as a function of the connection while a file is read: DuckDB has none, and
        its list lambdas that could make one changed syntax between the versions idx runs on."""
        con = self.db.con
        con.create_function(_NORMPATH, posixpath.normpath, ["VARCHAR"], "VARCHAR")
        try:
            yield
        finally:
            con.remove_function(_NORMPATH)

    def _run(self, sql: str, params: list[Any], progress: Progress | None, file: Path) -> None:
        """Run one long statement in a worker thread, reporting DuckDB's progress as the phase
        `read <file name>`; Ctrl-C stops it."""
        con, phase = self.db.con, f"read {file.name}"
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
            if isinstance(exc, duckdb.Error) and "invalid unicode" in str(exc).lower():
                raise UsageError(not_utf8(file)) from None
            if isinstance(exc, duckdb.Error):
                detail = str(exc).split("\n\n")[0].split("Possible fixes")[0].strip()
                detail = "; ".join(line for line in detail.splitlines() if line.strip())
                raise UsageError(f"cannot read {file}: {detail}; nothing was imported") from None
            raise IdxError(f"cannot import {file}: {exc}") from exc
        if progress is not None:
            progress(ProgressEvent(phase, 100, 100))


def not_utf8(file: Path) -> str:
    """Why `file` (a label, class or hierarchy file) cannot be read: where its first byte that is
    not UTF-8 is, and how to convert it. Its encoding is not guessed: any bytes read as Latin-1,
    and a wrong guess (cp1252, Shift-JIS) would store wrong names without a word. Found by reading
    the file again, only after a read failed, so a good file still costs one pass."""
    opener: Any = gzip.open if file.suffix == ".gz" else open
    offset = 0
    with opener(file, "rb") as fh:
        for number, line in enumerate(fh, 1):  # b"\n" is never inside a UTF-8 sequence
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                where = f"line {number} (byte {exc.start + 1} of it, 0x{line[exc.start]:02x}; "
                where += f"byte offset {offset + exc.start} in the file)"
                break
            offset += len(line)
        else:
            where = "a line"
    name, iconv = shlex.quote(file.name), "iconv -f latin1 -t utf-8"
    convert = f"zcat {name} | {iconv}" if file.suffix == ".gz" else f"{iconv} {name}"
    converted = shlex.quote("utf8-" + file.name.removesuffix(".gz"))
    return (
        f"{file}: {where} is not UTF-8, which idx reads label files as; re-save the file as "
        f"UTF-8 and import that, e.g. for a Latin-1 file `{convert} > {converted}`; nothing "
        "was imported"
    )


def _read_csv(n_columns: int, header: bool) -> str:
    """DuckDB's reader with fixed VARCHAR columns c0..cN: no sniffing, no type surprises.

    Not strict: real Open Images files mix CRLF and LF line ends, which strict mode rejects.
    """
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(n_columns))
    return (
        f"read_csv(?, header = {str(header).lower()}, auto_detect = false, delim = ',', "
        f"quote = '\"', escape = '\"', strict_mode = false, columns = {{{columns}}})"
    )


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _rows(file: LabelFile) -> str:
    """SELECT key, label_name, source, confidence (all text) from the file."""
    key = f"c{file.key}"
    if file.relative_paths:
        folder = _quote(str(file.path.parent).rstrip("/") + "/")
        path = f"(CASE WHEN starts_with({key}, '/') THEN {key} ELSE {folder} || {key} END)"
        # Only a path with a '.' or '..' part or a '//' needs the (Python) function.
        key = (
            f"CASE WHEN NOT contains({key}, '/') THEN {key} "
            f"WHEN contains({path}, '/.') OR contains({path}, '//') THEN {_NORMPATH}({path}) "
            f"ELSE {path} END"
        )
    source = _quote(file.default_source)
    if file.source is not None:
        source = f"coalesce(c{file.source}, {source})"
    confidence = f"c{file.confidence}" if file.confidence is not None else "'1'"
    return (
        f"SELECT {key} AS key, c{file.label} AS label_name, {source} AS source, "
        f"{confidence} AS confidence FROM {_read_csv(file.n_columns, file.header)}"
    )
