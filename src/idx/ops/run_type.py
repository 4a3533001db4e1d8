"""What an ops module says about the kind of run it computes, for `idx runs` (ops/runs.py
gathers them), and the helpers it says it with.

Its own module so that ops/runs.py may import the modules that describe the kinds, and those
this, without a circle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from idx.indexer.index import Index


@dataclass(frozen=True)
class RunType:
    """How a kind of run is listed, read back and removed."""

    #: its run row -> its parameters, short ("k=8 kmeans on embedding, seed 0")
    parameters: Callable[[dict[str, Any]], str]
    #: its run row -> the one figure that says how it came out ("silhouette 0.1234")
    headline: Callable[[Index, dict[str, Any]], str]
    #: the stored result, as its command returned it (plots found where they were drawn)
    load: Callable[[Index, int], Any]
    #: its plots under <index>/plots that exist: files and folders
    plots: Callable[[Path, int], list[Path]]
    #: removes a run whose removal is more than rows (images, files); -> {what: how many}
    remove: Callable[[Index, int], dict[str, int]] | None = None


def latest_matching(index: Index, kind: str, match: Callable[[dict[str, Any]], bool]) -> int | None:
    """The newest run of `kind` whose row `match` accepts; None when there is none."""
    for row in index.catalog.runs.all(kind):
        if match(row):
            return int(row["id"])
    return None


def run_folder(prefix: str) -> Callable[[Path, int], list[Path]]:
    """A RunType's `plots` for a kind that draws into one folder per run: `<root>/<prefix>-<run
    id>`, when it exists."""

    def plots(root: Path, run_id: int) -> list[Path]:
        folder = root / f"{prefix}-{run_id}"
        return [folder] if folder.is_dir() else []

    return plots


def existing(folder: Path, names: dict[str, str]) -> dict[str, Path]:
    """{plot name: folder/file} for the files of `names` ({plot name: file}) that exist."""
    return {name: folder / file for name, file in names.items() if (folder / file).is_file()}


def figure(value: Any, digits: int = 4) -> str:
    """A stored number as the headline shows it; '-' when there is none."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
