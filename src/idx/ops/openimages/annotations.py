"""The annotation files a fetch needs, downloaded once into `DEST/metadata/`, in parallel: a file
already there is complete (files land under their name only when whole) and is not fetched
again. A caller can wait for the small files (class names, hierarchy) and check the classes asked
for while the large ones still come; when it fails, the downloads in flight stop."""

from __future__ import annotations

import posixpath
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from idx.errors import IdxError
from idx.ops.openimages import sources
from idx.ops.openimages.transfer import Client, Missing, TransferError
from idx.progress import Progress, ProgressEvent

#: The most bytes one annotation file may have (train's boxes, the largest, are about 2.3 GB).
MAX_BYTES = 4_000_000_000
PHASE = "annotations (MB)"


class _Stopped(Exception):
    """A download given up because the fetch it served failed."""


class Downloads:
    """Annotation files fetched in background threads into `folder`; use as a context manager."""

    def __init__(
        self, client: Client, folder: Path, progress: Progress | None = None, workers: int = 4
    ):
        self.client = client
        self.folder = folder
        self.base = sources.annotations_base()
        self.progress = progress
        self.downloaded: list[str] = []
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="idx-openimages-meta")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._read: dict[str, int] = {}

    def start(self, path: str) -> Future[Path]:
        """The local copy of `path` (one of sources' paths), downloaded unless already there; its
        result raises IdxError naming the URL, the reason and the fix when the download failed."""
        dest = self.folder / posixpath.basename(path)
        if dest.is_file():
            done: Future[Path] = Future()
            done.set_result(dest)
            return done
        return self._pool.submit(self._download, sources.annotation_url(self.base, path), dest)

    def _download(self, url: str, dest: Path) -> Path:
        def on_bytes(read: int) -> None:
            if self._stop.is_set():
                raise _Stopped
            with self._lock:
                self._read[url] = read
                if self.progress is not None:
                    self.progress(ProgressEvent(PHASE, sum(self._read.values()) // 10**6, 0))

        try:
            self.client.download(url, dest, max_bytes=MAX_BYTES, on_bytes=on_bytes)
        except Missing as exc:
            raise IdxError(
                f"{url}: {exc}; check IDX_OPENIMAGES_ANNOTATIONS (now {self.base}), which must "
                "hold Open Images' files in their official layout"
            ) from None
        except TransferError as exc:
            raise IdxError(
                f"cannot fetch {url}: {exc}; run the same command again to resume"
            ) from None
        except OSError as exc:
            raise IdxError(f"cannot write {dest}: {exc}; check the folder and free space") from None
        with self._lock:
            self.downloaded.append(dest.name)
        return dest

    def __enter__(self) -> Downloads:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=exc_type is not None)
