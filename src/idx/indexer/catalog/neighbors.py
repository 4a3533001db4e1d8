"""The stored kNN graph: every image's k nearest others, written whole by `idx neighbors --all`.

Rows are (image_id, neighbor_id, rank, score): rank 1 is the nearest other image, score the
cosine similarity. What the last run was (k, index type, time) is kept in meta beside it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import pyarrow as pa

    from idx.indexer.catalog.db import Database

#: meta key holding what the last `neighbors --all` run stored.
RUN_KEY = "neighbors_run"


class GraphShape(NamedTuple):
    edges: int  # pairs stored
    k: int  # neighbours per image: the highest rank


class Neighbors:
    def __init__(self, db: Database):
        self.db = db

    def clear(self) -> None:
        """Drop the whole graph (a new run replaces it; call inside its transaction)."""
        self.db.rows("DELETE FROM neighbors")

    def add(self, edges: pa.Table) -> None:
        """Store edges: an Arrow table of image_id, neighbor_id, rank, score."""
        self.db.insert_rows("neighbors", edges)

    def shape(self) -> GraphShape:
        """The stored graph's size; (0, 0) before the first `neighbors --all`."""
        edges, k = self.db.rows("SELECT count(*), coalesce(max(rank), 0) FROM neighbors")[0]
        return GraphShape(int(edges), int(k))

    def record_run(self, info: dict[str, Any]) -> None:
        """Keep what the run that wrote the graph was, with the vectors generation it saw."""
        self.db.set_meta(RUN_KEY, json.dumps(info | {"generation": self.db.generation()}))

    def last_run(self) -> dict[str, Any] | None:
        """What the last `neighbors --all` recorded, None when it never ran."""
        text = self.db.get_meta(RUN_KEY)
        return json.loads(text) if text else None

    def same_folder_share(self) -> float | None:
        """Share of the stored pairs whose two images lie in folders of the same name (with one
        folder per class: how often a neighbour has the image's class); None with no graph."""
        value = self.db.value(
            "SELECT avg(CASE WHEN split_part(a.path, '/', -2) = split_part(b.path, '/', -2) "
            "THEN 1.0 ELSE 0.0 END) FROM neighbors n JOIN images a ON a.id = n.image_id "
            "JOIN images b ON b.id = n.neighbor_id"
        )
        return None if value is None else float(value)
