"""The index a server answers from: opened once, read-only, with the model and the vectors
loaded, and used by one request at a time.

The catalog file is let go after each request while an `idx add` runs (and soon after the last
request otherwise), so the writer can commit its batches; at the start of each request the
vectors catch up with what it committed (`Index.refresh`). The requests take turns: DuckDB's
connection is not shared between threads, and on a few cores the model and FAISS already use
every one of them.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from idx.errors import DecodeError, NotFoundError
from idx.indexer.files import storage
from idx.indexer.index import Index
from idx.jsonable import to_jsonable
from idx.ops import browse, thumbnails
from idx.serve.sql_runner import Limits, SQLRunner

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Thumbnails kept in memory (a few kB each).
THUMBS_KEPT = 4096
THUMB_SIDES = (64, 128, 256, 512)
#: Seconds without a request after which the catalog is let go (at once while a writer runs).
IDLE_RELEASE_S = 0.25


class Session:
    def __init__(self, index: Index, sql: SQLRunner):
        self.index = index
        #: People's SQL (/api/sql, where=): in a process of its own, never under `_lock`.
        self.sql = sql
        self._lock = threading.Lock()
        self._thumbs: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._thumbs_lock = threading.Lock()
        self._map: tuple[tuple[Any, ...], bytes] | None = None
        self._idle_release = threading.Timer(0, lambda: None)

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, **model: Any) -> Session:
        """Open the index read-only and load what queries need: the model (when the index has
        stored one) and the vectors; start the process that runs people's SQL."""
        index = Index(path, read_only=True, **model)
        sql: SQLRunner | None = None
        try:
            if index.stored_identity() is not None:
                index.encoder  # noqa: B018 - image queries need the model: loaded now
                index.texts.warm()  # and text queries the text tower (prepared once if need be)
            index.vectors  # noqa: B018 - loaded (or rebuilt in memory) now, not on the first query
            index.refresh()
            index.release()
            sql = SQLRunner(index.dir, model, Limits.from_config()).start()
        except BaseException:
            index.close()
            raise
        finally:
            index.release()
        return cls(index, sql)

    def close(self) -> None:
        self._idle_release.cancel()
        self.sql.close()
        self.index.close()

    @contextmanager
    def use(self) -> Iterator[Index]:
        """The index for one request, caught up with any writer first. The catalog is let go
        after the request while a writer runs, else after IDLE_RELEASE_S without requests:
        reopening it costs more than a query (~2 ms idle, 40 ms on a busy machine at 100,000
        images), and a writer that starts meanwhile waits at most that long."""
        with self._lock:
            self._idle_release.cancel()
            try:
                self.index.refresh()
                yield self.index
            finally:
                if self.index.writer_active():
                    self.index.release()
                else:
                    self._idle_release = threading.Timer(IDLE_RELEASE_S, self._release_if_idle)
                    self._idle_release.daemon = True
                    self._idle_release.start()

    def _release_if_idle(self) -> None:
        if self._lock.acquire(blocking=False):  # a request in progress releases it itself
            try:
                self.index.release()
            finally:
                self._lock.release()

    def run(self, work: Callable[[Index], T]) -> T:
        with self.use() as index:
            return work(index)

    def summary(self) -> dict[str, Any]:
        """What `idx serve` prints when it starts."""
        with self.use() as index:
            model, untrained = index.describe_model()
            return {
                "index": str(index.dir.resolve()),
                "images": index.catalog.images.count(),
                "model": model,
                "untrained": untrained,
            }

    # -- pictures ---------------------------------------------------------------------------

    def image_file(self, image_id: int) -> browse.ImageFile:
        """The indexed file of an image, opened when local, and only while it is the file that
        was indexed (browse.open_image_file: NotFoundError, ChangedFileError). The file is
        opened after the catalog is let go: a slow disk holds up no other request."""
        indexed = self.run(lambda index: browse.indexed_file(index, image_id))
        return browse.open_image_file(indexed)

    def image_bytes(self, found: browse.ImageFile) -> bytes:
        """The bytes of an image's object on storage (local files are sent from their handle)."""
        try:
            return storage.read_bytes(found.path)
        except FileNotFoundError:
            raise browse.gone(found.image_id, found.path) from None
        except OSError as exc:
            raise NotFoundError(
                f"cannot read image {found.image_id} ({found.path}): {exc}"
            ) from None

    def thumbnail(self, image_id: int, side: int) -> bytes:
        """A JPEG of the image no larger than side x side (side rounded up to THUMB_SIDES)."""
        side = next((s for s in THUMB_SIDES if s >= side), THUMB_SIDES[-1])
        found = self.image_file(image_id)
        try:
            key = (found.path, *self._version(found), side)
            with self._thumbs_lock:
                if key in self._thumbs:
                    self._thumbs.move_to_end(key)
                    return self._thumbs[key]
            try:
                if found.handle is not None:
                    picture = thumbnails.thumbnail_of(found.read(), side)
                else:
                    picture = thumbnails.thumbnail_image(found.path, side)
            except DecodeError as exc:
                raise NotFoundError(f"cannot show image {image_id} ({found.path}): {exc}") from None
        finally:
            found.close()
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=82)
        data = out.getvalue()
        with self._thumbs_lock:
            self._thumbs[key] = data
            while len(self._thumbs) > THUMBS_KEPT:
                self._thumbs.popitem(last=False)
        return data

    @staticmethod
    def _version(found: browse.ImageFile) -> tuple[Any, ...]:
        if found.version is not None:
            return found.version
        try:
            return storage.version(found.path)
        except FileNotFoundError:
            raise browse.gone(found.image_id, found.path) from None

    # -- the map ----------------------------------------------------------------------------

    def map_json_gz(self) -> bytes:
        """The latest map (browse.latest_map) as gzipped JSON, made again only when it changed:
        at 100,000 points it is several megabytes and takes a second to gather."""
        with self.use() as index:
            fingerprint = browse.map_fingerprint(index)
            if self._map is not None and self._map[0] == fingerprint:
                return self._map[1]
            payload = browse.latest_map(index)
        body = gzip.compress(json.dumps(to_jsonable(payload)).encode(), compresslevel=5)
        self._map = (fingerprint, body)
        return body
