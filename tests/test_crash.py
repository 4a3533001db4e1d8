"""Crash safety: `kill -9` at any moment of `idx add`, then add again: it completes, consistently."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from idx import synthetic
from idx.indexer.index import Index

from .paced import wait_stopped
from .test_incremental import check_invariants

#: The child's progress: each event printed, and once `stop_at` files are through (argv[5]) it
#: stops itself (SIGSTOP) right there, so the test's signal lands at that point however busy the
#: machine is (a child left running could finish the remaining files before the signal came).
PROGRESS = """
import os, signal, sys
stop_at, stopped = int(sys.argv[5]), []
def progress(e):
    print(e.phase, e.done, flush=True)
    if e.phase == "embed" and e.done >= stop_at and not stopped:
        stopped.append(e)
        os.kill(os.getpid(), signal.SIGSTOP)
"""

CHILD = (
    PROGRESS
    + """
from idx import Index
index_dir, images, model, checkpoint = sys.argv[1:5]
with Index(index_dir, model=model, checkpoint=checkpoint) as index:
    index.add([images], batch_size=2, progress=progress)
"""
)


def _spawn_add(
    index_dir: Path,
    images: Path,
    tiny_model: dict,
    stop_at: int,
    decode: str = "threads",
    script: str = CHILD,
) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-c",
        script,
        str(index_dir),
        str(images),
        tiny_model["model"],
        tiny_model["checkpoint"],
        str(stop_at),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "IDX_DECODE": decode}
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


def _processes_naming(path: Path) -> list[int]:
    """Live processes whose command line names `path` (a killed `add` and its forked workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if entry.name.isdigit() and str(path).encode() in cmdline:
            found.append(int(entry.name))
    return found


def _image_folder(tmp_path: Path) -> tuple[Path, int]:
    images = tmp_path / "images"
    synthetic.generate(images, per_category=12, size=64)
    return images, sum(1 for p in images.rglob("*") if p.suffix in (".jpg", ".png"))


def _signal_after(proc: subprocess.Popen, consumed: int, sig: int) -> None:
    """Send `sig` once the child has consumed `consumed` of the files left to do (its stop_at)
    and stands still there; then let it go on (a stopped process acts on SIGINT only then)."""
    for line in proc.stdout:
        phase, done = line.split()
        if phase == "embed" and int(done) >= consumed:
            break
    else:
        raise AssertionError(f"the add ended before {consumed} files were through")
    assert wait_stopped(proc.pid), "the add ended instead of stopping itself"
    proc.send_signal(sig)
    if sig != signal.SIGKILL:
        os.kill(proc.pid, signal.SIGCONT)


# processes: a killed writer's forked decode workers must neither keep its lock nor live on
@pytest.mark.parametrize("decode", ["threads", "processes"])
def test_kill_9_during_add_then_rerun_completes(tmp_path, tiny_model, decode):
    images, total = _image_folder(tmp_path)
    index_dir = tmp_path / "index"
    counts = []
    # Kill while files are being read and embedded: after the child has consumed this many of the
    # files left to do (so each kill lands mid-run, at a different batch boundary or inside one).
    for consumed in (1, 7, 20, 33):
        proc = _spawn_add(index_dir, images, tiny_model, consumed, decode)
        _signal_after(proc, consumed, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while _processes_naming(index_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _processes_naming(index_dir), "the killed add's workers lived on"
        with Index(index_dir) as index:  # reopening replays DuckDB's log; FAISS is repaired
            counts.append(index.catalog.images.count())
            dupes = index.catalog.con.execute(
                "SELECT count(*) - count(DISTINCT path) FROM images"
            ).fetchall()[0][0]
            assert dupes == 0
            ids, _ = index.embeddings()
            store = index.vectors
            faiss_ids = (
                []
                if store.index is None
                else [int(store.index.id_map.at(i)) for i in range(store.ntotal)]
            )
            assert sorted(faiss_ids) == sorted(ids.tolist())
    assert all(c < total for c in counts), f"a run finished before its kill (counts {counts})"
    assert counts[-1] > 0, f"nothing was ever committed (counts {counts})"
    assert counts == sorted(counts), "committed images were lost after a kill"
    with Index(index_dir) as index:
        index.add([images])
        check_invariants(index, images)
        assert index.catalog.images.count() == total
        assert index.status()["vectors"]["in_sync"]
        again = index.add([images])
        assert (again.added, again.embedded, again.removed) == (0, 0, 0)


INTERRUPTED = (
    PROGRESS
    + """
from idx import Index
index_dir, images, model, checkpoint = sys.argv[1:5]
try:
    with Index(index_dir, model=model, checkpoint=checkpoint) as index:
        index.add([images], batch_size=2, progress=progress)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""
)


# Ctrl-C lands in the main thread while the commit thread may be storing the batch before: that
# commit finishes whole, the catalog and the FAISS file agree, the lock and the workers are gone.
@pytest.mark.parametrize("decode", ["threads", "processes"])
def test_ctrl_c_during_add_keeps_every_committed_batch_whole(tmp_path, tiny_model, decode):
    images, total = _image_folder(tmp_path)
    index_dir = tmp_path / "index"
    counts = []
    for consumed in (5, 30):
        proc = _spawn_add(index_dir, images, tiny_model, consumed, decode, script=INTERRUPTED)
        _signal_after(proc, consumed, signal.SIGINT)
        rest = proc.stdout.read()
        assert proc.wait(timeout=60) == 130, rest
        assert "interrupted" in rest
        assert not _processes_naming(index_dir), "the interrupted add's workers lived on"
        with Index(index_dir) as index:  # opens for writing: the lock was let go
            counts.append(index.catalog.images.count())
            ids, _ = index.embeddings()
            assert index.status()["vectors"]["in_sync"]
            assert index.vectors.ntotal == len(ids)
    assert 0 < counts[0] <= counts[1] < total, counts
    with Index(index_dir) as index:
        again = index.add([images])
        assert again.added == total - counts[1]
        check_invariants(index, images)
