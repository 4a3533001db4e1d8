"""The FAISS index held in memory by a long-lived reader (`idx serve`, a notebook): search among
a selection of ids, the stored vectors of some ids, and catching up with a writer.

A reader never writes the FAISS file: it applies a writer's committed batches to its own copy
(`refresh`, called by `Index.refresh`) and loads the file again once the writer has saved it.
"""

from __future__ import annotations

from collections.abc import Callable

import faiss
import numpy as np

from idx.indexer.vectors.store import REMOVABLE, VectorStore, single_thread

Contents = tuple[np.ndarray, np.ndarray]


def search_selected(
    store: VectorStore, queries: np.ndarray, k: int, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Like `store.search`, among `ids` only (an id selector inside FAISS): exact for flat, as
    approximate as the index for the other types (a narrow selection can leave slots at -1)."""
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if store.index is None or len(ids) == 0:
        return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
    k = min(k, len(ids))
    wanted = np.ascontiguousarray(ids, dtype=np.int64)
    with single_thread():
        if not isinstance(store.index, faiss.Index):  # idx's own IVF takes the selection itself
            return store.index.search(q, k, among=wanted)
        selector = faiss.IDSelectorBatch(wanted)
        # faiss's wrapper takes the fields as keywords; its stub declares __init__(self) only
        params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        return store.index.search(q, k, params=params)


def vectors_of(store: VectorStore, ids: np.ndarray) -> np.ndarray:
    """The stored vectors of `ids` (each must be in the index), float32 [len(ids), d], read from
    FAISS's own copy (far faster than from the catalog)."""
    wanted = np.ascontiguousarray(ids, dtype=np.int64)
    if store.index is None or len(wanted) == 0:
        return np.zeros((0, store.index.d if store.index is not None else 0), np.float32)
    return store.index.reconstruct_batch(wanted)


def content_changes(before: Contents, after: Contents) -> tuple[np.ndarray, np.ndarray]:
    """(ids whose vector is new or different, ids gone) between two (ids, content keys) pairs,
    each ordered by id (see Images.content_keys)."""
    (b_ids, b_keys), (a_ids, a_keys) = before, after
    common, at_b, at_a = np.intersect1d(b_ids, a_ids, assume_unique=True, return_indices=True)
    different = common[b_keys[at_b] != a_keys[at_a]]
    new = np.setdiff1d(a_ids, b_ids, assume_unique=True)
    removed = np.setdiff1d(b_ids, a_ids, assume_unique=True)
    return np.union1d(different, new).astype(np.int64), removed.astype(np.int64)


def catch_up(
    store: VectorStore,
    generation: int,
    before: Contents,
    after: Contents,
    fetch: Callable[..., tuple[np.ndarray, np.ndarray]],
) -> str:
    """Bring the index in memory from catalog contents `before` to `after` without writing the
    file: new and changed vectors added, removed ones dropped; rebuilt from fetch() (every
    vector) when its type cannot drop ids. `fetch(ids)` returns (ids, vectors). Returns
    "applied" or "rebuilt"."""
    changed, removed = content_changes(before, after)
    replaced = changed[np.isin(changed, before[0])]
    # Unlike a writer's `can_apply`, a reader keeps its index type while the collection grows
    # past `auto`'s threshold (the writer's saved file brings the new type once the add ends):
    # rebuilding an approximate index on every request of a long add would stall the server.
    removable = store.kind in REMOVABLE and not getattr(store.index, "on_disk", False)
    in_place = removable or not (len(removed) or len(replaced))
    if getattr(store.index, "on_disk", False):  # lists on disk are the writer's, never changed
        in_place = False
    if store.index is None or not in_place:
        store.rebuild(generation, *fetch(), writable=False)
        return "rebuilt"
    if len(removed) or len(replaced):
        store.remove(np.concatenate([replaced, removed]))
    if len(changed):
        store.add(*fetch(changed))
    store.meta = {**store.meta, "generation": generation, "count": store.ntotal}
    return "applied"


def refresh(
    held: VectorStore,
    generation: int,
    contents: Contents | None,
    content_keys: Callable[[], Contents],
    fetch: Callable[..., tuple[np.ndarray, np.ndarray]],
) -> tuple[VectorStore, Contents, bool]:
    """Catch a reader's `held` vectors up with a writer at catalog `generation`: when the
    generation moved, load the FAISS file if the writer saved it for that generation, else apply
    the changes in memory (new, changed and removed vectors). `contents` is what `held` holds
    (None: not known yet), `content_keys()` the catalog's now, `fetch(ids)` (ids, vectors).
    Returns (the store to hold, the contents it holds, whether the vectors changed)."""
    if held.meta.get("generation") == generation:
        if contents is None:
            contents = content_keys()  # what later changes are compared with
        return held, contents, False
    now = content_keys()
    saved = VectorStore(held.index_dir)
    if saved.read_meta().get("generation") == generation:
        saved.load(generation, fetch, writable=False)
        if saved.ntotal != len(now[0]):  # the writer saved a later generation meanwhile
            saved.rebuild(generation, *fetch(), writable=False)
        held = saved
    elif contents is None:
        held.rebuild(generation, *fetch(), writable=False)
    else:
        catch_up(held, generation, contents, now, fetch)
    return held, now, True
