"""The image tower in ONNX (fp32) with open_clip's preprocessing in Pillow and numpy: `add`,
image queries and `serve` on the CPU without torch.

A process that embeds images used to import torch, torchvision and open_clip (~3.5 s on 2 cores)
and build the model (~1.5 s for ViT-B-32) before its first embedding. The first process that has
the model loaded (an `add`) exports the image tower to ONNX and records the preprocessing; later
processes on the CPU load the ONNX file (~1 s for ViT-B-32) and nothing of torch: an `add` of one
photo took 2.9 s instead of 7.4 s (bench/README.md, "Start-up"). Throughput is torch's (0.94-1.2x
for the tower alone, 1.03x end to end).

Only open_clip's usual preprocessing is reproduced (resize the shorter side or to a square with
Pillow's bicubic or bilinear filter, centre crop, RGB, scale to [0, 1], normalise); anything else
keeps torch. Each export is checked before it is kept: on probe images of several sizes, shapes
and modes its pixels equal torchvision's (within MAX_PIXEL_DIFF) and its vectors agree with the
torch tower (cosine >= MIN_COSINE). Vectors stay L2-normalised float32, as from torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from idx.indexer.model import towers
from idx.indexer.model.identity import ModelIdentity

MIN_COSINE = 0.9999
MAX_PIXEL_DIFF = 1e-5
FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


@dataclass(frozen=True)
class Preprocess:
    """open_clip's preprocessing as data (picklable: it travels to Ray's decode tasks):
    PIL image in, float32 array (3, H, W) out, equal to what torchvision's transforms give."""

    #: [short side] (aspect kept) or [height, width]
    resize: tuple[int, ...]
    interpolation: str
    crop: tuple[int, int]
    #: per channel (R, G, B), or one for all three: torchvision's Normalize takes either
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, image: Image.Image) -> np.ndarray:
        return self.normalize(self.crop_u8(image)[None])[0]

    def crop_u8(self, image: Image.Image) -> np.ndarray:
        """The steps before normalising: resize, centre crop, RGB; uint8 (H, W, 3), a quarter of
        the bytes of the model's input (what decode processes send, and what a GPU takes)."""
        image = _center_crop(self.resized(image), self.crop)
        if image.mode != "RGB":
            image = image.convert("RGB")
        return np.array(image, np.uint8)

    def normalize(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops (N, H, W, 3) to the model's float32 input (N, 3, H, W)."""
        pixels = crops.astype(np.float32) / np.float32(255)
        mean = np.asarray(self.mean, np.float32)[:, None, None]
        std = np.asarray(self.std, np.float32)[:, None, None]
        return np.ascontiguousarray((pixels.transpose(0, 3, 1, 2) - mean) / std)

    def resized(self, image: Image.Image) -> Image.Image:
        """The resize step alone (torchvision's Resize on a PIL image)."""
        width, height = image.size
        if len(self.resize) == 2:
            new_h, new_w = self.resize
        else:
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = self.resize[0], int(self.resize[0] * long / short)
            new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
        if (new_w, new_h) == (width, height):
            return image
        return image.resize((new_w, new_h), FILTERS[self.interpolation])

    @classmethod
    def of(cls, transform: Any) -> Preprocess | str:
        """The Preprocess equal to an open_clip transform, or why there is none."""
        steps = list(getattr(transform, "transforms", []))
        names = [step.__name__ if _is_function(step) else type(step).__name__ for step in steps]
        expected = [
            "Resize",
            "CenterCrop",
            ("MaybeConvertMode", "_convert_to_rgb"),
            ("MaybeToTensor", "ToTensor"),
            "Normalize",
        ]
        if len(names) != len(expected) or not all(
            n in e if isinstance(e, tuple) else n == e for n, e in zip(names, expected)
        ):
            return f"its preprocessing ({', '.join(names)}) is not open_clip's usual one"
        resize, crop, convert, _, normalize = steps
        interpolation = getattr(resize.interpolation, "value", str(resize.interpolation))
        if interpolation not in FILTERS or resize.max_size is not None:
            return f"its resize ({interpolation}, max_size {resize.max_size}) is not reproduced"
        if getattr(convert, "mode", "RGB") != "RGB":
            return f"it converts images to {convert.mode}, not RGB"
        size = resize.size
        crop_size = crop.size
        return cls(
            resize=(int(size),) if isinstance(size, int) else tuple(int(s) for s in size),
            interpolation=interpolation,
            crop=(int(crop_size[0]), int(crop_size[-1])),
            mean=tuple(float(m) for m in normalize.mean),
            std=tuple(float(s) for s in normalize.std),
        )


class Steps:
    """What a cached image tower records of its model: the preprocessing and the sizes (read
    without opening the tower: the int8 tower runs with them)."""

    def __init__(self, folder: Path):
        meta = json.loads((folder / "meta.json").read_text())
        self.preprocess = Preprocess(**{k: _tuple(v) for k, v in meta["preprocess"].items()})
        self.embed_dim = int(meta["embed_dim"])
        self.image_size = int(meta["image_size"])
        self.onnx = folder / "image.onnx"


class ImageTower(Steps):
    """A cached image tower: its preprocessing, and `encode(pixels)` to unit float32 vectors."""

    def __init__(self, folder: Path):
        super().__init__(folder)
        self.session = towers.session(self.onnx)

    def encode(self, pixels: Any) -> np.ndarray:
        batch = np.ascontiguousarray(np.asarray(pixels), np.float32)
        return towers.unit(self.session.run(None, {"pixels": batch})[0])


def cached(identity: ModelIdentity, *, keep: bool = True) -> ImageTower | None:
    """The image tower prepared for this model on this machine, or None (`keep`: as
    towers.load)."""
    return towers.load("image", identity, ImageTower, keep=keep)


def steps(identity: ModelIdentity) -> Steps | None:
    """What the image tower prepared for this model records (its preprocessing, sizes and ONNX
    file), without opening it; None when there is none."""
    where = towers.folder("image", identity)
    if where is None or not (where / "meta.json").is_file():
        return None
    try:
        return Steps(where)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        towers.discard("image", where, exc)
        return None


def prepare(identity: ModelIdentity, model: Any, transform: Any, image_size: int) -> bool:
    """Export and check the image tower of a loaded open_clip `model` (with its preprocessing
    `transform`) once per model and machine; True when a usable one is cached."""
    return towers.prepare(
        "image",
        identity,
        lambda work: _build(work, model, transform, image_size),
        parameters=towers.parameters(model.visual),
    )


def _build(work: Path, model: Any, transform: Any, image_size: int) -> str | None:
    import torch

    preprocess = Preprocess.of(transform)
    if isinstance(preprocess, str):
        return preprocess
    probes = _probe_images()
    ours = np.stack([preprocess(p) for p in probes])
    theirs = torch.stack([transform(p) for p in probes]).numpy()
    if ours.shape != theirs.shape or float(np.abs(ours - theirs).max()) > MAX_PIXEL_DIFF:
        return "its preprocessing in numpy differs from torchvision's on the probe images"
    visual = towers.cpu_model(model).visual
    towers.export(visual, torch.from_numpy(ours[:1]), work / "image.onnx", "pixels")
    with torch.inference_mode():
        reference = torch.nn.functional.normalize(visual(torch.from_numpy(ours)), dim=-1)
    meta = {
        "preprocess": asdict(preprocess),
        "embed_dim": int(reference.shape[-1]),
        "image_size": int(image_size),
    }
    (work / "meta.json").write_text(json.dumps(meta))
    tower = ImageTower(work)
    agreement = float(np.mean(np.sum(reference.numpy() * tower.encode(ours), axis=1)))
    if agreement < MIN_COSINE:
        return f"the export agrees with torch at mean cosine {agreement:.6f} < {MIN_COSINE}"
    return None


def _probe_images() -> list[Image.Image]:
    """Pictures of several sizes, shapes and modes: noise over gradients (seeded)."""
    rng = np.random.default_rng(0)
    out = []
    for width, height, mode in (
        (320, 240, "RGB"),
        (200, 333, "RGB"),
        (64, 64, "RGB"),
        (1000, 37, "RGB"),
        (45, 700, "L"),
        (257, 255, "RGBA"),
        (150, 100, "P"),
        (17, 23, "RGB"),
    ):
        ramp = np.linspace(0, 255, width * height * 3).reshape(height, width, 3)
        noise = rng.integers(0, 64, (height, width, 3))
        picture = Image.fromarray(np.clip(ramp + noise, 0, 255).astype(np.uint8))
        out.append(picture.convert(mode) if mode != "RGB" else picture)
    return out


def _center_crop(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """torchvision's center_crop on a PIL image (padding with black when the crop is larger)."""
    crop_h, crop_w = size
    width, height = image.size
    if crop_w > width or crop_h > height:
        left, top = max(crop_w - width, 0) // 2, max(crop_h - height, 0) // 2
        padded = Image.new(image.mode, (max(width, crop_w), max(height, crop_h)))
        padded.paste(image, (left, top))
        image, (width, height) = padded, padded.size
        if (crop_w, crop_h) == (width, height):
            return image
    top = int(round((height - crop_h) / 2.0))
    left = int(round((width - crop_w) / 2.0))
    return image.crop((left, top, left + crop_w, top + crop_h))


def _is_function(step: Any) -> bool:
    return type(step).__name__ == "function"


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
