"""The perturbation registry: deterministic per seed, size and mode kept, severity monotone."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import idx
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
    assert len(perturbations.IMAGENET_C) == 15
    required = set(perturbations.IMAGENET_C) | {
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


def mean_change(name: str, images: list[Image.Image], severity: int) -> float:
    """Mean pixel change over the images, each under two draws (frost's texture, the angle of
    a streak... differ between draws; a level's strength is its mean over them)."""
    return float(
        np.mean(
            [
                _distance(image, perturbations.apply(name, image, severity, seed=1, key=key))
                for i, image in enumerate(images)
                for key in (i, i + 10)
            ]
        )
    )


def test_every_perturbation_is_deterministic_keeps_size_and_mode_and_grows(user_registry):
    images = [natural_image(seed) for seed in range(3)]
    for name in user_registry:
        for severity in perturbations.SEVERITIES:
            a = perturbations.apply(name, images[0], severity, seed=7, key=3)
            b = perturbations.apply(name, images[0], severity, seed=7, key=3)
            assert a.size == images[0].size and a.mode == "RGB", name
            assert np.array_equal(np.asarray(a), np.asarray(b)), f"{name} not deterministic"
        distances = [mean_change(name, images, s) for s in perturbations.SEVERITIES]
        assert_grows(name, distances)
        assert distances[0] > 0, f"{name} severity 1 changes nothing"


def assert_grows(name: str, distances: list[float]) -> None:
    """Each level changes the picture more than the one before, except ImageNet-C's own steps
    down (perturbations.STEPS_DOWN, which the reference test shows the reference takes too)."""
    for severity, (lo, hi) in enumerate(zip(distances, distances[1:]), start=2):
        if severity not in perturbations.STEPS_DOWN.get(name, ()):
            assert hi > lo, (name, severity, distances)


@pytest.mark.parametrize(
    "name",
    [
        "gaussian_noise",
        "shot_noise",
        "occlusion",
        "crop_zoom",
        "motion_blur",
        "glass_blur",
        "snow",
        "frost",
        "fog",
        "elastic_transform",
    ],
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
        perturbations.get_perturbation("hail")
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
    # at 224 x 224, the size robustness perturbs at (the model's input)
    photos = [
        Image.open(p).convert("RGB").resize((224, 224))
        for p in sorted((shared_data / "images").glob("*.jpg"))[:3]
    ]
    for name in perturbations.perturbation_names():
        distances = [mean_change(name, photos, s) for s in perturbations.SEVERITIES]
        assert_grows(name, distances)


@pytest.mark.parametrize("size", [(64, 86), (33, 32)])
def test_every_perturbation_keeps_the_size_of_small_images(size):
    """A small model's input (the tiny test model sees 64 px) scales pixel sizes far below
    ImageNet-C's 224 px; every corruption still returns the picture it was given."""
    image = natural_image(5, *size)
    for name in perturbations.perturbation_names():
        for severity in (1, 5):
            out = perturbations.apply(name, image, severity, seed=2, key=1)
            assert out.size == image.size and out.mode == "RGB", (name, severity)


def test_noise_is_nested_across_severities():
    """A stronger level corrupts the same pixels as a lighter one, more: the random field is
    drawn once, whatever the level."""
    image = natural_image(3)
    clean = np.asarray(image, np.int16)
    hit = [
        np.asarray(perturbations.apply("salt_and_pepper", image, s, seed=4), np.int16) != clean
        for s in perturbations.SEVERITIES
    ]
    for lighter, stronger in zip(hit, hit[1:]):
        assert not (lighter & ~stronger).any()
    mid = (clean > 60) & (clean < 195)  # away from clipping, noise keeps its sign
    signs = [
        np.sign(
            np.asarray(perturbations.apply("gaussian_noise", image, s, seed=4), np.int16) - clean
        )
        for s in (1, 5)
    ]
    strong = mid & (
        np.abs(
            np.asarray(perturbations.apply("gaussian_noise", image, 1, seed=4), np.int16) - clean
        )
        > 2
    )
    assert (signs[0][strong] == signs[1][strong]).mean() > 0.99


def test_perturb_takes_pil_images_and_arrays():
    image = natural_image(4)
    out = idx.perturb(image, "fog", 3, seed=2)
    assert isinstance(out, Image.Image) and out.size == image.size
    array = idx.perturb(np.asarray(image), "fog", 3, seed=2)
    assert isinstance(array, np.ndarray) and array.dtype == np.uint8
    assert np.array_equal(array, np.asarray(out))
    grey = idx.perturb(np.asarray(image.convert("L")), "jpeg_compression", 2)
    assert grey.shape == (image.size[1], image.size[0], 3)
    with pytest.raises(UsageError, match="uint8"):
        idx.perturb(np.zeros((8, 8, 3), np.float32), "fog", 1)
    with pytest.raises(UsageError, match="PIL image"):
        idx.perturb("cat.jpg", "fog", 1)


def test_imagenet_c_suite_by_name():
    assert resolve_perturbations(["imagenet-c"]) == list(perturbations.IMAGENET_C)
    assert resolve_perturbations(["jpeg_compression", "impulse_noise"]) == [
        "jpeg",
        "salt_and_pepper",
    ]
