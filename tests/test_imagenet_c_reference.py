"""idx's ImageNet-C corruptions against the reference implementation (`imagecorruptions`, the
optional extra `idx-clip[imagenet-c]`), on 224 x 224 images as ImageNet-C: the deterministic ones
pixel for pixel, the random ones in strength at every severity. Skipped where it is not installed;
bench/imagenet_c.py measures the same on real photos with more draws."""

from __future__ import annotations

import numpy as np
import pytest

from idx.analysis import perturbations
from idx.analysis.perturbations import pixels, reference
from tests.test_perturbations import natural_image

pytestmark = pytest.mark.skipif(
    not reference.available(), reason="imagecorruptions is not installed (idx-clip[imagenet-c])"
)

DETERMINISTIC = ("defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg")
#: corruption -> (draws per severity, allowed strength ratio): frost draws one of five photographs
#: (mean brightness 78 to 214) and fog a random fractal, so their means need more draws.
RANDOM = {
    "gaussian_noise": (4, 0.03),
    "shot_noise": (4, 0.03),
    "salt_and_pepper": (4, 0.03),
    "glass_blur": (1, 0.05),  # the reference takes 1.5 s a picture
    "motion_blur": (4, 0.06),
    "snow": (6, 0.08),
    "frost": (12, 0.12),
    "fog": (8, 0.1),
    "elastic_transform": (4, 0.05),
}


@pytest.fixture(scope="module")
def corrupt():
    return reference.load()


@pytest.fixture(scope="module")
def images():
    return [natural_image(seed, 224, 224) for seed in range(4)]


def change(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_corruptions_give_the_reference_pixels(name, corrupt, images):
    for severity in perturbations.SEVERITIES:
        for image in images[:2]:
            ours = np.asarray(perturbations.apply(name, image, severity), np.int16)
            ref = np.asarray(corrupt(image, name, severity), np.int16)
            diff = np.abs(ours - ref)
            # float rounding before the reference's truncation to integers: at most one level
            assert diff.max() <= 1, (name, severity)
            assert diff.mean() < 0.03, (name, severity)


@pytest.mark.parametrize("name", RANDOM)
def test_random_corruptions_have_the_reference_strength(name, corrupt, images):
    draws, tolerance = RANDOM[name]
    ours, ref = [], []
    for severity in perturbations.SEVERITIES:
        cases = [(d % len(images), images[d % len(images)]) for d in range(draws)]
        ours.append(
            np.mean(
                [
                    change(im, perturbations.apply(name, im, severity, seed=d, key=i))
                    for d, (i, im) in enumerate(cases)
                ]
            )
        )
        ref.append(
            np.mean(
                [change(im, corrupt(im, name, severity, 1 + d)) for d, (_, im) in enumerate(cases)]
            )
        )
    ratios = np.array(ours) / np.array(ref)
    assert np.all(np.abs(ratios - 1) <= tolerance), (name, ratios.round(3))
    for severity in perturbations.STEPS_DOWN.get(name, ()):
        # a level idx lets step down steps down in the reference too (or nearly: within noise)
        assert ref[severity - 1] < ref[severity - 2] * (1 + tolerance), (name, severity, ref)


class _Legacy:
    """A generator drawing from numpy's global one, as the reference does."""

    def uniform(self, low, high, shape):
        return np.random.uniform(low, high, shape)


def test_fog_fractal_and_motion_streak_equal_the_reference_for_the_same_draws(corrupt):
    import imagecorruptions.corruptions as ref  # loaded, with its shims, by `corrupt`

    for decay in (2.0, 1.4):
        np.random.seed(3)
        expected = ref.plasma_fractal(256, decay)
        np.random.seed(3)
        assert np.allclose(pixels.plasma_fractal(256, decay, _Legacy()), expected, atol=1e-12)
    x = np.asarray(natural_image(5, 224, 224))
    for radius, sigma, angle in ((10, 3, 30.0), (20, 15, -44.0), (12, 8, -100.0)):
        expected = ref._motion_blur(x, radius=radius, sigma=sigma, angle=angle)
        assert np.allclose(pixels.motion_streak(x, radius, sigma, angle), expected, atol=1e-9)
