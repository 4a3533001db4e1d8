"""Small pictures of indexed images, decoded one way for every plot, contact sheet and report."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
from PIL import Image

from idx.errors import DecodeError
from idx.indexer.files.decode import decode, open_image
from idx.indexer.index import Index
from idx.progress import Progress, ProgressEvent

log = logging.getLogger(__name__)
#: Decoding releases the GIL in Pillow, so a few threads keep the cores busy.
THREADS = min(4, (os.cpu_count() or 1) + 1)
T = TypeVar("T")


def decode_thumbnails(
    index: Index,
    ids: Sequence[int] | np.ndarray,
    side: int,
    progress: Progress | None = None,
    phase: str = "decode",
) -> list[np.ndarray]:
    """HxWx3 uint8 arrays no larger than side x side, in the order of ids; a file that can no
    longer be read is a grey tile."""
    grey = np.full((side, side, 3), 128, dtype=np.uint8)
    tiles = each_image(
        index, ids, side, lambda image: np.asarray(shrink(image, side), np.uint8), progress, phase
    )
    return [grey if tile is None else tile for _, tile in tiles]


def each_image(
    index: Index,
    ids: Sequence[int] | np.ndarray,
    side: int,
    convert: Callable[[Image.Image], T],
    progress: Progress | None = None,
    phase: str = "decode",
) -> Iterator[tuple[int, T | None]]:
    """(id, convert(image)) for each of ids, in order: the RGB image decoded for a side x side
    picture (large JPEGs at reduced scale, not yet resized), converted on one of a few threads.

    A file that can no longer be read (moved since `idx add`) gives None and a log line, so that
    one missing file does not lose a run.
    """
    paths = index.catalog.images.paths_for(ids)

    def one(image_id: int) -> T | None:
        path = paths.get(int(image_id))
        try:
            if path is None:
                raise DecodeError("not in the catalog")
            return convert(open_image(path, min_side=side).image)
        except (DecodeError, OSError) as exc:
            log.warning("no picture of image %s (%s): %s", image_id, path, exc)
            return None

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for done, (image_id, out) in enumerate(zip(ids, pool.map(one, ids)), 1):
            if progress and (done % 64 == 0 or done == len(ids)):
                progress(ProgressEvent(phase, done, len(ids)))
            yield int(image_id), out


def thumbnail(path: str, side: int) -> np.ndarray:
    """One image as an HxWx3 uint8 array no larger than side x side (draft-decoded)."""
    return np.asarray(thumbnail_image(path, side), dtype=np.uint8)


def thumbnail_image(path: str, side: int) -> Image.Image:
    """One image as RGB no larger than side x side (draft-decoded)."""
    return shrink(open_image(path, min_side=side).image, side)


def thumbnail_of(data: bytes, side: int) -> Image.Image:
    """`thumbnail_image` of a file's bytes, read already."""
    return shrink(decode(data, min_side=side).image, side)


def shrink(image: Image.Image, side: int) -> Image.Image:
    """`image` made no larger than side x side, in place (aspect ratio kept)."""
    image.thumbnail((side, side))
    return image
