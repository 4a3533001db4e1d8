"""What the web app (`idx serve`) shows besides search results: one image's details and file
(only while it is the file that was indexed), the values to filter by, the latest 2-D map, and
the map's drawing code shared with the report."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any, BinaryIO

from idx.analysis import palette
from idx.errors import ChangedFileError, NotFoundError
from idx.indexer.catalog.images import IndexedFile
from idx.indexer.files import formats, storage
from idx.indexer.index import Index
from idx.ops.report.data import LabelIndex, map_section

#: Scripts of the report page the web app reuses: the palette (made by `palette.script()`), DOM
#: helpers and charts, the canvas scatter.
SHARED_SCRIPTS = ("palette.js", "charts.js", "scatter.js")


def image_details(index: Index, image_id: int) -> dict[str, Any]:
    """The image's row of the image_info view (path, folder, size, labels, cluster, ...)."""
    found = index.catalog.image_info.details(int(image_id))
    if found is None:
        raise NotFoundError(f"no image with id {image_id} in index {index.dir}")
    return found


@dataclass
class ImageFile:
    """An indexed image's file, checked and ready to send: a local file opened (`handle`,
    `size` bytes), or an object on storage (`handle` None: read it by `path`). The type and
    the name offered come from the format the catalog stored, never from the file's name."""

    image_id: int
    path: str  # the file's real path (links resolved), or the object's URL
    media_type: str
    filename: str
    size: int | None = None
    handle: BinaryIO | None = None
    version: tuple[int, int] | None = None  # (mtime_ns, size) of the local file opened

    def chunks(self, size: int = 1 << 16) -> Iterator[bytes]:
        """The file's `size` bytes in pieces (no more, should it grow meanwhile), then closed."""
        assert self.handle is not None
        left = self.size or 0
        try:
            while left > 0 and (piece := self.handle.read(min(size, left))):
                left -= len(piece)
                yield piece
        finally:
            self.close()

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def indexed_file(index: Index, image_id: int) -> IndexedFile:
    """What the catalog recorded of an image's file (NotFoundError for an unknown id)."""
    found = index.catalog.images.indexed_file(int(image_id))
    if found is None:
        raise NotFoundError(f"no image with id {image_id} in index {index.dir}")
    return found


def open_image_file(indexed: IndexedFile) -> ImageFile:
    """The file of an indexed image, opened, if it is still the file that was indexed.

    The server sends files by id; what is at the path now may no longer be the picture that
    was indexed: a link to a private file, or to the catalog. So the file's real path (links
    resolved) must still lie in the folder it was added from (NotFoundError otherwise), and
    the file opened must still have the size and mtime the catalog stored (ChangedFileError:
    changed since indexed). The checks are made on the file opened, which is what is sent.
    Objects on storage (s3://) are taken as they are: their store answers for them.
    """
    name = indexed.path.rstrip("/").rsplit("/", 1)[-1]
    media_type, filename = (
        formats.media_type(indexed.format),
        formats.file_name(indexed.format, name),
    )
    if storage.is_remote(indexed.path):
        return ImageFile(indexed.id, indexed.path, media_type, filename)
    real, folder = os.path.realpath(indexed.path), os.path.realpath(indexed.root)
    if os.path.commonpath([real, folder]) != folder:
        raise NotFoundError(
            f"the file of image {indexed.id} ({indexed.path}) now leads outside its indexed "
            f"folder {indexed.root} (a symbolic link?); it is not served: put the image back, "
            "or run `idx add` on the folder again"
        )
    try:
        fd = os.open(
            real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        )
    except FileNotFoundError:
        raise gone(indexed.id, indexed.path) from None
    except OSError as exc:
        raise NotFoundError(
            f"cannot read the file of image {indexed.id} ({indexed.path}): {exc.strerror}"
        ) from None
    handle = os.fdopen(fd, "rb")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotFoundError(
                f"the file of image {indexed.id} ({indexed.path}) is no longer a file; run "
                "`idx add` on its folder again"
            )
        if (st.st_size, st.st_mtime_ns) != (indexed.bytes, indexed.mtime_ns):
            raise ChangedFileError(
                f"the file of image {indexed.id} ({indexed.path}) changed since it was indexed "
                f"({st.st_size:,} bytes now, {indexed.bytes:,} then, or another modification "
                f"time); run `idx add` on its folder ({indexed.root}) again"
            )
    except BaseException:
        handle.close()
        raise
    version = (st.st_mtime_ns, st.st_size)
    return ImageFile(indexed.id, real, media_type, filename, st.st_size, handle, version)


def gone(image_id: int, path: str) -> NotFoundError:
    return NotFoundError(
        f"the file of image {image_id} ({path}) is gone; run `idx add` on its folder again"
    )


def facets(index: Index, labels: int = 2000, folders: int = 500) -> dict[str, Any]:
    """The values people filter by: the most frequent labels (name, key, images), whether those
    are all the labels (the web app then names a label that is not among them without asking),
    the latest clustering's clusters and sizes, and the folders holding the most images."""
    info = index.catalog.image_info
    counts = info.label_counts(labels + 1)  # one more than shown: are there others?
    return {
        "labels": [count._asdict() for count in counts[:labels]],
        "labels_complete": len(counts) <= labels,
        "clusters": info.cluster_sizes(),  # its sizes go out as [cluster, images] pairs
        "folders": [count._asdict() for count in info.folder_counts(folders)],
    }


def latest_map(index: Index) -> dict[str, Any]:
    """The latest 2-D map as arrays (ids, x, y, cluster number and most specific label number
    of each point, label names), or {"missing": {what, command}} when there is none yet."""
    labels = LabelIndex(index.catalog.labels)
    section = map_section(index.catalog, labels)
    if "missing" in section:
        return section
    keep = ("run", "ids", "x", "y", "cluster", "cluster_run", "label")
    return {key: section[key] for key in keep} | {"label_names": labels.names}


def map_fingerprint(index: Index) -> tuple[Any, ...]:
    """Changes whenever `latest_map` may: a new map or clustering, new labels, new images."""
    runs = index.catalog.runs
    return (
        runs.latest("projection"),
        runs.latest("cluster"),
        index.catalog.image_info.labels_fingerprint(),
        index.catalog.generation(),
    )


def shared_script(name: str) -> str:
    """One of SHARED_SCRIPTS, as the report ships it."""
    if name not in SHARED_SCRIPTS:
        raise NotFoundError(f"no shared script {name!r}")
    if name == "palette.js":
        return palette.script()
    folder = resources.files("idx.analysis") / "report_assets"
    return (folder / name).read_text(encoding="utf-8")
