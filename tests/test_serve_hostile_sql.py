"""A hostile client's SQL against a real `idx serve` on loopback (issue 21, findings 1, 2, 4, 5
and the SQL part of 9): every statement that could leave state behind, change settings or take
the machine is refused or bounded, the next client sees the index as it is, and searches do not
wait behind a slow query."""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.serving import Server, prepare_index

# A generous time limit: on a starved machine a statement in the SQL process (at nice 10) may
# take seconds, and one meant to meet the memory limit must not meet the time limit first. Only
# the test of the time limit uses a short one (its own server).
LIMITS = {
    "IDX_SQL_TIMEOUT": "60",
    "IDX_SQL_MEMORY_MB": "1024",
    "IDX_SQL_MAX_ROWS": "50",
    "IDX_SQL_MAX_BYTES": "20000",
}
SHORT_LIMITS = {**LIMITS, "IDX_SQL_TIMEOUT": "2"}


def _serving(index_dir: Path, env: dict[str, str]) -> Iterator[Server]:
    server = Server(index_dir, env=env).start()
    try:
        yield server
    finally:
        assert server.stop() == 0, server.stderr()
    assert "Traceback" not in server.stderr(), server.stderr()


@pytest.fixture(scope="module")
def site(tmp_path_factory, indexed, tiny_model):
    root = tmp_path_factory.mktemp("hostile-sql")
    yield from _serving(prepare_index(indexed, root / "index", tiny_model), LIMITS)


@pytest.fixture(scope="module")
def hurried(tmp_path_factory, indexed):
    """A server whose SQL time limit is 2 s."""
    index_dir = tmp_path_factory.mktemp("hostile-sql-hurried") / "index"
    shutil.copytree(indexed, index_dir)
    yield from _serving(index_dir, SHORT_LIMITS)


def _sql(server: Server, query: str) -> tuple[int, dict]:
    return server.json("/api/sql?" + urllib.parse.urlencode({"q": query}))


def _sql_process(server: Server) -> psutil.Process:
    """The server's SQL process (the child at a lower priority), started if it was not."""
    assert _sql(server, "SELECT 1 AS n")[0] == 200
    (runner,) = [
        p for p in psutil.Process(server.proc.pid).children(recursive=True) if p.nice() > 0
    ]
    return runner


def _paths(server: Server) -> dict[int, str]:
    status, out = _sql(server, "SELECT id, path FROM catalog.main.images ORDER BY id")
    assert status == 200, out
    return {r["id"]: r["path"] for r in out["rows"]}


def test_no_statement_leaves_state_for_the_next_request(site):
    """Finding 1 and 2: a TEMP view over `images`, a macro shadowing lower(), a search_path, a
    setting or an open transaction would persist on a shared connection and poison the
    server's own queries (serving /etc/passwd as image 1) and every other client."""
    server = site
    paths = _paths(server)
    first = min(paths)
    original = server.request(f"/api/images/{first}")[2]
    attacks = [
        "CREATE TEMP VIEW images AS SELECT * REPLACE ('/etc/passwd' AS path) "
        "FROM catalog.main.images",
        "CREATE OR REPLACE TEMP MACRO lower(x) AS 'pwned'",
        "SET search_path='temp'",
        "SET max_expression_depth=2",
        "SET GLOBAL threads=64",
        "RESET memory_limit",
        "SET VARIABLE x = 1",
        "BEGIN TRANSACTION",
        "PRAGMA enable_profiling",
        "CALL checkpoint()",
        "EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1",
        "COPY (SELECT 1) TO '/tmp/idx-hostile.csv'",
        "SELECT 1; CREATE TEMP VIEW images AS SELECT 1",
    ]
    for attack in attacks:
        status, out = _sql(server, attack)
        refused = "read-only" in out["error"] or "one statement" in out["error"]
        assert status == 400 and refused, (attack, status, out)
    assert not Path("/tmp/idx-hostile.csv").exists()
    # what the server's own queries read is the catalog as it is
    status, headers, body = server.request(f"/api/images/{first}")
    assert status == 200 and body == original
    assert _paths(server) == paths
    status, out = _sql(server, "SELECT lower('ABC') AS l, 1 + (2 * (3 + 4)) AS deep")
    assert status == 200 and out["rows"] == [{"l": "abc", "deep": 15}]
    settings = (
        "SELECT current_setting('threads') AS threads, current_setting('search_path') AS sp, "
        "current_setting('lock_configuration') AS locked"
    )
    status, out = _sql(server, settings)
    assert out["rows"] == [{"threads": 1, "sp": "", "locked": True}], out
    assert server.json("/api/search?text=red+circles&k=3")[0] == 200


def test_reads_of_every_kind_are_allowed(site):
    for query in (
        "DESCRIBE images",
        "SHOW TABLES",
        "SUMMARIZE SELECT id, bytes FROM images",
        "EXPLAIN SELECT count(*) FROM images",
        "WITH n AS (SELECT count(*) AS c FROM images) SELECT c FROM n",
        "FROM images SELECT count(*) AS c",
        "SELECT * FROM pragma_table_info('images')",
    ):
        status, out = _sql(site, query)
        assert status == 200 and out["rows"], (query, out)


