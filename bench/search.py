"""Benchmark of nearest-neighbour search (issue 3). Prints figures and ratios from one process.

0. Exact (flat) single-query latency at 10k..100k vectors: the `auto` threshold.
1. Query overhead: `idx.ops.search.search(index, vector=q)` (index already open: FAISS search +
   catalog lookup of paths/labels) vs raw FAISS `index.search` on the same index, n random unit
   vectors in a real DuckDB catalog (default 100k). Target: median ratio <= 1.5.
2. Scale: the `auto` index at --big vectors (default 1M, 512-d, synthetic clustered data):
   build time, memory, median single-query latency (target < 5 ms), recall@10 vs exact search
   on held-out queries (target >= 0.95).
3. `neighbors --all` (build_neighbor_graph) on the catalog of part 1: time and peak memory
   (exact brute force up to 100k vectors, the FAISS index above).

    PYTHONPATH=src python bench/search.py               # the full run (1M build takes minutes)
    PYTHONPATH=src python bench/search.py --n 20000 --big 100000 --parts 1,2,3   # quick
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from idx import knn
from idx.indexer.index import Index
from idx.indexer.vectors import store as vectors
from idx.ops import graph
from idx.ops import search as api

DIM = 512


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def random_unit(n: int, seed: int) -> np.ndarray:
    return unit(np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32))


def clustered_unit(n: int, seed: int, clusters: int = 2000, latent: int = 64) -> np.ndarray:
    """CLIP-like synthetic embeddings: unit topic centres; each point strays from its centre
    mostly within a shared 64-d subspace (image embeddings have a low intrinsic dimension) plus
    a little isotropic noise. Cosine to its centre ~0.83, to a random point ~0. Not uniform
    random vectors: those have no neighbour structure for any index to exploit."""
    out = np.empty((n, DIM), np.float32)
    at = 0
    for chunk in clustered_chunks(n, seed, clusters, latent):
        out[at : at + len(chunk)] = chunk
        at += len(chunk)
    return out


def clustered_chunks(n: int, seed: int, clusters: int = 2000, latent: int = 64):
    """`clustered_unit` 100,000 rows at a time (for collections larger than RAM)."""
    rng = np.random.default_rng(seed)
    centers = random_unit(clusters, seed + 1)
    basis = np.linalg.qr(rng.standard_normal((DIM, latent)).astype(np.float32))[0].T
    for at in range(0, n, 100_000):
        m = min(100_000, n - at)
        which = rng.integers(0, clusters, m)
        spread = rng.standard_normal((m, latent), dtype=np.float32) @ basis * (0.6 / latent**0.5)
        noise = rng.standard_normal((m, DIM), dtype=np.float32) * (0.3 / DIM**0.5)
        yield unit(centers[which] + spread + noise)


def peak_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux)


def rss_mb(field: str = "VmHWM") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fill_catalog(index_dir: Path, matrix: np.ndarray) -> None:
    """Insert vectors and images rows straight into a real catalog (no model run)."""
    n = len(matrix)
    shas = [f"{i:064x}" for i in range(n)]
    with Index(index_dir) as index:
        cat = index.catalog
        with cat.transaction():
            for at in range(0, n, 50_000):
                cat.images.insert_embeddings(shas[at : at + 50_000], matrix[at : at + 50_000])
            cat.insert_rows(
                "images",
                {
                    "path": [f"/bench/img{i:07d}.jpg" for i in range(n)],
                    "root": ["/bench"] * n,
                    "sha256": shas,
                    "bytes": np.full(n, 1000),
                    "mtime_ns": np.zeros(n, np.int64),
                    "width": np.full(n, 256),
                    "height": np.full(n, 256),
                    "format": ["JPEG"] * n,
                },
            )
            cat.bump_generation()


def part_threshold(sizes: list[int], queries: int = 100) -> None:
    """Exact (flat) single-query latency by collection size: where `auto` stops being exact."""
    biggest = random_unit(max(sizes), seed=4)
    qs = random_unit(queries, seed=5)
    for n in sizes:
        flat = vectors.build_flat(DIM)
        flat.add_with_ids(biggest[:n], np.arange(n, dtype=np.int64))
        lat = []
        with vectors.single_thread():
            for q in qs:
                t = time.perf_counter()
                flat.search(q[None], 10)
                lat.append(time.perf_counter() - t)
        print(
            f"[0] flat, {n} vectors: median query {statistics.median(lat) * 1e3:.2f} ms", flush=True
        )


def part_overhead(index_dir: Path, kind: str, queries: np.ndarray, k: int = 10) -> None:
    with Index(index_dir) as index:
        t = time.perf_counter()
        index.rebuild_vectors(kind)
        build = time.perf_counter() - t
    with Index(index_dir, read_only=True) as index:
        raw = index.vectors.index
        store = index.vectors
        api.search(index, vector=queries[0], k=k)  # warm caches and the connection
        t_api, t_raw = [], []
        for q in queries:  # interleaved, so drift on a busy machine hits both alike
            t = time.perf_counter()
            with vectors.single_thread():  # as VectorStore does for single queries
                raw.search(q[None], k)
            t_raw.append(time.perf_counter() - t)
            t = time.perf_counter()
            api.search(index, vector=q, k=k)
            t_api.append(time.perf_counter() - t)
        raw_ms = statistics.median(t_raw) * 1e3
        api_ms = statistics.median(t_api) * 1e3
        print(
            f"[1] {store.ntotal} vectors, {store.kind} (built in {build:.1f}s): raw FAISS "
            f"{raw_ms:.2f} ms, idx API {api_ms:.2f} ms median per query -> ratio "
            f"{api_ms / raw_ms:.2f} (target <= 1.5); overhead {api_ms - raw_ms:.2f} ms",
            flush=True,
        )


def part_scale(n: int, queries: int = 200) -> None:
    data = clustered_unit(n + queries, seed=1)
    base, held_out = data[:n], data[n:]  # queries from the same distribution, not indexed
    ids = np.arange(1, n + 1, dtype=np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        store = vectors.VectorStore(Path(tmp))
        peak_reset()
        before = rss_mb("VmRSS")
        t = time.perf_counter()
        store.rebuild(1, ids, base, requested="auto")
        build = time.perf_counter() - t
        peak = rss_mb() - before
        size_mb = store.file.stat().st_size / 2**20
        lat = []
        for q in held_out:
            t = time.perf_counter()
            store.search(q[None], 10)
            lat.append(time.perf_counter() - t)
        _, approx = store.search(held_out, 10)
        t = time.perf_counter()
        _, exact = knn.exact_neighbors(base, held_out, 10, ids=ids)
        exact_s = (time.perf_counter() - t) / queries
        recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
        print(
            f"[2] {n} clustered 512-d vectors, auto -> {store.kind} {store.meta.get('params')}: "
            f"build {build:.1f}s (tuning included), index file {size_mb:.0f} MiB, peak RSS growth "
            f"{peak:.0f} MiB; median query {statistics.median(lat) * 1e3:.2f} ms "
            f"(target < 5; exact brute force {exact_s * 1e3:.1f} ms/query batched); recall@10 "
            f"on {queries} held-out queries {recall:.3f} (build-time sample "
            f"{store.meta.get('recall_at_10')}, target >= 0.95)",
            flush=True,
        )


def part_graph(index_dir: Path, k: int = 10) -> None:
    with Index(index_dir) as index:
        peak_reset()
        before = rss_mb("VmRSS")
        t = time.perf_counter()
        report = graph.build_neighbor_graph(index, k=k)
        seconds = time.perf_counter() - t
        print(
            f"[3] neighbors --all -k {k} over {report.images} vectors ({report.index_type}, recall@10 "
            f"{report.recall_at_10}): {seconds:.1f}s, {report.rows} rows, peak RSS growth "
            f"{rss_mb() - before:.0f} MiB (vectors alone: {report.images * DIM * 4 / 2**20:.0f} MiB)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="vectors for parts 1 and 3")
    parser.add_argument("--big", type=int, default=1_000_000, help="vectors for part 2")
    parser.add_argument("--parts", default="0,1,2,3")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads", flush=True)
    if "0" in parts:
        part_threshold([10_000, 20_000, 50_000, 100_000])
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        if parts & {"1", "3"}:
            t = time.perf_counter()
            fill_catalog(index_dir, random_unit(args.n, seed=0))
            print(f"catalog of {args.n} random unit vectors in {time.perf_counter() - t:.1f}s")
        if "1" in parts:
            queries = random_unit(200, seed=9)
            for kind in ("flat", "auto"):
                part_overhead(index_dir, kind, queries)
        if "3" in parts:
            part_graph(index_dir)
    if "2" in parts:
        part_scale(args.big)


if __name__ == "__main__":
    main()
