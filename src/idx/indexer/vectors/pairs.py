"""Every pair of images within a distance, found exactly by FAISS range searches in batches (memory
grows with the pairs found, not with n^2): by the cosine of their vectors (a flat inner-product
index) or by the Hamming distance of their 64-bit perceptual hashes (a flat binary index, whose
popcounts cost a few nanoseconds a pair). Within one set (i < j) or across two (a query set and a
base set).
"""

from __future__ import annotations

from collections.abc import Callable

import faiss
import numpy as np

Pairs = tuple[np.ndarray, np.ndarray, np.ndarray]  # (positions, positions, scores or distances)


def similar_pairs(matrix: np.ndarray, threshold: float, batch: int = 2048) -> Pairs:
    """Exact pairs (i, j, score) of row positions with i < j and cosine >= threshold."""
    flat = _inner_product(matrix)
    return _range_pairs(
        lambda q: flat.range_search(q, _below(threshold)), _f32(matrix), batch, True
    )


def similar_pairs_across(
    queries: np.ndarray, base: np.ndarray, threshold: float, batch: int = 2048
) -> Pairs:
    """Exact pairs (query position, base position, score) with cosine >= threshold."""
    flat = _inner_product(base)
    return _range_pairs(
        lambda q: flat.range_search(q, _below(threshold)), _f32(queries), batch, False
    )


def hash_pairs(
    codes: np.ndarray,
    max_distance: int,
    queries: np.ndarray | None = None,
    batch: int = 8192,
) -> Pairs:
    """Exact pairs of uint64 hashes whose Hamming distance is at most `max_distance`: (i, j,
    distance) with i < j among `codes`, or (query position, code position, distance) when
    `queries` are given."""
    flat = faiss.IndexBinaryFlat(64)
    flat.add(_bytes(codes))
    # a binary range search keeps distances strictly below its radius
    i, j, d = _range_pairs(
        lambda q: flat.range_search(q, int(max_distance) + 1),
        _bytes(codes if queries is None else queries),
        batch,
        queries is None,
    )
    return i, j, d.astype(np.int32)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise Hamming distances of two uint64 arrays of hashes."""
    x = np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64))
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.bitwise_count(x).astype(np.int32)
    return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1).astype(np.int32)


def _range_pairs(search: Callable, queries: np.ndarray, batch: int, upper: bool) -> Pairs:
    """Range search `queries` a batch at a time; with `upper`, queries are the base itself and
    only pairs i < j are kept (each once, none with itself)."""
    parts_i, parts_j, parts_s = [], [], []
    for start in range(0, len(queries), batch):
        lims, scores, pos = search(np.ascontiguousarray(queries[start : start + batch]))
        rows = np.repeat(np.arange(start, start + len(lims) - 1), np.diff(lims).astype(np.int64))
        keep = rows < pos if upper else np.ones(len(rows), bool)
        parts_i.append(rows[keep])
        parts_j.append(pos[keep].astype(np.int64))
        parts_s.append(scores[keep])
    if not parts_i:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    return np.concatenate(parts_i), np.concatenate(parts_j), np.concatenate(parts_s)


def _inner_product(matrix: np.ndarray) -> faiss.IndexFlatIP:
    flat = faiss.IndexFlatIP(matrix.shape[1])
    flat.add(_f32(matrix))
    return flat


def _f32(matrix: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(matrix, np.float32)


def _below(threshold: float) -> float:
    """An inner-product range search keeps scores strictly above its radius: one ulp below the
    threshold keeps those equal to it."""
    return float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))


def _bytes(codes: np.ndarray) -> np.ndarray:
    """uint64 hashes as the 8-byte codes of a binary index (bitwise, so byte order is moot)."""
    return np.ascontiguousarray(codes, np.uint64).view(np.uint8).reshape(-1, 8)
