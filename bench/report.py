"""How big and how slow is `idx report` at demo size, at 10k images, and its map at 50k points?

    PYTHONPATH=src python bench/report.py [--images 10000] [--points 50000]

Builds real catalogs (DuckDB + FAISS through idx's own Catalog) of generated images in an
ImageFolder layout. Vectors are random around one centre per category instead of model outputs
(embedding 10k images would dominate the run and does not change the report); the analysis
tables are filled by idx's own commands (folder labels, PCA map, k-means, sweep, insights without
zero-shot, which needs the model). Prints sizes, times and
ratios against the demo-size report built in the same process; with Chromium present, also times
the page's map redraw and hover lookup in headless Chromium. Files go to bench/out/report/.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from idx import synthetic
from idx.analysis.report_html import thumbnail_uri
from idx.indexer.index import Index
from idx.ops.insights import measure as insights
from idx.ops.labels import imports as labels
from idx.ops.maps import clustering, projection, sweep
from idx.ops.report.write import write_report

ROOT = Path(__file__).resolve().parents[1]

OUT = ROOT / "bench" / "out" / "report"
# ../shared/data beside the checkout (a worktree may sit one level deeper).
REAL = next(
    (
        p / "shared" / "data" / "openimages-snacks-val" / "images"
        for p in ROOT.parents
        if (p / "shared" / "data" / "openimages-snacks-val" / "images").is_dir()
    ),
    None,
)
DIM = 64


def images_for(n: int) -> list[tuple[Path, str]]:
    """n generated images (160 px, the demo's size), written once and reused."""
    folder = OUT / f"images-{n}"
    per = -(-n // len(synthetic.CATEGORIES))
    if not (folder / "labels.csv").exists():
        synthetic.generate(folder, per_category=per, size=160)
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".jpg", ".png"))
    return [(p, p.parent.name) for p in files[:n]]


def build_catalog(index_dir: Path, files: list[tuple[Path, str]], rows: int | None = None) -> None:
    """Catalog rows for the files (or `rows` rows that reuse them under new names: map only)."""
    shutil.rmtree(index_dir, ignore_errors=True)
    rows = rows or len(files)
    rng = np.random.default_rng(0)
    names = sorted({c for _, c in files})
    centres = rng.normal(size=(len(names), DIM)).astype(np.float32)
    paths, shas, cats = [], [], []
    for i in range(rows):
        path, cat = files[i % len(files)]
        paths.append(str(path.resolve()) if i < len(files) else f"{path.resolve()}.copy{i}")
        shas.append(hashlib.sha256(paths[-1].encode()).hexdigest())
        cats.append(names.index(cat))
    vectors = centres[cats] + rng.normal(scale=0.9, size=(rows, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with Index(index_dir) as index:
        con = index.catalog.con
        table = pa.table(
            {
                "path": paths,
                "root": [str(files[0][0].parents[1])] * rows,
                "sha256": shas,
                "bytes": [0] * rows,
                "mtime_ns": [0] * rows,
                "width": [160] * rows,
                "height": [160] * rows,
                "format": ["JPEG"] * rows,
            }
        )
        con.register("bench_images", table)
        con.execute("INSERT INTO images BY NAME SELECT * FROM bench_images")
        con.unregister("bench_images")
        index.catalog.images.insert_embeddings(shas, vectors)
        index.catalog.bump_generation()
        analyse(index)


def analyse(index: Index) -> None:
    """Every report section but robustness (it re-embeds images: there is no model here)."""
    labels.import_folders(index)
    projection.project(index, "pca", plot=False)
    clustering.cluster(index, len(synthetic.CATEGORIES), plot=False)
    sweep.sweep(index, [4, 8, 12], plot=False)
    insights.insights(index, zero_shot=False, plots=False)


def report(index_dir: Path, out: Path, **kwargs) -> tuple[int, float, int]:
    with Index(index_dir, read_only=True) as index:
        result = write_report(index, out, **kwargs)
    return result.bytes, result.seconds, result.thumbnails


def real_thumbnail_bytes(limit: int = 200) -> float | None:
    """Mean 96-px thumbnail size on real photos (detail makes them larger than generated ones)."""
    if REAL is None:
        return None
    return mean_thumbnail_bytes(sorted(REAL.glob("*.jpg")), limit)


def mean_thumbnail_bytes(files: list[Path], limit: int = 200) -> float:
    sample = np.random.default_rng(0).permutation(len(files))[:limit]
    return float(np.mean([len(thumbnail_uri(Image.open(files[i]).convert("RGB"))) for i in sample]))


def browser_timings(html: Path) -> dict[str, float] | None:
    """Page load, map redraw and hover lookup in headless Chromium (None without it)."""
    if not Path("/usr/bin/chromium").exists():
        return None
    from playwright.sync_api import sync_playwright

    flags = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        start = time.perf_counter()
        page.goto(html.as_uri())
        page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
        load = time.perf_counter() - start
        draws = [page.evaluate("window.idxReport.drawMs()") for _ in range(5)]
        box = page.locator("#scatter").bounding_box()
        page.mouse.move(box["x"] + 10, box["y"] + 10)
        start = time.perf_counter()
        for i in range(50):
            page.mouse.move(box["x"] + 20 + i * 15, box["y"] + box["height"] / 2)
        hover = (time.perf_counter() - start) / 50
        drawn = page.evaluate("window.idxReport.pointCount()")
        browser.close()
    if errors:
        raise SystemExit(f"page errors: {errors}")
    return {
        "load_s": load,
        "draw_ms": float(np.median(draws)),
        "hover_ms": hover * 1e3,
        "drawn": drawn,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=50_000)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)

    demo_files = images_for(160)
    build_catalog(OUT / "index-demo", demo_files)
    base_bytes, base_s, base_thumbs = report(OUT / "index-demo", OUT / "demo.html")
    print(
        f"demo size  {160:>6} images: {base_bytes / 1e6:6.2f} MB, {base_s:5.2f} s, {base_thumbs} thumbnails (baseline)"
    )

    files = images_for(args.images)
    build_catalog(OUT / "index-big", files)
    for cap in (2000, 0, args.images):
        size, secs, thumbs = report(OUT / "index-big", OUT / f"big-{cap}.html", max_thumbnails=cap)
        print(
            f"{args.images:>6} images, --max-thumbnails {cap:>5}: {size / 1e6:6.2f} MB "
            f"(x{size / base_bytes:.1f}), {secs:5.2f} s (x{secs / base_s:.1f}), {thumbs} thumbnails"
        )
    real = real_thumbnail_bytes()
    generated = mean_thumbnail_bytes([p for p, _ in files])
    print(f"embedded thumbnail: generated images {generated / 1e3:.1f} kB", end="")
    print(f", real photos {real / 1e3:.1f} kB (x{real / generated:.1f})" if real else "")

    build_catalog(OUT / "index-map", files, rows=args.points)
    size, secs, _ = report(OUT / "index-map", OUT / "map.html", max_thumbnails=2000)
    print(
        f"{args.points:>6} map points, --max-thumbnails 2000: {size / 1e6:6.2f} MB, {secs:5.2f} s"
    )
    timings = browser_timings(OUT / "map.html")
    if timings:
        print(
            f"chromium, {timings['drawn']} points: page ready {timings['load_s']:.2f} s, "
            f"redraw {timings['draw_ms']:.1f} ms, hover {timings['hover_ms']:.1f} ms per mouse move (incl. the Playwright round trip)"
        )


if __name__ == "__main__":
    main()
