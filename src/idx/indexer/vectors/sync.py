"""A writer's FAISS file brought to the catalog's generation: after a write (an add run, a
removal) its changes applied, or the file rebuilt from every vector (a stale file, `idx reindex`).

Takes the catalog's generation and callables over its vectors, so it never imports the catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from idx.indexer.vectors.store import REMOVABLE, VectorStore
from idx.progress import Progress

Fetch = Callable[..., tuple[np.ndarray, np.ndarray]]


def after_write(
    held: VectorStore | None,
    index_dir: Path,
    start_generation: int,
    generation: int,
    changed: Sequence[int],
    removed: Sequence[int],
    fetch: Fetch,
    count: Callable[[], int],
) -> VectorStore | None:
    """Bring the FAISS file to the catalog's generation: apply one run's changes to it, or
    rebuild it if it was stale already (then the next writer repairs an index that a crash
    left behind, even when its own run changed nothing). `fetch(ids)` returns (ids, vectors),
    every vector without ids; `count()` the catalog's number of images. Returns the store the
    writer holds from now on: `held` when nothing was committed, None to load it again (for
    `generation`) when next used."""
    store = VectorStore(index_dir)
    recorded = store.read_meta().get("generation")
    if recorded == generation:  # nothing committed, and the file was in step
        return held
    if recorded != start_generation:
        store.load(generation, fetch, writable=True)
    elif not changed and not removed:  # only paths or file times changed
        store.follow(generation)
        return None
    else:
        store.load(start_generation, fetch, writable=False)
        if not store.can_apply(changed, removed, count()):
            # e.g. HNSW cannot drop ids: rebuild, keeping the recorded type
            store.rebuild(generation, *fetch())
        else:
            if store.kind in REMOVABLE:
                store.remove(np.asarray(list(changed) + list(removed), dtype=np.int64))
            if changed:
                store.add(*fetch(changed))
            store.save(generation)
    return store


def rebuild(
    index_dir: Path,
    generation: int,
    fetch: Fetch,
    requested: str,
    progress: Progress | None = None,
) -> VectorStore:
    """Rebuild the FAISS file from every vector (`fetch()`) as `requested` ("auto" or an index
    type)."""
    store = VectorStore(index_dir)
    store.meta = store.read_meta()
    ids, matrix = fetch()
    store.rebuild(generation, ids, matrix, requested=requested, progress=progress)
    return store
