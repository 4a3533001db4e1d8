"""Near-duplicates confirmed by a perceptual hash (issue 23): `add` stores each image's pHash (equal
to imagehash's), fills in those of images indexed before it did; `idx duplicates` links images by
CLIP and the hash, within one set or across two (`--across A B`, stored as a leakage run)."""

from __future__ import annotations

import duckdb
import imagehash
from PIL import Image

from idx.indexer.index import Index


def _stored_hashes(index: Index) -> dict[str, int | None]:
    ids = index.catalog.images.ids()
    paths = index.catalog.images.paths_for(ids)
    hashes, present = index.catalog.images.phashes(ids)
    return {paths[int(i)]: int(h) if has else None for i, h, has in zip(ids, hashes, present)}


def _imagehash(path: str) -> int:
    with Image.open(path) as image:
        return int(str(imagehash.phash(image)), 16)


def test_the_stored_hash_is_imagehash_phash_of_the_file(indexed, tiny_model):
    with Index(indexed, read_only=True) as index:
        stored = _stored_hashes(index)
    assert len(stored) == 48
    assert stored == {path: _imagehash(path) for path in stored}


def test_add_fills_in_the_hashes_of_images_indexed_before_it_took_them(indexed_copy, tiny_model):
    with Index(indexed_copy, **tiny_model) as index:
        before = _stored_hashes(index)
        roots = index.catalog.images.roots()
    # as an index made before migration 0013 has them: no hash
    con = duckdb.connect(str(indexed_copy / "catalog.duckdb"))
    con.execute("UPDATE embeddings SET phash = NULL")
    con.close()
    with Index(indexed_copy, **tiny_model) as index:
        assert set(_stored_hashes(index).values()) == {None}
        report = index.add(roots)
        assert (report.unchanged, report.embedded, report.hashed) == (48, 0, 48)
        assert _stored_hashes(index) == before
        assert index.add(roots).hashed == 0  # nothing left to fill in
