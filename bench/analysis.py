"""Benchmarks for the analysis: K-means, t-SNE, cosine silhouette, and pulling embeddings out.

Every figure is printed beside a baseline measured in the same process:
  K-means   idx KMeans (k-means++ in numpy + FAISS Lloyd) vs faiss.Kmeans run directly, and vs
            scikit-learn KMeans with the same k, iterations and data
  t-SNE     idx Projector (openTSNE, PCA init) vs scikit-learn TSNE, equal iterations
  silhouette  idx exact cosine silhouette vs scikit-learn silhouette_score (metric="cosine")
  pull      Index.embeddings() on a real catalog vs np.load of the same matrix from .npy

Run from the repository root:
  PYTHONPATH=src python bench/analysis.py                 # the default sizes (several minutes)
  PYTHONPATH=src python bench/analysis.py --quick         # small sizes, a smoke run
  PYTHONPATH=src python bench/analysis.py --tsne-n 100000 --only tsne --skip-sklearn
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa


def clustered_unit_vectors(n: int, dim: int, centres: int = 100, seed: int = 0) -> np.ndarray:
    """Unit vectors around `centres` random directions: structure like real embeddings."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centres, dim)).astype(np.float32)
    X = means[rng.integers(0, centres, n)] + 1.5 * rng.standard_normal((n, dim)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def bench_kmeans(X: np.ndarray, k: int, iters: int, sklearn: bool) -> dict:
    import faiss

    from idx.analysis.clustering import KMeans
    from idx.indexer.vectors.kmeans import faiss_engine

    n, d = X.shape
    ours_s, ours = timed(
        lambda: KMeans(k, n_iter=iters, random_state=0, engine=faiss_engine).fit(X)
    )

    def faiss_direct():
        # FAISS's defaults, like idx's: Lloyd iterations on up to 256 points per centre.
        km = faiss.Kmeans(d, k, niter=iters, seed=1)
        km.train(X)
        dist, labels = km.index.search(X, 1)  # assignments of every point, as idx returns them
        return float(dist.sum())

    faiss_s, faiss_inertia = timed(faiss_direct)
    row = {
        "n": n,
        "dim": d,
        "k": k,
        "iterations": iters,
        "idx_s": ours_s,
        "faiss_direct_s": faiss_s,
        "idx_over_faiss": ours_s / faiss_s,
        "idx_inertia": ours.inertia_,
        "faiss_inertia": faiss_inertia,
    }
    if sklearn:
        from sklearn.cluster import KMeans as SKKMeans

        sk_s, sk = timed(
            lambda: SKKMeans(n_clusters=k, n_init=1, max_iter=iters, tol=0.0, random_state=0).fit(X)
        )
        row |= {
            "sklearn_s": sk_s,
            "sklearn_over_idx": sk_s / ours_s,
            "sklearn_inertia": float(sk.inertia_),
            "sklearn_iterations_run": int(sk.n_iter_),
        }
    return row


def bench_tsne(X: np.ndarray, early: int, iters: int, sklearn: bool) -> dict:
    from idx.analysis.projection import Projector

    ours_s, _ = timed(
        lambda: Projector(
            "tsne", n_iter=iters, early_exaggeration_iter=early, random_state=0, n_jobs=-1
        ).fit(X)
    )
    row = {"n": len(X), "dim": X.shape[1], "iterations": early + iters, "idx_s": ours_s}
    if sklearn:
        from sklearn.manifold import TSNE

        # scikit-learn always runs 250 iterations of early exaggeration; max_iter counts them.
        assert early == 250, "scikit-learn's early exaggeration is fixed at 250 iterations"
        sk_s, _ = timed(
            lambda: TSNE(
                perplexity=30,
                max_iter=early + iters,
                init="pca",
                metric="cosine",
                random_state=0,
                n_jobs=-1,
            ).fit_transform(X)
        )
        row |= {"sklearn_s": sk_s, "sklearn_over_idx": sk_s / ours_s}
    return row


def bench_silhouette(X: np.ndarray, k: int, sklearn_n: int) -> dict:
    from sklearn.metrics import silhouette_score

    from idx.analysis.metrics import silhouette

    labels = np.random.default_rng(0).integers(0, k, len(X))
    full_s, full = timed(lambda: silhouette(X, labels))
    part, part_labels = X[:sklearn_n], labels[:sklearn_n]
    ours_s, _ = timed(lambda: silhouette(part, part_labels))
    sk_s, _ = timed(lambda: silhouette_score(part, part_labels, metric="cosine"))
    return {
        "n": len(X),
        "k": k,
        "idx_exact_s": full_s,
        "exact": full.exact,
        "compare_n": sklearn_n,
        "idx_at_compare_n_s": ours_s,
        "sklearn_at_compare_n_s": sk_s,
        "sklearn_over_idx": sk_s / ours_s,
    }


def bench_pull(X: np.ndarray) -> dict:
    from idx.indexer.index import Index

    n = len(X)
    with tempfile.TemporaryDirectory() as tmp:
        shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]
        with Index(Path(tmp) / "index") as index:
            with index.catalog.transaction():
                index.catalog.images.insert_embeddings(shas, X)
                rows = pa.table(
                    {
                        "path": [f"/bench/{i}.jpg" for i in range(n)],
                        "root": ["/bench"] * n,
                        "sha256": shas,
                        "bytes": np.full(n, 1000, dtype=np.int64),
                        "mtime_ns": np.zeros(n, dtype=np.int64),
                        "width": np.full(n, 256, dtype=np.int32),
                        "height": np.full(n, 256, dtype=np.int32),
                        "format": ["JPEG"] * n,
                    }
                )
                index.catalog.con.register("bench_rows", rows)
                index.catalog.con.execute(
                    "INSERT INTO images (path, root, sha256, bytes, mtime_ns, width, height, "
                    "format) SELECT * FROM bench_rows"
                )
                index.catalog.con.unregister("bench_rows")
        npy = Path(tmp) / "embeddings.npy"
        np.save(npy, X)
        with Index(Path(tmp) / "index", read_only=True) as index:
            index.embeddings()  # first touch: open files, warm the page cache like np.load's
            pull_s, (ids, got) = timed(index.embeddings)
        npy_s, _ = timed(lambda: np.load(npy))
    assert got.shape == X.shape and np.array_equal(got[np.argsort(ids)], got)
    return {
        "n": n,
        "dim": X.shape[1],
        "pull_s": pull_s,
        "npy_load_s": npy_s,
        "ratio": pull_s / npy_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="points for K-means and the pull")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--iters", type=int, default=20, help="K-means iterations")
    ap.add_argument(
        "--kmeans-data",
        choices=["random", "clustered"],
        default="random",
        help="K-means input: random unit vectors (every implementation runs all iterations) or "
        "clustered ones (scikit-learn stops early once assignments settle)",
    )
    ap.add_argument("--tsne-n", type=int, default=20_000)
    ap.add_argument("--tsne-iters", type=int, default=250, help="t-SNE iterations after 250 early")
    ap.add_argument("--sil-compare-n", type=int, default=10_000)
    ap.add_argument("--only", choices=["kmeans", "tsne", "silhouette", "pull"], action="append")
    ap.add_argument("--skip-sklearn", action="store_true", help="no scikit-learn baselines")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = ap.parse_args()
    if args.quick:
        args.n, args.tsne_n, args.sil_compare_n, args.k, args.iters = 5000, 2000, 2000, 20, 10
    from idx.analysis.baselines import random_vectors

    todo = set(args.only or ["kmeans", "tsne", "silhouette", "pull"])
    X = clustered_unit_vectors(args.n, args.dim)
    results = {}
    if "pull" in todo:
        results["pull"] = r = bench_pull(X)
        print(
            f"pull {r['n']}x{r['dim']}: Index.embeddings() {r['pull_s']:.3f}s, np.load "
            f"{r['npy_load_s']:.3f}s (x{r['ratio']:.1f})",
            flush=True,
        )
    if "kmeans" in todo:
        # Unstructured data, so that no implementation converges early: equal iterations.
        Xk = X if args.kmeans_data == "clustered" else random_vectors(args.n, args.dim)
        results["kmeans"] = r = bench_kmeans(Xk, args.k, args.iters, not args.skip_sklearn)
        line = (
            f"kmeans {r['n']}x{r['dim']} k={r['k']} iters={r['iterations']}: idx "
            f"{r['idx_s']:.2f}s, faiss direct {r['faiss_direct_s']:.2f}s "
            f"(idx/faiss x{r['idx_over_faiss']:.2f})"
        )
        if "sklearn_s" in r:
            line += (
                f", scikit-learn {r['sklearn_s']:.2f}s (x{r['sklearn_over_idx']:.1f} slower; "
                f"it ran {r['sklearn_iterations_run']} iterations)"
            )
        print(line, flush=True)
    if "silhouette" in todo:
        results["silhouette"] = r = bench_silhouette(X, args.k, args.sil_compare_n)
        print(
            f"silhouette cosine exact {r['n']} points k={r['k']}: idx {r['idx_exact_s']:.2f}s; "
            f"at {r['compare_n']}: idx {r['idx_at_compare_n_s']:.3f}s, scikit-learn "
            f"{r['sklearn_at_compare_n_s']:.2f}s (x{r['sklearn_over_idx']:.0f})",
            flush=True,
        )
    if "tsne" in todo:
        Xt = (
            X[: args.tsne_n]
            if args.tsne_n <= len(X)
            else clustered_unit_vectors(args.tsne_n, args.dim)
        )
        results["tsne"] = r = bench_tsne(Xt, 250, args.tsne_iters, not args.skip_sklearn)
        line = f"tsne {r['n']}x{r['dim']} {r['iterations']} iterations: idx {r['idx_s']:.1f}s"
        if "sklearn_s" in r:
            line += f", scikit-learn {r['sklearn_s']:.1f}s (x{r['sklearn_over_idx']:.1f} slower)"
        print(line, flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
