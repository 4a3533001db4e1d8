"""A registry of named, seeded image corruptions with five severities each.

All 15 of ImageNet-C's common corruptions (Hendrycks & Dietterich 2019) with the parameters of
the reference implementation (the `imagecorruptions` package), written with numpy, SciPy and
Pillow; plus Gaussian blur (an ImageNet-C validation corruption) and idx's own saturation,
occlusion, crop and rotation. On a 224 x 224 image the deterministic ones give the reference's
pixels and the random ones its strength (tests/test_imagenet_c_reference.py, bench/imagenet_c.py).
Parameters measured in pixels (blur sigma, motion length, pixelation grid, patch size) are given
for ImageNet-C's 224 px and scaled by `short side / 224`, so a corruption looks the same to a
CLIP model whatever the resolution the image was decoded at.

Each function takes an RGB PIL image, a severity 1..5 and a numpy Generator, and returns an RGB
image of the same size. The random draws do not depend on the severity (only their strength
does), so severity s+1 corrupts the same pixels as s, more: distance to the clean image grows.

Add your own with `register_perturbation(name, fn)`; `perturb(image, name, severity)` applies one.
"""

from __future__ import annotations

import numbers
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from idx.analysis.perturbations import blur, digital, extras, noise, weather
from idx.analysis.perturbations.pixels import REFERENCE_SIDE as REFERENCE_SIDE
from idx.errors import UsageError

PerturbFn = Callable[[Image.Image, int, np.random.Generator], Image.Image]

SEVERITIES = (1, 2, 3, 4, 5)
#: ImageNet-C's 15 common corruptions in its tables' order (noise, blur, weather, digital), by
#: their idx names; `--perturb imagenet-c` measures these.
IMAGENET_C = (
    "gaussian_noise",
    "shot_noise",
    "salt_and_pepper",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg",
)
#: The name `--perturb` takes for IMAGENET_C.
IMAGENET_C_SUITE = "imagenet-c"
#: Levels that change the picture less than the level before (mean pixel change), in the
#: reference as here: ImageNet-C orders its levels by how much they hurt classifiers, not by
#: pixel distance, and its parameters are kept so that results compare with its tables.
STEPS_DOWN = {"glass_blur": (2, 4), "snow": (3,), "frost": (4,)}


@dataclass(frozen=True)
class Perturbation:
    name: str
    fn: PerturbFn
    #: What each severity 1..5 means, for `idx robustness list` and the README table.
    levels: tuple[str, ...]
    description: str
    origin: str = "user"
    #: The same levels as JSON has them (`idx robustness list --json`): numbers as numbers,
    #: tuples of parameters as lists, anything else as its text.
    values: tuple[Any, ...] = ()


_REGISTRY: dict[str, Perturbation] = {}
#: Short names people type (the issue's `blur`) for registered perturbations.
ALIASES = {
    "blur": "gaussian_blur",
    "noise": "gaussian_noise",
    "impulse_noise": "salt_and_pepper",
    "jpeg_compression": "jpeg",
}


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
    p = Perturbation(
        name,
        fn,
        tuple(str(v) for v in levels),
        description,
        origin,
        tuple(_plain(v) for v in levels),
    )
    _REGISTRY[name] = p
    return p


def _plain(level: object) -> Any:
    """A level as JSON writes it: a number stays a number, a tuple of them becomes a list."""
    if isinstance(level, numbers.Real) and not isinstance(level, bool):
        return level.item() if isinstance(level, np.generic) else level
    if isinstance(level, (tuple, list)):
        return [_plain(v) for v in level]
    return str(level)


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


Picture = TypeVar("Picture", Image.Image, np.ndarray)


