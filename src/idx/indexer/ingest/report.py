"""What one `add` run did (`AddReport`): the files added, unchanged, updated, moved, removed and
skipped, what was embedded where, and where the time went."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from idx.indexer.catalog.operations import Add, Move, Operation, SkipFile, Touch, Update
from idx.indexer.files import formats
from idx.indexer.files.storage import Survey

#: AddReport.timings' keys
STAGES = ("scan", "start", "read", "embed", "store", "store_wait")


@dataclass
class AddReport:
    added: int = 0
    unchanged: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    excluded: int = 0  # of `removed`: files still there that the folder's rules now leave out
    skipped: int = 0
    embedded: int = 0
    reused: int = 0
    hashed: int = 0  # contents given the perceptual hash they lacked (indexed before idx took it)
    seconds: float = 0.0
    roots: list[str] = field(default_factory=list)
    skipped_files: list[tuple[str, str]] = field(default_factory=list)
    device: str | None = None  # where new content was embedded (None: nothing was)
    precision: str | None = None
    engine: str = "local"
    nodes: set[str] = field(default_factory=set)  # Ray nodes that embedded
    #: where the time went (seconds): walking and planning, starting the engine (loading the
    #: model, starting workers or Ray), waiting for files to be read and decoded (on Ray: for
    #: the cluster to read and embed them), the model in this process, catalog commits (in the
    #: background) and this process waiting for them; not meant to add up to `seconds`
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    #: the folders given that hold no image file, and what they hold instead
    empty_folders: list[EmptyFolder] = field(default_factory=list)

    def count(self, op: Operation) -> None:
        """Count one applied operation in the summary."""
        if isinstance(op, SkipFile):
            return
        if isinstance(op, Add):
            self.added += 1
        elif isinstance(op, Update):
            self.updated += 1
        elif isinstance(op, Touch):
            self.unchanged += 1
        elif isinstance(op, Move):
            self.moved += 1
        if getattr(op, "reused", False):
            self.reused += 1

    @property
    def images_per_s(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "unchanged": self.unchanged,
            "updated": self.updated,
            "moved": self.moved,
            "removed": self.removed,
            "excluded": self.excluded,
            "skipped": self.skipped,
            "embedded": self.embedded,
            "reused": self.reused,
            "hashed": self.hashed,
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.images_per_s, 2),
            "roots": self.roots,
            "device": self.device,
            "precision": self.precision,
            "engine": self.engine,
            "nodes": len(self.nodes),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "skipped_files": [{"path": p, "reason": r} for p, r in self.skipped_files],
            "empty_folders": [f.as_dict() for f in self.empty_folders],
        }


#: The formats named first when a folder holds no image (`python -m idx.indexer.files.formats`
#: lists them all).
COMMON_FORMATS = ("JPEG", "PNG", "WebP", "GIF", "TIFF", "BMP", "AVIF", "HEIC")


@dataclass(frozen=True)
class EmptyFolder:
    """A folder given to `add` in which the walk found no image file."""

    folder: str
    found: Survey

    def message(self) -> str:
        """Why nothing was added from the folder: what it holds, and which files are images."""
        found = self.found
        more = "at least " if found.cut else ""
        if found.files:
            kinds = ", ".join(f"{ext or 'no extension'} {n}" for ext, n in found.extensions.items())
            held = f"{more}{found.files} files, none an image ({kinds})"
        else:
            held = "no files"
        if found.left_out:
            held += (
                f"; {more}{found.left_out} more left out as hidden (--hidden takes them) or "
                "by --exclude"
            )
        return (
            f"no image files in {self.folder}: it holds {held}; idx reads "
            f"{', '.join(COMMON_FORMATS)} and the other formats Pillow opens, "
            f"{len(formats.formats())} here (`python -m idx.indexer.files.formats` lists them)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "files": self.found.files,
            "extensions": self.found.extensions,
            "left_out": self.found.left_out,
            "message": self.message(),
        }
