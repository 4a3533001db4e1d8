"""A live index: what a reader costs a running `idx add`, and how long a reader waits.

Runs `idx add` (a subprocess, ViT-B-32 with random weights, on the shared Open Images photos)
into fresh indexes, alone and with a reader in this process polling every second, alternating
for --rounds pairs: `status`, then a search by an indexed image's id (the catalog and FAISS: what
reading beside a writer costs) or by text (also encodes the text, with the text tower loaded
once as `idx serve` does, on the cores the writer embeds on). Prints the throughput ratio per
round (with reader / alone: the target is >= 0.95) and the reader's latencies, median and worst,
while the writer runs.

    python bench/live.py [--images 240] [--batch-size 32] [--rounds 3] [--query id,text]
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

from common import ROOT, shared_photos, towers_prepared, vit_b32_random


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
        if reader is not None:
            reader.close()
    return report["images_per_s"], latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="alone/beside pairs per query")
    parser.add_argument(
        "--query",
        default="id,text",
        help="the reader's search, one run each: id (an indexed image: the catalog and FAISS "
        "alone) and/or text (also encodes the text with ViT-B-32 on the cores the writer uses)",
    )
    args = parser.parse_args()

    from idx.errors import EmptyIndexError
    from idx.indexer.index import Index
    from idx.indexer.model.encoder import Encoder
    from idx.indexer.model.identity import ModelSpec, identify
    from idx.ops.search import search

    model = towers_prepared(vit_b32_random())
    encoder = Encoder.load(identify(ModelSpec(model["model"], checkpoint=model["checkpoint"])))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for photo in shared_photos(args.images):
            shutil.copy(photo, folder / photo.name)

        def reader(query: str):
            # One long-lived reader, as `idx serve` or a notebook holds one: the index stays
            # open, each poll catches up with the writer and lets go of the catalog after.
            held: dict[str, Index] = {}

            def poll(index_dir: Path, latencies: dict) -> None:
                try:
                    if "index" not in held:
                        held["index"] = Index(index_dir, read_only=True, encoder=encoder)
                    index = held["index"]
                    start = time.perf_counter()
                    index.refresh()
                    index.status()
                    latencies["status"].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    if query == "text":
                        search(index, text="a photo of a cake", k=10)
                    else:
                        search(index, id=1, k=10)
                    latencies["search"].append(time.perf_counter() - start)
                    index.release()
                except EmptyIndexError:  # before the first batch is committed
                    if "index" in held:
                        held.pop("index").close()

            poll.close = lambda: held and held.pop("index").close()  # type: ignore[attr-defined]
            return poll

        print(
            f"images: {args.images} Open Images photos, ViT-B-32 random weights, batch "
            f"{args.batch_size}"
        )
        for query in args.query.split(","):
            ratios, latencies = [], {"status": [], "search": []}
            for _ in range(args.rounds):  # alone and beside alternate: drift cancels
                alone, _ = _run(folder, model, args.batch_size, None)
                beside, polled = _run(folder, model, args.batch_size, reader(query))
                ratios.append(beside / alone)
                for name, values in polled.items():
                    latencies[name] += values
                print(
                    f"  [{query}] add alone {alone:.2f} images/s, with the reader "
                    f"{beside:.2f}: {beside / alone:.3f}"
                )
            ratios.sort()
            print(f"reader: status, then a search by {query}, every second")
            print(
                f"  ratio with reader / alone, per round: {', '.join(f'{r:.3f}' for r in ratios)}"
                f"; median {ratios[len(ratios) // 2]:.3f} (target >= 0.95)"
            )
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
