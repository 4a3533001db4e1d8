"""A writer process in slow motion, for tests of what readers see while it works.

A test that only polls beside a running `idx add` sees whatever the machine's speed lets it see:
on a fast or a loaded machine the add can finish between two polls, and "a reader saw it
mid-way" becomes luck. `paced` takes the luck out: once the writer has begun embedding, it runs
in short slices, and between them it stands still (SIGSTOP) at a moment when it does not hold
the catalog, so the test's readers run then and see it mid-run, whatever the machine's speed.
To readers a stopped writer is only a slow one, which the index promises to handle.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from idx import config
from idx.indexer.catalog import lock
from idx.indexer.ingest import jobs


def paced(proc: subprocess.Popen, index_dir: Path, run_s: float = 0.1) -> Iterator[None]:
    """Yield with `proc` (an add writing `index_dir`) stopped between two batches, letting it
    run about `run_s` seconds between yields, until it exits. Its start-up (model loading)
    runs freely. Leaving the loop early (a failed assertion, a kill) leaves it running, or
    dead."""
    try:
        while proc.poll() is None and (jobs.current(index_dir) or {}).get("phase") != "embed":
            time.sleep(0.05)
        while proc.poll() is None:
            if _stop_between_batches(proc, index_dir):
                yield
            if proc.poll() is not None:  # it ended, or the test killed it
                return
            os.kill(proc.pid, signal.SIGCONT)
            time.sleep(run_s)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)


def _stop_between_batches(proc: subprocess.Popen, index_dir: Path) -> bool:
    """Stop `proc` at a moment it has let go of the catalog (a reader's marker asks it to, at
    its next commit point): True when it stands still so, False when it exited first."""
    marker = lock.announce_reader(index_dir)
    try:
        while True:
            os.kill(proc.pid, signal.SIGSTOP)
            if proc.poll() is not None:
                return False
            try:
                duckdb.connect(str(index_dir / config.CATALOG_FILE), read_only=True).close()
                return True
            except duckdb.IOException:  # it holds the file: let it reach its commit point
                os.kill(proc.pid, signal.SIGCONT)
                time.sleep(0.01)
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)


def wait_stopped(pid: int, timeout: float = 60.0) -> bool:
    """Wait until every thread of process `pid` stands still after a SIGSTOP (which takes effect
    a moment after it is sent, thread by thread): True then, False when the process ended
    first."""
    deadline = time.monotonic() + timeout
    states: set[str] = set()
    while time.monotonic() < deadline:
        states = set()
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except FileNotFoundError:
            return False
        for task in tasks:
            try:  # "pid (name) STATE ...": the name may hold spaces and parentheses
                states.add((task / "stat").read_text().rpartition(")")[2].split()[0])
            except (OSError, IndexError):
                continue  # a thread that ended meanwhile
        if states & {"Z", "X"}:
            return False
        if states and states <= {"T", "t"}:
            return True
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not stop within {timeout:g} s (threads: {states})")
