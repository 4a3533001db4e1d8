"""add's background commits (indexer.ingest.committer): in order, one at a time, errors never lost,
and the commit under way always finishes before add returns or fails."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import pytest

from idx.indexer.ingest.committer import Committer


def test_commits_run_in_order_one_at_a_time_off_the_callers_thread():
    done: list[tuple[int, str]] = []
    running = threading.Semaphore(1)  # a second commit at once would find it taken

    def commit(n: int) -> None:
        assert running.acquire(blocking=False), "two commits ran at once"
        time.sleep(0.01)
        done.append((n, threading.current_thread().name))
        running.release()

    committer = Committer()
    for n in range(5):
        committer.submit(lambda n=n: commit(n))
    committer.close()
    assert [n for n, _ in done] == list(range(5))
    assert all(name.startswith("idx-commit") for _, name in done)
    assert committer.busy >= 0.05


def test_a_failed_commit_is_raised_at_the_next_hand_over_and_nothing_after_it_runs():
    ran: list[int] = []

    def fail() -> None:
        raise OSError("disk full")

    committer = Committer()
    committer.submit(fail)
    with pytest.raises(OSError, match="disk full"):
        committer.submit(lambda: ran.append(1))
    committer.close(failing=True)
    assert ran == []


def _slow(seconds: float) -> tuple[Callable[[], None], threading.Event]:
    """A commit that takes `seconds`, and the event it sets when it is done."""
    finished = threading.Event()

    def commit() -> None:
        time.sleep(seconds)
        finished.set()

    return commit, finished


def test_close_waits_for_the_commit_under_way_and_raises_its_error_unless_failing():
    slow, finished = _slow(0.2)
    committer = Committer()
    committer.submit(slow)
    committer.close(failing=True)  # e.g. Ctrl-C in add: the batch handed over is stored whole
    assert finished.is_set()

    def fail() -> None:
        raise RuntimeError("constraint violated")

    committer = Committer()
    committer.submit(fail)
    with pytest.raises(RuntimeError, match="constraint violated"):
        committer.close()


def test_ctrl_c_while_closing_still_waits_for_the_commit_under_way():
    # add uses the catalog right after close: a wait cut short would let it in mid-commit
    slow, finished = _slow(0.5)
    committer = Committer()
    committer.submit(slow)
    threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        committer.close()
    assert finished.is_set()
    assert committer.waited >= 0.3  # the wait is counted, Ctrl-C or not
