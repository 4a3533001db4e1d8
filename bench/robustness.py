"""Bench: `idx robustness` throughput versus plain ingest (`Index.add`), same images, same process.

Real photos (../shared/data/openimages-snacks-val), a ViT-B-32 with random weights (no download:
open_clip's own ViT-B-32 config, saved as an untrained safetensors checkpoint). Ingest decodes
and embeds each image once; robustness decodes each image once and embeds it once per
(perturbation, severity). The target: robustness images/s (perturbed images decoded, perturbed
and embedded per second) no lower than ingest images/s.

    python bench/robustness.py                                # 50 images x all x severities 1,5
    python bench/robustness.py --images 500 --severity 1:5    # the full specification
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import open_clip
import torch

from idx.analysis import perturbations
from idx.indexer.files.decode import open_image
from idx.indexer.index import Index
from idx.indexer.model.weights import save_random_checkpoint
from idx.ops.robustness.inputs import parse_severities, resolve_perturbations
from idx.ops.robustness.measure import measure

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "openimages-snacks-val" / "images"


def _ingest_rate(index_dir: Path, folder: Path, batch_size: int, model: dict) -> float:
    """Plain `add` of the folder into a new index: embedded images per second (model preloaded)."""
    with Index(index_dir, **model) as index:
        _ = index.encoder
        t = time.perf_counter()
        added = index.add([folder], batch_size=batch_size)
        return added.embedded / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--perturb", default="all")
    ap.add_argument("--severity", default="1,5")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()
    names = resolve_perturbations(args.perturb.split(","))
    levels = parse_severities(args.severity)
    files = sorted(args.data.glob("*.jpg"))[: args.images]
    if not files:
        raise SystemExit(f"no images under {args.data}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "photos"
        folder.mkdir()
        for f in files:
            (folder / f.name).symlink_to(f)
        config = Path(open_clip.__file__).parent / "model_configs" / "ViT-B-32.json"
        checkpoint = save_random_checkpoint(config, tmp / "ViT-B-32-random.safetensors")
        model = {"model": str(config), "checkpoint": str(checkpoint)}
        ingest_before = _ingest_rate(tmp / "index", folder, args.batch_size, model)
        with Index(tmp / "index", **model) as index:
            _ = index.encoder  # load the model outside the timing
            t = time.perf_counter()
            report = measure(
                index, names, levels, sample=len(files), batch_size=args.batch_size, plots=False
            )
            total_s = time.perf_counter() - t
            decoded = [
                index.encoder.resize_for_model(open_image(f, index.encoder.image_size).image)
                for f in files[:20]
            ]
        # the machine is shared: a second baseline after the run shows how much the load drifted
        ingest_after = _ingest_rate(tmp / "index-after", folder, args.batch_size, model)
        per_perturbation = {}
        for name in names:
            t = time.perf_counter()
            for i, image in enumerate(decoded):
                perturbations.apply(name, image, 3, key=i)
            per_perturbation[name] = round((time.perf_counter() - t) / len(decoded) * 1000, 2)
    ingest_rate = (ingest_before + ingest_after) / 2
    out = {
        "machine": f"{os.cpu_count()} cores, torch {torch.__version__} CPU threads "
        f"{torch.get_num_threads()}",
        "model": report.model,
        "images": len(files),
        "perturbations": len(names),
        "severities": levels,
        "perturbed_images": report.encoded,
        "ingest_images_per_s_before": round(ingest_before, 2),
        "ingest_images_per_s_after": round(ingest_after, 2),
        "ingest_images_per_s": round(ingest_rate, 2),
        "robustness_images_per_s": round(report.images_per_s, 2),
        "ratio_robustness_vs_ingest": round(report.images_per_s / ingest_rate, 3),
        "robustness_seconds_total_with_scoring": round(total_s, 2),
        "perturb_ms_per_image_severity3": per_perturbation,
        "worst_cos_mean": min(r["cos_mean"] for r in report.results),
    }
    print(json.dumps(out, indent=2))
    print(
        f"\ningest {ingest_rate:.1f} img/s, robustness {report.images_per_s:.1f} perturbed img/s: "
        f"ratio {report.images_per_s / ingest_rate:.2f} (target >= 1.0)"
    )
    assert np.isfinite(out["worst_cos_mean"])


if __name__ == "__main__":
    main()
