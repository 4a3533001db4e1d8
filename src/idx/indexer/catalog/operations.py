"""The typed operations an `add` run plans and the catalog applies, one per file.

Planning (indexer.ingest: walk, planner) compares the walk with the catalog and decides; applying
(catalog.files.Files.apply) writes. Each operation carries exactly what its write needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from idx.indexer.files.reader import Prepared
    from idx.indexer.files.scan import Skip


class Row(NamedTuple):
    """A catalog image row as a run needs it (a tuple: `add` reads thousands per run)."""

    id: int
    path: str
    sha256: str
    bytes: int
    mtime_ns: int
    etag: str | None  # objects on object storage (indexer.files.storage); None for local files


@dataclass(frozen=True)
class Add:
    """A new path: a new image row. `reused`: its content already had a vector (a copy, or the
    same content twice in one batch), so nothing was embedded for it."""

    file: Prepared
    root: str
    source: str
    reused: bool = False


@dataclass(frozen=True)
class Update:
    """An indexed path whose content changed: same id, new content."""

    file: Prepared
    row: Row
    reused: bool = False


@dataclass(frozen=True)
class Touch:
    """An indexed path with new size or mtime but the same content: only the stat changes."""

    file: Prepared
    row: Row


@dataclass(frozen=True)
class Move:
    """Known content at a new path whose old path is gone: the row keeps its id and vector."""

    file: Prepared
    row: Row
    root: str


@dataclass(frozen=True)
class SkipFile:
    """A file that is not a usable image, recorded with its reason until it changes."""

    skip: Skip
    root: str


Operation = Add | Update | Touch | Move | SkipFile
