"""Near-duplicate images: pairs linked by CLIP's cosine similarity and confirmed by their
perceptual hashes (indexer/files/phash.py), and the groups those pairs make within one set.

Which pairs count (`Criteria`): by default (`both`) a cosine at or above the threshold AND a
Hamming distance of the hashes at or below `max_distance`: CLIP alone links two different photos
of one scene (and an untrained model links everything), the hash alone two unrelated pictures of
like layout now and then. `clip` and `hash` take one of them alone. Pairs across two sets (the
leakage between them) are `idx.ops.leakage`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from idx import config
from idx.errors import UsageError
from idx.indexer.files.phash import BITS
from idx.indexer.index import Index
from idx.indexer.vectors.pairs import hamming, hash_pairs, similar_pairs, similar_pairs_across

log = logging.getLogger(__name__)

#: What links two images: CLIP and the hash (both), or either alone.
LINKS = ("both", "clip", "hash")
#: Cosine similarity at or above which CLIP alone calls two images near-duplicates.
DEFAULT_DUPLICATE_THRESHOLD = 0.97
#: The same with the hash to confirm: CLIP then only has to tell two unrelated pictures apart
#: (a lightly cropped copy can score below 0.97 with real weights; the hash holds it).
DEFAULT_CONFIRMED_THRESHOLD = 0.9
#: Hamming distance of the 64-bit hashes at or below which two images count as near-duplicates:
#: resized, re-encoded and brightened copies of the Open Images snacks photos lie at 0-10, a
#: crop of 2% a side at 4-12, unrelated photos at 16 and more (bench/README.md, "Duplicates").
DEFAULT_MAX_DISTANCE = 10
#: A group holding more than this share of the images is no set of duplicates: the threshold is
#: too low for this model (untrained weights, or a collection of near-identical pictures).
CROWDED_SHARE = 0.5
#: Thresholds tried (quantiles of the linking similarities) to suggest a better one.
SUGGESTION_STEPS = 40


@dataclass(frozen=True)
class Criteria:
    """What makes two images near-duplicates; `threshold` None where CLIP does not decide,
    `max_distance` None where the hash does not."""

    linked_by: str = "both"
    threshold: float | None = None
    max_distance: int | None = None

    @classmethod
    def of(
        cls,
        linked_by: str = "both",
        threshold: float | None = None,
        max_distance: int | None = None,
    ) -> Criteria:
        """The criteria as given, each left out taking its default; UsageError for a value out
        of range, or one the chosen link does not use."""
        if linked_by not in LINKS:
            raise UsageError(f"--by {linked_by!r} is unknown; use one of {', '.join(LINKS)}")
        if linked_by == "hash" and threshold is not None:
            raise UsageError("--threshold is CLIP's; --by hash links by the hash alone (drop one)")
        if linked_by == "clip" and max_distance is not None:
            raise UsageError("--max-distance is the hash's; --by clip links by CLIP alone")
        if threshold is not None and not 0.0 < threshold <= 1.0:
            raise UsageError(f"--threshold must be in (0, 1], not {threshold}")
        if max_distance is not None and not 0 <= max_distance <= BITS:
            raise UsageError(f"--max-distance must be from 0 to {BITS} bits, not {max_distance}")
        if linked_by != "hash" and threshold is None:
            threshold = (
                DEFAULT_DUPLICATE_THRESHOLD if linked_by == "clip" else DEFAULT_CONFIRMED_THRESHOLD
            )
        if linked_by != "clip" and max_distance is None:
            max_distance = DEFAULT_MAX_DISTANCE
        return cls(linked_by, threshold, max_distance)

    @property
    def uses_hash(self) -> bool:
        return self.max_distance is not None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Side:
    """Images as pair() takes them: their vectors, hashes and whether each has a hash."""

    vectors: np.ndarray
    hashes: np.ndarray
    hashed: np.ndarray

    @classmethod
    def read(cls, index: Index, ids: np.ndarray, vectors: np.ndarray) -> Side:
        hashes, hashed = index.catalog.images.phashes(ids)
        return cls(vectors, hashes, hashed)


@dataclass
class Pairs:
    """Linked pairs of positions, with their cosine and Hamming distance (-1: a hash missing)."""

    left: np.ndarray
    right: np.ndarray
    similarity: np.ndarray
    distance: np.ndarray


def pair(criteria: Criteria, queries: Side, base: Side | None = None) -> Pairs:
    """The pairs `criteria` link: within `queries` (left < right), or between `queries` (left)
    and `base` (right). Where the hash decides, candidates come from the hashes (few, however
    loose CLIP is) and images without one are never linked."""
    within = base is None
    other = queries if base is None else base
    if criteria.uses_hash:
        assert criteria.max_distance is not None
        q_at, b_at = np.flatnonzero(queries.hashed), np.flatnonzero(other.hashed)
        found = hash_pairs(
            other.hashes[b_at],
            criteria.max_distance,
            queries=None if within else queries.hashes[q_at],
        )
        left, right, distance = q_at[found[0]], b_at[found[1]], found[2]
        similarity = np.einsum("ij,ij->i", queries.vectors[left], other.vectors[right])
        if criteria.threshold is not None:
            keep = similarity >= np.float32(criteria.threshold)
            left, right, similarity, distance = (
                left[keep], right[keep], similarity[keep], distance[keep]
            )  # fmt: skip
    else:
        assert criteria.threshold is not None
        if within:
            left, right, similarity = similar_pairs(queries.vectors, criteria.threshold)
        else:
            left, right, similarity = similar_pairs_across(
                queries.vectors, other.vectors, criteria.threshold
            )
        both = queries.hashed[left] & other.hashed[right]
        distance = np.where(both, hamming(queries.hashes[left], other.hashes[right]), -1)
    return Pairs(left, right, similarity.astype(np.float32), distance.astype(np.int32))


def note_missing_hashes(index: Index, criteria: Criteria, hashed: np.ndarray) -> int:
    """How many images lack a hash; a logged warning says what that costs and the fix."""
    missing = int((~hashed).sum())
    if missing and criteria.uses_hash:
        log.warning(
            f"{missing} of {len(hashed)} images have no perceptual hash (indexed before idx took "
            f"them), so they are never linked here: `{config.command(index.dir, 'add', 'FOLDER')}` "
            "again takes them (unchanged files are read, not embedded), or --by clip links by "
            "CLIP alone"
        )
    return missing


@dataclass
class DuplicatePair:
    a: int
    b: int
    similarity: float
    distance: int | None  # Hamming bits of 64; None when one has no hash


@dataclass
class DuplicateGroup:
    group: int
    ids: list[int]
    paths: list[str]
    #: the weakest similarity among the pairs that link the group
    min_score: float
    #: the largest hash distance among those pairs (None when none has one)
    max_distance: int | None = None
    pairs: list[DuplicatePair] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.ids)

    def as_dict(self) -> dict[str, Any]:
        return {"group": self.group, "size": self.size, **asdict(self)}


def duplicates(
    index: Index,
    threshold: float | None = None,
    *,
    max_distance: int | None = None,
    by: str = "both",
) -> list[DuplicateGroup]:
    """Groups of images linked by near-duplicate pairs (exact search; `Criteria.of` for `by`,
    `threshold` and `max_distance`), largest group first, each with its pairs. When CLIP alone
    links and one group holds most of the images, a warning (logged) says so and names a
    threshold that breaks it up (`crowding_warning`)."""
    criteria = Criteria.of(by, threshold, max_distance)
    from idx.analysis.groups import connected_groups  # scipy: loaded only when needed

    index.require_images("look for duplicates in")
    ids, matrix = index.embeddings()
    side = Side.read(index, ids, matrix)
    note_missing_hashes(index, criteria, side.hashed)
    found = pair(criteria, side)
    groups = connected_groups(len(ids), found.left, found.right)
    if not groups:
        return []
    if criteria.linked_by == "clip":
        _warn_if_crowded(index, len(ids), groups, found, criteria)
    label = np.full(len(ids), -1)
    for g, members in enumerate(groups):
        label[members] = g
    paths = index.catalog.images.paths_for(ids[np.concatenate(groups)])
    by_group: dict[int, list[int]] = {}
    for p, g in enumerate(label[found.left]):
        by_group.setdefault(int(g), []).append(p)
    out = []
    for g, members in enumerate(groups):
        mine = by_group[g]
        distances = [int(found.distance[p]) for p in mine if found.distance[p] >= 0]
        out.append(
            DuplicateGroup(
                group=g + 1,
                ids=[int(ids[p]) for p in members],
                paths=[paths[int(ids[p])] for p in members],
                min_score=float(found.similarity[mine].min()),
                max_distance=max(distances) if distances else None,
                pairs=[_pair(ids, found, p) for p in mine],
            )
        )
    return out


def _pair(ids: np.ndarray, found: Pairs, p: int) -> DuplicatePair:
    distance = int(found.distance[p])
    return DuplicatePair(
        int(ids[found.left[p]]),
        int(ids[found.right[p]]),
        float(found.similarity[p]),
        distance if distance >= 0 else None,
    )


def _warn_if_crowded(
    index: Index, n: int, groups: list[np.ndarray], found: Pairs, criteria: Criteria
) -> None:
    assert criteria.threshold is not None
    warning = crowding_warning(
        n, groups, found.left, found.right, found.similarity, criteria.threshold
    )
    if warning:
        untrained = index.describe_model()[1]
        log.warning(warning + ("; the model has UNTRAINED weights" if untrained else ""))


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
