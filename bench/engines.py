"""Local vs Ray engine (issue 14): `idx add` throughput of each on this machine, and the overhead
Ray adds, as a ratio. Prints ratios measured in one process.

    .venv/bin/python bench/engines.py                       # 200 real photos, ViT-B-32, 2 rounds
    .venv/bin/python bench/engines.py --photos 400 --model tiny --rounds 3

Each round adds the same photos to a fresh index with the local engine, then with the Ray engine
on a Ray instance started once in this process beforehand (as on a running cluster: its start is
timed apart), alternating so that a noisy neighbour hurts both alike. The Ray run includes what
every run pays: the dataset's planning, the decode workers, the embedding actor starting and
loading the model. `--model tiny` (a 3 MB model) shows that fixed cost alone.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import time

from common import (
    OUT,
    dump,
    link_files,
    report,
    shared_photos,
    tiny_random,
    towers_prepared,
    vit_b32_random,
)


def add_once(folder, model: dict, engine: str, batch: int) -> float:
    from idx.indexer.index import Index

    target = OUT / "engines" / f"index-{engine}"
    shutil.rmtree(target, ignore_errors=True)
    start = time.perf_counter()
    with Index(target, device="cpu", **model) as index:
        report_ = index.add([folder], engine=engine, batch_size=batch)
    seconds = time.perf_counter() - start
    assert report_.embedded > 0, report_.as_dict()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--model", choices=("vit-b-32", "tiny"), default="vit-b-32")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import ray

    photos = shared_photos(args.photos)
    folder = link_files(photos, OUT / "engines" / "photos")
    model = towers_prepared(vit_b32_random() if args.model == "vit-b-32" else tiny_random())
    cores = os.cpu_count() or 1
    start = time.perf_counter()
    ray.init(num_cpus=cores + 1, include_dashboard=False, logging_level=logging.WARNING)
    ray_start = time.perf_counter() - start
    times: dict[str, list[float]] = {"local": [], "ray": []}
    try:
        add_once(folder, model, "local", args.batch_size)  # warm: model file cache, imports
        for _ in range(args.rounds):
            for engine in ("local", "ray"):
                times[engine].append(add_once(folder, model, engine, args.batch_size))
    finally:
        ray.shutdown()
    n = len(photos)
    local, ray_s = statistics.median(times["local"]), statistics.median(times["ray"])
    # Paired by round: a noisy neighbour slows both runs of a round, so the ratio of a pair is
    # steadier than the ratio of medians.
    ratios = sorted(a / b for a, b in zip(times["local"], times["ray"]))
    extra = sorted(b - a for a, b in zip(times["local"], times["ray"]))
    rows = [
        ("local engine", f"{n / local:.1f} img/s", f"median of {args.rounds} ({local:.1f} s)"),
        ("ray engine", f"{n / ray_s:.1f} img/s", f"median of {args.rounds} ({ray_s:.1f} s)"),
        (
            "ray / local throughput",
            f"{statistics.median(ratios):.2f}",
            f"median of rounds, range {ratios[0]:.2f}-{ratios[-1]:.2f}; 1.0 = no overhead",
        ),
        (
            "ray's extra time per run",
            f"{statistics.median(extra):.1f} s",
            "planning, decode workers, the actor starting and loading the model",
        ),
        ("ray.init (once per driver)", f"{ray_start:.1f} s", "not in the runs above"),
        ("load average (1 min)", f"{os.getloadavg()[0]:.1f}", "other work on this machine"),
    ]
    report(f"{n} photos, {args.model}, batch {args.batch_size}, {cores} cores", rows)
    dump(
        f"engines-{args.model}",
        {"photos": n, "model": args.model, "times": times, "ray_init_s": ray_start},
    )


if __name__ == "__main__":
    main()
