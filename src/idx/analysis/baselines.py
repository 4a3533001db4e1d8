"""Reference embeddings that give a metric a scale: random vectors, and simple non-CLIP features.

A silhouette of 0.12 means little alone; beside the silhouette of random unit vectors of the same
shape (no structure at all) and of colour histograms of the same images (structure a model needs no
training to find), it can be read. Every function takes arrays and returns L2-normalised float32
rows, so the same clustering and metrics apply.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

#: Side of the thumbnails that `thumbnail_pixels` flattens.
THUMBNAIL_SIDE = 8
#: Histogram bins per RGB channel for `colour_histograms` (bins**3 features).
HISTOGRAM_BINS = 4


def normalise_rows(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def random_vectors(n: int, d: int, random_state: int = 0) -> np.ndarray:
    """n Gaussian directions in d dimensions: unit vectors with no cluster structure."""
    rng = np.random.default_rng(random_state)
    return normalise_rows(rng.standard_normal((n, d)).astype(np.float32))


def colour_histograms(images: Sequence[np.ndarray], bins: int = HISTOGRAM_BINS) -> np.ndarray:
    """Joint RGB histogram of each HxWx3 uint8 image, square-rooted (Hellinger) and normalised."""
    out = np.zeros((len(images), bins**3), dtype=np.float32)
    for row, image in enumerate(images):
        pixels = np.asarray(image, dtype=np.uint8).reshape(-1, 3).astype(np.int64) * bins // 256
        codes = (pixels[:, 0] * bins + pixels[:, 1]) * bins + pixels[:, 2]
        counts = np.bincount(codes, minlength=bins**3).astype(np.float32)
        out[row] = np.sqrt(counts / max(counts.sum(), 1.0))
    return normalise_rows(out)


def thumbnail_pixels(images: Sequence[np.ndarray], side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """Each HxWx3 uint8 image shrunk to side x side, flattened, mean-centred and normalised."""
    out = np.zeros((len(images), side * side * 3), dtype=np.float32)
    for row, image in enumerate(images):
        small = Image.fromarray(np.asarray(image, dtype=np.uint8)).resize(
            (side, side), Image.Resampling.BOX
        )
        pixels = np.asarray(small, dtype=np.float32).ravel() / 255.0
        out[row] = pixels - pixels.mean()
    return normalise_rows(out)


#: name -> feature function over decoded images, for the baselines computed from pixels.
IMAGE_FEATURES = {"colour_histogram": colour_histograms, "thumbnail_pixels": thumbnail_pixels}
