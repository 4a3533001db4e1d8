"""Decode image bytes to an RGB PIL image the way every idx command does it.

EXIF orientation is applied; CMYK, palette, 16-bit, alpha and animated images become plain RGB;
large JPEGs are decoded at reduced size (PIL draft) when the model needs far fewer pixels.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from idx import config
from idx.errors import DecodeError, TooManyPixelsError
from idx.indexer.files import formats, storage

_ORIENTATION_TAG = 0x0112
_TRANSPOSED = {5, 6, 7, 8}
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")

# Pillow warns about an image between its limit and twice that; decode() sets that limit to
# IDX_MAX_PIXELS and refuses every such image itself, with the message users see, so the warning
# would only say it again, quoting another number than the message does.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass
class Decoded:
    image: Image.Image
    width: int
    height: int
    format: str


def decode(data: bytes, min_side: int | None = None) -> Decoded:
    """Decode bytes; with min_side, JPEGs may decode at a reduced scale keeping both sides >= it."""
    if not data:
        raise DecodeError("empty file (0 bytes)")
    formats.register_heif()
    limit = config.max_pixels()
    # Pillow has a guard of its own (as it opens an image, and as some formats load a frame or a
    # tile) that refuses from twice Image.MAX_IMAGE_PIXELS: left at Pillow's default it would
    # refuse what a raised IDX_MAX_PIXELS lets through. Given the same limit, it leaves the
    # refusing to the check below, whose message is the one users see.
    Image.MAX_IMAGE_PIXELS = limit
    try:
        img: Image.Image = Image.open(io.BytesIO(data))  # exif_transpose gives a plain Image
    except Image.DecompressionBombError as exc:
        raise _refused_by_pillow(exc, limit) from exc
    except UnidentifiedImageError as exc:
        if formats.is_heif(data[:16]):
            raise DecodeError(f"HEIC/HEIF image: reading it needs {formats.HEIF_EXTRA}") from exc
        raise DecodeError(
            "not an image Pillow can read (its content is none of the formats idx reads: "
            '`python -m idx.indexer.files.formats` lists them, as the README\'s "Which files" '
            "does)"
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise DecodeError(f"unreadable image header ({exc})") from exc
    fmt = img.format or "unknown"
    width, height = img.size
    if width * height > limit:
        pixels = width * height
        raise TooManyPixelsError(
            _too_many_pixels(f"{width}x{height} = {pixels} pixels", pixels, limit)
        )
    try:
        orientation = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the picture
        orientation = 1
    if orientation in _TRANSPOSED:
        width, height = height, width
    try:
        if min_side and fmt == "JPEG" and img.mode in ("RGB", "L", "CMYK"):
            img.draft(img.mode, (min_side, min_side))
        img.load()
        if orientation != 1:
            img = ImageOps.exif_transpose(img)
        rgb = to_rgb(img)
    except Image.DecompressionBombError as exc:
        raise _refused_by_pillow(exc, limit) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = str(exc) or type(exc).__name__
        raise DecodeError(f"corrupt or truncated image data ({reason})") from exc
    return Decoded(rgb, width, height, fmt)


def _too_many_pixels(size: str, pixels: int | None, limit: int) -> str:
    raise_to = f"IDX_MAX_PIXELS={pixels}" if pixels else "IDX_MAX_PIXELS"
    return (
        f"{size} is above the limit of {limit} pixels (a decompression-bomb guard); if the file "
        f"is trusted, raise the limit ({raise_to}) and run again"
    )


def _refused_by_pillow(exc: Image.DecompressionBombError, limit: int) -> TooManyPixelsError:
    """Pillow's refusal in our words and limit (its own quotes twice the limit)."""
    found = _BOMB_PIXELS.search(str(exc))
    pixels = int(found.group(1)) if found else None
    size = f"{pixels} pixels" if pixels else "its size"
    return TooManyPixelsError(_too_many_pixels(size, pixels, limit))


def to_rgb(img: Image.Image) -> Image.Image:
    """Plain 8-bit RGB: alpha composited on white, 16-bit and float scaled, CMYK/palette converted."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        hi = float(arr.max()) if arr.size else 0.0
        lo = float(arr.min()) if arr.size else 0.0
        if mode == "F":
            scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        else:
            scaled = arr / 257.0 if hi > 255 else arr
        return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def open_image(path: str | os.PathLike[str], min_side: int | None = None) -> Decoded:
    """Read and decode one file (a local path or an s3:// URL, indexer.files.storage); errors carry a
    reason fit for `skipping <path>: <reason>`."""
    try:
        data = storage.read_bytes(path)
    except FileNotFoundError as exc:
        raise DecodeError("file vanished before it could be read") from exc
    except PermissionError as exc:
        raise DecodeError(
            "permission denied; make the file readable (chmod +r) and run again"
        ) from exc
    except IsADirectoryError as exc:
        raise DecodeError("is a folder, not an image file") from exc
    except OSError as exc:
        raise DecodeError(f"cannot read file ({exc.strerror})") from exc
    return decode(data, min_side)
