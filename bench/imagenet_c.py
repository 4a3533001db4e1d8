"""Bench: idx's ImageNet-C corruptions against the reference implementation (`imagecorruptions`).

On real photos at ImageNet-C's 224 x 224 (short side resized to 224, centre crop), for each of
the 15 corruptions (and Gaussian blur) at each severity:

- strength: mean absolute pixel change (0..255) from the clean photo, idx's and the reference's,
  averaged over photos x seeds (frost x5, fog x3), and their ratio (1.000 = the same strength);
- for the deterministic corruptions, the share of pixels identical and the largest difference
  between idx's picture and the reference's;
- time per picture, idx's over the reference's (same process, same photos).

Frost is measured twice: with ImageNet-C's frost photographs (read from the installed package)
and with idx's synthetic frost (what runs without the extra). Needs the optional extra:
`pip install 'idx-clip[imagenet-c]'`.

    python bench/imagenet_c.py                      # 8 photos x 3 seeds
    python bench/imagenet_c.py --photos 20 --seeds 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
from common import OUT, shared_photos
from PIL import Image

from idx.analysis import perturbations
from idx.analysis.perturbations import reference, weather

DETERMINISTIC = (
    "defocus_blur",
    "zoom_blur",
    "brightness",
    "contrast",
    "pixelate",
    "jpeg",
    "gaussian_blur",
)


def at_224(path) -> Image.Image:
    image = Image.open(path).convert("RGB")
    w, h = image.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    return image.resize((224, 224), Image.Resampling.BICUBIC, box=box)


def change(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


#: Corruptions whose strength varies most between draws (frost: one of five photographs of mean
#: brightness 78 to 214; fog: a random fractal), measured with this many times more seeds.
MORE_DRAWS = {"frost": 5, "fog": 3}


def measure(name, photos, seeds, corrupt) -> list[dict]:
    rows = []
    seeds *= MORE_DRAWS.get(name, 1)
    for severity in perturbations.SEVERITIES:
        ours, ref, same, worst = [], [], [], 0
        t_ours = t_ref = 0.0
        for i, photo in enumerate(photos):
            for seed in range(seeds):
                t = time.perf_counter()
                a = perturbations.apply(name, photo, severity, seed=seed, key=i)
                t_ours += time.perf_counter() - t
                t = time.perf_counter()
                b = corrupt(photo, name, severity, 1000 * seed + i)
                t_ref += time.perf_counter() - t
                ours.append(change(photo, a))
                ref.append(change(photo, b))
                if name in DETERMINISTIC:
                    diff = np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16))
                    same.append(float((diff == 0).mean()))
                    worst = max(worst, int(diff.max()))
        row = {
            "corruption": name,
            "severity": severity,
            "idx": round(float(np.mean(ours)), 2),
            "reference": round(float(np.mean(ref)), 2),
            "ratio": round(float(np.mean(ours) / np.mean(ref)), 3),
            "time_ratio": round(t_ours / t_ref, 3),
            "idx_ms": round(1000 * t_ours / len(ours), 1),
        }
        if same:
            row |= {"pixels_identical": round(float(np.mean(same)), 4), "max_diff": worst}
        rows.append(row)
    return rows


def imports_as_published() -> str:
    """Whether `import imagecorruptions` works in this environment without idx's shims."""
    done = subprocess.run(
        [sys.executable, "-c", "import imagecorruptions"], capture_output=True, text=True
    )
    return "yes" if done.returncode == 0 else done.stderr.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    if not reference.available():
        print("skipped: the reference is not installed (pip install 'idx-clip[imagenet-c]')")
        return
    photos = [at_224(p) for p in shared_photos(args.photos)]
    corrupt = reference.load()
    print(
        f"imagecorruptions {reference.reference_version()}; imports as published: "
        f"{imports_as_published()}"
    )
    print(f"{len(photos)} photos x {args.seeds} seeds at 224 x 224\n")
    rows = []
    names = [*perturbations.IMAGENET_C, "gaussian_blur"]
    for name in names:
        rows += measure(name, photos, args.seeds, corrupt)
    real_photos = weather.reference_frost_photos
    weather.reference_frost_photos = lambda: None
    try:
        rows += [
            r | {"corruption": "frost (synthetic)"}
            for r in measure("frost", photos, args.seeds, corrupt)
        ]
    finally:
        weather.reference_frost_photos = real_photos
    header = f"{'corruption':20s} {'strength ratio s1..s5':32s} {'identical px':>13s} {'max diff':>8s} {'time idx/ref':>12s}"
    print(header)
    for name in dict.fromkeys(r["corruption"] for r in rows):
        mine = [r for r in rows if r["corruption"] == name]
        ratios = " ".join(f"{r['ratio']:.3f}" for r in mine)
        same = min((r.get("pixels_identical", np.nan) for r in mine), default=np.nan)
        worst = max((r.get("max_diff", -1) for r in mine), default=-1)
        t = np.mean([r["time_ratio"] for r in mine])
        print(
            f"{name:20s} {ratios:32s} {'' if np.isnan(same) else f'{same:.4f}':>13s} "
            f"{'' if worst < 0 else worst:>8} {t:12.2f}"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "imagenet_c.json").write_text(json.dumps(rows, indent=1))
    print(f"\nper severity: {OUT / 'imagenet_c.json'}")


if __name__ == "__main__":
    main()
