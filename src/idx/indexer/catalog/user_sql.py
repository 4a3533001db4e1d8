"""SQL that people write (`idx sql`, `--where`, `/api/sql`): only reads, each statement on a
connection of its own, under a time limit, with caps on the rows and bytes it returns, and
functions that know vectors.

What is allowed is judged by the statement type DuckDB parses, not by the text: one SELECT
(with WITH, VALUES, FROM-first, DESCRIBE, SHOW, SUMMARIZE, PIVOT with its values listed) or
an EXPLAIN of one. Every statement runs on a fresh cursor of the catalog's connection that is
closed after it, so no TEMP object, session setting, variable or transaction outlives it, and
idx's own queries never run where people's SQL ran. The memory and thread limits (DuckDB's
memory_limit and threads) are set on the connection, and locked, by `Database.limit_user_sql`.

After `register_vector_functions(text_fn, dim)`, each statement also sees:

- `text_embedding(text)`: the text encoded by the index's model, FLOAT[dim];
- `image_embedding(id)`: the stored vector of image `id`, FLOAT[dim] (NULL for an unknown id);
- `image_vectors(id, vector)`: every image's stored vector as a fixed-size FLOAT[dim] array,

so `array_cosine_similarity(v.vector, text_embedding('a red apple'))` ranks rows in plain SQL.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from idx.errors import UsageError

if TYPE_CHECKING:
    from idx.indexer.catalog.db import Database

TextFn = Callable[[str], Iterable[float]]  # the text's dim floats (a list, a numpy row)

#: What people's SQL may be, by DuckDB's statement type: reads only.
READ_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
ALLOWED = "one SELECT (or WITH, VALUES, FROM, DESCRIBE, SHOW, SUMMARIZE), or EXPLAIN of one"
#: EXPLAIN [ANALYZE] [(options)]: what follows is judged on its own (ANALYZE runs it).
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?:\([^)]*\)\s*)?", re.IGNORECASE)
FETCH_CHUNK = 256


@dataclass(frozen=True)
class Result:
    """What one statement returned: column names (made unique: `id`, `id_2`), rows, and which
    cap cut them short, if any ("rows" or "bytes")."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    cut: str | None = None

    @property
    def truncated(self) -> bool:
        return self.cut is not None


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
    if isinstance(exc, duckdb.OutOfMemoryException):
        return UsageError(
            f"{what}: the query needs more memory than SQL may use here ({text.splitlines()[0]}); "
            "narrow it down, or raise IDX_SQL_MEMORY_MB"
        )
    return UsageError(f"{what}: {text}")


@contextmanager
def time_limit(
    con: duckdb.DuckDBPyConnection, seconds: float | None, what: str = "the query"
) -> Iterator[None]:
    """Interrupt what runs on `con` after `seconds` (None: no limit); an interrupted statement
    raises UsageError naming the limit."""
    if not seconds:
        yield
        return
    timer = threading.Timer(seconds, con.interrupt)
    timer.start()
    try:
        yield
    except duckdb.InterruptException:
        raise UsageError(timeout_message(what, seconds)) from None
    finally:
        timer.cancel()


def timeout_message(what: str, seconds: float) -> str:
    return (
        f"{what} ran longer than the time limit of {seconds:g} s and was stopped "
        "(IDX_SQL_TIMEOUT sets it); narrow it down, e.g. with WHERE or LIMIT"
    )


def statement_types(con: duckdb.DuckDBPyConnection, sql: str, what: str) -> list[Any]:
    try:
        return [s.type for s in con.extract_statements(sql)]
    except duckdb.Error as exc:
        raise user_error(exc, f"{what} does not parse") from None


def one_statement(con: duckdb.DuckDBPyConnection, sql: str, what: str) -> None:
    """UsageError unless `sql` parses as exactly one statement (no `; DROP ...` riders)."""
    if len(statement_types(con, sql, what)) != 1:
        raise UsageError(f"{what} must be one SQL expression, without ';'")


def check_read(con: duckdb.DuckDBPyConnection, sql: str, what: str = "the SQL") -> None:
    """UsageError unless `sql` is one statement that only reads (READ_STATEMENTS; the statement
    under an EXPLAIN too, as EXPLAIN ANALYZE runs it)."""
    if not sql.strip():
        raise UsageError(f"{what} is empty; give a statement such as SELECT count(*) FROM images")
    types = statement_types(con, sql, what)
    if len(types) != 1:
        raise UsageError(f"{what} must be one statement, not {len(types)}; allowed: {ALLOWED}")
    kind = types[0]
    if kind == duckdb.StatementType.EXPLAIN:
        return check_read(con, _EXPLAIN.sub("", sql, count=1), what)
    if kind not in READ_STATEMENTS:
        name = str(kind).rsplit(".", 1)[-1]
        raise UsageError(
            f"{what} is a {name} statement, and SQL here is read-only: allowed is {ALLOWED}; "
            "change the index through idx commands"
        )


