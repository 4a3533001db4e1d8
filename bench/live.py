"""A live index: what a reader costs a running `idx add`, and how long a reader waits.

Runs `idx add` (a subprocess, ViT-B-32 with random weights, on the shared Open Images photos)
twice into fresh indexes: alone, then with a reader in this process polling every second
(`status`, then a text search with the model already loaded, as `idx serve` would). Prints the
throughput ratio (with reader / alone: the target is >= 0.95) and the reader's latencies, median
and worst, while the writer runs.

    python bench/live.py [--images 240] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, shared_photos, text_tower_prepared, vit_b32_random


def _writer(index_dir: Path, folder: Path, model: dict, batch: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "idx", "--index", str(index_dir), "add", str(folder), "-q"]
    cmd += ["--model", model["model"], "--checkpoint", model["checkpoint"], "--json"]
    cmd += ["--batch-size", str(batch)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)


def _run(folder: Path, model: dict, batch: int, reader) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        proc = _writer(index_dir, folder, model, batch)
        latencies: dict = {"status": [], "search": []}
        while proc.poll() is None:
            time.sleep(1.0)
            if reader is not None and (index_dir / "catalog.duckdb").exists():
                reader(index_dir, latencies)
        report = json.loads(proc.stdout.read())
    return report["images_per_s"], latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--query",
        default="id,text",
        help="the reader's search, one run each: id (an indexed image: the catalog and FAISS "
        "alone) and/or text (also encodes the text with ViT-B-32 on the cores the writer uses)",
    )
    args = parser.parse_args()

    from idx.errors import EmptyIndexError
    from idx.indexer.encoder import Encoder
    from idx.indexer.identity import ModelSpec, identify
    from idx.indexer.index import Index
    from idx.ops.search import search

    model = text_tower_prepared(vit_b32_random())
    encoder = Encoder.load(identify(ModelSpec(model["model"], checkpoint=model["checkpoint"])))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for photo in shared_photos(args.images):
            shutil.copy(photo, folder / photo.name)

        def reader(query: str):
            def poll(index_dir: Path, latencies: dict) -> None:
                start = time.perf_counter()
                try:
                    with Index(index_dir, read_only=True) as index:
                        index.status()
                    latencies["status"].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    with Index(index_dir, read_only=True, encoder=encoder) as index:
                        if query == "text":
                            search(index, text="a photo of a cake", k=10)
                        else:
                            search(index, id=1, k=10)
                    latencies["search"].append(time.perf_counter() - start)
                except EmptyIndexError:
                    pass  # before the first batch is committed

            return poll

        print(
            f"images: {args.images} Open Images photos, ViT-B-32 random weights, batch "
            f"{args.batch_size}"
        )
        for query in args.query.split(","):
            alone, _ = _run(folder, model, args.batch_size, None)
            beside, latencies = _run(folder, model, args.batch_size, reader(query))
            print(f"reader: status, then a search by {query}, every second")
            print(f"  add alone: {alone:.2f} images/s; with the reader: {beside:.2f}")
            print(f"  ratio with reader / alone: {beside / alone:.3f} (target >= 0.95)")
            for name, values in latencies.items():
                values.sort()
                if values:
                    median = values[len(values) // 2]
                    print(
                        f"  reader {name} while writing: median {median * 1000:.0f} ms, worst "
                        f"{values[-1] * 1000:.0f} ms over {len(values)} polls"
                    )


if __name__ == "__main__":
    main()
