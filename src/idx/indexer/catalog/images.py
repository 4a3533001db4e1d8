"""Images and their vectors: which files the index holds, their paths, their embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from idx import config
from idx.errors import UsageError
from idx.indexer.catalog.arrow import arrow_to_matrix, list_column

if TYPE_CHECKING:
    import pyarrow as pa

    from idx.indexer.catalog.db import Database

#: 'all' images, or only the 'clean' ones: added from the user's files (robustness injection adds
#: perturbed copies under another source).
SUBSETS = ("all", "clean")
#: Up to this many ids are looked up as an IN list of parameters, more through a registered table.
IN_LIST_MAX = 1000


class IndexedFile(NamedTuple):
    """What the catalog recorded of an image's file when it was indexed."""

    id: int
    path: str
    root: str  # the folder (or s3:// prefix) given to `add` that holds it
    bytes: int
    mtime_ns: int
    format: str  # Pillow's name of what the content is (JPEG, PNG, GIF ...)


class ImagePath(NamedTuple):
    id: int
    path: str


class Images:
    def __init__(self, db: Database):
        self.db = db

    def count(self, source: str | None = None) -> int:
        if source is None:
            return int(self.db.value("SELECT count(*) FROM images"))
        return int(self.db.value("SELECT count(*) FROM images WHERE source = ?", [source]))

    def ids(self, source: str | None = None) -> np.ndarray:
        """Image ids, sorted; only those of `source` when given."""
        where, params = ("WHERE source = ?", [source]) if source is not None else ("", [])
        table = self.db.arrow(f"SELECT id FROM images {where} ORDER BY id", params)
        return table.column(0).to_numpy().astype(np.int64, copy=False)

    def paths_for(self, ids: Sequence[int] | np.ndarray) -> dict[int, str]:
        """id -> path of those of `ids` the index holds."""
        ids = _int_list(ids)
        if len(ids) <= IN_LIST_MAX:  # a query's hits: parameters, no Arrow table to register
            marks = ", ".join("?" * len(ids)) or "NULL"
            rows = self.db.rows(f"SELECT id, path FROM images WHERE id IN ({marks})", ids)
            return {int(i): p for i, p in rows}
        with self.db.with_ids("_idx_paths_for", ids) as view:
            rows = self.db.rows(f"SELECT i.id, i.path FROM images i JOIN {view} v ON v.id = i.id")
        return {int(i): p for i, p in rows}

    def indexed_file(self, image_id: int) -> IndexedFile | None:
        """The file of an image as it was indexed; None for an id the index does not hold."""
        rows = self.db.rows(
            "SELECT id, path, root, bytes, mtime_ns, format FROM images WHERE id = ?",
            [int(image_id)],
        )
        return IndexedFile._make(rows[0]) if rows else None

    def all_paths(self) -> dict[int, str]:
        return {int(i): p for i, p in self.db.rows("SELECT id, path FROM images")}

    def first(self) -> ImagePath | None:
        """The image with the lowest id, None in an empty index."""
        rows = self.db.rows("SELECT id, path FROM images ORDER BY id LIMIT 1")
        return ImagePath(int(rows[0][0]), rows[0][1]) if rows else None

    def roots(self) -> list[str]:
        """The folders images were added from."""
        return [r[0] for r in self.db.rows("SELECT DISTINCT root FROM images ORDER BY 1")]

    def vectors(
        self, ids: Sequence[int] | np.ndarray | None = None, *, subset: str = "all"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64 [n], unit vectors float32 [n, d]) ordered by id: every image, only `ids`,
        or only the `subset` ('clean': images added from files)."""
        if subset not in SUBSETS:
            raise UsageError(f"subset {subset!r} is unknown; use 'all' or 'clean'")
        sql = "SELECT i.id, e.vector FROM images i JOIN embeddings e USING (sha256)"
        params: list = []
        if subset == "clean":
            sql += " WHERE i.source = ?"
            params.append(config.FILES_SOURCE)
        if ids is None:
            return arrow_to_matrix(self.db.arrow(f"{sql} ORDER BY i.id", params))
        with self.db.with_ids("_idx_vectors_for", _int_list(ids)) as view:
            joined = f"{sql} {'AND' if params else 'WHERE'} i.id IN (SELECT id FROM {view})"
            return arrow_to_matrix(self.db.arrow(f"{joined} ORDER BY i.id", params))

    def summary(self) -> dict:
        """What `idx status` counts: images, bytes, embeddings, skipped files, formats, sources,
        and images without a vector."""
        images, total_bytes = self.db.rows("SELECT count(*), coalesce(sum(bytes), 0) FROM images")[
            0
        ]
        return {
            "images": int(images),
            "bytes": int(total_bytes),
            "embeddings": int(self.db.value("SELECT count(*) FROM embeddings")),
            "skipped": int(self.db.value("SELECT count(*) FROM skipped")),
            "formats": dict(
                self.db.rows("SELECT format, count(*) FROM images GROUP BY 1 ORDER BY 2 DESC")
            ),
            "sources": dict(
                self.db.rows("SELECT source, count(*) FROM images GROUP BY 1 ORDER BY 1")
            ),
            "without_vector": int(
                self.db.value(
                    "SELECT count(*) FROM images i LEFT JOIN embeddings e USING (sha256) "
                    "WHERE e.sha256 IS NULL"
                )
            ),
        }

    def export_parquet(self, out: str) -> None:
        """id, path, sha256 and embedding of every image, ordered by id, as one Parquet file."""
        escaped = str(out).replace("'", "''")
        self.db.rows(
            "COPY (SELECT i.id, i.path, i.sha256, e.vector AS embedding FROM images i "
            f"JOIN embeddings e USING (sha256) ORDER BY i.id) TO '{escaped}' (FORMAT parquet)"
        )

    def insert_embeddings(
        self,
        shas: Sequence[str],
        matrix: np.ndarray,
        phashes: Sequence[int | None] | None = None,
    ) -> None:
        """Store the vectors of new content, with its perceptual hashes where given (a None keeps
        the hash the content had)."""
        import pyarrow as pa

        hashes = pa.array(list(phashes) if phashes is not None else [None] * len(shas), pa.uint64())
        table = pa.table({"sha256": list(shas), "vector": list_column(matrix), "phash": hashes})
        self.db.insert_rows(
            "embeddings",
            table,
            on_conflict="ON CONFLICT DO UPDATE SET vector = excluded.vector, "
            "phash = coalesce(excluded.phash, embeddings.phash)",
        )

    def phashes(self, ids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(perceptual hashes uint64, whether each has one) of `ids`, in their order; an id the
        index does not hold, or whose content has no hash yet, has none (0, False)."""
        wanted = _int_list(ids)
        with self.db.with_ids("_idx_phashes_for", wanted) as view:
            table = self.db.arrow(
                f"SELECT i.id, e.phash FROM images i JOIN embeddings e USING (sha256) "
                f"WHERE i.id IN (SELECT id FROM {view})"
            )
        found = dict(zip(table.column(0).to_pylist(), table.column(1).to_pylist()))
        hashes = [found.get(i) for i in wanted]
        present = np.array([h is not None for h in hashes], dtype=bool)
        return np.array([h or 0 for h in hashes], dtype=np.uint64), present

    def set_phashes(self, shas: Sequence[str], phashes: Sequence[int]) -> None:
        """Fill in the perceptual hashes of stored content (call inside a transaction)."""
        import pyarrow as pa

        if shas:
            table = {"sha256": pa.array(list(shas)), "phash": pa.array(list(phashes), pa.uint64())}
            self.db.update_rows("embeddings", "sha256", table)

    def delete(self, ids: Sequence[int]) -> None:
        """Delete images, every row of another table that refers to them by image_id or
        neighbor_id, and the vectors no image uses any more; bumps the generation (the FAISS file
        is now behind). Call inside a transaction."""
        if not len(ids):
            return
        with self.db.with_ids("_idx_gone", _int_list(ids)) as gone:
            for column in ("image_id", "neighbor_id"):
                for table in self._tables_with_column(column):
                    self.db.rows(f'DELETE FROM "{table}" WHERE {column} IN (SELECT id FROM {gone})')
            self.db.rows(f"DELETE FROM images WHERE id IN (SELECT id FROM {gone})")
        self.delete_unused_embeddings()
        self.db.bump_generation()

    def delete_unused_embeddings(self) -> int:
        gone = self.db.rows(
            "DELETE FROM embeddings WHERE sha256 NOT IN (SELECT sha256 FROM images) RETURNING 1"
        )
        return len(gone)

    def _tables_with_column(self, column: str) -> list[str]:
        rows = self.db.rows(
            "SELECT table_name FROM information_schema.columns "
            "WHERE column_name = ? AND table_schema = 'main' AND table_name <> 'images'",
            [column],
        )
        return [r[0] for r in rows]

    def has(self, image_id: int) -> bool:
        return bool(self.db.rows("SELECT 1 FROM images WHERE id = ?", [int(image_id)]))

    def id_for_path(self, paths: Sequence[str]) -> int | None:
        """The id of the image at one of `paths` (the lowest if several), None when none."""
        found = self.db.value(
            "SELECT min(id) FROM images WHERE path IN (SELECT unnest(?::VARCHAR[]))", [list(paths)]
        )
        return None if found is None else int(found)

    def content_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64, content keys uint64) of the images that have a vector, ordered by id: a
        key changes when the image's content (so its vector) does. A reader that keeps the FAISS
        index in memory compares two of these to catch up with a writer."""
        table = self.db.arrow(
            "SELECT i.id, hash(i.sha256) FROM images i JOIN embeddings e USING (sha256) "
            "ORDER BY i.id"
        )
        return (
            table.column(0).to_numpy().astype(np.int64, copy=False),
            table.column(1).to_numpy().astype(np.uint64, copy=False),
        )

    def path_table(self) -> pa.Table:
        """(id, path) of every image, ordered by id, as Arrow: for a caller that looks paths up
        many times while the catalog cannot change (read-only)."""
        return self.db.arrow("SELECT id, path FROM images ORDER BY id")

    def skip_reasons(self, limit: int = 20) -> list[dict]:
        """Why files were skipped: each reason with its count and one example path, most
        frequent first."""
        rows = self.db.rows(
            "SELECT reason, count(*) AS n, min(path) FROM skipped "
            "GROUP BY reason ORDER BY n DESC, reason LIMIT ?",
            [limit],
        )
        return [{"reason": r, "count": n, "example": path} for r, n, path in rows]

    def sample(self, size: int, seed: int, source: str | None = None) -> np.ndarray:
        """A seeded sample of `size` image ids (of `source`, when given), sorted; every id when
        there are no more than `size`."""
        ids = self.ids(source)
        if len(ids) <= size:
            return ids
        return np.sort(np.random.default_rng(seed).choice(ids, size, replace=False))


def _int_list(ids: Sequence[int] | np.ndarray) -> list[int]:
    return np.asarray(ids, dtype=np.int64).tolist()
