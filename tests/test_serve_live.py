"""A long-lived reader follows a writer: `Index.refresh` catches the FAISS index up in memory
(added, changed and removed vectors), and a running `idx serve` shows a running `idx add`'s
batches without a restart while the add finishes as it would alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from idx import synthetic
from idx.indexer.index import Index
from idx.ops import search as api
from tests.paced import paced
from tests.serving import SRC, Server, brute_force, exported, insert_vectors


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _same_as_brute_force(reader: Index, query: np.ndarray, k: int = 10) -> None:
    ids, matrix = reader.embeddings()
    want_ids, want_scores = brute_force(ids, matrix, query, k)
    hits = api.search(reader, vector=query, k=k)
    assert [h.id for h in hits] == want_ids
    np.testing.assert_allclose([h.score for h in hits], want_scores, atol=1e-5)


def test_refresh_catches_up_in_memory_with_added_changed_and_removed_vectors(indexed_copy):
    d = 64
    with Index(indexed_copy, read_only=True) as reader:
        reader.vectors  # noqa: B018 - loaded as a server loads them
        assert reader.refresh() is False
        reader.release()
        saved = (indexed_copy / "vectors.json").read_text()

        new_ids = insert_vectors(indexed_copy, 1000, _unit(30, d, 1))
        assert reader.refresh() is True
        assert reader.vectors.ntotal == 48 + 30
        q = _unit(1, d, 2)
        _same_as_brute_force(reader, q)
        hit = api.search(reader, id=new_ids[5], k=1)[0]
        assert (hit.id, hit.path) == (new_ids[5], "/live/img1005.jpg")
        reader.release()

        with Index(indexed_copy) as writer:  # one image gets new content, two go away
            cat = writer.catalog
            with cat.transaction():
                cat.images.insert_embeddings(["f" * 64], _unit(1, d, 3))
                cat.rows("UPDATE images SET sha256 = ? WHERE id = ?", ["f" * 64, new_ids[0]])
                cat.bump_generation()
            with cat.transaction():
                cat.images.delete(new_ids[1:3])
        assert reader.refresh() is True
        assert reader.vectors.ntotal == 48 + 28
        _same_as_brute_force(reader, _unit(1, d, 3))  # the changed image's new vector is found
        assert api.search(reader, vector=_unit(1, d, 3)[0], k=1)[0].id == new_ids[0]
        assert not {h.id for h in api.search(reader, vector=q[0], k=78)} & set(new_ids[1:3])
        assert (indexed_copy / "vectors.json").read_text() == saved  # the reader wrote nothing


@pytest.fixture
def batches(tmp_path) -> Path:
    """320 small generated images (8 categories x 40): many batches of 16."""
    root = tmp_path / "batches"
    synthetic.generate(root, per_category=40, size=40)
    return root


def test_a_running_server_follows_a_running_add(batches, images, tmp_path, tiny_model):
    index_dir = tmp_path / "index"
    with Index(index_dir, **tiny_model) as index:  # a first, small collection
        index.add([images / "red_circles"])
    server = Server(index_dir).start()
    try:
        assert server.info["images"] == 6
        cmd = [sys.executable, "-m", "idx", "--index", str(index_dir), "add", str(batches), "-q"]
        cmd += ["--batch-size", "16", "--workers", "1"]
        env = {**os.environ, "PYTHONPATH": SRC}
        writer = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        seen = []
        for _ in paced(writer, index_dir):  # the server read between its slices
            status, body = server.json("/api/status")
            assert status == 200, body
            code, hits = server.json("/api/search?text=red+circles&k=1000")
            assert code == 200, hits
            seen.append((body["images"], len(hits)))
        assert writer.returncode == 0, writer.stderr.read()
        counts = [s[0] for s in seen]
        assert counts == sorted(counts), f"the served count went down: {counts}"
        assert any(6 < c < 326 for c in counts), f"no batch was seen mid-add: {counts}"
        assert all(hits >= images for images, hits in seen), seen  # search has what status counted

        status, body = server.json("/api/status")
        assert body["images"] == 326
        ids, matrix, paths = exported(index_dir, tmp_path / "export")
        newest = int(ids[-1])
        code, hits = server.json(f"/api/neighbors/{newest}?k=5")
        want = brute_force(ids, matrix, matrix[-1], 6)[0][1:]
        assert code == 200 and [h["id"] for h in hits] == want

        shutil.rmtree(batches / "sunsets")  # a second add removes 40 images
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        code, hits = server.json("/api/search?text=sunset&k=1000")
        assert code == 200 and len(hits) == 286
        assert not [h for h in hits if "/sunsets/" in h["path"]]
    finally:
        assert server.stop() == 0, server.stderr()
