"""`idx duplicates --across A B`: near-duplicates with one image in each of two sets (a training
set and its validation set, say), and how many images of each set have a copy in the other.

The same photo re-encoded, resized or lightly cropped on both sides inflates every kNN and probe
figure measured across them. Pairs are linked as within one set (`duplicates.Criteria`: CLIP and
the perceptual hash by default). Each run is stored (kind `leakage`), so `idx report` and the web
app show the latest without computing it again.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from idx import config
from idx.errors import UsageError
from idx.indexer.files import storage
from idx.indexer.files.phash import BITS
from idx.indexer.index import Index
from idx.ops.duplicates import Criteria, Pairs, Side, note_missing_hashes, pair

log = logging.getLogger(__name__)

#: Pairs a stored run's reader (the report, the web app) shows by default.
SHOWN_PAIRS = 12
#: Pairs in the order they are listed: the closest hash first, then the most similar.
PAIR_ORDER = ("distance", "-similarity", "image_id", "neighbor_id")


@dataclass
class LeakagePair:
    """A near-duplicate pair: `b` under B, `a` its copy under A."""

    b_id: int
    b_path: str
    a_id: int
    a_path: str
    similarity: float
    distance: int | None  # Hamming bits of 64; None when one has no hash


@dataclass
class Leakage:
    side_a: str
    side_b: str
    images_a: int
    images_b: int
    #: images of A with a near-duplicate in B, and of B with one in A
    a_with_copy: int
    b_with_copy: int
    in_both: int
    without_hash: int
    linked_by: str
    threshold: float | None
    max_distance: int | None
    run_id: int | None = None
    seconds: float = 0.0
    #: every pair found (a stored run read back: the closest `shown`), closest hash first
    pairs: list[LeakagePair] = field(default_factory=list)
    pair_count: int = 0

    @property
    def share_b(self) -> float | None:
        """The share of B's images with a copy in A."""
        return self.b_with_copy / self.images_b if self.images_b else None

    @property
    def share_a(self) -> float | None:
        return self.a_with_copy / self.images_a if self.images_a else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"share_b": self.share_b, "share_a": self.share_a}


def side_ids(index: Index, side: str) -> np.ndarray:
    """Sorted ids of the images of one side: `label:NAME` (a positive label), `where:SQL` (a
    condition over the image_info view), else a folder (or s3:// prefix) they lie in or below."""
    image_info = index.catalog.image_info
    if side.startswith("label:"):
        return image_info.matching_ids(label=side.removeprefix("label:"))
    if side.startswith("where:"):
        timeout = index.catalog.user_sql.timeout
        return image_info.matching_ids(where=side.removeprefix("where:"), timeout=timeout)
    return image_info.matching_ids(folder=folder_of(side))


def folder_of(side: str) -> str:
    """A folder as `add` stored its paths: absolute, or the URL without a trailing '/'."""
    if storage.is_remote(side):
        return side.rstrip("/")
    return os.path.abspath(os.path.expanduser(side))


def leakage(
    index: Index,
    a: str,
    b: str,
    *,
    threshold: float | None = None,
    max_distance: int | None = None,
    by: str = "both",
    store: bool = True,
) -> Leakage:
    """The near-duplicate pairs between sets `a` and `b` (see side_ids) and the counts of each
    side's images with a copy in the other; stored as a `leakage` run unless `store` is False
    (or the index is read-only). An image in both sets is never paired with itself."""
    criteria = Criteria.of(by, threshold, max_distance)
    start = time.perf_counter()
    index.require_images("look for duplicates in")
    ids_a, ids_b = side_ids(index, a), side_ids(index, b)
    for name, given, ids in (("A", a, ids_a), ("B", b, ids_b)):
        if len(ids) == 0:
            raise UsageError(
                f"set {name} ({given!r}) holds no indexed image: give a folder that `idx add` "
                "indexed (or one below it), label:NAME or where:SQL "
                f"(`{config.command(index.dir, 'sql', 'DESCRIBE image_info')}` lists what it "
                "can test)"
            )
    ids_a, vectors_a = index.embeddings(ids_a)
    ids_b, vectors_b = index.embeddings(ids_b)
    side_a, side_b = Side.read(index, ids_a, vectors_a), Side.read(index, ids_b, vectors_b)
    both = np.intersect1d(ids_a, ids_b)
    without_hash = note_missing_hashes(
        index, criteria, np.concatenate([side_a.hashed, side_b.hashed[~np.isin(ids_b, both)]])
    )
    found = pair(criteria, side_b, side_a)
    found = _drop_self_pairs(found, ids_b, ids_a)
    result = Leakage(
        side_a=a,
        side_b=b,
        images_a=len(ids_a),
        images_b=len(ids_b),
        a_with_copy=len(np.unique(found.right)),
        b_with_copy=len(np.unique(found.left)),
        in_both=len(both),
        without_hash=without_hash,
        linked_by=criteria.linked_by,
        threshold=criteria.threshold,
        max_distance=criteria.max_distance,
        pair_count=len(found.left),
    )
    unknown_last = np.where(found.distance < 0, BITS + 1, found.distance)
    order = np.lexsort((ids_a[found.right], ids_b[found.left], -found.similarity, unknown_last))
    b_rows, a_rows = ids_b[found.left[order]], ids_a[found.right[order]]
    similarity, distance = found.similarity[order], found.distance[order]
    paths = index.catalog.images.paths_for(np.concatenate([b_rows, a_rows]))
    result.pairs = [
        LeakagePair(int(bi), paths[int(bi)], int(ai), paths[int(ai)], float(s), _bits(d))
        for bi, ai, s, d in zip(b_rows, a_rows, similarity, distance)
    ]
    result.seconds = round(time.perf_counter() - start, 3)
    if store and not index.read_only:
        result.run_id = _store(index, result, b_rows, a_rows, similarity, distance)
    return result


