"""A registry of named, seeded image corruptions with five severities each.

Parameters follow ImageNet-C (Hendrycks & Dietterich 2019, `imagenet_c/corruptions.py`) where it
defines the corruption. ImageNet-C works on 224 x 224 images; here parameters measured in pixels
(blur sigma, motion length, pixelation grid, patch size) are scaled by `short side / 224`, so a
corruption looks the same to a CLIP model whatever the resolution the image was decoded at.

Each function takes an RGB PIL image, a severity 1..5 and a numpy Generator, and returns an RGB
image of the same size. The random draws do not depend on the severity (only their strength
does), so severity s+1 corrupts the same pixels as s, more: distance to the clean image grows.

Add your own with `register_perturbation(name, fn)`.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from idx.errors import UsageError

PerturbFn = Callable[[Image.Image, int, np.random.Generator], Image.Image]

SEVERITIES = (1, 2, 3, 4, 5)
#: ImageNet-C's image side; pixel-sized parameters are given for it and scaled to the image.
REFERENCE_SIDE = 224


@dataclass(frozen=True)
class Perturbation:
    name: str
    fn: PerturbFn
    #: What each severity 1..5 means, for `idx robustness list` and the README table.
    levels: tuple[str, ...]
    description: str
    origin: str = "user"


_REGISTRY: dict[str, Perturbation] = {}
#: Short names people type (the issue's `blur`) for registered perturbations.
ALIASES = {"blur": "gaussian_blur", "noise": "gaussian_noise", "impulse_noise": "salt_and_pepper"}


def register_perturbation(
    name: str,
    fn: PerturbFn,
    *,
    levels: Sequence[object] = (),
    description: str = "",
    origin: str = "user",
    replace: bool = False,
) -> Perturbation:
    """Add `fn(image RGB, severity 1..5, rng) -> image` under `name` (same size and mode out)."""
    if not name or not name.replace("_", "").isalnum() or name != name.lower():
        raise UsageError(f"perturbation name {name!r} must be lower-case letters, digits and _")
    if (name in _REGISTRY or name in ALIASES) and not replace:
        raise UsageError(
            f"perturbation {name!r} is already registered; pass replace=True to override it"
        )
    p = Perturbation(name, fn, tuple(str(v) for v in levels), description, origin)
    _REGISTRY[name] = p
    return p


def perturbation_names() -> list[str]:
    return list(_REGISTRY)


def get_perturbation(name: str) -> Perturbation:
    key = ALIASES.get(name, name)
    if key not in _REGISTRY:
        raise UsageError(
            f"unknown perturbation {name!r}; valid ones: {', '.join(_REGISTRY)} "
            f"(aliases: {', '.join(f'{a}={t}' for a, t in ALIASES.items())})"
        )
    return _REGISTRY[key]


def rng_for(name: str, seed: int, key: int = 0) -> np.random.Generator:
    """The generator for one perturbation of one image (`key`, e.g. its id) under `seed`."""
    return np.random.default_rng([seed, key, zlib.crc32(name.encode())])


def apply(name: str, image: Image.Image, severity: int, seed: int = 0, key: int = 0) -> Image.Image:
    """Perturb `image` (converted to RGB) at `severity`; deterministic for (seed, key)."""
    p = get_perturbation(name)
    if severity not in SEVERITIES:
        raise UsageError(f"severity {severity} is out of range; use 1 to 5")
    image = image.convert("RGB") if image.mode != "RGB" else image
    out = p.fn(image, severity, rng_for(p.name, seed, key))
    if out.size != image.size or out.mode != "RGB":
        raise UsageError(
            f"perturbation {p.name!r} returned a {out.size[0]}x{out.size[1]} {out.mode} image "
            f"for a {image.size[0]}x{image.size[1]} RGB one; it must keep the size and RGB mode"
        )
    return out


# -- helpers ---------------------------------------------------------------------------------


def _scale(image: Image.Image) -> float:
    return min(image.size) / REFERENCE_SIDE


def _unit(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) / 255.0


def _image(x: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "RGB")


def _level(values: Sequence, severity: int):
    return values[severity - 1]


# -- noise -----------------------------------------------------------------------------------

GAUSSIAN_NOISE = (0.08, 0.12, 0.18, 0.26, 0.38)
SHOT_NOISE = (60, 25, 12, 5, 3)
SALT_AND_PEPPER = (0.03, 0.06, 0.09, 0.17, 0.27)


def gaussian_noise(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    x = _unit(image)
    return _image(
        x + rng.standard_normal(x.shape, dtype=np.float32) * _level(GAUSSIAN_NOISE, severity)
    )


def shot_noise(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    c = _level(SHOT_NOISE, severity)
    return _image(rng.poisson(_unit(image) * c) / c)


def salt_and_pepper(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    x = _unit(image)
    amount = _level(SALT_AND_PEPPER, severity)
    u = rng.random(x.shape, dtype=np.float32)  # same field at every severity: nested pixel sets
    x = np.where(u < amount / 2, 1.0, x)
    return _image(np.where((u >= amount / 2) & (u < amount), 0.0, x))


# -- blur ------------------------------------------------------------------------------------

GAUSSIAN_BLUR = (1, 2, 3, 4, 6)
MOTION_BLUR = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))


def gaussian_blur(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(_level(GAUSSIAN_BLUR, severity) * _scale(image)))


def motion_blur(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    """A one-sided streak of `radius` px with Gaussian weights (sigma), at a random angle."""
    radius, sigma = _level(MOTION_BLUR, severity)
    s = _scale(image)
    radius, sigma = max(1, round(radius * s)), sigma * s
    angle = np.deg2rad(rng.uniform(-45, 45))
    t = np.arange(radius + 1, dtype=np.float32)
    weights = np.exp(-(t**2) / (2 * sigma**2))
    weights /= weights.sum()
    x = _unit(image)
    h, w = x.shape[:2]
    padded = np.pad(x, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    out = np.zeros_like(x)
    for ti, wt in zip(t, weights):
        dy, dx = round(ti * np.sin(angle)), round(ti * np.cos(angle))
        out += wt * padded[radius + dy : radius + dy + h, radius + dx : radius + dx + w]
    return _image(out)


# -- digital ---------------------------------------------------------------------------------

JPEG_QUALITY = (25, 18, 15, 10, 7)
PIXELATE = (0.6, 0.5, 0.4, 0.3, 0.25)


def jpeg(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=_level(JPEG_QUALITY, severity))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def pixelate(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    # ImageNet-C shrinks 224 px to 224*c; the grid here is the same relative to the short side.
    factor = _level(PIXELATE, severity) / _scale(image)
    if factor >= 1:  # the image already has fewer pixels than the grid has cells
        return image.copy()
    w, h = image.size
    small = image.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.BOX)
    return small.resize((w, h), Image.BOX)


# -- photometric -----------------------------------------------------------------------------

BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)
CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)
SATURATION = (0.6, 0.45, 0.3, 0.15, 0.0)


def brightness(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    """HSV value + c, hue and saturation kept (ImageNet-C's brightness, without skimage)."""
    x = _unit(image)
    v = x.max(axis=2, keepdims=True)
    v_new = np.minimum(v + _level(BRIGHTNESS, severity), 1.0)
    scaled = np.divide(x * v_new, v, out=np.broadcast_to(v_new, x.shape).copy(), where=v > 0)
    return _image(scaled)


def contrast(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    x = _unit(image)
    means = x.mean(axis=(0, 1), keepdims=True)
    return _image((x - means) * _level(CONTRAST, severity) + means)


def saturation(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    """HSV saturation x c, hue and value kept. ImageNet-C's `saturate` both lowers and raises
    saturation across its levels (not monotone); here every level desaturates further."""
    x = _unit(image)
    v = x.max(axis=2, keepdims=True)
    return _image(v - (v - x) * _level(SATURATION, severity))


# -- geometric and occlusion -----------------------------------------------------------------

OCCLUSION_AREA = (0.04, 0.08, 0.15, 0.25, 0.35)
OCCLUSION_PATCHES = 4
CROP_KEEP = (0.9, 0.8, 0.7, 0.6, 0.5)
ROTATION_DEGREES = (5, 10, 15, 20, 30)


def occlusion(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    """Grey square patches at random centres; larger levels grow the same patches."""
    w, h = image.size
    side = np.sqrt(_level(OCCLUSION_AREA, severity) * w * h / OCCLUSION_PATCHES)
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
    keep = _level(CROP_KEEP, severity)
    cw, ch = max(1, round(w * keep)), max(1, round(h * keep))
    u, v = rng.random(2)
    left, top = round(u * (w - cw)), round(v * (h - ch))
    return image.resize((w, h), Image.BILINEAR, box=(left, top, left + cw, top + ch))


def rotation(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    sign = 1 if rng.random() < 0.5 else -1
    return image.rotate(
        sign * _level(ROTATION_DEGREES, severity), Image.BILINEAR, fillcolor=(0, 0, 0)
    )


_C, _IDX = "ImageNet-C", "idx"
_BUILTIN: tuple[tuple[str, PerturbFn, Sequence, str, str], ...] = (
    ("gaussian_noise", gaussian_noise, GAUSSIAN_NOISE, "additive N(0, sigma) on [0,1] pixels", _C),
    ("shot_noise", shot_noise, SHOT_NOISE, "Poisson(x * lambda) / lambda", _C),
    ("salt_and_pepper", salt_and_pepper, SALT_AND_PEPPER, "share of channel values set 0 or 1", _C),
    ("gaussian_blur", gaussian_blur, GAUSSIAN_BLUR, "sigma px at 224 px", _C),
    ("motion_blur", motion_blur, MOTION_BLUR, "(length, sigma) px at 224 px, angle +-45 deg", _C),
    ("jpeg", jpeg, JPEG_QUALITY, "JPEG quality", _C),
    ("pixelate", pixelate, PIXELATE, "grid = side x c at 224 px", _C),
    ("brightness", brightness, BRIGHTNESS, "HSV value + c", _C),
    ("contrast", contrast, CONTRAST, "(x - mean) x c + mean", _C),
    ("saturation", saturation, SATURATION, "HSV saturation x c", _IDX),
    ("occlusion", occlusion, OCCLUSION_AREA, "grey area share, 4 square patches", _IDX),
    ("crop_zoom", crop_zoom, CROP_KEEP, "side share kept, zoomed back", _IDX),
    ("rotation", rotation, ROTATION_DEGREES, "degrees, random sign, black corners", _IDX),
)

for _name, _fn, _levels, _description, _origin in _BUILTIN:
    register_perturbation(_name, _fn, levels=_levels, description=_description, origin=_origin)
