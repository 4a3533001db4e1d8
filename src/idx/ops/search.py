"""Nearest-neighbour search over an index: text, image, id and vector queries, and rebuilding
the FAISS index as another type (the stored kNN graph is ops/graph).

>>> with Index(read_only=True) as index:
...     hits = search(index, text="a red apple", k=5, label="red_circles")
>>> [(hit.rank, "red_circles" in hit.labels) for hit in hits]
[(1, True), (2, True), (3, True), (4, True), (5, True)]
>>> hits[0].score >= hits[-1].score, hits[0].path.endswith(".jpg")
(True, True)

A filter (`where`: SQL over the image_info view; `label`, `cluster`, `folder`: shortcuts), or the
ids it kept (`among`), restricts results to those images; results then equal an exact search
over them.
"""

from __future__ import annotations

import os
import time
import weakref
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from idx import config
from idx.errors import DecodeError, IdxError, NotFoundError, UsageError
from idx.indexer.catalog import Catalog
from idx.indexer.files import storage
from idx.indexer.index import Index
from idx.indexer.vectors.live import vectors_of
from idx.indexer.vectors.store import VectorStore, check_type
from idx.knn import drop_self
from idx.ops.filters import matching_ids, search_among
from idx.progress import Progress

if TYPE_CHECKING:  # loaded where used: a text query needs neither (bench/startup.py)
    import pyarrow as pa

    from idx.indexer.files.decode import Decoded

# What a read-only catalog said, with the connection (labels) or generation (paths) it held for.
_HAS_LABELS: weakref.WeakKeyDictionary[Catalog, tuple[int, bool]] = weakref.WeakKeyDictionary()
_PATHS: weakref.WeakKeyDictionary[Catalog, tuple[Any, pa.Table | None]] = (
    weakref.WeakKeyDictionary()
)
DEFAULT_K = 10


@dataclass
class Hit:
    """One search result. `labels` is None while the index has no labels."""

    rank: int
    score: float
    id: int
    path: str
    labels: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReindexReport:
    requested: str
    type: str
    previous_type: str | None
    count: int
    seconds: float
    recall_at_10: float | None
    params: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- queries --------------------------------------------------------------------------------


def search(
    index: Index,
    *,
    text: str | None = None,
    image: str | os.PathLike[str] | None = None,
    id: int | None = None,
    vector: np.ndarray | None = None,
    k: int = DEFAULT_K,
    image_data: bytes | None = None,
    where: str | None = None,
    label: str | None = None,
    cluster: int | None = None,
    folder: str | None = None,
    among: np.ndarray | None = None,
) -> list[Hit]:
    """The k images nearest to a text, an image file (or its bytes), an indexed image (which is
    then its own rank-1 hit) or a vector of the index's dimension, by cosine similarity; among
    the images the filter keeps when one is given (see the module)."""
    given = [v for v in (text, image, image_data, id, vector) if v is not None]
    if len(given) != 1:
        raise UsageError("give exactly one query: --text TEXT, --image FILE or --id N")
    check_k(k)
    if index.vectors.ntotal == 0:
        index.require_images("search")
    if text is not None:
        query = text_vector(index, text)
    elif image is not None:
        query = image_vector(index, image)
    elif image_data is not None:
        query = image_data_vector(index, image_data)
    elif id is not None:
        query = _stored_vector(index, int(id))
    else:
        query = np.atleast_2d(np.asarray(vector, np.float32))
        if query.shape[0] != 1:
            raise UsageError(f"vector must be one query of shape (d,), not {query.shape}")
        _check_dim(index, query, "query")
        query = query / np.linalg.norm(query, axis=1, keepdims=True)
    allowed = _allowed(index, among, where=where, label=label, cluster=cluster, folder=folder)
    return _nearest(index, query, k, allowed=allowed)


def neighbors(
    index: Index,
    image: int | str,
    k: int = DEFAULT_K,
    *,
    where: str | None = None,
    label: str | None = None,
    cluster: int | None = None,
    folder: str | None = None,
    among: np.ndarray | None = None,
) -> list[Hit]:
    """The k images nearest to an indexed image (given by id or path), itself excluded; among
    the images the filter keeps when one is given (see the module)."""
    check_k(k)
    index.require_images("search")
    image_id = resolve_image(index, image)
    allowed = _allowed(index, among, where=where, label=label, cluster=cluster, folder=folder)
    return _nearest(index, _stored_vector(index, image_id), k, exclude=image_id, allowed=allowed)


