"""Dataset labels and classes: the positive labels of indexed images, the classes' names, and
the imports that wrote them.

Every import is recorded (`label_imports`) with the rows it wrote (`label_rows`, `class_rows`);
`labels` and `classes` hold, for each key, the row of the latest import that wrote it. So an
import is one transaction that can be tried (dry run), replaced (same name) or removed exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from idx import config
from idx.errors import NotFoundError

if TYPE_CHECKING:
    import pyarrow as pa

    from idx.indexer.catalog.db import Database


class ImportRow(NamedTuple):
    """One recorded import, with the rows it holds now."""

    id: int
    name: str
    kind: str  # labels, boxes, csv, classes or folders
    file: str | None
    label_rows: int
    class_rows: int
    created_at: datetime


class ClassCount(NamedTuple):
    """One class with how many indexed images carry it."""

    label_name: str
    display_name: str  # its label_name when it has none
    images: int  # positives
    verified_absent: int  # images with a Confidence 0 row for it
    sources: str  # the labels' sources, comma-separated


class _DryRun(Exception):
    """Raised inside an import's transaction to roll it back after counting."""


class Labels:
    def __init__(self, db: Database):
        self.db = db

    # -- imports ----------------------------------------------------------------------------

    def record_import(
        self,
        name: str,
        kind: str,
        file: str | None,
        write: Callable[[int], dict[str, Any]],
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Run one import as one transaction: an earlier import of the same `name` is replaced,
        `write(import_id)` stores this import's rows in label_rows / class_rows and returns its
        counts, then `labels` and `classes` are brought up to date for every key either import
        touched. An exception from `write`, or `dry_run`, leaves the catalog as it was."""
        result: dict[str, Any] = {}
        with self._changing(dry_run):
            old = self.db.value("SELECT id FROM label_imports WHERE name = ?", [name])
            self._touched(old, fresh=True)
            if old is not None:
                self._drop(old)
            import_id = int(self.db.value("SELECT coalesce(max(id), 0) + 1 FROM label_imports"))
            self.db.rows(
                "INSERT INTO label_imports (id, name, kind, file, counts) "
                "VALUES (?, ?, ?, ?, '{}')",
                [import_id, name, kind, file],
            )
            result = write(import_id)
            self._touched(import_id)
            self._resolve()
            self.db.rows(
                "UPDATE label_imports SET counts = ? WHERE id = ?",
                [json.dumps(result), import_id],
            )
        return result

    def remove_import(self, name: str, *, dry_run: bool = False) -> dict[str, Any]:
        """Undo the import called `name` exactly: its rows go, and for each key it wrote the
        row of the latest other import (if any) takes its place. Counts of what it held."""
        found = self.db.rows("SELECT id, kind, file FROM label_imports WHERE name = ?", [name])
        if not found:
            known = [r[0] for r in self.db.rows("SELECT name FROM label_imports ORDER BY id")]
            raise NotFoundError(
                f"no label import named {name!r}; imports: {', '.join(known) or 'none'} "
                f"(see `{config.command(self.db.index_dir, 'labels', 'list', '--imports')}`)"
            )
        import_id, kind, file = found[0]
        counts = {
            "name": name,
            "kind": kind,
            "file": file,
            "label_rows": int(
                self.db.value("SELECT count(*) FROM label_rows WHERE import_id = ?", [import_id])
            ),
            "class_rows": int(
                self.db.value("SELECT count(*) FROM class_rows WHERE import_id = ?", [import_id])
            ),
        }
        with self._changing(dry_run):
            self._touched(import_id, fresh=True)
            self._drop(import_id)
            self._resolve()
        return counts

    @contextmanager
    def _changing(self, dry_run: bool) -> Iterator[None]:
        """One transaction over the label tables, rolled back when `dry_run`."""
        try:
            with self.db.transaction():
                yield
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        finally:
            self.db.rows("DROP TABLE IF EXISTS _idx_touched_labels")
            self.db.rows("DROP TABLE IF EXISTS _idx_touched_classes")

    def imports(self) -> tuple[list[str], list[ImportRow]]:
        """Every recorded import, oldest first, as a table: (its column names, its rows)."""
        rows = self.db.rows(
            "SELECT i.id, i.name, i.kind, i.file, "
            "(SELECT count(*) FROM label_rows r WHERE r.import_id = i.id), "
            "(SELECT count(*) FROM class_rows c WHERE c.import_id = i.id), "
            "i.created_at FROM label_imports i ORDER BY i.id"
        )
        return list(ImportRow._fields), [ImportRow._make(r) for r in rows]

    def _touched(self, import_id: int | None, *, fresh: bool = False) -> None:
        """Collect the keys an import wrote into _idx_touched_labels / _idx_touched_classes."""
        if fresh:
            self.db.rows(
                "CREATE OR REPLACE TEMP TABLE _idx_touched_labels "
                "(image_id BIGINT, label_name VARCHAR, source VARCHAR)"
            )
            self.db.rows("CREATE OR REPLACE TEMP TABLE _idx_touched_classes (label_name VARCHAR)")
        if import_id is None:
            return
        self.db.rows(
            "INSERT INTO _idx_touched_labels SELECT image_id, label_name, source FROM label_rows "
            "WHERE import_id = ?",
            [import_id],
        )
        self.db.rows(
            "INSERT INTO _idx_touched_classes SELECT label_name FROM class_rows "
            "WHERE import_id = ?",
            [import_id],
        )

    def _drop(self, import_id: int) -> None:
        for table in ("label_rows", "class_rows"):
            self.db.rows(f"DELETE FROM {table} WHERE import_id = ?", [import_id])
        self.db.rows("DELETE FROM label_imports WHERE id = ?", [import_id])

    def _resolve(self) -> None:
        """labels and classes, for the touched keys: the row of the latest import holding it."""
        self.db.rows(
            "DELETE FROM labels USING (SELECT DISTINCT * FROM _idx_touched_labels) t "
            "WHERE labels.image_id = t.image_id AND labels.label_name = t.label_name "
            "AND labels.source = t.source"
        )
        self.db.rows(
            "INSERT INTO labels (image_id, label_name, source, confidence, imported_at) "
            "SELECT r.image_id, r.label_name, r.source, arg_max(r.confidence, r.import_id), "
            "arg_max(i.created_at, r.import_id) FROM label_rows r "
            "JOIN (SELECT DISTINCT * FROM _idx_touched_labels) t USING (image_id, label_name, "
            "source) JOIN label_imports i ON i.id = r.import_id GROUP BY 1, 2, 3"
        )
        self.db.rows(
            "DELETE FROM classes WHERE label_name IN (SELECT label_name FROM _idx_touched_classes)"
        )
        self.db.rows(
            "INSERT INTO classes SELECT label_name, arg_max(display_name, import_id) "
            "FROM class_rows WHERE label_name IN (SELECT label_name FROM _idx_touched_classes) "
            "GROUP BY 1"
        )
        self.sync_display_names()

    def positives(self, sources: Sequence[str] | None = None) -> pa.Table:
        """(image_id, label_name, confidence) of every positive label (confidence > 0) of an
        indexed image, one row per image and label (its highest confidence), ordered by image,
        then confidence (highest first), then label; optionally only labels from `sources`."""
        where, params = "", []
        if sources:
            where, params = " AND l.source IN (SELECT unnest(?::VARCHAR[]))", [list(sources)]
        return self.db.arrow(
            "SELECT l.image_id, l.label_name, max(l.confidence) AS confidence FROM labels l "
            f"JOIN images i ON i.id = l.image_id WHERE l.confidence > 0{where} "
            "GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2",
            params,
        )

    def display_names(self) -> dict[str, str]:
        """label_name -> display name, for the classes that have one."""
        rows = self.db.rows("SELECT label_name, display_name FROM classes")
        return {name: shown for name, shown in rows if shown}

    def count_positive(self) -> int:
        return int(self.db.value("SELECT count(*) FROM labels WHERE confidence > 0"))

    def import_folders(
        self, folders: Sequence[str], source: str, name: str, *, dry_run: bool = False
    ) -> dict[str, int]:
        """Label every indexed image under `folders` (default: every image, under the root it
        was added from) with its parent folder's name, as the import `name` (replacing an earlier
        one of that name); images directly in such a folder get none. Counts: rows, imported,
        unlabelled_images, positives, new (rows 0 and nothing written when no image is under
        `folders`)."""
        # Each image's dataset folder: the given folder it lies under, else its root.
        base = (
            "(SELECT max(f) FROM unnest(?::VARCHAR[]) t(f) WHERE starts_with(path, f || '/'))"
            if folders
            else "rtrim(root, '/')"
        )
        self.db.rows(
            "CREATE OR REPLACE TEMP TABLE _idx_import AS SELECT image_id, label_name, "
            "parent <> base AS labelled FROM (SELECT id AS image_id, parse_dirpath(path) AS "
            f"parent, parse_filename(parse_dirpath(path)) AS label_name, {base} AS base "
            "FROM images) WHERE base IS NOT NULL",
            [list(folders)] if folders else [],
        )
        try:
            rows, imported, unlabelled = self.db.rows(
                "SELECT count(*), count(*) FILTER (WHERE labelled), "
                "count(*) FILTER (WHERE NOT labelled) FROM _idx_import"
            )[0]
            counts = {"rows": rows, "imported": imported, "unlabelled_images": unlabelled}
            if folders and not rows:
                return counts | {"positives": 0, "new": 0}

            def write(import_id: int) -> dict[str, Any]:
                new = self.db.value(
                    "SELECT count(*) FROM _idx_import i WHERE labelled AND NOT EXISTS (SELECT 1 "
                    "FROM labels l WHERE l.image_id = i.image_id AND l.label_name = i.label_name "
                    "AND l.source = ?)",
                    [source],
                )
                self.db.rows(
                    "INSERT INTO label_rows SELECT ?, image_id, label_name, ?, 1.0 "
                    "FROM _idx_import WHERE labelled",
                    [import_id, source],
                )
                self.add_plain_classes(
                    import_id, "SELECT label_name FROM _idx_import WHERE labelled"
                )
                return counts | {"positives": imported, "new": new}

            found = self.record_import(
                name, "folders", ",".join(folders) or None, write, dry_run=dry_run
            )
        finally:
            self.db.rows("DROP TABLE IF EXISTS _idx_import")
        return {key: int(value) for key, value in found.items()}

    def class_counts(self, include_empty: bool = False) -> tuple[list[str], list[ClassCount]]:
        """Per class, most images first, as a table: (its column names, its rows). Classes
        without labels only with `include_empty`."""
        join = "LEFT JOIN" if include_empty else "JOIN"
        rows = self.db.rows(
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
        return list(ClassCount._fields), [ClassCount._make(r) for r in rows]

    def sync_display_names(self) -> None:
        """Keep labels.display_name equal to the class's display name (else its label_name)."""
        self.db.con.execute(
            "UPDATE labels SET display_name = coalesce(c.display_name, labels.label_name) "
            "FROM classes c WHERE c.label_name = labels.label_name "
            "AND labels.display_name IS DISTINCT FROM coalesce(c.display_name, labels.label_name)"
        )
        self.db.con.execute(
            "UPDATE labels SET display_name = label_name WHERE display_name IS NULL "
            "AND label_name NOT IN (SELECT label_name FROM classes)"
        )

    def add_plain_classes(self, import_id: int, names_sql: str) -> None:
        """Classes named by the label_name column of `names_sql` (folder and CSV labels), each
        its own display name, recorded for the import; classes that exist keep theirs."""
        self.db.rows(
            f"INSERT INTO class_rows SELECT DISTINCT ?, label_name, label_name FROM ({names_sql}) "
            "WHERE label_name NOT IN (SELECT label_name FROM classes) ON CONFLICT DO NOTHING",
            [import_id],
        )

    def any(self) -> bool:
        """Whether the index holds any label row (search results then show labels)."""
        return bool(self.db.rows("SELECT 1 FROM labels LIMIT 1"))

    def names_for(self, ids: Sequence[int]) -> dict[int, list[str]]:
        """id -> the display names of its positive labels, sorted, for those of `ids` that
        have any."""
        if not len(ids):
            return {}
        marks = ", ".join("?" * len(ids))  # an IN list of parameters: 2x faster than unnest(list)
        rows = self.db.rows(
            "SELECT l.image_id, list(DISTINCT coalesce(c.display_name, l.label_name)) "
            "FROM labels l LEFT JOIN classes c USING (label_name) "
            f"WHERE l.confidence > 0 AND l.image_id IN ({marks}) GROUP BY 1",
            [int(i) for i in ids],
        )
        return {int(i): sorted(names) for i, names in rows}
