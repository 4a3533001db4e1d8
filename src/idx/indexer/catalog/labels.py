"""Dataset labels and classes: the positive labels of indexed images and the classes' names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from idx.indexer.catalog.db import Database


class Labels:
    def __init__(self, db: Database):
        self.db = db

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

    def import_folders(self, folders: Sequence[str], source: str) -> dict[str, int]:
        """Label every indexed image under `folders` (default: every image, under the root it
        was added from) with its parent folder's name, replacing `source`'s labels of those
        images; images directly in such a folder get none. Counts: rows, imported,
        unlabelled_images, positives, new (rows 0 and nothing written when no image is under
        `folders`)."""
        con = self.db.con
        # Each image's dataset folder: the given folder it lies under, else its root.
        base = (
            "(SELECT max(f) FROM unnest(?::VARCHAR[]) t(f) WHERE starts_with(path, f || '/'))"
            if folders
            else "rtrim(root, '/')"
        )
        with self.db.transaction():
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _idx_import AS SELECT image_id, label_name, "
                "parent <> base AS labelled FROM (SELECT id AS image_id, parse_dirpath(path) AS "
                f"parent, parse_filename(parse_dirpath(path)) AS label_name, {base} AS base "
                "FROM images) WHERE base IS NOT NULL",
                [list(folders)] if folders else [],
            )
            rows, imported, unlabelled = self.db.rows(
                "SELECT count(*), count(*) FILTER (WHERE labelled), "
                "count(*) FILTER (WHERE NOT labelled) FROM _idx_import"
            )[0]
            counts = {"rows": rows, "imported": imported, "unlabelled_images": unlabelled}
            if folders and not rows:
                con.execute("DROP TABLE _idx_import")
                return counts | {"positives": 0, "new": 0}
            counts["positives"] = imported
            counts["new"] = self.db.value(
                "SELECT count(*) FROM _idx_import i WHERE labelled AND NOT EXISTS (SELECT 1 FROM "
                "labels l WHERE l.image_id = i.image_id AND l.label_name = i.label_name "
                "AND l.source = ?)",
                [source],
            )
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
            self.add_plain_classes("SELECT label_name FROM _idx_import WHERE labelled")
            self.sync_display_names()
            con.execute("DROP TABLE _idx_import")
        return {name: int(value) for name, value in counts.items()}

    def class_counts(self, include_empty: bool = False) -> tuple[list[str], list[tuple]]:
        """Per class: label_name, display_name, images (positives), verified_absent, sources;
        most images first. Classes without labels only with `include_empty`."""
        join = "LEFT JOIN" if include_empty else "JOIN"
        return self.db.query(
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

    def add_plain_classes(self, names_sql: str) -> None:
        """Classes named by the label_name column of `names_sql` (folder and CSV labels), each
        its own display name; existing classes are kept."""
        self.db.con.execute(
            f"INSERT INTO classes SELECT DISTINCT label_name, label_name FROM ({names_sql}) "
            "ON CONFLICT DO NOTHING"
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
