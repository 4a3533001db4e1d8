"""Progress reporting shared by every layer: the library calls a callback, the CLI draws it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class ProgressEvent:
    """One step of long work: `done` of `total` (0 when unknown) in a named phase."""

    phase: str
    done: int
    total: int
    message: str = ""


Progress = Callable[[ProgressEvent], None]


def forward(progress: Progress | None, phase: str) -> Callable[[int, int], None] | None:
    """An analysis-level progress(done, total) that forwards to `progress` as `phase` events."""
    if progress is None:
        return None
    return lambda done, total: progress(ProgressEvent(phase, done, total))
