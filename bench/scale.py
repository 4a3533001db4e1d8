"""Benchmark of the ivfpq index at scale (issue 14). Prints figures and ratios from one run.

A. Build at --n vectors (default 1M, 512-d synthetic clustered): train once on a sample, then
   fill in one piece (this process, FAISS's own threads) vs in shards (--workers processes of
   one thread each: the unit a Ray task would run) merged in order; checks the two are
   byte-identical.
B. Changes at --n: remove 1% in place (remove_ids + save) and change another 1% (remove + add +
   save) vs the full rebuild that any removal cost before (train, fill, tune:
   VectorStore.rebuild); checks no removed id is found and recall@10 after the changes.
C. Memory: RSS of a fresh search process over an index of --rss-n vectors (default 5M),
   exact vectors memory-mapped (now) vs a second float32 copy in RAM (before: what
   IndexRefineFlat kept), with the median single-query latency of each; both must return the
   same top-10. The index for C is written chunk by chunk, so its vectors are never all in RAM;
   the in-RAM process is skipped (and its size estimated) when it would not fit in free memory.
D. Per-image figures of the other stages, for docs/scale.md: read + SHA-256 + decode +
   preprocess per core on the real photos of ../shared/data; catalog bytes per image and the
   rate `images.vectors()` reads vectors back (what every rebuild reads) at --catalog-n images.

    PYTHONPATH=src python bench/scale.py --parts A,B        # 1M: ~10 min on 2 busy cores
    PYTHONPATH=src python bench/scale.py --parts C          # 5M: ~25 min, 10 GB of disk
    PYTHONPATH=src python bench/scale.py --parts C --keep bench/out   # keep it; reruns search
    PYTHONPATH=src python bench/scale.py --parts D          # ~3 min
    PYTHONPATH=src python bench/scale.py --n 200000 --rss-n 400000 --catalog-n 20000  # quick
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from common import OUT, shared_photos
from search import DIM, clustered_chunks, clustered_unit, fill_catalog

from idx import config
from idx.indexer.vectors import ivfpq, shards
from idx.indexer.vectors import store as vectors
from idx.indexer.vectors.exact_rows import ExactRows
from idx.indexer.vectors.ivfpq import ReRankedIVF

QUERIES = 300


def status_mb() -> dict[str, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def part_build(data: np.ndarray, workers: int, tmp: Path) -> None:
    n = len(data)
    ids = np.arange(1, n + 1, dtype=np.int64)
    params = ivfpq.params_for(n, DIM)
    t = time.perf_counter()
    trained = shards.train(ivfpq.new_index(DIM, params), data, params["pq_bits"])
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    whole = shards.fill(trained, ids, data)
    single_s = time.perf_counter() - t
    rows = ExactRows(tmp / "build", DIM)
    t = time.perf_counter()
    rows.write(ids, [data[at : at + 65_536] for at in range(0, n, 65_536)])
    write_s = time.perf_counter() - t
    ranges = shards.shard_ranges(n, workers)
    t = time.perf_counter()
    filled = list(shards.fill_in_processes(trained, rows.files, DIM, n, ranges, workers))
    fill_s = time.perf_counter() - t
    t = time.perf_counter()
    sharded = shards.merge(trained, filled)
    merge_s = time.perf_counter() - t
    sharded_s = fill_s + merge_s
    same = faiss.serialize_index(sharded).tobytes() == faiss.serialize_index(whole).tobytes()
    print(
        f"[A] {n} vectors, {params}: train on a sample {train_s:.1f}s; fill in one piece "
        f"{single_s:.1f}s; {len(ranges)} shards in {workers} processes {fill_s:.1f}s + merge "
        f"{merge_s:.1f}s -> ratio sharded/single {sharded_s / single_s:.2f}; identical lists: "
        f"{same}; exact rows written in {write_s:.1f}s",
        flush=True,
    )


def part_changes(data: np.ndarray, tmp: Path) -> None:
    n = len(data)
    ids = np.arange(1, n + 1, dtype=np.int64)
    store = vectors.VectorStore(tmp / "changes")
    t = time.perf_counter()
    store.rebuild(1, ids, data, requested="ivfpq")
    rebuild_s = time.perf_counter() - t
    rng = np.random.default_rng(3)
    picked = rng.choice(ids, size=2 * (n // 100), replace=False)
    gone, changed = picked[: n // 100], picked[n // 100 :]
    assert store.can_apply([], gone.tolist(), n - len(gone))
    t = time.perf_counter()
    store.remove(gone)
    store.save(2)
    remove_s = time.perf_counter() - t
    # new content from the same topics: near-copies of other images
    fresh = data[rng.choice(n, len(changed))] + rng.normal(0, 0.01, (len(changed), DIM))
    fresh = (fresh / np.linalg.norm(fresh, axis=1, keepdims=True)).astype(np.float32)
    assert store.can_apply(changed.tolist(), [], n - len(gone))
    t = time.perf_counter()
    store.remove(changed)
    store.add(changed, fresh)
    store.save(3)
    change_s = time.perf_counter() - t
    final = data.copy()
    final[changed - 1] = fresh
    keep = np.setdiff1d(ids, gone)
    sample = vectors.recall_queries(keep, final[keep - 1])
    recall = vectors.measure_recall(store.index, *sample)
    _, found = store.search(data[gone[:QUERIES] - 1], 10)
    queries = data[rng.choice(n, QUERIES)] + rng.normal(0, 0.01, (QUERIES, DIM)).astype(np.float32)
    latency = []
    for q in queries:
        t = time.perf_counter()
        store.search(q[None], 10)
        latency.append(time.perf_counter() - t)
    print(
        f"[B] {n} vectors: full rebuild (what any removal cost before) {rebuild_s:.1f}s "
        f"(recall@10 {store.meta['recall_at_10']}); remove 1% ({len(gone)}) in place "
        f"{remove_s:.2f}s -> ratio rebuild/in-place {rebuild_s / remove_s:.0f}; change 1% "
        f"in place {change_s:.2f}s -> ratio {rebuild_s / change_s:.0f}; recall@10 after "
        f"{recall:.3f}; removed ids found: {int(np.isin(found, gone).sum())}; exact rows "
        f"{store.meta['rows']} (sorted {store.meta['sorted_rows']}); median query "
        f"{statistics.median(latency) * 1e3:.2f} ms ({store.meta['params']})",
        flush=True,
    )


def write_index(folder: Path, n: int, workers: int) -> None:
    """An ivfpq index folder of n clustered vectors, ids 0..n-1, never all in RAM."""
    ids = np.arange(n, dtype=np.int64)
    rows = ExactRows(folder, DIM)
    t = time.perf_counter()
    rows.write(ids, clustered_chunks(n, seed=1))
    mapped = np.memmap(rows.files[0], np.float32, "r", shape=(n, DIM))
    params = ivfpq.params_for(n, DIM)
    trained = shards.train(ivfpq.new_index(DIM, params), mapped, params["pq_bits"])
    ranges = shards.shard_ranges(n, workers)
    ivf = shards.merge(
        trained, shards.fill_in_processes(trained, rows.files, DIM, n, ranges, workers)
    )
    index = ReRankedIVF(ivf, rows)
    settings, recall = vectors.tune(index, "ivfpq", ids, mapped)
    store = vectors.VectorStore(folder)
    store.index = index
    store.meta = {
        "type": "ivfpq",
        "requested": "ivfpq",
        "params": {**params, **settings},
        "recall_at_10": round(recall, 4),
    }
    store.save(1)
    print(
        f"[C] wrote a {n}-vector index chunk by chunk in {time.perf_counter() - t:.0f}s "
        f"({settings}, recall@10 {recall:.3f}); FAISS file "
        f"{store.file.stat().st_size / 2**20:.0f} MiB, exact rows "
        f"{rows.files[0].stat().st_size / 2**20:.0f} MiB",
        flush=True,
    )


def search_process(mode: str, folder: Path, out: Path) -> None:
    """Run in a child: load the index as `mode` does, search, report memory and latency."""
    n = json.loads((folder / config.VECTORS_META_FILE).read_text())["count"]
    mapped = np.memmap(folder / config.VECTORS_FLOATS_FILE, np.float32, "r", shape=(n, DIM))
    queries = np.array(mapped[np.random.default_rng(5).choice(n, QUERIES, replace=False)])
    del mapped
    start = status_mb()
    store = vectors.VectorStore(folder)
    store.load(1, lambda: sys.exit("the index is stale"), writable=False)
    if mode == "mapped":
        search = store.search
    else:  # before: the IVF lists plus a second copy of every vector in RAM (IndexRefineFlat)
        exact = faiss.IndexFlatIP(DIM)
        for at in range(0, n, 65_536):
            exact.add(np.asarray(store.index.rows._floats[at : at + 65_536]))
        refine = faiss.IndexRefine(store.index.ivf, exact)
        refine.k_factor = store.index.k_factor
        search = refine.search
    loaded = status_mb()
    medians = []
    with vectors.single_thread():
        for _ in ("cold", "warm"):  # the second pass finds the rows it re-ranks mapped already
            latency, found = [], []
            for q in queries:
                t = time.perf_counter()
                found.append(search(q[None], 10)[1][0])
                latency.append(time.perf_counter() - t)
            medians.append(statistics.median(latency) * 1e3)
    np.save(out, np.array(found))
    after = status_mb()
    print(
        json.dumps(
            {
                "mode": mode,
                "start": start,
                "loaded": loaded,
                "after": after,
                "median_ms": medians,
            }
        )
    )


def part_memory(n: int, workers: int, tmp: Path, keep: Path | None) -> None:
    folder = keep / f"memory-{n}" if keep else tmp / "memory"
    if not (folder / config.VECTORS_META_FILE).exists():
        write_index(folder, n, workers)
    results = {}
    need_mb = n * DIM * 4 / 2**20
    for mode in ("mapped", "in-ram"):
        if mode == "in-ram" and available_mb() < need_mb * 1.3 + 2048:
            print(
                f"[C] in-RAM re-ranking skipped: needs ~{need_mb:.0f} MiB more than the mapped "
                f"process, {available_mb():.0f} MiB available",
                flush=True,
            )
            continue
        out = tmp / f"{mode}.npy"
        child = subprocess.run(
            [sys.executable, __file__, "--search-process", mode, str(folder), str(out)],
            check=True,
            capture_output=True,
            text=True,
        )
        report = json.loads(child.stdout.strip().splitlines()[-1])
        results[mode] = np.load(out)
        grown = report["after"]["VmRSS"] - report["start"]["VmRSS"]
        print(
            f"[C] {n} vectors, search process ({mode}): RSS {report['after']['VmRSS']:.0f} MiB "
            f"(anonymous {report['after']['RssAnon']:.0f}, mapped file pages "
            f"{report['after']['RssFile']:.0f}; +{grown:.0f} MiB for the index and "
            f"{QUERIES} queries), peak {report['after']['VmHWM']:.0f} MiB; median query "
            f"{report['median_ms'][0]:.2f} ms, repeated {report['median_ms'][1]:.2f} ms",
            flush=True,
        )
    if len(results) == 2:
        same = bool((results["mapped"] == results["in-ram"]).all())
        print(f"[C] mapped and in-RAM re-ranking return the same top-10: {same}", flush=True)


def part_stages(catalog_n: int, tmp: Path) -> None:
    import open_clip
    import torch

    from idx.indexer.files.decode import decode
    from idx.indexer.index import Index

    photos = shared_photos(1000)
    transform = open_clip.image_transform(224, is_train=False)
    torch.set_num_threads(1)
    wall, cpu = time.perf_counter(), time.process_time()
    size = 0
    for path in photos:
        data = path.read_bytes()
        size += len(data)
        hashlib.sha256(data).hexdigest()
        transform(decode(data, 224).image)
    wall = (time.perf_counter() - wall) / len(photos)
    cpu = (time.process_time() - cpu) / len(photos)  # what a core spends, whatever the load
    print(
        f"[D] read + SHA-256 + decode + preprocess, one thread: {cpu * 1e3:.1f} ms CPU per "
        f"photo ({wall * 1e3:.1f} ms wall on the shared machine; {len(photos)} photos, mean "
        f"{size / len(photos) / 1024:.0f} kB) -> {1 / cpu:.0f} images/s per core",
        flush=True,
    )
    folder = tmp / "catalog"
    fill_catalog(folder, clustered_unit(catalog_n, seed=2))
    total = sum(f.stat().st_size for f in folder.glob(config.CATALOG_FILE + "*"))
    with Index(folder, read_only=True) as index:
        t = time.perf_counter()
        ids, matrix = index.catalog.images.vectors()
        read_s = time.perf_counter() - t
    print(
        f"[D] catalog of {catalog_n} images with 512-d vectors: {total / 2**20:.0f} MiB, "
        f"{total / catalog_n:.0f} bytes per image (the float32 vector alone: {DIM * 4}); "
        f"images.vectors() read {len(ids)} vectors in {read_s:.1f}s "
        f"({matrix.nbytes / 2**20 / read_s:.0f} MiB/s)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors for parts A and B")
    parser.add_argument("--rss-n", type=int, default=5_000_000, help="vectors for part C")
    parser.add_argument("--catalog-n", type=int, default=200_000, help="images for part D")
    parser.add_argument(
        "--keep", type=Path, help="keep part C's index in this folder and reuse it when run again"
    )
    parser.add_argument("--workers", type=int, default=config.index_workers())
    parser.add_argument("--parts", default="A,B,C")
    parser.add_argument("--search-process", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.search_process:
        mode, folder, out = args.search_process
        search_process(mode, Path(folder), Path(out))
        return
    parts = set(args.parts.split(","))
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scale-", dir=OUT) as t:
        tmp = Path(t)
        if parts & {"A", "B"}:
            data = clustered_unit(args.n, seed=1)
            if "A" in parts:
                part_build(data, args.workers, tmp)
            if "B" in parts:
                part_changes(data, tmp)
            del data
        if "C" in parts:
            part_memory(args.rss_n, args.workers, tmp, args.keep)
        if "D" in parts:
            part_stages(args.catalog_n, tmp)


if __name__ == "__main__":
    main()
