"""The GPU part of bench/device.sh: vectors GPU vs CPU, throughput by batch and decode workers.

Runs anywhere (it measures the CPU as the device where there is no GPU, and says so), so that the
script is tested before a GPU machine is paid for.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
from common import OUT, large_jpegs, link_files, towers_prepared, vit_b32_random


def _decode(path: str) -> int:
    from idx.indexer.decode import open_image

    return open_image(path, 224).width


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--batches", default="128,256,512")
    ap.add_argument("--workers", default="8,16")
    args = ap.parse_args()

    import torch

    from idx.indexer import devices
    from idx.indexer.decode import open_image
    from idx.indexer.encoder import Encoder
    from idx.indexer.identity import ModelSpec, identify
    from idx.indexer.index import Index

    device = devices.resolve("auto")
    kw = towers_prepared(vit_b32_random())
    ident = identify(ModelSpec(model=kw["model"], checkpoint=kw["checkpoint"]))
    gpu = Encoder.load(ident, device)
    cpu = Encoder.load(ident, "cpu")
    paths = large_jpegs(OUT / "device-jpegs", args.images, size=(800, 600))
    rows: list[tuple[str, str]] = [("device", f"{device.describe()}, {torch.__version__}")]
    if device.kind == "cpu":
        rows.append(("note", "no GPU here: the CPU stands in, figures are not GPU figures"))

    pixels = torch.stack([cpu.preprocess(open_image(p, 224).image) for p in paths[:256]])
    cos = np.sum(cpu.encode_images(pixels) * gpu.encode_images(pixels), axis=1)
    rows.append(
        ("cosine GPU vs CPU, 256 images", f"mean {cos.mean():.5f}, min {cos.min():.5f} (>= 0.999)")
    )

    all_pixels = torch.stack([gpu.preprocess(open_image(p, 224).image) for p in paths])
    for workers in map(int, args.workers.split(",")):
        with ThreadPoolExecutor(workers) as pool:
            start = time.perf_counter()
            list(pool.map(_decode, map(str, paths)))
            threads = len(paths) / (time.perf_counter() - start)
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_decode, map(str, paths[:workers])))  # start the processes
            start = time.perf_counter()
            list(pool.map(_decode, map(str, paths), chunksize=16))
            procs = len(paths) / (time.perf_counter() - start)
        rows.append(
            (f"decode only, {workers} workers", f"threads {threads:.0f}/s, processes {procs:.0f}/s")
        )
    folder = link_files(paths, OUT / "device-add")
    for batch in map(int, args.batches.split(",")):
        gpu.encode_images(all_pixels[:batch])  # warm-up at this size
        if device.kind == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(0, len(all_pixels), batch):
            gpu.encode_images(all_pixels[i : i + batch])
        model_only = len(all_pixels) / (time.perf_counter() - start)
        for workers in map(int, args.workers.split(",")):
            index_dir = OUT / "device-index"
            shutil.rmtree(index_dir, ignore_errors=True)
            with Index(index_dir, encoder=gpu) as index:
                start = time.perf_counter()
                index.add([folder], batch_size=batch, workers=workers)
                e2e = len(paths) / (time.perf_counter() - start)
            rows.append(
                (
                    f"batch {batch}, {workers} decode threads",
                    f"model only {model_only:.0f}/s, add {e2e:.0f}/s, ratio {e2e / model_only:.2f}",
                )
            )
    width = max(len(r[0]) for r in rows)
    print(f"\n## idx on {device.describe()} ({os.cpu_count()} CPU cores), ViT-B-32 fp16 autocast")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
