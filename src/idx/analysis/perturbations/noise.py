"""ImageNet-C's noise corruptions: Gaussian, shot (Poisson) and impulse (salt and pepper).

The random field is drawn the same way at every severity (only its strength changes), so that a
stronger level corrupts the same pixels as a lighter one, more.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from idx.analysis.perturbations.pixels import level, to_image, unit

GAUSSIAN_NOISE = (0.08, 0.12, 0.18, 0.26, 0.38)
SHOT_NOISE = (60, 25, 12, 5, 3)
IMPULSE_NOISE = (0.03, 0.06, 0.09, 0.17, 0.27)


def gaussian_noise(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    x = unit(image, np.float32)
    return to_image(
        x + rng.standard_normal(x.shape, dtype=np.float32) * level(GAUSSIAN_NOISE, severity)
    )


def shot_noise(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    c = level(SHOT_NOISE, severity)
    return to_image(rng.poisson(unit(image) * c) / c)


def impulse_noise(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    """A share `amount` of the channel values set to 0 or 1, half each (scikit-image's s&p).

    Salt where u < amount / 2, pepper where u >= 1 - amount / 2, for one uniform field u drawn
    at every level: a stronger level salts and peppers the same values as a lighter one, more."""
    x = unit(image, np.float32)
    half = level(IMPULSE_NOISE, severity) / 2
    u = rng.random(x.shape, dtype=np.float32)
    return to_image(np.where(u < half, 1.0, np.where(u >= 1 - half, 0.0, x)))
