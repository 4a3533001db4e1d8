"""What `add` costs its own process per image beside the model: the ceiling a GPU meets.

On a GPU the model embeds ViT-B-32 at over 10,000 images/s (bench/README.md, "GPU"), so `add`
runs as fast as its own process can read results, stack batches and write the catalog. This
measures that process's CPU time per image (user + system, the decode workers' time not counted,
the model's time subtracted) for decode threads and decode processes, with the tiny model on
generated 800x600 JPEGs; 1 / that time is the most images/s one process can take, whatever the
GPU. Since commits run in a background thread, the figure that bounds `add` on a fast GPU is
the main thread's own CPU time per image (time.thread_time, the model's share taken off): the
work no other core can take. Runs anywhere.

    .venv/bin/python bench/pipeline.py --images 1024 --runs 3
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import time

import numpy as np
from common import OUT, large_jpegs, link_files, tiny_random


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()

    from idx.indexer.index import Index
    from idx.indexer.model.encoder import Encoder
    from idx.indexer.model.identity import ModelSpec, identify

    paths = large_jpegs(OUT / "pipeline-jpegs", args.images, size=(800, 600))
    folder = link_files(paths, OUT / "pipeline-add")
    kw = tiny_random()
    encoder = Encoder.load(identify(ModelSpec(kw["model"], checkpoint=kw["checkpoint"])), "cpu")
    crops = np.zeros((args.batch, encoder.image_size, encoder.image_size, 3), np.uint8)
    encoder.encode_images(crops)  # warm
    start, thread = _cpu(), time.thread_time()
    encoder.encode_images(crops)
    model_ms = (_cpu() - start) / args.batch * 1000
    model_thread_ms = (time.thread_time() - thread) / args.batch * 1000
    results: dict[str, list[tuple[float, float, float]]] = {"threads": [], "processes": []}
    for _ in range(args.runs):
        for decode in results:  # interleaved: the machine's noise falls on both
            os.environ["IDX_DECODE"] = decode
            index_dir = OUT / "pipeline-index"
            shutil.rmtree(index_dir, ignore_errors=True)
            with Index(index_dir, encoder=encoder) as index:
                cpu, wall, thread = _cpu(), time.perf_counter(), time.thread_time()
                index.add([folder], workers=args.workers, batch_size=args.batch)
                wall = time.perf_counter() - wall
                cpu = (_cpu() - cpu) / len(paths) * 1000 - model_ms
                thread = (time.thread_time() - thread) / len(paths) * 1000 - model_thread_ms
            results[decode].append((len(paths) / wall, cpu, thread))
    print(
        f"\n## add's own process per image ({len(paths)} JPEGs 800x600, tiny model, "
        f"batch {args.batch}, {args.workers} workers, {os.cpu_count()} cores; median of "
        f"{args.runs}; the model's {model_ms:.2f} ms/image subtracted)"
    )
    for decode, runs in results.items():
        rate = statistics.median(r[0] for r in runs)
        ms = statistics.median(r[1] for r in runs)
        serial = statistics.median(r[2] for r in runs)
        limit = (
            f"main thread {serial:.2f} ms/image -> at most {1000 / serial:.0f}/s on any GPU"
            if decode == "processes"
            else "(decoding included: it runs in this process's threads)"
        )
        print(f"decode {decode:9s}  add {rate:5.0f}/s here   own CPU {ms:.2f} ms/image   {limit}")


if __name__ == "__main__":
    main()
