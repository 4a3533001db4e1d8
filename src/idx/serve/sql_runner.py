"""People's SQL for `idx serve` (/api/sql and the `where` filter), run in a process of its own.

DuckDB cannot bound everything a statement does: `SELECT list_sum(range(1000000000))` builds
one 8 GB list inside one expression, past DuckDB's memory_limit and deaf to interrupt for a
minute. So the server runs people's SQL in a child process (spawned once, again after a kill)
that is bounded from outside:

- memory: the child's data size is capped (RLIMIT_DATA, IDX_SQL_MEMORY_MB): an allocation past
  it fails the statement, not the machine; DuckDB's own memory_limit is half of it;
- time: DuckDB interrupts the statement at IDX_SQL_TIMEOUT; a statement that does not stop
  within GRACE_S more is killed with its process;
- CPU: DuckDB's threads (IDX_SQL_THREADS), at a lower priority than the server's requests;
  the configuration is locked, and no file but the catalog is readable;
- what comes back: at most IDX_SQL_MAX_ROWS rows and about IDX_SQL_MAX_BYTES.

Searches, neighbours, images and thumbnails never wait for it: the server's own work holds no
lock that SQL holds. One statement runs at a time; the next waits its turn for at most the time
limit and is then told that SQL is busy.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from idx import config
from idx.errors import IdxError, IndexBusyError, UsageError

log = logging.getLogger(__name__)
#: Seconds past the time limit before a statement that ignores DuckDB's interrupt is killed.
GRACE_S = 2.0
#: How much lower the SQL process's CPU priority is than the server's (os.nice).
NICE = 10
#: Seconds a child may take to start (imports, opening the catalog).
START_S = 120.0


@dataclass(frozen=True)
class Limits:
    timeout: float
    memory_mb: float
    threads: int
    max_rows: int
    max_bytes: int

    @classmethod
    def from_config(cls) -> Limits:
        timeout = config.sql_timeout()
        assert timeout is not None
        return cls(
            timeout=timeout,
            memory_mb=config.sql_memory_mb(),
            threads=config.sql_threads(),
            max_rows=config.sql_max_rows(),
            max_bytes=config.sql_max_bytes(),
        )


class SQLRunner:
    """A child process that answers people's SQL over one index, one statement at a time."""

    def __init__(self, index_dir: str | os.PathLike[str], model: dict[str, Any], limits: Limits):
        self.index_dir, self.model, self.limits = Path(index_dir), dict(model), limits
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Connection | None = None

    def start(self) -> SQLRunner:
        """Start the child now (it starts on first use otherwise)."""
        with self._lock:
            self._ensure()
        return self

    def close(self) -> None:
        with self._lock:
            self._stop()

    def rows(self, query: str) -> Any:
        """The Result of one read (idx.indexer.catalog.user_sql), capped by the limits."""
        return self._ask("rows", query)

    def matching_ids(self, **filters: Any) -> Any:
        """The ids a filter keeps (idx.ops.filters.matching_ids), None for no filter."""
        return self._ask("ids", filters)

    # -- the parent's side ------------------------------------------------------------------

    def _ask(self, kind: str, payload: Any) -> Any:
        wait = self.limits.timeout + GRACE_S
        if not self._lock.acquire(timeout=wait):
            raise IndexBusyError(
                f"SQL is busy: other queries held it for {wait:g} s; try again shortly"
            )
        try:
            conn = self._ensure()
            conn.send((kind, payload))
            status, value = self._answer(conn, wait)
            if status == "loading":  # the text model, once, before the statement's time starts
                status, value = self._answer(conn, START_S + wait)
        finally:
            self._lock.release()
        if status == "ok":
            return value
        error_class, message = value
        raise error_class(message)

    def _answer(self, conn: Connection, wait: float) -> tuple[str, Any]:
        """The child's next message within `wait` seconds; else it is killed (a statement that
        ignored DuckDB's interrupt) and the time limit named."""
        if not conn.poll(wait):
            self._stop()
            from idx.ops.sql import timeout_message

            raise UsageError(timeout_message("the query", self.limits.timeout))
        try:
            status, value = conn.recv()
        except (EOFError, OSError):
            self._stop()
            raise UsageError(
                "the query stopped the SQL process (most likely it needed more than the "
                f"memory limit of {self.limits.memory_mb:g} MB, IDX_SQL_MEMORY_MB); narrow "
                "it down"
            ) from None
        return status, value

    def _ensure(self) -> Connection:
        if self._proc is not None and self._proc.is_alive() and self._conn is not None:
            return self._conn
        self._stop()
        context = multiprocessing.get_context("spawn")  # a fork would copy the model's threads
        parent, child = context.Pipe()
        proc = context.Process(
            target=_child,
            args=(child, str(self.index_dir), self.model, self.limits),
            name="idx-sql",
            daemon=True,
        )
        proc.start()
        child.close()
        if not parent.poll(START_S):
            proc.kill()
            raise IdxError(f"the SQL process did not start within {START_S:g} s")
        try:
            status, value = parent.recv()
        except EOFError:
            proc.join()
            raise IdxError(f"the SQL process failed to start (exit code {proc.exitcode})") from None
        if status != "ready":
            proc.join()
            error_class, message = value
            raise error_class(message)
        self._proc, self._conn = proc, parent
        return parent

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=10)
        self._proc = self._conn = None


