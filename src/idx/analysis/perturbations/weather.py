"""ImageNet-C's weather: snow, frost and fog.

Frost lays a photograph of frost over the image. ImageNet-C's five photographs ship with the
`imagecorruptions` package (the optional extra `idx-clip[imagenet-c]`); when it is installed they
are read from it (the package itself is not imported: it needs OpenCV and scikit-image, and its
2020 release no longer imports on current setuptools). Without it a synthetic frost is drawn, with
each photograph's mean colour and contrast, so that the corruption's strength is the reference's
(bench/imagenet_c.py measures both against the reference).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from idx.analysis.perturbations.pixels import (
    clipped_zoom,
    level,
    motion_streak,
    next_power_of_two,
    plasma_fractal,
    rgb_to_grey,
    scale,
    to_image,
    unit,
)

#: (mean, sd, zoom, threshold, streak radius px, streak sigma px, how much the image stays)
SNOW = (
    (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
    (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
    (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
    (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
    (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
)
#: (weight of the image, weight of the frost)
FROST = ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))
#: (fog strength, plasma roughness: lower is rougher)
FOG = ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))

#: ImageNet-C's frost photographs, in its order; it draws one of the first five.
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
#: Mean and standard deviation (R, G, B; 0..255) of each of those photographs, for the synthetic
#: frost (measured from imagecorruptions 1.1.2's files).
FROST_TONES = (
    ((77.7, 149.1, 165.7), (26.9, 16.5, 15.3)),
    ((200.8, 205.4, 214.5), (21.4, 22.1, 22.6)),
    ((200.8, 205.4, 214.5), (21.4, 22.1, 22.6)),
    ((137.6, 152.8, 165.2), (28.5, 28.5, 29.9)),
    ((112.4, 123.4, 134.8), (44.4, 43.3, 41.7)),
)


def snow(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    mean, sd, zoom, threshold, radius, sigma, keep = level(SNOW, severity)
    s = scale(image)
    x = unit(image, np.float32)
    h, w = x.shape[:2]
    flakes = mean + sd * rng.standard_normal((h, w))  # one draw, shifted and scaled per level
    angle = rng.uniform(-135, -45)
    # flakes of at least one pixel: on an image much smaller than 224 px the zoom stays 1
    flakes = clipped_zoom(flakes[..., None], max(1.0, zoom * s))
    flakes[flakes < threshold] = 0
    flakes = np.clip(flakes.squeeze(-1), 0, 1)
    flakes = motion_streak(flakes, radius * s, sigma * s, angle)
    flakes = (np.round(flakes * 255).astype(np.uint8) / 255.0)[:h, :w, None]
    x = keep * x + (1 - keep) * np.maximum(x, rgb_to_grey(x)[..., None] * 1.5 + 0.5)
    return to_image(x + flakes + np.rot90(flakes, k=2))


def frost(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    weight, frost_weight = level(FROST, severity)
    choice = int(rng.integers(len(FROST_FILES)))
    texture = frost_texture(choice, image.size, scale(image), rng)
    blended = weight * np.asarray(image, dtype=np.float64) + frost_weight * texture
    return Image.fromarray(np.uint8(np.clip(blended, 0, 255)), "RGB")


def frost_texture(choice: int, size: tuple[int, int], s: float, rng: np.random.Generator):
    """An h x w x 3 crop (floats 0..255) of frost photograph `choice`, or its synthetic stand-in.

    As the reference, the photograph is enlarged 1.1 x (more where the image is larger than it)
    before a random crop; here also by the image's scale to 224 px, so frost looks the same at
    any resolution."""
    w, h = size
    u = rng.random(2)  # the crop's corner, drawn whichever texture is used
    photos = reference_frost_photos()
    if photos is None:
        return synthetic_frost(choice, h, w, rng)
    photo = _photo(photos[choice])
    big = _enlarged(photos[choice], 1.1 * max(s, h / photo.height, w / photo.width))
    top = int(u[0] * max(1, big.height - h))
    left = int(u[1] * max(1, big.width - w))
    return np.asarray(big.crop((left, top, left + w, top + h)), dtype=np.float64)


def reference_frost_photos() -> list[Path] | None:
    """ImageNet-C's frost photographs from the installed `imagecorruptions`, None without it."""
    try:
        spec = importlib.util.find_spec("imagecorruptions")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "frost"
    paths = [folder / name for name in FROST_FILES]
    return paths if all(p.is_file() for p in paths) else None


@lru_cache(maxsize=len(FROST_FILES))
def _photo(path: Path) -> Image.Image:
    with Image.open(path) as photo:
        return photo.convert("RGB")


@lru_cache(maxsize=2 * len(FROST_FILES))
def _enlarged(path: Path, factor: float) -> Image.Image:
    """The photograph enlarged `factor` times (bicubic); kept, as images of one size reuse it."""
    photo = _photo(path)
    size = (int(np.ceil(photo.width * factor)), int(np.ceil(photo.height * factor)))
    return photo.resize(size, Image.Resampling.BICUBIC)


def synthetic_frost(choice: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Ice on glass: a soft plasma of frozen haze crossed by thin bright crystal streaks, given
    the mean colour and contrast of photograph `choice`."""
    side = next_power_of_two(max(h, w))
    haze = plasma_fractal(side, 2.0, rng)[:h, :w]
    seeds = (rng.random((h, w)) > 0.985).astype(np.float32)
    length = max(2.0, min(h, w) / 16)
    crystals = sum(  # from zeros, not sum's 0: an array to mypy too; 0.0 + x is x exactly
        (motion_streak(seeds, length, length / 2, angle) for angle in rng.uniform(0, 360, 6)),
        np.zeros_like(seeds),
    )
    crystals = crystals / max(float(crystals.max()), 1e-6)
    field = 0.5 * (haze - haze.mean()) / (haze.std() + 1e-6)
    field = field + 1.5 * (crystals - crystals.mean()) / (crystals.std() + 1e-6)
    field = (field - field.mean()) / (field.std() + 1e-6)
    mean, sd = (np.asarray(v) for v in FROST_TONES[choice])
    return np.clip(mean + sd * field[..., None], 0, 255)


def fog(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    strength, roughness = level(FOG, severity)
    x = unit(image)
    h, w = x.shape[:2]
    brightest = x.max()
    haze = plasma_fractal(next_power_of_two(max(h, w, 3)), roughness, rng)[:h, :w]
    x = x + strength * haze[..., None]
    return to_image(x * brightest / (brightest + strength))