def _drop_self_pairs(found: Pairs, ids_left: np.ndarray, ids_right: np.ndarray) -> Pairs:
    keep = ids_left[found.left] != ids_right[found.right]
    return Pairs(found.left[keep], found.right[keep], found.similarity[keep], found.distance[keep])


def _bits(distance: int) -> int | None:
    return int(distance) if distance >= 0 else None


def _store(
    index: Index,
    result: Leakage,
    b_rows: np.ndarray,
    a_rows: np.ndarray,
    similarity: np.ndarray,
    distance: np.ndarray,
) -> int:
    run = {
        k: v
        for k, v in result.as_dict().items()
        if k not in ("run_id", "pairs", "pair_count", "share_a", "share_b")
    }
    with index.catalog.transaction():
        run_id = index.catalog.runs.create("leakage", run | {"model": index.describe_model()[0]})
        if len(b_rows):
            index.catalog.runs.add_rows(
                "leakage",
                "leakage_pairs",
                run_id,
                {
                    "image_id": b_rows,
                    "neighbor_id": a_rows,
                    "similarity": similarity,
                    "distance": [_bits(d) for d in distance],
                },
            )
    return run_id


def load_leakage(index: Index, run_id: int | None = None, shown: int = SHOWN_PAIRS) -> Leakage:
    """A stored leakage run (the latest when run_id is None) with its `shown` closest pairs of
    images the index still holds."""
    run_id = index.catalog.runs.resolve("leakage", run_id)
    run = index.catalog.runs.get("leakage", run_id)
    assert run is not None  # resolve checked it exists
    rows = index.catalog.runs.rows(
        "leakage", "leakage_pairs", run_id, order_by=PAIR_ORDER
    ).to_pylist()
    paths = index.catalog.images.paths_for(
        [r["image_id"] for r in rows[:shown]] + [r["neighbor_id"] for r in rows[:shown]]
    )
    names = [f.name for f in fields(Leakage) if f.name in run]
    result = Leakage(**{name: run[name] for name in names})
    result.run_id, result.pair_count = run_id, len(rows)
    result.pairs = [
        LeakagePair(
            r["image_id"],
            paths[r["image_id"]],
            r["neighbor_id"],
            paths[r["neighbor_id"]],
            float(r["similarity"]),
            r["distance"],
        )
        for r in rows[:shown]
        if r["image_id"] in paths and r["neighbor_id"] in paths
    ]
    return result


def latest_leakage(index: Index, shown: int = SHOWN_PAIRS) -> dict[str, Any]:
    """The latest leakage run as JSON-able data (`load_leakage`), or what makes one (`missing`,
    as the web app's panels take it) when there is none."""
    if index.catalog.runs.latest("leakage") is None:
        return {
            "missing": {
                "what": "No comparison of two sets yet.",
                # absolute: the web app shows it, to be pasted in any folder
                "command": config.command(
                    index.dir, "duplicates", "--across", "A", "B", relative=False
                ),
            }
        }
    return load_leakage(index, shown=shown).as_dict()
