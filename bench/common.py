"""Helpers shared by the benchmarks: a random-weight ViT-B-32 checkpoint, generated data, timing.

Benchmarks print ratios against a baseline measured in the same process, because the machines
here are shared and noisy; absolute figures are printed for context only.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

OUT = Path(os.environ.get("IDX_BENCH_OUT", ROOT / "bench" / "out"))
SHARED = ROOT.parent / "shared" / "data" / "openimages-snacks-val" / "images"


def towers_prepared(kw: dict[str, str]) -> dict[str, str]:
    """The model's ONNX towers (image and text) prepared in the cache, as the first `add` of a
    model on a machine does once (seconds for ViT-B-32): no timed run then pays that export."""
    from idx.indexer.model.encoder import Encoder
    from idx.indexer.model.identity import ModelSpec, identify

    ident = identify(ModelSpec(kw["model"], checkpoint=kw["checkpoint"]))
    Encoder.load(ident, "cpu").torch_model().prepare_towers()
    return kw


def vit_b32_random() -> dict[str, str]:
    """Index kwargs for ViT-B-32 with random weights, through the offline config+checkpoint path."""
    import open_clip

    from idx.indexer.model import weights

    cfg_src = Path(open_clip.__file__).parent / "model_configs" / "ViT-B-32.json"
    cfg = OUT / "models" / "ViT-B-32.json"
    ckpt = OUT / "models" / "ViT-B-32-random.safetensors"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    if not cfg.exists():
        shutil.copy(cfg_src, cfg)
    if not ckpt.exists():
        weights.save_random_checkpoint(cfg, ckpt)
    return {"model": str(cfg), "checkpoint": str(ckpt)}


def tiny_random() -> dict[str, str]:
    from idx.indexer.model import identity, weights

    ckpt = OUT / "models" / "idx-tiny-random.safetensors"
    if not ckpt.exists():
        weights.save_random_checkpoint(identity.tiny_config_path(), ckpt)
    return {"model": str(identity.tiny_config_path()), "checkpoint": str(ckpt)}


def shared_photos(limit: int) -> list[Path]:
    if not SHARED.is_dir():
        sys.exit(f"bench needs {SHARED} (the shared Open Images photos)")
    return sorted(SHARED.glob("*.jpg"))[:limit]


def large_jpegs(folder: Path, n: int, size: tuple[int, int] = (2000, 1500)) -> list[Path]:
    """Photo-like large JPEGs (smooth gradients + noise + shapes), generated once."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"large_{i:04d}.jpg" for i in range(n)]
    for i, path in enumerate(paths):
        if not path.exists():
            photo_jpeg(path, i, size)
    return paths


def photo_jpeg(path: Path, seed: int, size: tuple[int, int]) -> None:
    """One photo-like JPEG at `path`, the same bytes for the same seed and size."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    w, h = size
    small = rng.integers(0, 255, size=(h // 50, w // 50, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize(size, Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(8):
        x, y = rng.integers(0, w), rng.integers(0, h)
        r = int(rng.integers(50, 300))
        draw.ellipse(
            [x - r, y - r, x + r, y + r], fill=tuple(int(c) for c in rng.integers(0, 255, 3))
        )
    img = img.filter(ImageFilter.GaussianBlur(1))
    arr = np.asarray(img).astype(np.int16) + rng.integers(-12, 12, size=(h, w, 3))
    Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(path, quality=90)


def link_files(paths: list[Path], folder: Path) -> Path:
    """A folder holding copies of `paths` (hard links when possible)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for p in paths:
        try:
            os.link(p, folder / p.name)
        except OSError:
            shutil.copy(p, folder / p.name)
    return folder


@contextmanager
def timer(results: dict, key: str):
    start = time.perf_counter()
    yield
    results[key] = time.perf_counter() - start


def peak_rss_mb() -> float:
    """Peak resident memory of this process. VmHWM, not ru_maxrss: a child started by fork+exec
    inherits its parent's ru_maxrss (a bench parent holding ViT-B-32 would hide the child's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(title: str, rows: list[tuple[str, str, str]]) -> None:
    print(f"\n## {title}")
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"{name.ljust(width)}  {value:>12}  {target}")


def dump(name: str, data: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(data, indent=2))
