"""The GPU part of bench/device.sh: vectors GPU vs CPU, throughput by batch and decode workers.

Runs anywhere (it measures the CPU as the device where there is no GPU, and says so), so that the
script is tested before a GPU machine is paid for.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from common import OUT, link_files, photo_jpeg, towers_prepared, vit_b32_random


def _decode(path: str) -> int:
    from idx.indexer.files.decode import open_image

    return open_image(path, 224).width


def _photo(args: tuple[Path, int]) -> None:
    path, seed = args
    if not path.exists():
        photo_jpeg(path, seed, (800, 600))


def photos(n: int) -> list[Path]:
    """`n` distinct photo-like 800x600 JPEGs, generated in parallel on every core."""
    folder = OUT / "device-jpegs"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"large_{i:04d}.jpg" for i in range(n)]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_photo, [(p, i) for i, p in enumerate(paths)], chunksize=32))
    return paths


def _gpu_decoder(batch: int) -> Callable[[list[Path]], None]:
    """Decodes files with torchvision's GPU JPEG decoder (nvJPEG), then resizes and centre-crops
    to 224 on the GPU (the work the CPU workers do in `decode only`), `batch` files a call, file
    reads included; warmed up (nvJPEG's handles and kernels) on first use."""
    import torch
    import torchvision.io as tio
    import torchvision.transforms.v2.functional as F

    def run(paths: list[Path]) -> None:
        for i in range(0, len(paths), batch):
            data = [tio.read_file(str(p)) for p in paths[i : i + batch]]
            for img in tio.decode_jpeg(data, device="cuda"):
                F.center_crop(F.resize(img, 224, antialias=True), 224)
        torch.cuda.synchronize()

    return run


def gpu_jpeg_rate(paths: list[Path], batch: int) -> float:
    """Images/s for nvJPEG alone (_gpu_decoder)."""
    run = _gpu_decoder(batch)
    run(paths[:batch])  # warm-up
    start = time.perf_counter()
    run(paths)
    return len(paths) / (time.perf_counter() - start)


def hybrid_rate(paths: list[Path], workers: int, gpu_share: float) -> float:
    """Images/s when CPU decode processes and nvJPEG share the files (the GPU taking
    `gpu_share` of them): whether the two together beat either, the lever beyond CPU decoding."""
    run = _gpu_decoder(256)
    run(paths[:256])
    cut = int(len(paths) * gpu_share)
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_decode, map(str, paths[:workers])))  # start the processes
        start = time.perf_counter()
        on_cpu = pool.map(_decode, map(str, paths[cut:]), chunksize=16)  # submitted at once
        run(paths[:cut])
        list(on_cpu)
        return len(paths) / (time.perf_counter() - start)


