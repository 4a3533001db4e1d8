"""`idx openimages fetch` as a library call: the annotation files, the class choice, the sample,
the images and the label files of an Open Images subset, into one folder:

    DEST/metadata/   the annotation files as Open Images publishes them (downloaded once)
    DEST/<split>/    the images, <ImageID>.jpg
    DEST/labels/     openimages-<split>-labels.csv (and -boxes.csv): the rows of the images in
                     DEST/<split>/, positives and verified negatives, in Open Images' format

A rerun fetches only what is missing. One fetch at a time writes a DEST (a lock beside it).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from idx.errors import IdxError, UsageError
from idx.ops.labels.hierarchy import read_hierarchy
from idx.ops.openimages import classes, images, label_files, selection, sources
from idx.ops.openimages.annotations import Downloads
from idx.ops.openimages.transfer import Client, remove_partials
from idx.progress import Progress

DEFAULT_WORKERS = 16
LOCK_FILE = ".idx-openimages.lock"


@dataclass
class FetchReport:
    dest: str
    split: str
    images_dir: str
    seed: int
    limit: int | None
    #: per class asked: the choice (members, subclasses), its candidates and the images taken
    classes: list[dict[str, Any]]
    candidates: int  # distinct images with a human-verified positive for a class asked
    selected: int  # images in the sample (or every candidate without a limit)
    fetched: int  # downloaded now
    present: int  # already there
    missing: list[str]  # not on the server (skipped)
    failed: list[dict[str, str]]  # still failing after retries (a rerun tries them again)
    bytes: int
    seconds: float
    images_per_s: float
    mb_per_s: float
    files: dict[str, str]  # classes, hierarchy, labels, boxes (metadata); label_file, box_file
    downloaded: list[str]  # annotation files downloaded by this run
    label_rows: dict[str, int]  # what the label file holds: rows, images, positives, negatives
    box_rows: dict[str, int] | None = None
    index: dict[str, Any] | None = field(default=None)  # what --index did

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fetch(
    dest: str | os.PathLike[str],
    split: str,
    class_names: Sequence[str],
    *,
    limit: int | None = None,
    seed: int = 0,
    workers: int = DEFAULT_WORKERS,
    boxes: bool = False,
    exact: bool = False,
    progress: Progress | None = None,
    on_skip: images.OnSkip | None = None,
    client: Client | None = None,
) -> FetchReport:
    """Fetch the images of `split` with a human-verified positive label for `class_names`
    (display or label names, each with its is-a subclasses unless `exact`), a balanced seeded
    sample of `limit` of them when given, into `dest`; see the module's docstring."""
    root = Path(dest).expanduser()
    names = classes.split_names(class_names)
    folders = _folders(root, split)
    with _locked(root), client or Client() as session:
        for folder in folders.values():
            remove_partials(folder)
        choices, files, downloaded = _annotations(
            session, folders["metadata"], split, names, exact=exact, boxes=boxes, progress=progress
        )
        candidates = label_files.positives(Path(files["labels"]), choices, progress)
        if not any(candidates):
            asked = ", ".join(c.display_name for c in choices)
            raise UsageError(
                f"no {split} image has a human-verified positive label for {asked}; pick "
                "another split or class"
            )
        taken = selection.sample(candidates, limit, seed)
        got = images.fetch_images(
            session,
            taken,
            folders[split],
            split,
            workers=workers,
            progress=progress,
            on_skip=on_skip,
        )
        rows = _label_files(files, folders, split, progress)
    counts = selection.per_class(candidates, taken)
    return FetchReport(
        dest=str(root),
        split=split,
        images_dir=str(folders[split]),
        seed=seed,
        limit=limit,
        classes=[
            c.as_dict() | {"candidates": len(ids), "selected": n}
            for c, ids, n in zip(choices, candidates, counts)
        ],
        candidates=len(set().union(*candidates)),
        selected=len(taken),
        fetched=got.fetched,
        present=got.present,
        missing=got.missing,
        failed=got.failed,
        bytes=got.bytes,
        seconds=round(got.seconds, 3),
        images_per_s=round(got.fetched / got.seconds, 2) if got.seconds else 0.0,
        mb_per_s=round(got.bytes / 1e6 / got.seconds, 3) if got.seconds else 0.0,
        files=files,
        downloaded=downloaded,
        label_rows=rows["labels"],
        box_rows=rows.get("boxes"),
    )


def _folders(root: Path, split: str) -> dict[str, Path]:
    """DEST's metadata, images and labels folders, made; a bad split is refused (UsageError)
    before anything is made, as is a DEST that cannot be written."""
    sources.labels(split)
    folders = {n: root / n for n in ("metadata", split, "labels")}
    for folder in folders.values():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot make {folder} ({exc}); give a folder you can write") from None
    return folders


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold DEST's lock for the fetch; IdxError when another fetch holds it. The lock goes with
    the process, so a killed fetch never leaves it taken."""
    with open(root / LOCK_FILE, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            pid = fh.read().strip() or "?"
            raise IdxError(
                f"another `idx openimages fetch` (pid {pid}) is writing {root}; wait for it to "
                "finish, or fetch into another folder"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _annotations(
    client: Client,
    folder: Path,
    split: str,
    names: list[str],
    *,
    exact: bool,
    boxes: bool,
    progress: Progress | None,
) -> tuple[list[classes.ClassChoice], dict[str, str], list[str]]:
    """The classes chosen, the annotation files (key -> path) and the names of those downloaded
    now. The names are checked as soon as the small files are there: a bad one stops the large
    downloads."""
    with Downloads(client, folder, progress, workers=4) as downloads:
        meta = {
            "classes": downloads.start(sources.CLASSES),
            "hierarchy": downloads.start(sources.HIERARCHY),
            "labels": downloads.start(sources.labels(split)),
        }
        if boxes:
            meta["boxes"] = downloads.start(sources.boxes(split))
        table = classes.read_classes(meta["classes"].result())
        edges = read_hierarchy(meta["hierarchy"].result())
        choices = classes.choose(names, table, edges, exact=exact)
        files = {key: str(future.result()) for key, future in meta.items()}
    return choices, files, sorted(downloads.downloaded)


def _label_files(
    files: dict[str, str], folders: dict[str, Path], split: str, progress: Progress | None
) -> dict[str, dict[str, int]]:
    """Write the label (and box) file of the images in the split's folder; their row counts.
    Adds their paths to `files` as label_file (and box_file)."""
    kept = images.on_disk(folders[split])
    rows = {}
    for kind, key in (("labels", "label_file"), ("boxes", "box_file")):
        if kind in files:
            files[key] = str(folders["labels"] / f"openimages-{split}-{kind}.csv")
            rows[kind] = label_files.write_rows(Path(files[kind]), kept, Path(files[key]), progress)
    return rows
