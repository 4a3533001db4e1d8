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