def perturb(image: Picture, name: str, severity: int, seed: int = 0) -> Picture:
    """`image` corrupted by perturbation `name` at `severity` 1..5, the same for the same seed.

    A PIL image comes back as an RGB PIL image; a numpy array (H x W x 3 uint8, or H x W grey)
    as an H x W x 3 uint8 array. For example `idx.perturb(Image.open("cat.jpg"), "fog", 3)`.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise UsageError(
                f"perturb needs an H x W x 3 (or H x W) uint8 array, not a {image.dtype} array "
                f"of shape {image.shape}; convert with np.asarray(pil_image)"
            )
        return np.asarray(apply(name, Image.fromarray(image).convert("RGB"), severity, seed))
    if not isinstance(image, Image.Image):
        raise UsageError(
            f"perturb needs a PIL image or a numpy array, not {type(image).__name__}; "
            "open a file with PIL.Image.open(path)"
        )
    return apply(name, image, severity, seed)


_C, _V, _IDX = "ImageNet-C", "ImageNet-C validation", "idx"
_BUILTIN: tuple[tuple[str, PerturbFn, Sequence, str, str], ...] = (
    (
        "gaussian_noise",
        noise.gaussian_noise,
        noise.GAUSSIAN_NOISE,
        "additive N(0, sigma) on [0,1] pixels",
        _C,
    ),
    ("shot_noise", noise.shot_noise, noise.SHOT_NOISE, "Poisson(x * lambda) / lambda", _C),
    (
        "salt_and_pepper",
        noise.impulse_noise,
        noise.IMPULSE_NOISE,
        "impulse noise: share of channel values set 0 or 1",
        _C,
    ),
    (
        "defocus_blur",
        blur.defocus_blur,
        blur.DEFOCUS_BLUR,
        "(disk radius px, anti-alias sigma) at 224 px",
        _C,
    ),
    ("glass_blur", blur.glass_blur, blur.GLASS_BLUR, "(sigma px, shift px, passes) at 224 px", _C),
    (
        "motion_blur",
        blur.motion_blur,
        blur.MOTION_BLUR,
        "(radius, sigma) px at 224 px, angle +-45 deg",
        _C,
    ),
    (
        "zoom_blur",
        blur.zoom_blur,
        [(1, round(float(f[-1]), 2)) for f in blur.ZOOM_BLUR],
        "(first, last) of the zoom factors averaged",
        _C,
    ),
    (
        "snow",
        weather.snow,
        [(c[0], c[2], c[6]) for c in weather.SNOW],
        "(flake mean, flake zoom, image kept)",
        _C,
    ),
    ("frost", weather.frost, weather.FROST, "(image weight, frost weight)", _C),
    ("fog", weather.fog, weather.FOG, "(strength, plasma roughness)", _C),
    ("brightness", digital.brightness, digital.BRIGHTNESS, "HSV value + c", _C),
    ("contrast", digital.contrast, digital.CONTRAST, "(x - mean) x c + mean", _C),
    (
        "elastic_transform",
        digital.elastic_transform,
        digital.ELASTIC,
        "displacement strength (imagecorruptions)",
        _C,
    ),
    ("pixelate", digital.pixelate, digital.PIXELATE, "grid = side x c at 224 px", _C),
    ("jpeg", digital.jpeg, digital.JPEG_QUALITY, "JPEG quality", _C),
    ("gaussian_blur", blur.gaussian_blur, blur.GAUSSIAN_BLUR, "sigma px at 224 px", _V),
    ("saturation", digital.saturation, digital.SATURATION, "HSV saturation x c", _IDX),
    (
        "occlusion",
        extras.occlusion,
        extras.OCCLUSION_AREA,
        "grey area share, 4 square patches",
        _IDX,
    ),
    ("crop_zoom", extras.crop_zoom, extras.CROP_KEEP, "side share kept, zoomed back", _IDX),
    (
        "rotation",
        extras.rotation,
        extras.ROTATION_DEGREES,
        "degrees, random sign, black corners",
        _IDX,
    ),
)

for _name, _fn, _levels, _description, _origin in _BUILTIN:
    register_perturbation(_name, _fn, levels=_levels, description=_description, origin=_origin)
