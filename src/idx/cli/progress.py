"""Progress bars on stderr (tqdm), shown only when stderr is a terminal and not quieted."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class ProgressBar:
    """A callback for the library's progress events: event.phase, event.done, event.total."""

    def __init__(self, quiet: bool = False, unit: str = "img"):
        self.enabled = not quiet and sys.stderr.isatty()
        self.unit = unit
        self.bar: Any = None
        self.phase = ""

    def __call__(self, event: Any) -> None:
        if not self.enabled:
            return
        if event.phase != self.phase or self.bar is None:
            from tqdm import tqdm  # here, so that commands without a bar start faster

            self.close()
            self.phase = event.phase
            self.bar = tqdm(
                total=event.total or None,
                desc=event.phase,
                unit=self.unit,
                file=sys.stderr,
                dynamic_ncols=True,
                leave=False,
            )
        if event.total and self.bar.total != event.total:
            self.bar.total = event.total
        self.bar.n = event.done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def write(self, message: str) -> None:
        """Print a line on stderr without breaking the bar."""
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Callback = Callable[[Any], None]
