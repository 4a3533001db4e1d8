"""Pixel helpers the corruptions share: unit floats in and out, the size scale, and the building
blocks of ImageNet-C's corruptions (Gaussian filter, clipped zoom, motion streaks, plasma fractal)
written with numpy, SciPy and Pillow.

Where ImageNet-C (`imagecorruptions/corruptions.py`) calls OpenCV or scikit-image, the SciPy call
here is the one those libraries make underneath or its equivalent (scikit-image's `gaussian` is
`scipy.ndimage.gaussian_filter` with mode "nearest"; OpenCV's default border is SciPy's "mirror"),
so that a 224 x 224 image gets the reference's pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np
from PIL import Image
from scipy import ndimage

#: ImageNet-C's image side; pixel-sized parameters are given for it and scaled to the image.
REFERENCE_SIDE = 224


def scale(image: Image.Image) -> float:
    """How much larger than ImageNet-C's 224 px the image's short side is."""
    return min(image.size) / REFERENCE_SIDE


def unit(image: Image.Image, dtype: type = np.float64) -> np.ndarray:
    """The image as floats in [0, 1] (float64, as the reference's `np.array(x) / 255.`)."""
    return np.asarray(image, dtype=dtype) / 255.0


def to_image(x: np.ndarray) -> Image.Image:
    """[0, 1] floats back to an RGB image, truncated to integers as the reference's np.uint8."""
    return Image.fromarray(np.uint8(np.clip(x, 0.0, 1.0) * 255.0), "RGB")


def level(values: Sequence, severity: int):
    return values[severity - 1]


def gaussian(x: np.ndarray, sigma: float | Sequence[float], mode: str = "nearest") -> np.ndarray:
    """scikit-image's `filters.gaussian` on a float image: each channel blurred apart."""
    if np.ndim(sigma) == 0 and x.ndim == 3:
        scalar = cast(float, sigma)  # np.ndim 0: a number, not a sequence
        sigma = (scalar, scalar, 0)
    return ndimage.gaussian_filter(x, sigma, mode=mode, truncate=4.0)


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """The centre 1/factor of an [h, w, c] array enlarged (bilinear) back to at least h x w
    (factor >= 1)."""
    if factor < 1:
        raise ValueError(f"clipped_zoom enlarges: factor {factor} must be at least 1")
    h, w = x.shape[:2]
    ch, cw = math.ceil(h / factor), math.ceil(w / factor)
    top, left = (h - ch) // 2, (w - cw) // 2
    return ndimage.zoom(x[top : top + ch, left : left + cw], (factor, factor, 1), order=1)


def motion_streak(x: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """ImageNet-C's motion blur: 2 radius + 1 copies of x shifted along `angle` (degrees), with
    one-sided Gaussian weights, edges repeated. Returns float32 in x's units."""
    width = int(2 * radius + 1)
    weights = np.exp(-(np.arange(width) ** 2) / (2 * sigma**2)) / (np.sqrt(2 * np.pi) * sigma)
    weights /= weights.sum()
    h, w = x.shape[:2]
    pad = ((width, width), (width, width)) + ((0, 0),) * (x.ndim - 2)
    padded = np.pad(x, pad, mode="edge")
    sin, cos = np.sin(np.deg2rad(angle)), np.cos(np.deg2rad(angle))
    out = np.zeros(x.shape, dtype=np.float32)
    for i in range(width):
        dy, dx = -math.ceil(i * sin - 0.5), -math.ceil(i * cos - 0.5)
        if abs(dy) >= h or abs(dx) >= w:
            break  # the streak has left the image
        out = out + weights[i] * padded[width - dy : width - dy + h, width - dx : width - dx + w]
    return out


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """A normalised disk, anti-aliased by a small Gaussian (OpenCV's GaussianBlur of the mask)."""
    half = 8 if radius <= 8 else math.ceil(radius)
    size = 3 if radius <= 8 else 5
    grid = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(grid, grid)
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    disk /= disk.sum()
    # OpenCV's kernel for (size, sigma): exp(-t^2 / 2 sigma^2) over t = -(size-1)/2..(size-1)/2
    t = np.arange(size) - (size - 1) / 2
    g = np.exp(-(t**2) / (2 * alias_blur**2))
    g = (g / g.sum()).astype(np.float32)
    disk = ndimage.correlate1d(disk, g, axis=0, mode="mirror")
    return ndimage.correlate1d(disk, g, axis=1, mode="mirror")


def plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square height map in [0, 1], size x size (a power of two), roughness `decay`.

    The uniform draws come in the same order and shape for every `decay`, so the map of a
    stronger fog has the same large shapes as a lighter one's."""
    assert size & (size - 1) == 0, "plasma size must be a power of two"
    grid = np.zeros((size, size))
    step, wibble = size, 100.0

    def wibbled(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * wibble * rng.uniform(-1.0, 1.0, total.shape)

    while step >= 2:
        half = step // 2
        corners = grid[0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, axis=0)
        square += np.roll(square, -1, axis=1)
        grid[half:size:step, half:size:step] = wibbled(square)
        centres = grid[half:size:step, half:size:step]
        corners = grid[0:size:step, 0:size:step]
        across = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        grid[0:size:step, half:size:step] = wibbled(across)
        down = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        grid[half:size:step, 0:size:step] = wibbled(down)
        step //= 2
        wibble /= decay
    grid -= grid.min()
    return grid / grid.max()


def next_power_of_two(n: int) -> int:
    return 1 if n <= 1 else 2 ** (n - 1).bit_length()


def rgb_to_grey(x: np.ndarray) -> np.ndarray:
    """Luma as OpenCV's RGB2GRAY: 0.299 R + 0.587 G + 0.114 B."""
    return x @ np.array([0.299, 0.587, 0.114], dtype=x.dtype)
