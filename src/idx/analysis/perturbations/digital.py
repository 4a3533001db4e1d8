"""ImageNet-C's digital corruptions (brightness, contrast, elastic transform, pixelate, JPEG) and
idx's saturation."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

from idx.analysis.perturbations.pixels import level, scale, to_image, unit

BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)
CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)
SATURATION = (0.6, 0.45, 0.3, 0.15, 0.0)
#: displacement strength (imagecorruptions' 250 x 0.05 ... 250 x 0.12)
ELASTIC = (12.5, 16.25, 21.25, 25.0, 30.0)
PIXELATE = (0.6, 0.5, 0.4, 0.3, 0.25)
JPEG_QUALITY = (25, 18, 15, 10, 7)


def brightness(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    """HSV value + c, hue and saturation kept (scikit-image's HSV round trip, in closed form)."""
    x = unit(image)
    v = x.max(axis=2, keepdims=True)
    v_new = np.minimum(v + level(BRIGHTNESS, severity), 1.0)
    scaled = np.divide(x * v_new, v, out=np.broadcast_to(v_new, x.shape).copy(), where=v > 0)
    return to_image(scaled)


def contrast(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    x = unit(image)
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return to_image((x - means) * level(CONTRAST, severity) + means)


def saturation(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    """HSV saturation x c, hue and value kept. ImageNet-C's `saturate` both lowers and raises
    saturation across its levels (not monotone); here every level desaturates further."""
    x = unit(image)
    v = x.max(axis=2, keepdims=True)
    return to_image(v - (v - x) * level(SATURATION, severity))


def elastic_transform(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    """Each pixel read from a smoothly displaced position (imagecorruptions' version: a smoothed
    uniform field of sigma = 1 % of each side, bilinear, reflected at the edges)."""
    x = unit(image, np.float32)
    h, w = x.shape[:2]
    sigma = np.array([h, w]) * 0.01
    reach = h * 0.005
    strength = level(ELASTIC, severity) * scale(image)
    fields = rng.uniform(-1.0, 1.0, (2, h, w))  # one draw for every level, scaled by it
    dx, dy = (
        (ndimage.gaussian_filter(f * reach, sigma, mode="reflect", truncate=3) * strength).astype(
            np.float32
        )
        for f in fields
    )
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    where = np.stack([rows + dy, cols + dx])
    out = np.stack(
        [ndimage.map_coordinates(x[..., c], where, order=1, mode="reflect") for c in range(3)], -1
    )
    return to_image(out)


def pixelate(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    """Shrink to c x the side (box filter, cells truncated as ImageNet-C's int(224 * c)) and
    enlarge back with nearest neighbours; the grid is the same relative to a 224 px side."""
    factor = level(PIXELATE, severity) / scale(image)
    if factor >= 1:  # the image already has fewer pixels than the grid has cells
        return image.copy()
    w, h = image.size
    small = image.resize((max(1, int(w * factor)), max(1, int(h * factor))), Image.Resampling.BOX)
    return small.resize((w, h), Image.Resampling.NEAREST)


def jpeg(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=level(JPEG_QUALITY, severity))
    buf.seek(0)
    return Image.open(buf).convert("RGB")
