"""The reference ImageNet-C implementation, `imagecorruptions` (optional extra
`idx-clip[imagenet-c]`), made to run on today's numpy, scikit-image and setuptools, for measuring
how closely idx's own corruptions agree with it (tests/test_imagenet_c_reference.py,
bench/imagenet_c.py).

Its last release (1.1.2, 2020) no longer runs as published: `import imagecorruptions` needs
`pkg_resources` (gone from setuptools 81), `fog` calls `np.float_` (gone in numpy 2) and
`glass_blur` passes `multichannel=` to scikit-image's `gaussian` (gone in 0.21). The three
shims below restore exactly those names, inside that module only; nothing else is changed.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from idx.errors import UsageError

#: idx's name -> the reference's, where they differ.
REFERENCE_NAMES = {"salt_and_pepper": "impulse_noise", "jpeg": "jpeg_compression"}

Corrupt = Callable[[Image.Image, str, int, int], Image.Image]


def available() -> bool:
    """Whether the `imagecorruptions` package is installed."""
    return importlib.util.find_spec("imagecorruptions") is not None


def reference_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("imagecorruptions")
    except PackageNotFoundError:
        return None


def load() -> Corrupt:
    """`corrupt(image, idx_name, severity, seed)` by the reference implementation (seeded through
    numpy's global generator, which is saved and restored around each call)."""
    if not available():
        raise UsageError(
            "the reference ImageNet-C implementation is not installed; "
            "pip install 'idx-clip[imagenet-c]' (it brings imagecorruptions)"
        )
    module = _import_with_shims()

    def corrupt(image: Image.Image, name: str, severity: int, seed: int = 0) -> Image.Image:
        state = np.random.get_state()
        np.random.seed(seed)
        try:
            out = module.corrupt(
                np.asarray(image.convert("RGB")),
                severity=severity,
                corruption_name=REFERENCE_NAMES.get(name, name),
            )
        finally:
            np.random.set_state(state)
        return Image.fromarray(np.asarray(out, dtype=np.uint8), "RGB")

    return corrupt


def _import_with_shims() -> Any:
    fake = None
    if importlib.util.find_spec("pkg_resources") is None:
        fake = types.ModuleType("pkg_resources")
        fake.resource_filename = _resource_filename  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = fake
    try:
        with warnings.catch_warnings():  # its scipy.ndimage.interpolation import: deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            package = importlib.import_module("imagecorruptions")
    finally:
        if fake is not None:
            del sys.modules["pkg_resources"]
    corruptions: Any = importlib.import_module("imagecorruptions.corruptions")  # patched below
    corruptions.np = _NumpyWithFloat()
    corruptions.gaussian = _gaussian_with_multichannel(corruptions.gaussian)
    return package


def _resource_filename(package: str, path: str) -> str:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None
    return os.path.join(os.path.dirname(spec.origin), path)


class _NumpyWithFloat:
    """numpy as the reference module sees it, with numpy 1's `np.float_` back."""

    float_ = np.float64

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


def _gaussian_with_multichannel(gaussian: Callable[..., Any]) -> Callable[..., Any]:
    def call(image: Any, *args: Any, multichannel: bool | None = None, **kwargs: Any) -> Any:
        if multichannel:
            kwargs.setdefault("channel_axis", -1)
        return gaussian(image, *args, **kwargs)

    return call
