"""`idx openimages fetch` throughput (issue 23): images/s and MB/s fetched from an Open Images
mirror on loopback (tests/openimages_mirror.py: a real HTTP server) that waits `--delay-ms`
before each answer, as a distant server's latency would, with 1, 8 and 32 download workers;
ratios against the 1-worker run of the same process.

    .venv/bin/python bench/openimages.py                       # 300 images, 50 ms, 1/8/32 workers
    .venv/bin/python bench/openimages.py --images 600 --delay-ms 100 --workers 1,4,16,64

The images are the real snacks photos of ../shared/data (about 18 kB each) when there, else
generated 256 px JPEGs. Each run fetches into a new folder, so every image is downloaded.

A second part (`--label-rows N`, 0 to skip) times the two streaming passes over an Open
Images-shaped label file of N rows (bench/labels.py writes it): the selection (positives of 5
classes) and the label file of 1,000 fetched images, against a plain Python `csv` loop that
does the same selection; the best of 3 runs each.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import ROOT, SHARED

sys.path.insert(0, str(ROOT))  # tests/openimages_mirror.py, the mirror the tests use

from idx.ops.openimages import label_files  # noqa: E402
from idx.ops.openimages.classes import ClassChoice  # noqa: E402
from idx.ops.openimages.fetch import fetch  # noqa: E402
from tests.openimages_mirror import Mirror, shared_mirror, tiny_mirror  # noqa: E402

HIERARCHY = SHARED.parents[1] / "openimages-hierarchy" / "bbox_labels_600_hierarchy.json"


def mirror_files(images: int) -> tuple[dict[str, bytes], str, str]:
    """(files, class to ask for, what they are)."""
    if SHARED.is_dir() and HIERARCHY.is_file():
        return shared_mirror(SHARED.parent, HIERARCHY), "/m/0bl9f", "the real snacks photos"
    per_class = images // 3 + 1
    return tiny_mirror(per_class=per_class, size=256), "Food", "generated 256 px JPEGs"


def fetch_rates(images: int, delay_ms: float, counts: list[int]) -> None:
    files, root_class, what = mirror_files(images)
    print(
        f"{images} images ({what}) from a loopback mirror answering after {delay_ms:g} ms; "
        f"{os.cpu_count()} cores"
    )
    rows = []
    with Mirror(files, delay_s=delay_ms / 1000) as mirror, tempfile.TemporaryDirectory() as tmp:
        os.environ["IDX_OPENIMAGES_ANNOTATIONS"] = mirror.url
        os.environ["IDX_OPENIMAGES_IMAGES"] = mirror.url
        for workers in counts:
            report = fetch(
                Path(tmp) / f"w{workers}", "validation", [root_class], limit=images, workers=workers
            )
            assert report.fetched == images and not report.failed, report.as_dict()
            rows.append((workers, report.seconds, report.images_per_s, report.mb_per_s))
    base = rows[0]
    print(f"{'workers':>7}  {'seconds':>7}  {'images/s':>8}  {'MB/s':>6}  vs {base[0]} worker(s)")
    for workers, seconds, rate, mb in rows:
        print(f"{workers:>7}  {seconds:>7.2f}  {rate:>8.1f}  {mb:>6.2f}  {rate / base[2]:.2f}x")


def python_positives(path: Path, labels: set[str]) -> set[str]:
    found = set()
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for image_id, _source, label, confidence in reader:
            if label in labels and float(confidence) == 1.0:
                found.add(image_id)
    return found


def best_of(runs: int, work: Callable[[], Any]) -> tuple[float, Any]:
    """The shortest of `runs` timings (the machine is shared) and the work's result."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return min(times), result


def streaming_passes(rows: int) -> None:
    from labels import write_label_file  # bench/labels.py: the same generated file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train-annotations-human-imagelabels-boxable.csv"
        write_label_file(path, rows, rows // 5, [])
        size = path.stat().st_size
        wanted = [f"/m/0{i}" for i in (1, 2, 3, 4, 5)]
        choice = ClassChoice("bench", wanted[0], "bench", tuple(wanted))
        select, (found,) = best_of(3, lambda: label_files.positives(path, [choice]))
        loop, baseline = best_of(3, lambda: python_positives(path, set(wanted)))
        assert found == baseline, (len(found), len(baseline))
        some = set(sorted(found)[:1000])
        write, counts = best_of(3, lambda: label_files.write_rows(path, some, Path(tmp) / "o.csv"))
    print(f"\nlabel file: {rows:,} rows, {size / 1e6:.0f} MB; {len(found):,} images selected")
    print(f"selection pass      {select:6.2f} s  {rows / select / 1e6:5.2f} M rows/s")
    print(f"label file pass     {write:6.2f} s  {rows / write / 1e6:5.2f} M rows/s ({counts})")
    print(f"python csv loop     {loop:6.2f} s  {rows / loop / 1e6:5.2f} M rows/s")
    print(f"python loop / selection pass: {loop / select:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--workers", default="1,8,32")
    parser.add_argument("--label-rows", type=int, default=5_000_000)
    args = parser.parse_args()
    fetch_rates(args.images, args.delay_ms, [int(w) for w in args.workers.split(",")])
    if args.label_rows:
        streaming_passes(args.label_rows)


if __name__ == "__main__":
    main()
