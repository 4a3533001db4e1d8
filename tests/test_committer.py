"""add's background commits (indexer.ingest.committer): in order, one at a time, errors never lost,
and the commit under way always finishes before add returns or fails."""

from __future__ import annotations

import inspect
import signal
import sys
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


def _blocking_line() -> int:
    """The line of threading.Condition.wait where a wait without timeout blocks (inside its
    try, whose finally puts the condition back as it was when Ctrl-C cuts the wait short)."""
    lines, first = inspect.getsourcelines(threading.Condition.wait)
    for at, (line, after) in enumerate(zip(lines, lines[1:]), start=first):
        if line.strip() == "if timeout is None:" and after.strip() == "waiter.acquire()":
            return at + 1
    raise AssertionError("threading.Condition.wait changed: find where it blocks")


def _blocked_in_close(thread_id: int, line: int) -> bool:
    """Whether that thread waits in Committer.close for the commit (Ctrl-C there is the case
    under test; one a few instructions earlier is not)."""
    frame = sys._current_frames().get(thread_id)
    if frame is None or frame.f_code is not threading.Condition.wait.__code__:
        return False
    if frame.f_lineno != line:
        return False
    while frame is not None and frame.f_code is not Committer.close.__code__:
        frame = frame.f_back
    return frame is not None


def test_ctrl_c_while_closing_still_waits_for_the_commit_under_way():
    # add uses the catalog right after close: a wait cut short would let it in mid-commit.
    # No timing: the commit itself sends Ctrl-C once close waits on it, and finishes only after
    # it was delivered, so it always lands in close and never after the test.
    main, line = threading.main_thread().ident, _blocking_line()
    delivered, finished = threading.Event(), threading.Event()
    marks: dict[str, float] = {}

    def commit() -> None:
        deadline = time.monotonic() + 60
        while not _blocked_in_close(main, line):
            if time.monotonic() > deadline:
                return  # close never waited: no Ctrl-C, and the test fails (DID NOT RAISE)
            time.sleep(0.001)
        marks["waiting"] = time.perf_counter()
        time.sleep(0.05)  # some wait before the Ctrl-C, for `waited` to count
        signal.pthread_kill(main, signal.SIGINT)
        delivered.wait(60)
        time.sleep(0.05)  # and some after it
        marks["done"] = time.perf_counter()
        finished.set()

    def ctrl_c(signum: int, frame: object) -> None:
        delivered.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, ctrl_c)
    try:
        committer = Committer()
        committer.submit(commit)
        with pytest.raises(KeyboardInterrupt):
            committer.close()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert delivered.is_set() and finished.is_set()
    # the wait is counted whole, Ctrl-C or not: at least from when close was seen waiting to
    # when the commit ended (close began before the one and returned after the other)
    assert committer.waited >= marks["done"] - marks["waiting"]
