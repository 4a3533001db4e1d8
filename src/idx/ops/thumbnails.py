"""Small pictures of indexed images, decoded one way for every plot, contact sheet and report."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from idx.indexer.decode import open_image
from idx.indexer.index import Index
from idx.progress import Progress, ProgressEvent

log = logging.getLogger(__name__)


def decode_thumbnails(
    index: Index,
    ids: Sequence[int],
    side: int,
    progress: Progress | None = None,
    phase: str = "decode",
) -> list[np.ndarray]:
    """HxWx3 uint8 arrays no larger than side x side, in the order of ids.

    A file that can no longer be read (moved since `idx add`) becomes a grey tile and a log line,
    so that one missing file does not lose a run.
    """
    paths = index.catalog.images.paths_for(ids)
    out: list[np.ndarray] = []
    grey = np.full((side, side, 3), 128, dtype=np.uint8)
    for done, image_id in enumerate(ids, 1):
        path = paths.get(int(image_id))
        try:
            if path is None:
                raise OSError("not in the catalog")
            out.append(thumbnail(path, side))
        except Exception as exc:  # noqa: BLE001 - DecodeError or OSError: keep going, say why
            log.warning("image %s (%s) shown as a grey tile: %s", image_id, path, exc)
            out.append(grey)
        if progress and (done % 64 == 0 or done == len(ids)):
            progress(ProgressEvent(phase, done, len(ids)))
    return out


def thumbnail(path: str, side: int) -> np.ndarray:
    """One image as an HxWx3 uint8 array no larger than side x side (draft-decoded)."""
    image = open_image(path, min_side=side).image
    image.thumbnail((side, side))
    return np.asarray(image, dtype=np.uint8)