def _allowed(index: Index, among: np.ndarray | None, **filters: Any) -> np.ndarray | None:
    """The ids a search may return: `among` (ids a filter kept already, e.g. in idx serve's SQL
    process) or what the filter keeps; None: all."""
    if among is None:
        return matching_ids(index, **filters)
    if any(value is not None for value in filters.values()):
        raise UsageError(
            "give a filter (where, label, cluster, folder) or the ids it kept, not both"
        )
    return np.unique(np.asarray(among, np.int64))


def text_vector(index: Index, text: str) -> np.ndarray:
    """A text encoded with the index's own model and tokenizer."""
    if not text.strip():
        raise UsageError("--text is empty; give words describing the images to find")
    vector = index.texts.encode([text])
    _check_dim(index, vector, "text")
    return vector


def image_vector(index: Index, path: str | os.PathLike[str]) -> np.ndarray:
    """An image file decoded and preprocessed exactly like ingested images, then encoded."""
    from idx.indexer.files.decode import open_image

    if not storage.exists(path):
        raise NotFoundError(f"query image {os.fspath(path)} does not exist; check the path")
    return _encoded(index, lambda side: open_image(path, side), os.fspath(path))


def image_data_vector(index: Index, data: bytes, name: str = "the uploaded image") -> np.ndarray:
    """An image file's bytes decoded with the same guards as `idx add` (decompression bombs:
    IDX_MAX_PIXELS) and the same preprocessing, then encoded."""
    from idx.indexer.files.decode import decode

    return _encoded(index, lambda side: decode(data, side), name)


def _encoded(index: Index, load: Any, name: str) -> np.ndarray:
    encoder = index.encoder
    try:
        decoded: Decoded = load(encoder.image_size)
    except DecodeError as exc:
        raise DecodeError(
            f"cannot search with {name}: {exc}; give a JPEG/PNG/WebP/... image file"
        ) from None
    vector = encoder.encode_images(encoder.preprocess(decoded.image)[None])
    _check_dim(index, vector, "image")
    return vector


def resolve_image(index: Index, image: int | str) -> int:
    """An image id from an id or a file path (as given, absolute, or with links resolved)."""
    images = index.catalog.images
    text = str(image)
    if isinstance(image, (int, np.integer)) or text.isdigit():
        if images.has(int(text)):
            return int(text)
        if isinstance(image, (int, np.integer)):
            raise NotFoundError(
                f"no image with id {text} in index {index.dir}; list them with "
                f"`{_list_images(index)}`"
            )
    candidates = list(dict.fromkeys([text, os.path.abspath(text), os.path.realpath(text)]))
    found = images.id_for_path(candidates)
    if found is None:
        raise NotFoundError(
            f"no image {text!r} in index {index.dir} (neither an image id nor an indexed path); "
            f"list them with `{_list_images(index)}`, or add its folder with "
            f"`{config.command(index.dir, 'add')}`"
        )
    return found


def _stored_vector(index: Index, image_id: int) -> np.ndarray:
    # FAISS's own copy first: reading one FLOAT[] from the catalog costs a scan (~15 ms at 100k)
    if index.vectors.ntotal:
        try:
            return vectors_of(index.vectors, np.array([image_id]))
        except RuntimeError:  # not in FAISS (no vector, or a writer's batch not caught up)
            pass
    ids, matrix = index.embeddings([image_id])
    if len(ids) == 0:
        raise NotFoundError(
            f"no image with id {image_id} in index {index.dir}; list them with "
            f"`{_list_images(index)}`"
        )
    return matrix


def _list_images(index: Index) -> str:
    """The command that lists the index's images, ids and paths (named in not-found errors)."""
    return config.command(index.dir, "sql", "SELECT id, path FROM images")