def unique_names(names: Sequence[str]) -> list[str]:
    """Column names with repeats numbered (`id`, `id_2`), so that rows as objects keep them."""
    seen: set[str] = set()
    out = []
    for name in names:
        unique, n = name, 1
        while unique in seen:
            n += 1
            unique = f"{name}_{n}"
        seen.add(unique)
        out.append(unique)
    return out


def value_size(value: Any) -> int:
    """About how many bytes a value takes in an answer (text and blobs by length)."""
    if isinstance(value, (str, bytes)):
        return len(value) + 2
    if isinstance(value, dict):
        return sum(value_size(k) + value_size(v) for k, v in value.items()) + 2
    if isinstance(value, (list, tuple)):
        return sum(value_size(v) for v in value) + 2
    return 8


class UserSQL:
    def __init__(self, db: Database):
        self.db = db
        #: Seconds people's SQL may run (`rows`, filters' `where`); None: no limit (idx serve
        #: sets IDX_SQL_TIMEOUT).
        self.timeout: float | None = None
        self._text_fn: TextFn | None = None
        self._dim = 0
        self._functions = -1  # the connection (Database.connections) text_embedding exists on

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection of its own for one statement of people's SQL, with the vector functions,
        closed afterwards (with whatever the statement left on it)."""
        con = self.db.con
        self._prepare(con)
        cur = con.cursor()
        try:
            if self._text_fn is not None:
                vector = f"e.vector::FLOAT[{self._dim}]"
                cur.execute(
                    f"CREATE TEMP VIEW image_vectors AS SELECT i.id, {vector} AS vector "
                    "FROM images i JOIN embeddings e USING (sha256)"
                )
                cur.execute(
                    f"CREATE TEMP MACRO image_embedding(_idx_image) AS (SELECT {vector} "
                    "FROM images i JOIN embeddings e USING (sha256) WHERE i.id = _idx_image)"
                )
            yield cur
        finally:
            cur.close()

    def rows(
        self,
        sql: str,
        max_rows: int | None = None,
        timeout: float | None = None,
        max_bytes: int | None = None,
    ) -> Result:
        """Run one read (check_read): its columns and rows, at most `max_rows` of them and about
        `max_bytes`. DuckDB's errors, a refused statement and a time-out (default:
        `self.timeout`) become UsageError."""
        timeout = self.timeout if timeout is None else timeout
        check_read(self.db.con, sql)
        try:
            with self.cursor() as cur, time_limit(cur, timeout):
                cur.execute(sql)
                columns = unique_names([d[0] for d in cur.description or []])
                return Result(columns, *_fetch(cur, max_rows, max_bytes))
        except duckdb.Error as exc:
            raise user_error(exc) from None

    @property
    def has_vector_functions(self) -> bool:
        return self._text_fn is not None

    def register_vector_functions(self, text_fn: TextFn, dim: int) -> None:
        """Make text_embedding, image_embedding and image_vectors (see the module) exist for
        `rows`; `text_fn(text)` returns the text's dim floats."""
        self._text_fn, self._dim = text_fn, int(dim)
        self._functions = -1

    def _prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        """text_embedding on the current connection (once per connection; its cursors see it)."""
        if self._text_fn is None or self._functions == self.db.connections:
            return
        con.create_function(
            "text_embedding",
            self._text_embedding,
            ["VARCHAR"],
            f"FLOAT[{self._dim}]",
            side_effects=False,
        )
        self._functions = self.db.connections

    def _text_embedding(self, text: str) -> list[float]:
        assert self._text_fn is not None
        return [float(v) for v in self._text_fn(text)]


def _fetch(
    cur: duckdb.DuckDBPyConnection, max_rows: int | None, max_bytes: int | None
) -> tuple[list[tuple[Any, ...]], str | None]:
    """Rows until the statement ends or a cap is reached (then which: "rows" or "bytes")."""
    rows: list[tuple[Any, ...]] = []
    size = 0
    while True:
        want = FETCH_CHUNK if max_rows is None else min(FETCH_CHUNK, max_rows + 1 - len(rows))
        chunk = cur.fetchmany(want)
        for row in chunk:
            if max_rows is not None and len(rows) == max_rows:
                return rows, "rows"
            size += value_size(row)
            if max_bytes is not None and size > max_bytes:
                return rows, "bytes"
            rows.append(row)
        if len(chunk) < want:
            return rows, None
