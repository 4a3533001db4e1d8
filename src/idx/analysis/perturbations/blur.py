"""ImageNet-C's blurs: defocus (disk), glass (local pixel shuffle), motion, zoom; and Gaussian
(one of ImageNet-C's validation corruptions). Pixel sizes are for 224 px and scaled to the image.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import signal

from idx.analysis.perturbations.pixels import (
    clipped_zoom,
    disk_kernel,
    gaussian,
    level,
    motion_streak,
    scale,
    to_image,
    unit,
)

GAUSSIAN_BLUR = (1, 2, 3, 4, 6)
#: (disk radius px, anti-alias sigma)
DEFOCUS_BLUR = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))
#: (sigma px, largest shift px, shuffle passes)
GLASS_BLUR = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))
#: (radius px, sigma px): a streak of 2 radius + 1 taps
MOTION_BLUR = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))
#: the zoom factors averaged with the image (numpy's aranges, as the reference writes them)
ZOOM_BLUR = (
    np.arange(1, 1.11, 0.01),
    np.arange(1, 1.16, 0.01),
    np.arange(1, 1.21, 0.02),
    np.arange(1, 1.26, 0.02),
    np.arange(1, 1.31, 0.03),
)


def gaussian_blur(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    return to_image(gaussian(unit(image), level(GAUSSIAN_BLUR, severity) * scale(image)))


def defocus_blur(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    radius, alias = level(DEFOCUS_BLUR, severity)
    kernel = disk_kernel(radius * scale(image), alias)
    half = kernel.shape[0] // 2
    # OpenCV's filter2D: edges mirrored without repeating the edge pixel; by FFT, as OpenCV
    # does for kernels this large (the kernel is symmetric: convolution = correlation)
    x = np.pad(unit(image), ((half, half), (half, half), (0, 0)), mode="reflect")
    return to_image(signal.fftconvolve(x, kernel[..., None], mode="valid", axes=(0, 1)))


def glass_blur(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    """Blur, give each pixel the value of a random one at most `shift` px away (in the
    reference's order, bottom-right to top-left, `passes` times), blur again.

    The reference means to swap the two pixels, but its swap of two numpy views copies the
    neighbour into the pixel and leaves the neighbour as it was; the published numbers measured
    that copy, so it is what happens here too."""
    sigma, shift, passes = level(GLASS_BLUR, severity)
    s = scale(image)
    sigma, shift = sigma * s, max(1, round(shift * s))
    x = np.uint8(gaussian(unit(image), sigma) * 255)
    h, w = x.shape[:2]
    # One uniform field for every level: a level shuffles by the same draws, scaled to its shift.
    draws = rng.random((max(p for _, _, p in GLASS_BLUR), h, w, 2))
    rows = np.arange(h - shift, shift, -1)
    cols = np.arange(w - shift, shift, -1)
    here = (rows[:, None] * w + cols[None, :]).ravel()
    source = list(range(h * w))  # source[p]: the pixel whose value p holds now
    for p in range(passes):
        offsets = np.floor(draws[p, rows][:, cols] * 2 * shift).astype(np.int64) - shift
        there = here + (offsets[..., 1] * w + offsets[..., 0]).ravel()
        for a, b in zip(here.tolist(), there.tolist()):
            source[a] = source[b]
    shuffled = x.reshape(h * w, -1)[np.asarray(source)].reshape(x.shape)
    return to_image(gaussian(shuffled / 255.0, sigma))


def motion_blur(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    radius, sigma = level(MOTION_BLUR, severity)
    s = scale(image)
    angle = rng.uniform(-45, 45)
    streaked = motion_streak(np.asarray(image), radius * s, sigma * s, angle)
    return Image.fromarray(np.uint8(np.clip(streaked, 0, 255)), "RGB")


def zoom_blur(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    factors = level(ZOOM_BLUR, severity)
    x = unit(image, np.float32)
    h, w = x.shape[:2]
    out = np.zeros_like(x)
    for factor in factors:
        out += clipped_zoom(x, factor)[:h, :w]
    return to_image((x + out) / (len(factors) + 1))
