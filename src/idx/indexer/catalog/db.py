"""The DuckDB connection under the catalog: opening, migrations, transactions, one bulk insert.

One writer at a time (an advisory lock file beside the database gives a clear "busy" message:
lock.py); read-only openers use DuckDB's read-only mode, which refuses any write statement. Nothing outside
`idx.indexer.catalog` imports duckdb: callers use the methods of `Catalog` and its parts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np

from idx import config
from idx.errors import EmptyIndexError, IdxError, IndexBusyError
from idx.indexer.catalog import lock
from idx.indexer.catalog.arrow import Registered, to_arrow

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("idx.schemas") / "migrations"
    found = []
    for item in folder.iterdir():
        name = item.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, item.read_text()))
    return sorted(found)


class Database:
    """`<index>/catalog.duckdb` with migrations applied, shared between one writer and readers.

    DuckDB lets one process hold a file for writing or several for reading, never both. So that
    reads work while a long `add` runs, no one holds the file longer than it needs: a connection
    opens on first use and `release()` closes it. A writer releases between batches
    (`commit_point`) when a reader is waiting or its batches are slow, without the checkpoint a
    close would do (readers replay the write-ahead log); it checkpoints once, at `close`. A reader
    that finds the file held waits, announcing itself in `<index>/readers/`, for up to
    IDX_LOCK_WAIT seconds. Writers exclude each other with a lock file (`write.lock`) held for
    the whole run; `wait` seconds queue behind another writer instead of failing at once.
    """

    #: A writer whose batches take longer than this releases the file after each commit.
    HOLD_S = 0.5

    def __init__(
        self, index_dir: Path, *, read_only: bool = False, wait: float = 0.0, create: bool = True
    ):
        self.index_dir = Path(index_dir)
        self.read_only = read_only
        self.path = self.index_dir / config.CATALOG_FILE
        self._lock_fh: Any = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._last_commit_point = time.monotonic()
        #: Connections opened so far: what a caller cached from one connection of a read-only
        #: catalog holds while this number stays the same (a writer may commit between two).
        self.connections = 0
        self._config: dict[str, Any] = {}
        #: Set from another thread (an interrupted `add` whose commit thread waits to reconnect
        #: behind a reader): a connect still waiting gives up instead of waiting its time out.
        self.give_up_waiting = False
        if (read_only or not create) and not self.path.exists():
            raise EmptyIndexError(
                f"no index at {self.index_dir}; create one with "
                f"`{config.command(self.index_dir, 'add', 'FOLDER')}` "
                "(or point --index / IDX_INDEX at an existing one)"
            )
        if read_only:
            if self._pending_migrations():
                # An index written by an older idx: upgrade it once under the write lock.
                self.release()
                Database(self.index_dir, wait=config.lock_wait()).close()
        else:
            self.index_dir.mkdir(parents=True, exist_ok=True)
            self._take_lock(wait)
            self._migrate()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = self._connect()
            self.connections += 1
        return self._con

    def release(self) -> None:
        """Close the DuckDB connection (it reopens on next use) so that others can open it."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def commit_point(self) -> None:
        """A writer's moment between batches: release the file if a reader waits, or if batches
        take longer than HOLD_S (holding it through the next one would keep readers waiting
        that long); fast batches keep it, as reopening would cost more than it gives."""
        now = time.monotonic()
        slow = now - self._last_commit_point > self.HOLD_S
        self._last_commit_point = now
        if self._con is not None and (slow or lock.readers_waiting(self.index_dir)):
            self.release()

    def limit_user_sql(
        self, *, memory_mb: float, threads: int, file_access: bool, locked: bool = True
    ) -> None:
        """From the next connection on, bound what people's SQL may take, for a read-only
        catalog that runs it: DuckDB's memory_limit and threads, no file but the catalog when
        `file_access` is False (enable_external_access: no read_csv, COPY, ATTACH or extension
        installs; for SQL written by people other than the index's owner, `idx serve`), and
        the configuration locked, so that no statement can lift these."""
        assert self.read_only, "limits are for catalogs that only read"
        self._config.update(memory_limit=f"{memory_mb:g}MB", threads=int(threads))
        if not file_access:
            self._config["enable_external_access"] = False
        if locked:
            self._config["lock_configuration"] = True
        self.release()

    def _take_lock(self, wait: float) -> None:
        self._lock_fh = lock.take_write_lock(self.index_dir, wait)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        # A writer may wait behind a reader for long (a reader holds the file for one query);
        # a reader gives up after IDX_LOCK_WAIT seconds with a clear message.
        wait = config.lock_wait() if self.read_only else max(config.lock_wait(), 600.0)
        deadline = time.monotonic() + wait
        marker: Path | None = None
        try:
            while True:
                try:
                    con = duckdb.connect(
                        str(self.path), read_only=self.read_only, config=dict(self._config)
                    )
                    break
                except duckdb.IOException as exc:
                    if "lock" not in str(exc).lower():
                        raise IdxError(f"cannot open catalog {self.path}: {exc}") from exc
                    if self.give_up_waiting:
                        raise IdxError(
                            f"gave up waiting for a reader to let go of {self.path}: the run "
                            "was interrupted"
                        ) from None
                    if time.monotonic() >= deadline:
                        raise IndexBusyError(
                            lock.busy_message(
                                self.index_dir, f" and held the catalog for {wait:g} s"
                            )
                            + "; raise IDX_LOCK_WAIT to wait longer"
                        ) from None
                    if marker is None and self.read_only:
                        marker = lock.announce_reader(self.index_dir)
                    time.sleep(0.02)
        finally:
            if marker is not None:
                marker.unlink(missing_ok=True)
        if not self.read_only:
            con.execute("PRAGMA disable_checkpoint_on_shutdown")
        return con

    def _pending_migrations(self) -> bool:
        try:
            applied = {r[0] for r in self.rows("SELECT version FROM schema_migrations")}
        except duckdb.CatalogException:
            applied = set()
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
        if self._con is not None and not self.read_only:
            self._con.execute("CHECKPOINT")  # fold the write-ahead log into the file, once
        self.release()
        if self._lock_fh is not None:
            lock.release_write_lock(self._lock_fh)
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

    def insert_rows(
        self,
        table: str,
        columns: dict[str, Any] | pa.Table,
        *,
        on_conflict: str = "",
        returning: str = "",
    ) -> list[tuple]:
        """The one bulk insert: columns (arrays, lists or Arrow arrays; a 2-D array becomes a
        FLOAT[] column, one row per row) through Arrow, in their order; the `returning` columns
        of the rows written (e.g. "id, path"), else [].

        `on_conflict` is appended as is (e.g. "ON CONFLICT DO NOTHING"). Call inside a transaction
        when the insert belongs with other writes.
        """
        data = to_arrow(columns)
        with self.with_table(f"_idx_new_{table}", data) as name:
            names = ", ".join(data.column_names)
            sql = f"INSERT INTO {table} ({names}) SELECT * FROM {name} {on_conflict}"
            if returning:
                return self.con.execute(f"{sql} RETURNING {returning}").fetchall()
            self.con.execute(sql)
            return []

    def update_rows(self, table: str, key: str, columns: dict[str, Any], *, also: str = "") -> None:
        """The one bulk update: for each row of `columns`, set its other columns on the row of
        `table` whose `key` equals its `key` value; `also` adds assignments (e.g.
        "updated_at = current_timestamp")."""
        with self.with_table(f"_idx_set_{table}", columns) as name:
            sets = [f"{c} = n.{c}" for c in columns if c != key] + ([also] if also else [])
            self.con.execute(
                f"UPDATE {table} SET {', '.join(sets)} FROM {name} n WHERE {table}.{key} = n.{key}"
            )

    def with_table(self, name: str, columns: dict[str, Any] | pa.Table) -> Any:
        """Register `columns` (as insert_rows takes them) as a view called `name` for the
        duration of a `with` block."""
        return Registered(self.con, name, to_arrow(columns))

    def with_ids(self, name: str, ids: Sequence[int]) -> Any:
        """Register `ids` as a one-column (id) view for the duration of a `with` block."""
        return self.with_table(name, {"id": np.asarray(list(map(int, ids)), np.int64)})
