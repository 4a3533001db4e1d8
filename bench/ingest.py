"""Ingest benchmarks (issue 2): throughput, unchanged re-scan, memory. Prints ratios.

    .venv/bin/python bench/ingest.py                       # all parts, default sizes
    .venv/bin/python bench/ingest.py --parts throughput --photos 200 --large 60
    .venv/bin/python bench/ingest.py --parts throughput --device cuda     # on a GPU machine
    .venv/bin/python bench/ingest.py --parts throughput --precision int8  # int8 on the CPU

throughput: end-to-end `Index.add` (ViT-B-32, random weights, via a local checkpoint) against
  (a) the model alone on the same images already decoded to tensors and (b) a naive loop that
  opens, preprocesses and encodes one image at a time.  Targets: >= 0.9 and >= 1.8 on the CPU;
  >= 0.85 of model-only and >= 2,000 images/s (ViT-B-32 fp16) on one H200-class GPU.
  --device and --precision choose where and how the model runs (both measurements alike).
rescan: `add` on N unchanged files against a bare os.scandir walk with stat.  Target: < 3x.
memory: peak RSS of `add` on 10x the files against 1x, in fresh processes.  Target: <= 1.5x.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import (
    OUT,
    dump,
    large_jpegs,
    link_files,
    peak_rss_mb,
    report,
    shared_photos,
    tiny_random,
    towers_prepared,
    vit_b32_random,
)


def _chunks(items, n):
    for i in range(0, len(items), n):
        yield items[i : i + n]


def throughput(
    n_photos: int, n_large: int, batch: int, device: str = "cpu", precision: str = "fp32"
) -> dict:
    import torch
    from PIL import Image

    from idx.indexer.files.decode import open_image
    from idx.indexer.index import Index
    from idx.indexer.model.encoder import Encoder
    from idx.indexer.model.identity import ModelSpec, identify

    kw = towers_prepared(vit_b32_random())
    enc = Encoder.load(
        identify(ModelSpec(model=kw["model"], checkpoint=kw["checkpoint"])), device, precision
    )
    datasets = {
        f"{n_photos} Open Images photos": shared_photos(n_photos),
        f"{n_large} generated 2000x1500 JPEGs": large_jpegs(OUT / "large", n_large),
    }
    results = {}
    for name, paths in datasets.items():
        folder = link_files(paths, OUT / "throughput" / "images")
        tensors = [enc.preprocess(open_image(p, enc.image_size).image) for p in paths]
        enc.encode_images(torch.stack(tensors[:batch]))  # warm-up

        def model_only(tensors=tensors):
            start = time.perf_counter()
            for chunk in _chunks(tensors, batch):
                enc.encode_images(torch.stack(chunk))
            return time.perf_counter() - start

        def end_to_end(folder=folder, paths=paths):
            index_dir = OUT / "throughput" / "index"
            shutil.rmtree(index_dir, ignore_errors=True)
            with Index(index_dir, encoder=enc) as index:
                start = time.perf_counter()
                rep = index.add([folder], batch_size=batch)
                elapsed = time.perf_counter() - start
            assert rep.embedded == len(set(p.read_bytes() for p in paths)), rep.as_dict()
            return elapsed

        def naive(paths=paths):
            start = time.perf_counter()
            for p in paths:
                img = Image.open(p).convert("RGB")
                enc.encode_images(enc.preprocess(img).unsqueeze(0))
            return time.perf_counter() - start

        # Baseline measured before and after, averaged, so drift on a shared machine cancels.
        m1 = model_only()
        e2e = end_to_end()
        nv = naive()
        m2 = model_only()
        model = (m1 + m2) / 2
        n = len(paths)
        results[name] = {
            "images": n,
            "model_only_img_s": n / model,
            "end_to_end_img_s": n / e2e,
            "naive_img_s": n / nv,
            "e2e_over_model_only": model / e2e,
            "e2e_over_naive": nv / e2e,
        }
        report(
            f"throughput, {name}, batch {batch}, {enc.device.describe()} {enc.precision}, "
            f"torch threads {torch.get_num_threads()}",
            [
                ("model only (pre-decoded tensors)", f"{n / model:.1f} img/s", ""),
                ("idx add end-to-end", f"{n / e2e:.1f} img/s", ""),
                ("naive one-at-a-time loop", f"{n / nv:.1f} img/s", ""),
                ("end-to-end / model only", f"{model / e2e:.2f}", "target >= 0.9"),
                ("end-to-end / naive", f"{nv / e2e:.2f}", "target >= 1.8"),
            ],
        )
    return results


def _tiny_jpegs(folder: Path, n: int) -> None:
    from PIL import Image

    marker = folder / f".complete-{n}"
    if marker.exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    for i in range(n):
        sub = folder / f"d{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 24), (i % 256, (i // 256) % 256, (i // 65536) % 256)).save(
            sub / f"f{i:06d}.jpg", quality=95
        )
    marker.touch()


def _scandir_walk(root: str) -> int:
    count = 0
    stack = [root]
    while stack:
        for entry in os.scandir(stack.pop()):
            if entry.is_dir():
                stack.append(entry.path)
            else:
                entry.stat()
                count += 1
    return count


def rescan(n_files: int) -> dict:
    from idx.indexer.index import Index

    folder = OUT / f"rescan-{n_files}" / "images"
    index_dir = OUT / f"rescan-{n_files}" / "index"
    _tiny_jpegs(folder, n_files)
    with Index(index_dir, **towers_prepared(tiny_random())) as index:
        first = index.add([folder])
    print(f"(first add of {n_files} files: {first.seconds:.1f}s)", file=sys.stderr)
    walks, adds = [], []
    for _ in range(3):
        start = time.perf_counter()
        _scandir_walk(str(folder))
        walks.append(time.perf_counter() - start)
        start = time.perf_counter()
        with Index(index_dir) as index:
            rep = index.add([folder])
        adds.append(time.perf_counter() - start)
        assert rep.unchanged == n_files and rep.embedded == 0, rep.as_dict()
    walk, add = min(walks), min(adds)
    report(
        f"re-adding {n_files} unchanged files (best of 3, index open included)",
        [
            ("os.scandir walk + stat", f"{walk * 1000:.0f} ms", ""),
            ("idx add (nothing to do)", f"{add * 1000:.0f} ms", ""),
            ("add / walk", f"{add / walk:.2f}", "target < 3"),
        ],
    )
    return {"files": n_files, "walk_s": walk, "add_s": add, "ratio": add / walk}


def _memory_child(folder: str, index_dir: str) -> None:
    from idx.indexer.index import Index

    with Index(index_dir, **towers_prepared(tiny_random())) as index:
        index.add([folder], batch_size=64)
    print(peak_rss_mb())


def memory(n_small: int, n_large: int) -> dict:
    rss = {}
    for n in (n_small, n_large):
        folder = OUT / f"memory-{n}" / "images"
        index_dir = OUT / f"memory-{n}" / "index"
        _tiny_jpegs(folder, n)
        shutil.rmtree(index_dir, ignore_errors=True)
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(folder), str(index_dir)],
            check=True,
            capture_output=True,
            text=True,
        )
        rss[n] = float(out.stdout.strip().splitlines()[-1])
    report(
        "peak RSS of a first add, fresh process each (tiny model)",
        [
            (f"{n_small} images", f"{rss[n_small]:.0f} MB", ""),
            (f"{n_large} images", f"{rss[n_large]:.0f} MB", ""),
            ("ratio", f"{rss[n_large] / rss[n_small]:.2f}", "target <= 1.5"),
        ],
    )
    return {"rss_mb": rss, "ratio": rss[n_large] / rss[n_small]}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--memory-child":
        _memory_child(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--parts", default="throughput,rescan,memory")
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--large", type=int, default=60)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "int8"))
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    results = {}
    if "throughput" in parts:
        results["throughput"] = throughput(
            args.photos, args.large, args.batch, args.device, args.precision
        )
    if "rescan" in parts:
        results["rescan"] = rescan(args.files)
    if "memory" in parts:
        results["memory"] = memory(args.files // 10, args.files)
    dump("ingest", results)


if __name__ == "__main__":
    main()
