"""Incremental rules of `add`: new, unchanged, changed, moved, copied and deleted files.

A property test drives random sequences of file operations and checks the invariants after each
`add`: catalog ids == FAISS ids, one row per file, every row's hash matches its file, and adding
again changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from idx.indexer.index import Index
from idx.indexer.model.encoder import Encoder
from idx.indexer.model.identity import ModelSpec, identify


@pytest.fixture(scope="module")
def tiny_encoder(tiny_model):
    return Encoder.load(identify(ModelSpec(**tiny_model)))


def _write_image(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, size=(40, 48, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG" if path.suffix == ".png" else "JPEG")


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".jpg", ".png"))


def check_invariants(index: Index, root: Path) -> None:
    con = index.catalog.con
    rows = con.execute("SELECT id, path, sha256 FROM images ORDER BY id").fetchall()
    paths = [r[1] for r in rows]
    assert len(paths) == len(set(paths)), "duplicate paths in the catalog"
    on_disk = {str(p) for p in _files(root)}
    assert set(paths) == on_disk, "catalog and folder disagree"
    for _, path, sha in rows:
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == sha, f"stale hash for {path}"
    ids, vectors = index.embeddings()
    assert sorted(ids.tolist()) == sorted(r[0] for r in rows)
    faiss_index = index.vectors.index
    faiss_ids = (
        []
        if faiss_index is None
        else [int(faiss_index.id_map.at(i)) for i in range(faiss_index.ntotal)]
    )
    assert sorted(faiss_ids) == sorted(ids.tolist()), "FAISS ids differ from catalog ids"
    # Vectors in FAISS are those of the catalog (same id -> same vector).
    if len(ids):
        scores, found = index.vectors.search(vectors, 1)
        np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-4)
    orphans = con.execute(
        "SELECT count(*) FROM embeddings WHERE sha256 NOT IN (SELECT sha256 FROM images)"
    ).fetchall()
    assert orphans[0][0] == 0, "embeddings left without an image"
    status = index.status()  # what `idx status` says agrees: nothing is left behind
    assert status["vectors"]["in_sync"], status["problems"]
    assert status["health"] == ("ok" if len(ids) else "empty"), status["problems"]


OPS = st.lists(
    st.tuples(
        st.sampled_from(["new", "modify", "move", "copy", "delete", "touch"]), st.integers(0, 10**6)
    ),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(OPS, min_size=1, max_size=3))
def test_random_file_operations_keep_catalog_and_faiss_consistent(
    tmp_path_factory, tiny_encoder, steps
):
    base = tmp_path_factory.mktemp("prop")
    root, index_dir = base / "images", base / "index"
    for i in range(3):
        _write_image(root / f"start{i}.jpg", i)
    counter = [100]

    def apply(op: str, seed: int) -> None:
        files = _files(root)
        counter[0] += 1
        if op == "new" or not files:
            sub = "sub" if seed % 2 else ""
            _write_image(root / sub / f"n{counter[0]}.{'png' if seed % 3 == 0 else 'jpg'}", seed)
            return
        target = files[seed % len(files)]
        if op == "modify":
            _write_image(target, seed + 7)
            st_ = target.stat()
            os.utime(target, ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))
        elif op == "move":
            dest = root / "moved" / f"m{counter[0]}{target.suffix}"
            dest.parent.mkdir(exist_ok=True)
            target.rename(dest)
        elif op == "copy":
            shutil.copy2(target, root / f"c{counter[0]}{target.suffix}")
        elif op == "delete":
            target.unlink()
        elif op == "touch":
            os.utime(target, ns=(10**18, 10**18 + counter[0]))

    with Index(index_dir, encoder=tiny_encoder) as index:
        index.add([root])
        check_invariants(index, root)
    for ops in steps:
        for op, seed in ops:
            apply(op, seed)
        with Index(index_dir, encoder=tiny_encoder) as index:
            index.add([root])
            check_invariants(index, root)
            again = index.add([root])
            assert (again.added, again.updated, again.moved, again.removed, again.embedded) == (
                0,
                0,
                0,
                0,
                0,
            )


def test_move_keeps_id_and_vector_without_embedding(images, tiny_model):
    with Index(**tiny_model) as index:
        index.add([images])
        src = next(images.rglob("*.jpg"))
        (old_id,) = index.catalog.con.execute(
            "SELECT id FROM images WHERE path = ?", [str(src)]
        ).fetchall()[0]
        _, before = index.embeddings([old_id])
        dest = images / "renamed" / "x.jpg"
        dest.parent.mkdir()
        src.rename(dest)
        report = index.add([images])
        assert (report.moved, report.embedded, report.removed, report.added) == (1, 0, 0, 0)
        (new_id,) = index.catalog.con.execute(
            "SELECT id FROM images WHERE path = ?", [str(dest)]
        ).fetchall()[0]
        assert new_id == old_id
        _, after = index.embeddings([old_id])
        np.testing.assert_array_equal(before, after)


def test_move_between_folders_added_separately(tmp_path, tiny_model):
    a, b = tmp_path / "a", tmp_path / "b"
    _write_image(a / "one.jpg", 1)
    b.mkdir()
    with Index(**tiny_model) as index:
        index.add([a])
        (a / "one.jpg").rename(b / "one.jpg")
        report = index.add([b])
        assert (report.moved, report.added, report.embedded) == (1, 0, 0)
        assert index.catalog.images.count() == 1


def test_same_content_under_two_paths_is_embedded_once(tmp_path, tiny_model):
    _write_image(tmp_path / "imgs" / "a.jpg", 5)
    shutil.copy(tmp_path / "imgs" / "a.jpg", tmp_path / "imgs" / "b.jpg")
    shutil.copy(tmp_path / "imgs" / "a.jpg", tmp_path / "imgs" / "c.jpg")
    with Index(**tiny_model) as index:
        report = index.add([tmp_path / "imgs"])
        assert (report.added, report.embedded) == (3, 1)
        assert index.catalog.con.execute("SELECT count(*) FROM embeddings").fetchall()[0][0] == 1
        assert index.vectors.ntotal == 3


def test_changed_content_is_reembedded_under_the_same_id(images, tiny_model):
    with Index(**tiny_model) as index:
        index.add([images])
        target = sorted(images.rglob("*.jpg"))[0]
        (img_id,) = index.catalog.con.execute(
            "SELECT id FROM images WHERE path = ?", [str(target)]
        ).fetchall()[0]
        _, before = index.embeddings([img_id])
        Image.new("RGB", (64, 64), (0, 255, 0)).save(target)
        report = index.add([images])
        assert (report.updated, report.embedded, report.added) == (1, 1, 0)
        _, after = index.embeddings([img_id])
        assert not np.allclose(before, after)
        scores, ids = index.vectors.search(after, 1)
        assert ids[0][0] == img_id


def test_files_gone_from_other_folders_are_left_alone(tmp_path, tiny_model):
    a, b = tmp_path / "a", tmp_path / "b"
    _write_image(a / "x.jpg", 1)
    _write_image(b / "y.jpg", 2)
    with Index(**tiny_model) as index:
        index.add([a, b])
        report = index.add([a])
        assert report.removed == 0
        assert index.catalog.images.count() == 2
        (b / "y.jpg").unlink()
        assert index.add([a]).removed == 0
        assert index.add([b]).removed == 1


def test_unchanged_files_are_not_read_again(images, tiny_model):
    """Same size and mtime means unchanged: the file is trusted, not re-read (rclip's rule)."""
    with Index(**tiny_model) as index:
        index.add([images])
        target = sorted(images.rglob("*.jpg"))[0]
        st_ = target.stat()
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF  # different content, same size
        target.write_bytes(bytes(data))
        os.utime(target, ns=(st_.st_atime_ns, st_.st_mtime_ns))
        report = index.add([images])
        assert (report.unchanged, report.updated, report.embedded) == (
            index.catalog.images.count(),
            0,
            0,
        )
        os.utime(target, ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))  # now it looks changed
        assert index.add([images]).updated == 1


