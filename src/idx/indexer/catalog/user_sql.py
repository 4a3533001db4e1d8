"""SQL that people write (`idx sql`, `--where`, `/api/sql`): errors as UsageError, a row cap, a
time limit, and functions that know vectors.

For `rows`, after `register_vector_functions(text_fn, dim)`:

- `text_embedding(text)`: the text encoded by the index's model, FLOAT[dim];
- `image_embedding(id)`: the stored vector of image `id`, FLOAT[dim] (NULL for an unknown id);
- `image_vectors(id, vector)`: every image's stored vector as a fixed-size FLOAT[dim] array,

so `array_cosine_similarity(v.vector, text_embedding('a red apple'))` ranks rows in plain SQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import duckdb

from idx.errors import UsageError

if TYPE_CHECKING:
    from idx.indexer.catalog.db import Database

TextFn = Callable[[str], Sequence[float]]


def user_error(exc: Exception, what: str = "SQL error") -> UsageError:
    """DuckDB's error in someone's SQL as a UsageError carrying DuckDB's reason."""
    text = str(exc).strip()
    lower = text.lower()
    if isinstance(exc, duckdb.InvalidInputException) and (
        "read-only" in lower or "read only" in lower
    ):
        return UsageError(
            "the SQL is read-only: write statements are refused; change the index through idx "
            "commands"
        )
    if isinstance(exc, duckdb.PermissionException):
        return UsageError(f"{what}: {text.splitlines()[0]} (SQL here reads the catalog only)")
    return UsageError(f"{what}: {text}")


@contextmanager
def time_limit(db: Database, seconds: float | None, what: str = "the query") -> Iterator[None]:
    """Interrupt what runs on the catalog's connection inside after `seconds` (None: no limit);
    an interrupted statement raises UsageError naming the limit."""
    if not seconds:
        yield
        return
    timer = threading.Timer(seconds, db.con.interrupt)
    timer.start()
    try:
        yield
    except duckdb.InterruptException:
        raise UsageError(
            f"{what} ran longer than the time limit of {seconds:g} s and was stopped "
            "(IDX_SQL_TIMEOUT sets it); narrow it down, e.g. with WHERE or LIMIT"
        ) from None
    finally:
        timer.cancel()


def one_statement(db: Database, sql: str, what: str) -> None:
    """UsageError unless `sql` parses as exactly one statement (no `; DROP ...` riders)."""
    try:
        count = len(db.con.extract_statements(sql))
    except duckdb.Error as exc:
        raise user_error(exc, f"bad {what}") from None
    if count != 1:
        raise UsageError(f"{what} must be one SQL expression, without ';'")


class UserSQL:
    def __init__(self, db: Database):
        self.db = db
        #: Seconds people's SQL may run (`rows`, filters' `where`); None: no limit (idx serve
        #: sets IDX_SQL_TIMEOUT).
        self.timeout: float | None = None
        self._text_fn: TextFn | None = None
        self._dim = 0
        self._prepared = -1  # the connection (Database.connections) the functions exist on

    def rows(
        self, sql: str, max_rows: int | None = None, timeout: float | None = None
    ) -> tuple[list[str], list[tuple], bool]:
        """Run one statement: (column names, at most `max_rows` rows, whether rows were left
        out). DuckDB's errors, a refused write and a time-out (default: `self.timeout`) become
        UsageError."""
        timeout = self.timeout if timeout is None else timeout
        if not sql.strip():
            raise UsageError(
                "the SQL is empty; give a statement such as SELECT count(*) FROM images"
            )
        one_statement(self.db, sql, "the SQL")
        self._prepare()
        try:
            with time_limit(self.db, timeout):
                cur = self.db.con.execute(sql)
                columns = [d[0] for d in cur.description] if cur.description else []
                if max_rows is None:
                    return columns, cur.fetchall(), False
                rows = cur.fetchmany(max_rows + 1)
        except duckdb.Error as exc:
            raise user_error(exc) from None
        return columns, rows[:max_rows], len(rows) > max_rows

    @property
    def has_vector_functions(self) -> bool:
        return self._text_fn is not None

    def register_vector_functions(self, text_fn: TextFn, dim: int) -> None:
        """Make text_embedding, image_embedding and image_vectors (see the module) exist for
        `rows`; `text_fn(text)` returns the text's dim floats."""
        self._text_fn, self._dim = text_fn, int(dim)
        self._prepared = -1

    def _prepare(self) -> None:
        """Create the vector functions on the current connection (once per connection)."""
        con = self.db.con
        if self._text_fn is None or self._prepared == self.db.connections:
            return
        vector = f"e.vector::FLOAT[{self._dim}]"
        con.create_function(
            "text_embedding",
            self._text_embedding,
            ["VARCHAR"],
            f"FLOAT[{self._dim}]",
            side_effects=False,
        )
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW image_vectors AS SELECT i.id, {vector} AS vector "
            "FROM images i JOIN embeddings e USING (sha256)"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP MACRO image_embedding(_idx_image) AS (SELECT {vector} "
            "FROM images i JOIN embeddings e USING (sha256) WHERE i.id = _idx_image)"
        )
        self._prepared = self.db.connections

    def _text_embedding(self, text: str) -> list[float]:
        assert self._text_fn is not None
        return [float(v) for v in self._text_fn(text)]
