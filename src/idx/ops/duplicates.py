"""Near-duplicate images: groups linked by pairs above a cosine similarity threshold."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from idx.errors import UsageError
from idx.indexer.index import Index
from idx.indexer.vectors import similar_pairs

DEFAULT_DUPLICATE_THRESHOLD = 0.97


@dataclass
class DuplicateGroup:
    group: int
    ids: list[int]
    paths: list[str]
    #: the weakest similarity among the pairs that link the group
    min_score: float

    @property
    def size(self) -> int:
        return len(self.ids)

    def as_dict(self) -> dict[str, Any]:
        return {"group": self.group, "size": self.size, **asdict(self)}


def duplicates(
    index: Index, threshold: float = DEFAULT_DUPLICATE_THRESHOLD
) -> list[DuplicateGroup]:
    """Groups of images linked by pairs with cosine similarity >= threshold (exact search),
    largest group first."""
    if not 0.0 < threshold <= 1.0:
        raise UsageError(f"--threshold must be in (0, 1], not {threshold}")
    from idx.analysis.groups import connected_groups  # scipy: loaded only when needed

    index.require_images("look for duplicates in")
    ids, matrix = index.embeddings()
    left, right, scores = similar_pairs(matrix, threshold)
    groups = connected_groups(len(ids), left, right)
    if not groups:
        return []
    label = np.full(len(ids), -1)
    for g, members in enumerate(groups):
        label[members] = g
    weakest = np.full(len(groups), np.inf)
    np.minimum.at(weakest, label[left], scores)
    paths = index.catalog.images.paths_for(ids[np.concatenate(groups)])
    return [
        DuplicateGroup(
            group=g + 1,
            ids=[int(ids[p]) for p in members],
            paths=[paths[int(ids[p])] for p in members],
            min_score=float(weakest[g]),
        )
        for g, members in enumerate(groups)
    ]