def test_one_query_cannot_take_the_machine(site):
    """Finding 4: `list_sum(range(1e9))` builds one 8 GB list in one expression: past DuckDB's
    memory_limit and deaf to its interrupt (72 s and 20.9 GB here before). It is refused by
    the SQL process's memory cap, and neither the server nor that process grows past it."""
    server = site
    server_proc = psutil.Process(server.proc.pid)
    for query in (
        "SELECT list_sum(range(1000000000)) AS s",
        "SELECT max(length(repeat('x', 2000000000))) AS n",
    ):
        status, out = _sql(server, query)
        assert status == 400, out
        assert "memory" in out["error"] and "IDX_SQL_MEMORY_MB" in out["error"], out
    rss = [server_proc.memory_info().rss] + [
        child.memory_info().rss for child in server_proc.children(recursive=True)
    ]
    assert max(rss) < 1.5 * 2**30, rss
    # a `where` filter is people's SQL too
    status, out = server.json(
        "/api/search?"
        + urllib.parse.urlencode({"text": "x", "where": "list_sum(range(1000000000)) > 0"})
    )
    assert status == 400 and "memory" in out["error"], out
    assert _sql(server, "SELECT count(*) AS n FROM images")[1]["rows"] == [{"n": 48}]


def test_a_statement_that_ignores_the_interrupt_is_killed_at_the_limit(hurried):
    """A statement deaf to DuckDB's interrupt (one long expression, e.g. list_distinct over 30M
    numbers: 20 s here) is stopped with its process once the time limit and the grace period
    are past, and the next statement gets a new process. Deterministic here: the SQL process
    is frozen (SIGSTOP), so it answers nothing until it is killed."""
    server = hurried
    runner = _sql_process(server)
    runner.suspend()
    started = time.monotonic()
    status, out = _sql(server, "SELECT length(list_distinct(range(30000000))) AS n")
    took = time.monotonic() - started
    assert status == 400 and "time limit of 2 s" in out["error"], out
    # The kill comes at 4 s (limit and grace), never sooner; what may follow it is killing a
    # frozen process and one answer, which a loaded machine does in far less than 6 s more.
    assert 2 <= took < 10, took
    assert not runner.is_running() or runner.status() == psutil.STATUS_ZOMBIE
    assert _sql(server, "SELECT 41 + 1 AS n")[1]["rows"] == [{"n": 42}]


def test_searches_do_not_wait_behind_slow_sql(site):
    """Finding 5: one lock served every request. Now people's SQL runs elsewhere: while a slow
    statement is in the SQL process, searches, neighbours and thumbnails are answered, and the
    statement is not. Ordered, not timed: the SQL process is seen at work on it, then frozen,
    so it answers nothing until the test lets it go."""
    server = site
    runner = _sql_process(server)
    idle = sum(runner.cpu_times()[:2])
    slow = "SELECT count(*) FROM range(100000000000) a, range(1000) b"
    answers: dict[str, tuple[int, dict]] = {}
    thread = threading.Thread(target=lambda: answers.update(sql=_sql(server, slow)))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while sum(runner.cpu_times()[:2]) < idle + 0.05:  # an idle SQL process uses no CPU
            assert time.monotonic() < deadline and not answers, answers
            time.sleep(0.01)
        runner.suspend()
        for path in ("/api/search?text=red+circles&k=5", "/api/neighbors/1?k=5", "/api/thumbs/2"):
            status, _, _ = server.request(path)
            assert status == 200, path
            assert not answers, f"the slow statement was answered before {path}: {answers}"
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            runner.kill()  # the statement's answer: its process stopped (a 400)
        thread.join()
    assert answers["sql"][0] == 400, answers
    assert _sql(server, "SELECT 41 + 1 AS n")[1]["rows"] == [{"n": 42}]  # a new SQL process


def test_answers_are_capped_and_every_type_is_json(site):
    """Finding 9: an INTERVAL column was a 500; repeated column names lost a column."""
    server = site
    status, out = _sql(server, "SELECT range AS n FROM range(1000)")
    assert status == 200 and len(out["rows"]) == 50 and out["cut_by"] == "rows", out
    status, out = _sql(server, "SELECT repeat('x', 1000) AS s FROM range(100)")
    assert status == 200 and out["cut_by"] == "bytes" and 10 <= len(out["rows"]) < 30, out
    status, out = _sql(
        server,
        "SELECT 1 AS a, 2 AS a, INTERVAL 3 DAY AS i, INTERVAL '90 minutes' AS m, "
        "'8f3a1b1c-0000-4000-8000-000000000000'::UUID AS u, TIME '10:30:00' AS t, 2.50::DECIMAL(4,2) AS d",
    )
    assert status == 200, out
    assert out["columns"] == ["a", "a_2", "i", "m", "u", "t", "d"]
    assert out["rows"] == [
        {
            "a": 1,
            "a_2": 2,
            "i": "P3D",
            "m": "PT1H30M",
            "u": "8f3a1b1c-0000-4000-8000-000000000000",
            "t": "10:30:00",
            "d": 2.5,
        }
    ]