def test_a_move_records_the_faiss_file_for_the_new_generation(tmp_path, tiny_model):
    """A rename moves the catalog's generation (readers re-read paths by it) but no vector: the
    FAISS file is recorded for it as it is, not left behind nor written again."""
    root = tmp_path / "five"
    for i in range(5):
        _write_image(root / f"img{i}.jpg", i)
    with Index(**tiny_model) as index:
        index.add([root])
    faiss_file = Path(os.environ["IDX_INDEX"]) / "vectors.faiss"
    written = faiss_file.stat().st_mtime_ns
    (root / "img0.jpg").rename(root / "renamed.jpg")
    with Index(**tiny_model) as index:
        report = index.add([root])
        assert (report.moved, report.embedded) == (1, 0)
        status = index.status()
        assert status["vectors"]["in_sync"] and status["health"] == "ok", status["problems"]
        assert status["vectors"]["generation"] == status["vectors"]["catalog_generation"]
    assert faiss_file.stat().st_mtime_ns == written
    with Index(read_only=True) as index:
        assert index.vectors.meta["generation"] == index.catalog.generation()
        _, vectors = index.embeddings()
        scores, ids = index.vectors.search(vectors, 1)
        assert np.allclose(scores[:, 0], 1.0, atol=1e-4) and index.vectors.ntotal == 5
        paths = index.catalog.images.paths_for(ids[:, 0].tolist())
        assert str(root / "renamed.jpg") in paths.values()


def test_an_add_that_changes_nothing_repairs_a_faiss_file_left_behind(images, tiny_model):
    """A FAISS file behind the catalog (a crash between a commit and the save) is rebuilt in
    memory by every reader, and saved by the next add even when that add finds nothing new."""
    with Index(**tiny_model) as index:
        index.add([images])
    meta_file = Path(os.environ["IDX_INDEX"]) / "vectors.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps(meta | {"generation": meta["generation"] - 1}))
    with Index(read_only=True) as index:
        status = index.status()
        assert not status["vectors"]["in_sync"] and status["health"] == "attention"
        assert "until the next `idx add` saves it" in status["problems"][0]
    with Index(**tiny_model) as index:
        report = index.add([images])
        assert (report.added, report.moved, report.embedded) == (0, 0, 0)
        status = index.status()
        assert status["vectors"]["in_sync"] and status["health"] == "ok"