def _timings(timings: dict[str, float], seconds: float) -> str:
    """AddReport.timings as a line: what the main thread did and waited for, and the rest
    (forking the decode workers, copies, planning)."""
    main = sum(timings[k] for k in ("scan", "start", "read", "embed", "store_wait"))
    return (
        f"scan {timings['scan']:.2f}s, start {timings['start']:.2f}s, waiting for decode "
        f"{timings['read']:.2f}s, model {timings['embed']:.2f}s, catalog {timings['store']:.2f}s "
        f"in the background (waited for {timings['store_wait']:.2f}s), the rest {seconds - main:.2f}s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8192)
    ap.add_argument("--batches", default="256,1024")
    ap.add_argument("--workers", default=str(os.cpu_count()), help="decode workers to compare")
    ap.add_argument("--decode", default="threads,processes", help="IDX_DECODE values to compare")
    args = ap.parse_args()

    import torch

    from idx.indexer.index import Index
    from idx.indexer.model import devices
    from idx.indexer.model.encoder import Encoder
    from idx.indexer.model.identity import ModelSpec, identify

    start = time.perf_counter()
    paths = photos(args.images)  # before CUDA starts in this process: the pool forks
    made = time.perf_counter() - start
    device = devices.resolve("auto")
    kw = towers_prepared(vit_b32_random())  # the first add's one-off export, not timed below
    ident = identify(ModelSpec(model=kw["model"], checkpoint=kw["checkpoint"]))
    gpu = Encoder.load(ident, device)
    cpu = Encoder.load(ident, "cpu").torch_model()  # torch fp32 on the CPU: the reference
    rows: list[tuple[str, str]] = [("device", f"{device.describe()}, torch {torch.__version__}")]
    if device.kind == "cpu":
        rows.append(("note", "no GPU here: the CPU stands in, figures are not GPU figures"))
    rows.append(("images", f"{len(paths)} JPEGs of 800x600 (made in {made:.0f} s)"))

    def pixels_of(path: Path) -> torch.Tensor:
        from idx.indexer.files.decode import open_image

        return cpu.preprocess(open_image(path, 224).image)

    with ThreadPoolExecutor(os.cpu_count()) as pool:  # the model alone runs on 4,096 of them
        all_pixels = torch.stack(list(pool.map(pixels_of, paths[:4096])))
    sample = all_pixels[:256]
    reference = cpu.encode_images(sample)
    cos = np.sum(reference * gpu.encode_images(sample), axis=1)
    rows.append(
        (
            f"cosine GPU vs CPU, {len(sample)} images",
            f"mean {cos.mean():.5f}, min {cos.min():.5f} (>= 0.999)",
        )
    )

    decode_only: dict[int, float] = {}
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
        decode_only[workers] = max(threads, procs)
        rows.append(
            (f"decode only, {workers} workers", f"threads {threads:.0f}/s, processes {procs:.0f}/s")
        )
    if device.kind == "cuda":
        try:
            rate = gpu_jpeg_rate(paths, 256)
            rows.append(("decode on the GPU (nvJPEG), 256/call", f"{rate:.0f}/s"))
        except Exception as exc:  # a torchvision built without nvJPEG: say so, go on
            rows.append(("decode on the GPU (nvJPEG)", f"not available: {exc}"[:120]))
        else:
            most = max(decode_only)
            share = rate / (rate + decode_only[most])  # each side's share of its speed
            name = f"decode on GPU + {most} CPU processes"
            try:  # a measurement only: its failure must not cost the table
                both = hybrid_rate(paths, most, share)
                rows.append((name, f"{both:.0f}/s ({share:.0%} of the files on the GPU)"))
            except Exception as exc:
                rows.append((name, f"failed: {exc}"[:120]))

    folder = link_files(paths, OUT / "device-add")
    for batch in map(int, args.batches.split(",")):
        gpu.encode_images(all_pixels[:batch])  # warm-up at this size
        if device.kind == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(2):
            for i in range(0, len(all_pixels), batch):
                gpu.encode_images(all_pixels[i : i + batch])
        model_only = 2 * len(all_pixels) / (time.perf_counter() - start)
        for decode in args.decode.split(","):
            os.environ["IDX_DECODE"] = decode
            for workers in map(int, args.workers.split(",")):
                index_dir = OUT / "device-index"
                shutil.rmtree(index_dir, ignore_errors=True)
                with Index(index_dir, encoder=gpu) as index:
                    start = time.perf_counter()
                    report = index.add([folder], batch_size=batch, workers=workers)
                    seconds = time.perf_counter() - start
                    e2e = len(paths) / seconds
                    ids, vectors = index.embeddings()
                    names = index.catalog.images.paths_for(ids)
                stored = {Path(names[int(i)]).name: v for i, v in zip(ids, vectors)}
                agree = min(float(stored[p.name] @ reference[k]) for k, p in enumerate(paths[:256]))
                limit = min(model_only, decode_only[workers])
                rows.append(
                    (
                        f"batch {batch}, {workers} decode {decode}",
                        f"model only {model_only:.0f}/s, add {e2e:.0f}/s, ratio {e2e / model_only:.2f}"
                        f" (of min(model, decode only): {e2e / limit:.2f}); stored vs CPU: min "
                        f"cosine {agree:.5f}",
                    )
                )
                rows.append(("  where add's time went", _timings(report.timings, seconds)))
    width = max(len(r[0]) for r in rows)
    print(f"\n## idx on {device.describe()} ({os.cpu_count()} CPU cores), ViT-B-32 fp16 autocast")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
