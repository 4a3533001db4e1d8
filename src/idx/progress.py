"""What long work and the library's log tell the user, shared by every layer: progress events (the
library calls a callback, the CLI draws it) and the form of log lines on stderr."""

from __future__ import annotations

import logging
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


#: The log level of what a user hears without -v: long work done once that would otherwise look
#: like a hang (preparing a model's ONNX towers). The CLI shows it as `note: ...` on stderr.
NOTE = 25
logging.addLevelName(NOTE, "NOTE")


class LogLines(logging.Formatter):
    """Log records as idx's own stderr lines, `warning: message` beside its `note:` and `error:`
    lines (not `WARNING idx.ops.duplicates: ...`); with `with_names` (idx -v) the module too."""

    def __init__(self, with_names: bool = False):
        super().__init__("%(name)s: %(message)s" if with_names else "%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {super().format(record)}"
