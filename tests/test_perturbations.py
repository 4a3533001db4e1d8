"""The perturbation registry: deterministic per seed, size and mode kept, severity monotone."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from idx.analysis import perturbations
from idx.errors import UsageError
from idx.ops.robustness.inputs import parse_severities, resolve_perturbations


def natural_image(seed: int, w: int = 200, h: int = 150) -> Image.Image:
    """Colour 1/f noise: the spectrum of natural photos, without periodic patterns."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fft2(rng.standard_normal((h, w, 3)), axes=(0, 1))
    fy = np.fft.fftfreq(h)[:, None, None]
    fx = np.fft.fftfreq(w)[None, :, None]
    x = np.real(np.fft.ifft2(spectrum / np.maximum(np.hypot(fx, fy), 1 / max(w, h)), axes=(0, 1)))
    x = (x - x.mean()) / (4 * x.std()) + 0.5
    return Image.fromarray((np.clip(x, 0, 1) * 255).astype(np.uint8), "RGB")


def posterize(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    """A user perturbation: fewer colour levels per severity."""
    levels = 2 ** (6 - severity)
    x = np.asarray(image) // (256 // levels) * (256 // levels)
    return Image.fromarray(x.astype(np.uint8), "RGB")


@pytest.fixture
def user_registry(monkeypatch):
    """The registry with one user perturbation added (restored after the test)."""
    monkeypatch.setattr(perturbations, "_REGISTRY", dict(perturbations._REGISTRY))
    perturbations.register_perturbation("posterize", posterize, levels=[32, 16, 8, 4, 2])
    return perturbations.perturbation_names()


def _distance(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


def test_builtin_registry_has_the_required_corruptions():
    required = {
        "gaussian_noise",
        "shot_noise",
        "salt_and_pepper",
        "gaussian_blur",
        "motion_blur",
        "jpeg",
        "brightness",
        "contrast",
        "saturation",
        "pixelate",
        "occlusion",
        "crop_zoom",
        "rotation",
    }
    assert required <= set(perturbations.perturbation_names())
    for name in required:
        assert len(perturbations.get_perturbation(name).levels) == 5


def test_every_perturbation_is_deterministic_keeps_size_and_mode_and_grows(user_registry):
    images = [natural_image(seed) for seed in range(3)]
    for name in user_registry:
        for image in images:
            for severity in perturbations.SEVERITIES:
                a = perturbations.apply(name, image, severity, seed=7, key=3)
                b = perturbations.apply(name, image, severity, seed=7, key=3)
                assert a.size == image.size and a.mode == "RGB", name
                assert np.array_equal(np.asarray(a), np.asarray(b)), f"{name} not deterministic"
        distances = [
            np.mean(
                [_distance(image, perturbations.apply(name, image, s, seed=1)) for image in images]
            )
            for s in perturbations.SEVERITIES
        ]
        assert all(hi > lo for lo, hi in zip(distances, distances[1:])), (name, distances)
        assert distances[0] > 0, f"{name} severity 1 changes nothing"


@pytest.mark.parametrize(
    "name", ["gaussian_noise", "shot_noise", "occlusion", "crop_zoom", "motion_blur"]
)
def test_random_perturbations_depend_on_seed_and_image_key(name):
    image = natural_image(0)
    base = np.asarray(perturbations.apply(name, image, 3, seed=1, key=1))
    assert not np.array_equal(base, np.asarray(perturbations.apply(name, image, 3, seed=2, key=1)))
    assert not np.array_equal(base, np.asarray(perturbations.apply(name, image, 3, seed=1, key=2)))


def test_user_perturbation_used_by_name_and_validated(user_registry):
    image = natural_image(1)
    out = perturbations.apply("posterize", image, 5, seed=0)
    assert len(np.unique(np.asarray(out))) <= 2
    assert resolve_perturbations(["posterize", "blur"]) == ["posterize", "gaussian_blur"]
    with pytest.raises(UsageError, match="already registered"):
        perturbations.register_perturbation("posterize", posterize)
    perturbations.register_perturbation(
        "shrink", lambda img, s, rng: img.resize((10, 10)), replace=True
    )
    with pytest.raises(UsageError, match="must keep the size"):
        perturbations.apply("shrink", image, 1)


def test_unknown_name_and_bad_severity_name_the_valid_values():
    with pytest.raises(UsageError, match="valid ones: gaussian_noise, .*rotation"):
        perturbations.get_perturbation("fog")
    with pytest.raises(UsageError, match="1 to 5"):
        perturbations.apply("jpeg", natural_image(0), 6)


@pytest.mark.parametrize(
    "text, levels",
    [("1:5", [1, 2, 3, 4, 5]), ("1,3,5", [1, 3, 5]), ("4", [4]), ("5,1,1", [1, 5])],
)
def test_parse_severities(text, levels):
    assert parse_severities(text) == levels


@pytest.mark.parametrize("text", ["0:5", "6", "a", "", "3:x"])
def test_parse_severities_refuses(text):
    with pytest.raises(UsageError, match="1 to 5"):
        parse_severities(text)


def test_brightness_keeps_hue_and_saturation_like_hsv():
    """brightness adds c to HSV value; checked against PIL's own HSV conversion."""
    image = natural_image(2, 64, 48)
    out = perturbations.apply("brightness", image, 2)
    hsv_in = np.asarray(image.convert("HSV"), np.int16)
    hsv_out = np.asarray(out.convert("HSV"), np.int16)
    expected_v = np.minimum(hsv_in[..., 2] + round(0.2 * 255), 255)
    assert np.abs(hsv_out[..., 2] - expected_v).max() <= 1
    bright = hsv_in[..., 1] > 40  # hue is ill-defined for near-grey pixels
    hue_shift = np.abs(hsv_out[..., 0] - hsv_in[..., 0])[bright]
    assert np.percentile(np.minimum(hue_shift, 256 - hue_shift), 99) <= 3


def test_severity_is_monotone_on_real_photos(shared_data):
    photos = [
        Image.open(p).convert("RGB") for p in sorted((shared_data / "images").glob("*.jpg"))[:3]
    ]
    for name in perturbations.perturbation_names():
        distances = [
            np.mean([_distance(im, perturbations.apply(name, im, s, seed=0)) for im in photos])
            for s in perturbations.SEVERITIES
        ]
        assert all(hi > lo for lo, hi in zip(distances, distances[1:])), (name, distances)
