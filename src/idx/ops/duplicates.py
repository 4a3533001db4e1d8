"""Near-duplicate images: groups linked by pairs above a cosine similarity threshold."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from idx.errors import UsageError
from idx.indexer.index import Index
from idx.indexer.vectors.pairs import similar_pairs

log = logging.getLogger(__name__)

DEFAULT_DUPLICATE_THRESHOLD = 0.97
#: A group holding more than this share of the images is no set of duplicates: the threshold is
#: too low for this model (untrained weights, or a collection of near-identical pictures).
CROWDED_SHARE = 0.5
#: Thresholds tried (quantiles of the linking similarities) to suggest a better one.
SUGGESTION_STEPS = 40


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
    largest group first. When one group holds most of the images, a warning (logged) says so
    and names a threshold that breaks it up (`crowding_warning`)."""
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
    warning = crowding_warning(len(ids), groups, left, right, scores, threshold)
    if warning:
        untrained = index.describe_model()[1]
        log.warning(warning + ("; the model has UNTRAINED weights" if untrained else ""))
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


def crowding_warning(
    n: int,
    groups: list[np.ndarray],
    left: np.ndarray,
    right: np.ndarray,
    scores: np.ndarray,
    threshold: float,
) -> str | None:
    """What to say when the largest group holds more than CROWDED_SHARE of the n images: its
    size, and the lowest threshold (among quantiles of the linking similarities) at which no
    group does; None when the groups are plausible duplicates."""
    from idx.analysis.groups import connected_groups

    if not groups or len(groups[0]) <= CROWDED_SHARE * n:
        return None
    message = (
        f"one group holds {len(groups[0])} of the {n} images ({len(groups[0]) / n:.0%}) at "
        f"--threshold {threshold:g}: these are not duplicates, the threshold is too low for "
        "this model's similarities"
    )
    for t in np.unique(np.quantile(scores, np.linspace(0, 1, SUGGESTION_STEPS + 1)[1:])):
        keep = scores >= t
        found = connected_groups(n, left[keep], right[keep])
        largest = len(found[0]) if found else 0
        if t > threshold and largest <= CROWDED_SHARE * n:
            digits = next(d for d in (3, 4, 5, 6) if np.ceil(t * 10**d) < 10**d or d == 6)
            return message + (
                f"; raise it, e.g. --threshold {np.ceil(t * 10**digits) / 10**digits:.{digits}f} "
                f"(largest group then {largest} images)"
            )
    return message + "; raise --threshold towards 1"
