"""The DuckDB catalog: the source of truth for images, vectors and every analysis result.

One writer at a time (an advisory lock file beside the database gives a clear "busy" message);
read-only openers use DuckDB's read-only mode, which refuses any write statement.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from idx import config
from idx.errors import EmptyIndexError, IdxError, IndexBusyError

log = logging.getLogger(__name__)


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("idx.schemas") / "migrations"
    found = []
    for item in folder.iterdir():
        name = item.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, item.read_text()))
    return sorted(found)


def _busy_message(index_dir: Path, detail: str = "") -> str:
    pid = ""
    try:
        pid = (index_dir / config.LOCK_FILE).read_text().strip()
    except OSError:
        pass
    who = f" (pid {pid})" if pid else ""
    return (
        f"index is busy: another idx process{who} is using {index_dir}{detail}; wait for it to "
        "finish, or use another --index"
    )


class Catalog:
    """A DuckDB connection to `<index>/catalog.duckdb` with migrations applied."""

    def __init__(self, index_dir: Path, *, read_only: bool = False):
        self.index_dir = Path(index_dir)
        self.read_only = read_only
        self.path = self.index_dir / config.CATALOG_FILE
        self._lock_fh: Any = None
        if read_only:
            if not self.path.exists():
                raise EmptyIndexError(
                    f"no index at {self.index_dir}; create one with `idx add FOLDER` "
                    "(or point --index / IDX_INDEX at an existing one)"
                )
            if self._pending_migrations_ro():
                # An index written by an older idx: upgrade it once under the write lock.
                Catalog(self.index_dir).close()
        else:
            self.index_dir.mkdir(parents=True, exist_ok=True)
            self._take_lock()
        self.con = self._connect()
        if not read_only:
            self._migrate()

    def _take_lock(self) -> None:
        fh = open(self.index_dir / config.LOCK_FILE, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise IndexBusyError(_busy_message(self.index_dir)) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock_fh = fh

    def _connect(self) -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(str(self.path), read_only=self.read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise IndexBusyError(_busy_message(self.index_dir, " for writing")) from None
            raise IdxError(f"cannot open catalog {self.path}: {exc}") from exc

    def _pending_migrations_ro(self) -> bool:
        con = self._connect()
        try:
            applied = {
                r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()
            }
        except duckdb.CatalogException:
            applied = set()
        finally:
            con.close()
        return any(v not in applied for v, _, _ in _migrations())

    def _migrate(self) -> None:
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
            "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
        )
        applied = {
            r[0] for r in self.con.execute("SELECT version FROM schema_migrations").fetchall()
        }
        for version, name, sql in _migrations():
            if version in applied:
                continue
            with self.transaction():
                self.con.execute(sql)
                self.con.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name]
                )
            log.info("applied migration %s", name)

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def close(self) -> None:
        if getattr(self, "con", None) is not None:
            self.con.close()
            self.con = None  # type: ignore[assignment]
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    # -- settings ---------------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        rows = self.con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchall()
        return rows[0][0] if rows else default

    def set_meta(self, key: str, value: str) -> None:
        self.con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])

    def generation(self) -> int:
        """Counter bumped by every commit that changes which vector an image id has."""
        return int(self.get_meta("vectors_generation", "0") or 0)

    def bump_generation(self) -> int:
        gen = self.generation() + 1
        self.set_meta("vectors_generation", str(gen))
        return gen

    # -- queries ----------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple]]:
        cur = self.con.execute(sql, params or [])
        columns = [d[0] for d in cur.description] if cur.description else []
        return columns, cur.fetchall()

    def count_images(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM images").fetchall()[0][0])

    def vectors(
        self, where: str = "", params: Sequence[Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64 [n], matrix float32 [n, d]) of the images, ordered by id."""
        sql = (
            "SELECT i.id, e.vector FROM images i JOIN embeddings e USING (sha256) "
            f"{where} ORDER BY i.id"
        )
        return arrow_to_matrix(self.con.sql(sql, params=params or None).to_arrow_table())

    def insert_embeddings(self, shas: Sequence[str], matrix: np.ndarray) -> None:
        dim = matrix.shape[1]
        flat = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).ravel())
        offsets = pa.array(np.arange(0, len(shas) * dim + 1, dim, dtype=np.int32))
        batch = pa.table({"sha256": list(shas), "vector": pa.ListArray.from_arrays(offsets, flat)})
        self.con.register("_idx_new_embeddings", batch)
        try:
            self.con.execute(
                "INSERT OR REPLACE INTO embeddings (sha256, vector) "
                "SELECT sha256, vector FROM _idx_new_embeddings"
            )
        finally:
            self.con.unregister("_idx_new_embeddings")

    def delete_images(self, ids: Sequence[int]) -> None:
        """Delete images, every row of another table that refers to them by image_id, and the
        vectors no image uses any more; bumps the generation (the FAISS file is now behind).
        Call inside a transaction."""
        if not ids:
            return
        id_table = pa.table({"id": pa.array(list(ids), pa.int64())})
        self.con.register("_idx_gone", id_table)
        try:
            for table in self.tables_with_column("image_id"):
                self.con.execute(
                    f'DELETE FROM "{table}" WHERE image_id IN (SELECT id FROM _idx_gone)'
                )
            for table in self.tables_with_column("neighbor_id"):
                self.con.execute(
                    f'DELETE FROM "{table}" WHERE neighbor_id IN (SELECT id FROM _idx_gone)'
                )
            self.con.execute("DELETE FROM images WHERE id IN (SELECT id FROM _idx_gone)")
        finally:
            self.con.unregister("_idx_gone")
        self.delete_orphan_embeddings()
        self.bump_generation()

    def delete_orphan_embeddings(self) -> int:
        row = self.con.execute(
            "DELETE FROM embeddings WHERE sha256 NOT IN (SELECT sha256 FROM images) RETURNING 1"
        ).fetchall()
        return len(row)

    def tables_with_column(self, column: str) -> list[str]:
        rows = self.con.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE column_name = ? AND table_schema = 'main' AND table_name <> 'images'",
            [column],
        ).fetchall()
        return [r[0] for r in rows]


def arrow_to_matrix(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    ids = table.column(0).to_numpy().astype(np.int64, copy=False)
    if table.num_rows == 0:
        return ids, np.zeros((0, 0), dtype=np.float32)
    vectors = table.column(1).combine_chunks()
    flat = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return ids, flat.reshape(table.num_rows, -1)
