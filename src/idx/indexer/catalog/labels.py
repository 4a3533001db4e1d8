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
