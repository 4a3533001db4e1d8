"""The DuckDB connection under the catalog: lock, migrations, transactions, one bulk insert.

One writer at a time (an advisory lock file beside the database gives a clear "busy" message);
read-only openers use DuckDB's read-only mode, which refuses any write statement. Nothing outside
`idx.indexer.catalog` imports duckdb: callers use the methods of `Catalog` and its parts.
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
from idx.errors import EmptyIndexError, IdxError, IndexBusyError, UsageError

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


class Database:
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
                Database(self.index_dir).close()
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

    # -- statements -------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple]]:
        """Run one statement (the user's SQL, or a part's own); (column names, rows)."""
        cur = self.con.execute(sql, params or [])
        columns = [d[0] for d in cur.description] if cur.description else []
        return columns, cur.fetchall()

    def rows(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def value(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """The first column of the first row (None when there is no row)."""
        found = self.con.execute(sql, params or []).fetchall()
        return found[0][0] if found else None

    def arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        return self.con.sql(sql, params=params or None).to_arrow_table()

    def insert_rows(self, table: str, columns: dict[str, Any], *, on_conflict: str = "") -> None:
        """The one bulk insert: columns (arrays, lists or Arrow arrays; a 2-D array becomes a
        FLOAT[] column, one row per row) through Arrow.

        `on_conflict` is appended as is (e.g. "ON CONFLICT DO NOTHING"). Call inside a transaction
        when the insert belongs with other writes.
        """
        name = f"_idx_new_{table}"
        if not isinstance(columns, pa.Table):
            columns = pa.table(
                {
                    c: list_column(v) if isinstance(v, np.ndarray) and v.ndim == 2 else v
                    for c, v in columns.items()
                }
            )
        self.con.register(name, columns)
        try:
            names = ", ".join(columns.column_names)
            self.con.execute(f"INSERT INTO {table} ({names}) SELECT * FROM {name} {on_conflict}")
        finally:
            self.con.unregister(name)

    def with_ids(self, name: str, ids: Sequence[int]) -> Any:
        """Register `ids` as a one-column (id) view for the duration of a `with` block."""
        return _Registered(
            self.con, name, pa.table({"id": pa.array(list(map(int, ids)), pa.int64())})
        )

    def user_query(self, sql: str) -> tuple[list[str], list[tuple]]:
        """The user's own statement (`idx sql`): (column names, rows); DuckDB's errors and a
        refused write on a read-only catalog become UsageError (exit 2) with the reason."""
        try:
            return self.query(sql)
        except duckdb.InvalidInputException as exc:
            if "read-only" in str(exc).lower() or "read only" in str(exc).lower():
                raise UsageError(
                    "idx sql is read-only: write statements are refused; change the index "
                    "through idx commands"
                ) from None
            raise UsageError(f"SQL error: {exc}") from None
        except duckdb.Error as exc:
            raise UsageError(f"SQL error: {exc}") from None


class _Registered:
    def __init__(self, con: Any, name: str, table: pa.Table):
        self.con, self.name, self.table = con, name, table

    def __enter__(self) -> str:
        self.con.register(self.name, self.table)
        return self.name

    def __exit__(self, *exc: object) -> None:
        self.con.unregister(self.name)


def list_column(matrix: np.ndarray) -> pa.ListArray:
    """Rows of a float matrix as an Arrow list column (DuckDB FLOAT[])."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    n, d = matrix.shape if matrix.ndim == 2 else (0, 0)
    offsets = pa.array(np.arange(0, n * d + 1, d or 1, dtype=np.int32)[: n + 1])
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.ravel()))


def arrow_to_matrix(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64 [n], matrix float32 [n, d]) from a two-column (id, FLOAT[]) Arrow table."""
    ids = table.column(0).to_numpy().astype(np.int64, copy=False)
    if table.num_rows == 0:
        return ids, np.zeros((0, 0), dtype=np.float32)
    vectors = table.column(1).combine_chunks()
    flat = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return ids, flat.reshape(table.num_rows, -1)
