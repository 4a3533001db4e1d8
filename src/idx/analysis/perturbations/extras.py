"""idx's own corruptions beyond ImageNet-C: occlusion, crop and zoom, rotation."""

from __future__ import annotations

import numpy as np
from PIL import Image

from idx.analysis.perturbations.pixels import level

OCCLUSION_AREA = (0.04, 0.08, 0.15, 0.25, 0.35)
OCCLUSION_PATCHES = 4
CROP_KEEP = (0.9, 0.8, 0.7, 0.6, 0.5)
ROTATION_DEGREES = (5, 10, 15, 20, 30)


def occlusion(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    """Grey square patches at random centres; larger levels grow the same patches."""
    w, h = image.size
    side = np.sqrt(level(OCCLUSION_AREA, severity) * w * h / OCCLUSION_PATCHES)
    centres = rng.random((OCCLUSION_PATCHES, 2)) * (w, h)
    x = np.asarray(image).copy()
    for cx, cy in centres:
        x0, x1 = int(max(0, cx - side / 2)), int(min(w, cx + side / 2))
        y0, y1 = int(max(0, cy - side / 2)), int(min(h, cy + side / 2))
        x[y0:y1, x0:x1] = 128
    return Image.fromarray(x, "RGB")


def crop_zoom(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    """Keep a random window of `keep` x each side, scaled back to the full size."""
    w, h = image.size
    keep = level(CROP_KEEP, severity)
    cw, ch = max(1, round(w * keep)), max(1, round(h * keep))
    u, v = rng.random(2)
    left, top = round(u * (w - cw)), round(v * (h - ch))
    return image.resize((w, h), Image.Resampling.BILINEAR, box=(left, top, left + cw, top + ch))


def rotation(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    sign = 1 if rng.random() < 0.5 else -1
    return image.rotate(
        sign * level(ROTATION_DEGREES, severity), Image.Resampling.BILINEAR, fillcolor=(0, 0, 0)
    )
