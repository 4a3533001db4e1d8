"""Perceptual hashes for content embedded before `add` took them (migration 0013): each run fills
them in for the images under the folders it walked, unchanged files included, so an index made
before then needs only `idx add` of its folders again. The files are read and decoded (no model)
in threads, and their hashes stored a batch a transaction: an interrupted run keeps what it did.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from idx.indexer.catalog import Catalog
from idx.indexer.catalog.files import HashlessContent
from idx.indexer.files import reader
from idx.parallel import ordered_map
from idx.progress import Progress, ProgressEvent

#: Hashes stored a transaction.
BATCH = 512


def fill_missing(
    catalog: Catalog,
    roots: Sequence[str],
    source: str,
    *,
    min_side: int | None,
    workers: int,
    progress: Progress,
) -> int:
    """Take and store the perceptual hash of each content under `roots` that has none; how many
    were stored (a file that changed or cannot be decoded now is left for a later run)."""
    missing = catalog.files.unhashed_under(roots, source)
    if not missing:
        return 0
    catalog.release()  # held again only to store each batch
    task = partial(_hash, min_side=min_side)
    shas: list[str] = []
    hashes: list[int] = []
    stored = 0
    progress(ProgressEvent("hash", 0, len(missing)))
    for done, (sha, value) in enumerate(ordered_map(task, missing, workers, "idx-phash"), 1):
        if value is not None:
            shas.append(sha)
            hashes.append(value)
        if len(shas) >= BATCH or (done == len(missing) and shas):
            with catalog.transaction():
                catalog.images.set_phashes(shas, hashes)
            catalog.commit_point()
            stored += len(shas)
            shas, hashes = [], []
        progress(ProgressEvent("hash", done, len(missing)))
    return stored


def _hash(content: HashlessContent, min_side: int | None) -> tuple[str, int | None]:
    return content.sha256, reader.perceptual_hash(content.path, content.sha256, min_side)
