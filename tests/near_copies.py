"""Near-duplicate copies of real pictures, as leak between two sets of images: the same photo
resized, lightly cropped, brightened or re-encoded (tests/test_duplicates_hash.py and
bench/duplicates.py)."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, ImageEnhance


def _crop(share: float) -> Callable[[Image.Image], Image.Image]:
    def crop(image: Image.Image) -> Image.Image:
        w, h = image.size
        return image.crop(
            (round(w * share), round(h * share), w - round(w * share), h - round(h * share))
        )

    return crop


def _reencoded(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=40)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


#: name -> what makes the copy (each then saved as a JPEG of quality 90)
ALTERATIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "resized": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR),
    "cropped": _crop(0.02),  # 2% off each side
    "brightened": lambda im: ImageEnhance.Brightness(im).enhance(1.3),
    "re-encoded": _reencoded,  # JPEG quality 40
}


def write_copies(
    sources: Sequence[Path], dest: Path, alterations: Sequence[str] | None = None
) -> dict[Path, Path]:
    """An altered copy of each source in `dest` (the alterations taken in turn): copy -> source."""
    names = list(alterations or ALTERATIONS)
    dest.mkdir(parents=True, exist_ok=True)
    made = {}
    for i, source in enumerate(sources):
        name = names[i % len(names)]
        with Image.open(source) as image:
            copy = ALTERATIONS[name](image.convert("RGB"))
        target = dest / f"{source.stem}-{name}.jpg"
        copy.save(target, "JPEG", quality=90)
        made[target] = source
    return made