def _nearest(
    index: Index,
    query: np.ndarray,
    k: int,
    exclude: int | None = None,
    allowed: np.ndarray | None = None,
) -> list[Hit]:
    extra = 0 if exclude is None else 1
    if allowed is None:
        scores, ids = index.vectors.search(query, k + extra)
    else:
        scores, ids = search_among(index.vectors, query, k + extra, allowed)
    if exclude is not None:
        scores, ids = drop_self(ids, np.array([exclude]), k, scores)
    pairs = [(float(s), int(i)) for s, i in zip(scores[0], ids[0]) if i >= 0]
    info = _image_info(index, [i for _, i in pairs])
    # An id the catalog no longer holds is never shown (the FAISS file is kept in step anyway).
    hits = [(s, i) for s, i in pairs if i in info]
    return [Hit(rank, score, i, info[i][0], info[i][1]) for rank, (score, i) in enumerate(hits, 1)]


def _image_info(index: Index, ids: list[int]) -> dict[int, tuple[str, list[str] | None]]:
    """id -> (path, positive labels or None when the index has no labels)."""
    if not ids:
        return {}
    catalog = index.catalog
    paths = _read_only_paths(index, ids) if index.read_only else catalog.images.paths_for(ids)
    if not _has_labels(index):
        return {i: (p, None) for i, p in paths.items()}
    names = catalog.labels.names_for(ids)
    return {i: (p, names.get(i, [])) for i, p in paths.items()}


def _read_only_paths(index: Index, ids: list[int]) -> dict[int, str]:
    """Paths from an in-memory copy of (id, path), made on the second query (the first looks its
    hits up alone) and again when a writer moved the generation (a path changes only in a commit that moves it). Only for a read-only
    index; a lookup then costs microseconds instead of a query (~1.5-5 ms on a busy machine)."""
    generation = index.vectors.meta.get("generation")
    cached = _PATHS.get(index.catalog)
    if cached is None:  # a first query (perhaps the only one, `idx search`): look its hits up
        _PATHS[index.catalog] = (generation, None)
        return index.catalog.images.paths_for(ids)
    import pyarrow as pa

    table = cached[1]
    if table is None or cached[0] != generation:  # a writer committed since (idx serve)
        table = index.catalog.images.path_table()
        _PATHS[index.catalog] = (generation, table)
    known = table.column("id").to_numpy()
    if len(known) == 0:
        return {}
    wanted = np.asarray(ids, np.int64)
    pos = np.minimum(np.searchsorted(known, wanted), len(known) - 1)
    found = known[pos] == wanted
    paths = table.column("path").take(pa.array(pos[found])).to_pylist()
    return dict(zip(wanted[found].tolist(), paths))


def _has_labels(index: Index) -> bool:
    """Whether the index holds any labels (then results show them)."""
    # A read-only catalog cannot change while open, so one look per connection suffices there.
    catalog = index.catalog
    if index.read_only:
        cached = _HAS_LABELS.get(catalog)
        if cached is not None and cached[0] == catalog.connections:
            return cached[1]
    known = catalog.labels.any()
    if index.read_only:
        _HAS_LABELS[catalog] = (catalog.connections, known)
    return known


def check_k(k: int) -> None:
    """A UsageError unless k, a number of neighbours asked for, is at least 1."""
    if k < 1:
        raise UsageError(f"-k must be at least 1, not {k}")


def _check_dim(index: Index, vector: np.ndarray, what: str) -> None:
    dim = index.vectors.index.d
    if vector.shape[-1] != dim:
        raise IdxError(
            f"{what} vectors have {vector.shape[-1]} dimensions but index {index.dir} holds "
            f"{dim}-d vectors; encode queries with the model the index was built with"
        )


# -- index type -----------------------------------------------------------------------------


def reindex(index: Index, kind: str = "auto", progress: Progress | None = None) -> ReindexReport:
    """Rebuild the FAISS index from the catalog as `kind` ("auto" or one of INDEX_TYPES);
    approximate types are tuned to recall@10 >= 0.95 and their measured recall reported."""
    check_type(kind)
    previous = VectorStore(index.dir).read_meta().get("type")
    start = time.perf_counter()
    store = index.rebuild_vectors(kind, progress)
    return ReindexReport(
        requested=kind,
        type=store.kind,
        previous_type=previous,
        count=store.ntotal,
        seconds=round(time.perf_counter() - start, 3),
        recall_at_10=store.meta.get("recall_at_10"),
        params=dict(store.meta.get("params", {})),
    )
