"""Crash safety: `kill -9` at any moment of `idx add`, then add again: it completes, consistently."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from idx.indexer import synthetic
from idx.indexer.index import Index

from .test_incremental import check_invariants


def _spawn_add(index_dir: Path, images: Path, tiny_model: dict) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "idx",
        "--index",
        str(index_dir),
        "add",
        str(images),
        "-q",
        "--batch-size",
        "2",
        "--model",
        tiny_model["model"],
        "--checkpoint",
        tiny_model["checkpoint"],
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_kill_9_during_add_then_rerun_completes(tmp_path, tiny_model):
    images = tmp_path / "images"
    synthetic.generate(images, per_category=30, size=64)
    total = sum(1 for p in images.rglob("*") if p.suffix in (".jpg", ".png"))
    # How long an uninterrupted run takes here, so kills land at known fractions of it.
    start = time.perf_counter()
    assert _spawn_add(tmp_path / "timing-index", images, tiny_model).wait() == 0
    full = time.perf_counter() - start
    index_dir = tmp_path / "index"
    counts = []
    for fraction in (0.6, 0.8, 0.95):
        proc = _spawn_add(index_dir, images, tiny_model)
        time.sleep(full * fraction)
        if proc.poll() is not None:  # finished before the kill: nothing left to interrupt
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not (index_dir / "catalog.duckdb").exists():
            counts.append(0)
            continue
        with Index(index_dir) as index:  # reopening replays DuckDB's log; FAISS is repaired
            counts.append(index.catalog.count_images())
            dupes = index.catalog.con.execute(
                "SELECT count(*) - count(DISTINCT path) FROM images"
            ).fetchall()[0][0]
            assert dupes == 0
            ids, _ = index.embeddings()
            faiss_ids = (
                sorted(int(index.vectors.index.id_map.at(i)) for i in range(index.vectors.ntotal))
                if index.vectors.index is not None
                else []
            )
            assert faiss_ids == sorted(ids.tolist())
    assert any(0 < c < total for c in counts), (
        f"no kill landed mid-run (counts {counts}, total {total})"
    )
    assert counts == sorted(counts), "committed images were lost after a kill"
    with Index(index_dir) as index:
        index.add([images])
        check_invariants(index, images)
        assert index.catalog.count_images() == total
        assert index.status()["vectors"]["in_sync"]
        again = index.add([images])
        assert (again.added, again.embedded, again.removed) == (0, 0, 0)
