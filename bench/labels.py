"""Benchmark: importing a multi-million-row Open Images label file for a small index.

Writes a label file shaped like Open Images' image-level labels (16-hex ImageIDs, several labels
per image, Confidence 0 and 1, CRLF lines) with ROWS rows over many images, of which only
INDEXED are in the index (as when a user indexes a subset of the train split), then times:

- idx's importer (DuckDB's CSV reader joined against the indexed ids, one streaming pass),
- a plain DuckDB count(*) over the same file (the floor: just reading it),
- the naive baseline: Python's csv module reading every row, keeping the indexed ones and
  counting the others (the same numbers the importer reports),

and prints rows/s and the ratios. Run: PYTHONPATH=src python bench/labels.py [--rows N]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
from PIL import Image

from idx.indexer.index import Index
from idx.indexer.model import identity, weights
from idx.ops.labels import imports as labels_api


def write_label_file(path: Path, rows: int, images: int, indexed_ids: list[str]) -> None:
    """ROWS label rows over IMAGES image ids; the first ids are the indexed ones."""
    con = duckdb.connect()
    con.execute("CREATE TABLE ids AS SELECT unnest(?::VARCHAR[]) AS id", [indexed_ids])
    con.execute(
        f"""
        COPY (
          SELECT coalesce(ids.id, lpad(printf('%x', hash(i % {images}) % 1000000000000000), 16, '0'))
                   AS ImageID,
                 CASE WHEN i % 3 = 0 THEN 'verification' ELSE 'crowdsource-verified' END AS Source,
                 '/m/0' || (i * 7919 % 600)::VARCHAR AS LabelName,
                 CASE WHEN i % 4 = 0 THEN 0 ELSE 1 END AS Confidence
          FROM range({rows}) t(i)
          LEFT JOIN (SELECT id, row_number() OVER () - 1 AS n FROM ids) ids ON i % {images} = ids.n
          ORDER BY i
        ) TO '{path}' (HEADER, DELIMITER ',', NEW_LINE '\\r\\n')
        """
    )


def python_csv_baseline(path: Path, wanted: set[str]) -> tuple[int, int, int]:
    """The same report in a plain Python loop: labels kept, rows and ids of other images."""
    kept, unknown_ids, unknown_rows = set(), set(), 0
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for image_id, source, label, confidence in reader:
            if image_id in wanted:
                kept.add((image_id, label, source, float(confidence)))
            else:
                unknown_rows += 1
                unknown_ids.add(image_id)
    return len(kept), unknown_rows, len(unknown_ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--images", type=int, default=1_000_000, help="distinct image ids")
    parser.add_argument("--indexed", type=int, default=300, help="images in the index")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="idx-bench-labels-"))
    rng = np.random.default_rng(0)
    photos = work / "photos"
    photos.mkdir()
    ids = [f"{rng.integers(0, 2**63):016x}" for _ in range(args.indexed)]
    for image_id in ids:
        pixels = rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / f"{image_id}.jpg")
    ckpt = weights.save_random_checkpoint(identity.tiny_config_path(), work / "tiny.safetensors")
    model = {"model": str(identity.tiny_config_path()), "checkpoint": str(ckpt)}
    label_file = work / "train-annotations-human-imagelabels.csv"
    t = time.perf_counter()
    write_label_file(label_file, args.rows, args.images, ids)
    size_mb = label_file.stat().st_size / 1e6
    print(
        f"label file: {args.rows:,} rows, {size_mb:.0f} MB ({time.perf_counter() - t:.1f}s to write)"
    )

    with Index(work / "index", **model) as index:
        index.add([photos])
        t = time.perf_counter()
        report = labels_api.import_labels(index, label_file)
        idx_s = time.perf_counter() - t
        t = time.perf_counter()
        again = labels_api.import_labels(index, label_file)
        again_s = time.perf_counter() - t
    assert again.new == 0 and again.imported == report.imported

    t = time.perf_counter()
    duckdb.connect().execute(f"SELECT count(*) FROM read_csv('{label_file}')").fetchall()
    scan_s = time.perf_counter() - t
    t = time.perf_counter()
    counts = python_csv_baseline(label_file, set(ids))
    python_s = time.perf_counter() - t
    assert counts == (report.imported, report.unknown_image_rows, report.unknown_images), counts

    print(
        f"imported {report.imported:,} labels for {args.indexed} indexed images; skipped "
        f"{report.unknown_image_rows:,} rows for {report.unknown_images:,} other images"
    )
    for name, seconds in [
        ("idx labels import", idx_s),
        ("idx labels import (re-import)", again_s),
        ("duckdb count(*) scan (floor)", scan_s),
        ("python csv loop (baseline)", python_s),
    ]:
        print(f"{name:32s} {seconds:7.2f}s  {args.rows / seconds / 1e6:6.2f} M rows/s")
    print(
        f"speed-up vs python csv loop: {python_s / idx_s:.1f}x; vs bare scan: {idx_s / scan_s:.2f}x"
    )


if __name__ == "__main__":
    main()
