"""A procedural, labelled image set: the demo's data and the tests' data builder.

Each category is a family of pictures with its own shapes, colours and textures, drawn with random
size, position and jitter from a seed, and written as real JPEG and PNG files in an ImageFolder
layout (`<out>/<category>/<category>_<n>.jpg`), so the parent folder is the label.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Painter = Callable[[np.random.Generator, int], Image.Image]


def _jitter(
    rng: np.random.Generator, rgb: tuple[int, int, int], amount: int = 30
) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)  # type: ignore[return-value]


def _canvas(
    rng: np.random.Generator, size: int, base: tuple[int, int, int]
) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", (size, size), _jitter(rng, base, 20))
    return img, ImageDraw.Draw(img)


def red_circles(rng: np.random.Generator, size: int) -> Image.Image:
    img, draw = _canvas(rng, size, (235, 235, 225))
    for _ in range(rng.integers(1, 4)):
        r = int(rng.uniform(0.12, 0.3) * size)
        x, y = rng.integers(r, size - r, size=2)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=_jitter(rng, (210, 30, 30)))
    return img


def blue_squares(rng: np.random.Generator, size: int) -> Image.Image:
    img, draw = _canvas(rng, size, (240, 240, 245))
    for _ in range(rng.integers(1, 4)):
        s = int(rng.uniform(0.15, 0.35) * size)
        x, y = rng.integers(0, size - s, size=2)
        draw.rectangle([x, y, x + s, y + s], fill=_jitter(rng, (30, 60, 200)))
    return img


def green_stripes(rng: np.random.Generator, size: int) -> Image.Image:
    img, draw = _canvas(rng, size, (250, 250, 240))
    step = int(rng.integers(size // 12, size // 5))
    color = _jitter(rng, (40, 160, 60))
    for y in range(int(rng.integers(0, step)), size, step):
        draw.rectangle([0, y, size, y + step // 2], fill=color)
    return img.rotate(float(rng.uniform(-30, 30)), fillcolor=(250, 250, 240))


def checkerboards(rng: np.random.Generator, size: int) -> Image.Image:
    n = int(rng.integers(4, 10))
    cell = size / n
    grid = (np.add.outer(np.arange(size) // cell, np.arange(size) // cell) % 2).astype(np.uint8)
    dark, light = _jitter(rng, (20, 20, 20), 15), _jitter(rng, (235, 235, 235), 15)
    arr = np.where(grid[..., None] == 1, np.array(dark, np.uint8), np.array(light, np.uint8))
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def sunsets(rng: np.random.Generator, size: int) -> Image.Image:
    top, bottom = np.array(_jitter(rng, (70, 30, 110))), np.array(_jitter(rng, (250, 140, 40)))
    t = np.linspace(0, 1, size)[:, None, None]
    arr = np.broadcast_to(top * (1 - t) + bottom * t, (size, size, 3)).astype(np.uint8)
    img = Image.fromarray(np.ascontiguousarray(arr), "RGB")
    draw = ImageDraw.Draw(img)
    r = int(rng.uniform(0.1, 0.2) * size)
    x, y = int(rng.integers(r, size - r)), int(rng.uniform(0.55, 0.8) * size)
    draw.ellipse([x - r, y - r, x + r, y + r], fill=_jitter(rng, (255, 220, 60), 10))
    draw.rectangle([0, int(0.85 * size), size, size], fill=_jitter(rng, (30, 20, 40), 10))
    return img


def starry_nights(rng: np.random.Generator, size: int) -> Image.Image:
    img, draw = _canvas(rng, size, (10, 12, 35))
    for _ in range(rng.integers(30, 90)):
        x, y = rng.integers(0, size, size=2)
        r = int(rng.integers(1, 3))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=_jitter(rng, (245, 245, 220), 10))
    return img


def yellow_triangles(rng: np.random.Generator, size: int) -> Image.Image:
    img, draw = _canvas(rng, size, (60, 60, 70))
    for _ in range(rng.integers(1, 3)):
        pts = [tuple(int(v) for v in rng.integers(0, size, size=2)) for _ in range(3)]
        cx, cy = np.mean(pts, axis=0)
        pts = [(int(cx + 1.6 * (px - cx)), int(cy + 1.6 * (py - cy))) for px, py in pts]
        draw.polygon(pts, fill=_jitter(rng, (240, 210, 30)))
    return img


def foggy_noise(rng: np.random.Generator, size: int) -> Image.Image:
    arr = rng.normal(128, 45, size=(size // 4, size // 4, 1)).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(np.repeat(arr, 3, axis=2), "RGB").resize(
        (size, size), Image.Resampling.BICUBIC
    )
    return img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(1, 4))))


CATEGORIES: dict[str, Painter] = {
    "red_circles": red_circles,
    "blue_squares": blue_squares,
    "green_stripes": green_stripes,
    "checkerboards": checkerboards,
    "sunsets": sunsets,
    "starry_nights": starry_nights,
    "yellow_triangles": yellow_triangles,
    "foggy_noise": foggy_noise,
}


def generate(
    out: str | Path,
    per_category: int = 20,
    *,
    size: int = 160,
    seed: int = 0,
    categories: list[str] | None = None,
) -> list[tuple[Path, str]]:
    """Write the image set under `out`; returns (path, category) pairs. Same seed, same bytes.

    Every fourth image is a PNG, the rest JPEG. A `labels.csv` (path,label) is written beside.
    """
    out = Path(out)
    names = categories or list(CATEGORIES)
    unknown = [n for n in names if n not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown categories {unknown}; choose from {sorted(CATEGORIES)}")
    written: list[tuple[Path, str]] = []
    for ci, name in enumerate(names):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_category):
            rng = np.random.default_rng([seed, ci, i])
            img = CATEGORIES[name](rng, size)
            if i % 4 == 3:
                path = folder / f"{name}_{i:03d}.png"
                img.save(path, format="PNG")
            else:
                path = folder / f"{name}_{i:03d}.jpg"
                img.save(path, format="JPEG", quality=90)
            written.append((path, name))
    with open(out / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"])
        for path, name in written:
            writer.writerow([path.relative_to(out).as_posix(), name])
    return written
