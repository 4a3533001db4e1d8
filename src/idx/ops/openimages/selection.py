"""Which images a fetch takes: all the candidates, or with a limit a seeded sample balanced across
the classes asked for.

Each class's candidates are ordered by a hash of (seed, ImageID), so the same seed picks the same
images whatever order the file lists them in and whichever other images it holds; the classes
then take turns, each taking its next image not taken yet, so a class with few images leaves its
share to the others."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def sample(candidates: Sequence[set[str]], limit: int | None, seed: int) -> list[str]:
    """The ImageIDs taken, in the order taken: every candidate when `limit` is None."""
    queues = [sorted(ids, key=lambda i: _rank(seed, i), reverse=True) for ids in candidates]
    every = {i for ids in candidates for i in ids}
    limit = len(every) if limit is None else min(limit, len(every))
    taken: dict[str, None] = {}
    while len(taken) < limit:
        for queue in queues:
            while queue and queue[-1] in taken:
                queue.pop()
            if queue and len(taken) < limit:
                taken[queue.pop()] = None
    return list(taken)


def per_class(candidates: Sequence[set[str]], taken: Sequence[str]) -> list[int]:
    """How many of the images taken each class's candidates hold (an image may count twice)."""
    chosen = set(taken)
    return [len(ids & chosen) for ids in candidates]


def _rank(seed: int, image_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{image_id}".encode(), digest_size=8).digest()