# -- the child's side -------------------------------------------------------------------------


def _child(conn: Connection, index_dir: str, model: dict[str, Any], limits: Limits) -> None:
    import resource
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which ends us
    os.nice(NICE)  # where cores are few, the server's own requests go first
    cap = int(limits.memory_mb * 2**20)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    try:
        answer = _Answerer(index_dir, model, limits)
    except Exception as exc:
        conn.send(("error", _error(exc)))
        return
    conn.send(("ready", None))
    try:
        while True:
            try:
                kind, payload = conn.recv()
            except EOFError:
                return
            started = time.monotonic()
            try:
                answer.load_texts_for(kind, payload, lambda: conn.send(("loading", None)))
                reply: tuple[str, Any] = ("ok", answer(kind, payload))
            except MemoryError:
                reply = ("error", (UsageError, _memory_message(limits)))
            except Exception as exc:
                reply = ("error", _error(exc))
            log.debug("%s answered in %.3f s", kind, time.monotonic() - started)
            conn.send(reply)
    finally:
        answer.close()


class _Answerer:
    def __init__(self, index_dir: str, model: dict[str, Any], limits: Limits):
        from idx.indexer.index import Index

        self.limits = limits
        self.index = Index(index_dir, read_only=True, **model)
        catalog = self.index.catalog
        catalog.limit_user_sql(
            memory_mb=limits.memory_mb / 2, threads=limits.threads, file_access=False
        )
        catalog.user_sql.timeout = limits.timeout
        self.index.release()
        self._texts_ready = False

    def load_texts_for(self, kind: str, payload: Any, loading: Callable[[], None]) -> None:
        """Before the first statement that calls text_embedding, load what texts need (the
        text tower, or the model), saying so with `loading()`: a one-time load of a second or
        more is not the statement's work, and its time limit would count it."""
        if self._texts_ready or "text_embedding" not in repr(payload).lower():
            return
        if self.index.stored_identity() is not None:
            loading()
            try:
                self.index.texts.warm()
            finally:
                self.index.release()
        self._texts_ready = True

    def __call__(self, kind: str, payload: Any) -> Any:
        from idx.ops.filters import matching_ids
        from idx.ops.sql import run_sql

        try:
            if kind == "rows":
                limits = self.limits
                return run_sql(
                    self.index, payload, max_rows=limits.max_rows, max_bytes=limits.max_bytes
                )
            return matching_ids(self.index, **payload)
        finally:
            self.index.release()  # a writer (`idx add`) may commit between two statements

    def close(self) -> None:
        self.index.close()


def _error(exc: BaseException) -> tuple[type, str]:
    if isinstance(exc, IdxError):
        return type(exc), str(exc)
    log.exception("SQL process failed")
    return IdxError, f"internal error in the SQL process: {type(exc).__name__}: {exc}"


def _memory_message(limits: Limits) -> str:
    return (
        f"the query needed more than the memory limit of {limits.memory_mb:g} MB and was "
        "stopped (IDX_SQL_MEMORY_MB sets it); narrow it down"
    )
