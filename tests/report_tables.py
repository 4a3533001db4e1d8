"""Fill the analysis tables the report reads, with values computed here from real embeddings.

The tables follow the contracts of the search, clustering, labels and robustness features
(migrations 0002-0005); `CREATE TABLE IF NOT EXISTS` leaves them alone once those migrations exist.
Numbers come from numpy / scikit-learn on the index's own vectors and, for robustness, from the
index's own model on really perturbed images, so the report shows genuine results.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image, ImageFilter
from sklearn import metrics
from sklearn.cluster import KMeans

CONTRACT_DDL = """
CREATE TABLE IF NOT EXISTS neighbors (image_id BIGINT, neighbor_id BIGINT, rank INTEGER, score DOUBLE);
CREATE TABLE IF NOT EXISTS projection_runs (id BIGINT PRIMARY KEY, method VARCHAR, params JSON,
  seed INTEGER, model VARCHAR, n_images INTEGER, created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS projections (run_id BIGINT, image_id BIGINT, x DOUBLE, y DOUBLE);
CREATE TABLE IF NOT EXISTS cluster_runs (id BIGINT PRIMARY KEY, k INTEGER, method VARCHAR,
  space VARCHAR, seed INTEGER, model VARCHAR, metrics JSON, n_images INTEGER,
  projection_run_id BIGINT, subset VARCHAR, created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS clusters (run_id BIGINT, image_id BIGINT, cluster INTEGER, distance DOUBLE);
CREATE TABLE IF NOT EXISTS sweep_runs (id BIGINT PRIMARY KEY, space VARCHAR, seed INTEGER,
  model VARCHAR, created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS sweep_results (run_id BIGINT, k INTEGER, silhouette DOUBLE,
  davies_bouldin DOUBLE, calinski_harabasz DOUBLE);
CREATE TABLE IF NOT EXISTS classes (label_name VARCHAR PRIMARY KEY, display_name VARCHAR);
CREATE TABLE IF NOT EXISTS labels (image_id BIGINT, label_name VARCHAR, source VARCHAR,
  confidence DOUBLE);
CREATE TABLE IF NOT EXISTS insight_runs (id BIGINT PRIMARY KEY, cluster_run_id BIGINT,
  k_nn INTEGER, model VARCHAR, metrics JSON, created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS class_insights (run_id BIGINT, label_name VARCHAR, size INTEGER,
  main_cluster INTEGER, main_cluster_share DOUBLE, cluster_entropy DOUBLE, cohesion DOUBLE,
  nearest_class VARCHAR, separation_margin DOUBLE, silhouette DOUBLE, knn_accuracy DOUBLE,
  zero_shot_accuracy DOUBLE);
CREATE TABLE IF NOT EXISTS confused_pairs (run_id BIGINT, label_a VARCHAR, label_b VARCHAR,
  knn_confusions INTEGER, centroid_similarity DOUBLE);
CREATE TABLE IF NOT EXISTS suspect_labels (run_id BIGINT, image_id BIGINT, label_name VARCHAR,
  predicted_label VARCHAR, vote_share DOUBLE);
CREATE TABLE IF NOT EXISTS robustness_runs (id BIGINT PRIMARY KEY, perturbations JSON,
  severities JSON, sample_size INTEGER, seed INTEGER, k INTEGER, cluster_run_id BIGINT,
  model VARCHAR, created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS robustness_results (run_id BIGINT, perturbation VARCHAR,
  severity INTEGER, n INTEGER, cos_mean DOUBLE, cos_p05 DOUBLE, cos_p50 DOUBLE, cos_p95 DOUBLE,
  topk_overlap DOUBLE, self_rank_mean DOUBLE, self_found_at_1 DOUBLE,
  cluster_change_share DOUBLE, knn_accuracy DOUBLE, zero_shot_accuracy DOUBLE);
CREATE TABLE IF NOT EXISTS robustness_classes (run_id BIGINT, label_name VARCHAR,
  perturbation VARCHAR, severity INTEGER, n INTEGER, cos_mean DOUBLE, knn_accuracy DOUBLE);
"""


def create_tables(con) -> None:
    for statement in CONTRACT_DDL.split(";"):
        if statement.strip():
            con.execute(statement)


def insert(con, table: str, **columns) -> None:
    """Bulk insert by column name (scalars repeat); row-by-row inserts crawl at 50k rows."""
    n = max(len(v) for v in columns.values() if isinstance(v, np.ndarray))
    data = {k: v if isinstance(v, np.ndarray) else np.full(n, v) for k, v in columns.items()}
    con.register("_fill", pa.table({k: pa.array(v.tolist()) for k, v in data.items()}))
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _fill")
    finally:
        con.unregister("_fill")


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    centred = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def silhouette(vectors: np.ndarray, assign: np.ndarray) -> float:
    """Cosine silhouette, on a seeded sample of 2000 beyond that size (as idx cluster does)."""
    sample = 2000 if len(vectors) > 2000 else None
    return float(
        metrics.silhouette_score(
            vectors, assign, metric="cosine", sample_size=sample, random_state=0
        )
    )


def fill_map_and_clusters(
    con, ids: np.ndarray, vectors: np.ndarray, k: int, sweep_ks=None
) -> np.ndarray:
    """Projection run 1 (PCA), cluster run 1 (k-means) and a k sweep; returns the assignments."""
    xy = pca_2d(vectors)
    con.execute(
        "INSERT INTO projection_runs (id, method, params, seed, model, n_images) "
        "VALUES (1, 'pca', ?, 0, 'test', ?)",
        [json.dumps({"components": 2}), len(ids)],
    )
    insert(con, "projections", run_id=1, image_id=ids, x=xy[:, 0], y=xy[:, 1])
    km = KMeans(n_clusters=k, n_init=4, random_state=0).fit(vectors)
    distance = km.transform(vectors).min(axis=1)
    shuffled = np.random.default_rng(0).permutation(km.labels_)
    scores = {
        "silhouette": silhouette(vectors, km.labels_),
        "silhouette_baseline": silhouette(vectors, shuffled),
        "davies_bouldin": metrics.davies_bouldin_score(vectors, km.labels_),
        "calinski_harabasz": metrics.calinski_harabasz_score(vectors, km.labels_),
        "baselines": {"davies_bouldin": metrics.davies_bouldin_score(vectors, shuffled)},
    }
    con.execute(
        "INSERT INTO cluster_runs (id, k, method, space, seed, model, metrics, n_images, "
        "projection_run_id) VALUES (1, ?, 'kmeans', 'embedding', 0, 'test', ?, ?, 1)",
        [
            k,
            json.dumps({m: float(v) if not isinstance(v, dict) else v for m, v in scores.items()}),
            len(ids),
        ],
    )
    insert(con, "clusters", run_id=1, image_id=ids, cluster=km.labels_, distance=distance)
    con.execute(
        "INSERT INTO sweep_runs (id, space, seed, model) VALUES (1, 'embedding', 0, 'test')"
    )
    for kk in sweep_ks or range(2, min(k + 3, len(ids) - 1)):
        assign = KMeans(n_clusters=kk, n_init=2, random_state=0).fit_predict(vectors)
        con.execute(
            "INSERT INTO sweep_results (run_id, k, silhouette, davies_bouldin, calinski_harabasz) "
            "VALUES (1, ?, ?, ?, ?)",
            [
                kk,
                silhouette(vectors, assign),
                float(metrics.davies_bouldin_score(vectors, assign)),
                float(metrics.calinski_harabasz_score(vectors, assign)),
            ],
        )
    return km.labels_


def folder_labels(con, ids: np.ndarray) -> np.ndarray:
    """Labels from the ImageFolder layout (parent folder = label), as `labels import` stores them."""
    paths = dict(con.execute("SELECT id, path FROM images").fetchall())
    names = np.array([Path(paths[int(i)]).parent.name for i in ids])
    for name in sorted(set(names)):
        con.execute(
            "INSERT INTO classes (label_name, display_name) VALUES (?, ?)",
            [name, name.replace("_", " ")],
        )
    insert(con, "labels", image_id=ids, label_name=names, source="folder", confidence=1.0)
    return names


def knn_votes(
    vectors: np.ndarray, names: np.ndarray, k: int, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out kNN: (predicted label, vote share of the prediction) per image."""
    predicted, share = [], []
    for start in range(0, len(vectors), chunk):
        sims = vectors[start : start + chunk] @ vectors.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf
        nearest = np.argpartition(-sims, k, axis=1)[:, :k]
        for row in names[nearest]:
            values, counts = np.unique(row, return_counts=True)
            predicted.append(values[counts.argmax()])
            share.append(counts.max() / k)
    return np.array(predicted), np.array(share)


def fill_insights(con, ids, vectors, names, assign, k_nn: int = 5) -> None:
    predicted, share = knn_votes(vectors, names, k_nn)
    contingency = metrics.cluster.contingency_matrix(names, assign)
    run_metrics = {
        "purity": contingency.max(axis=0).sum() / contingency.sum(),
        "nmi": metrics.normalized_mutual_info_score(names, assign),
        "ari": metrics.adjusted_rand_score(names, assign),
        "knn_accuracy": float(np.mean(predicted == names)),
        "knn_accuracy_baseline": float(
            np.max(np.unique(names, return_counts=True)[1]) / len(names)
        ),
    }
    con.execute(
        "INSERT INTO insight_runs (id, cluster_run_id, k_nn, model, metrics) VALUES (1, 1, ?, 'test', ?)",
        [k_nn, json.dumps({m: float(v) for m, v in run_metrics.items()})],
    )
    classes = sorted(set(names))
    centroids = np.stack([vectors[names == c].mean(axis=0) for c in classes])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    between = centroids @ centroids.T
    np.fill_diagonal(between, -np.inf)
    for ci, c in enumerate(classes):
        mine = names == c
        clusters, counts = np.unique(assign[mine], return_counts=True)
        share_main = counts.max() / counts.sum()
        p = counts / counts.sum()
        cohesion = float(np.linalg.norm(vectors[mine].mean(axis=0)) ** 2)  # mean pairwise cosine
        con.execute(
            "INSERT INTO class_insights (run_id, label_name, size, main_cluster, main_cluster_share, "
            "cluster_entropy, cohesion, nearest_class, knn_accuracy) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                c,
                int(mine.sum()),
                int(clusters[counts.argmax()]),
                float(share_main),
                float(-(p * np.log(p)).sum()),
                cohesion,
                classes[int(between[ci].argmax())],
                float(np.mean(predicted[mine] == c)),
            ],
        )
    confusions: dict[tuple[str, str], int] = {}
    for truth, guess in zip(names, predicted):
        if truth != guess:
            pair = tuple(sorted((str(truth), str(guess))))
            confusions[pair] = confusions.get(pair, 0) + 1
    for (a, b), n in confusions.items():
        sim = float(between[classes.index(a), classes.index(b)])
        con.execute(
            "INSERT INTO confused_pairs (run_id, label_a, label_b, knn_confusions, "
            "centroid_similarity) VALUES (1, ?, ?, ?, ?)",
            [a, b, n, sim],
        )
    wrong = predicted != names
    insert(
        con,
        "suspect_labels",
        run_id=1,
        image_id=ids[wrong],
        label_name=names[wrong],
        predicted_label=predicted[wrong],
        vote_share=share[wrong],
    )


PERTURB = {
    "gaussian_noise": lambda img, sev, rng: Image.fromarray(
        np.clip(
            np.asarray(img, dtype=np.float32) + rng.normal(0, 20 * sev, (*img.size[::-1], 3)),
            0,
            255,
        ).astype(np.uint8)
    ),
    "blur": lambda img, sev, rng: img.filter(ImageFilter.GaussianBlur(sev * 1.5)),
}


def fill_robustness(con, encoder, ids, vectors, names, severities=(1, 2, 3)) -> None:
    """Perturb every image, re-embed it with the index's model, store drift and kNN accuracy."""
    import torch

    paths = dict(con.execute("SELECT id, path FROM images").fetchall())
    clean = [Image.open(paths[int(i)]).convert("RGB") for i in ids]
    rng = np.random.default_rng(0)
    con.execute(
        "INSERT INTO robustness_runs (id, perturbations, severities, sample_size, seed, k, "
        "cluster_run_id, model) VALUES (1, ?, ?, ?, 0, 5, 1, 'test')",
        [json.dumps(list(PERTURB)), json.dumps(list(severities)), len(ids)],
    )
    for name, perturb in PERTURB.items():
        for sev in severities:
            batch = torch.stack([encoder.preprocess(perturb(img, sev, rng)) for img in clean])
            moved = encoder.encode_images(batch)
            cos = np.sum(moved * vectors, axis=1)
            sims = moved @ vectors.T
            sims[np.arange(len(ids)), np.arange(len(ids))] = -np.inf
            nearest = np.argsort(-sims, axis=1)[:, :5]
            guess = np.array([max(set(r), key=list(r).count) for r in names[nearest]])
            correct = guess == names
            con.execute(
                "INSERT INTO robustness_results (run_id, perturbation, severity, n, cos_mean, "
                "cos_p05, cos_p50, cos_p95, knn_accuracy) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    name,
                    sev,
                    len(ids),
                    float(cos.mean()),
                    *map(float, np.percentile(cos, [5, 50, 95])),
                    float(correct.mean()),
                ],
            )
            for c in sorted(set(names)):
                mine = names == c
                con.execute(
                    "INSERT INTO robustness_classes (run_id, label_name, perturbation, severity, n, "
                    "cos_mean, knn_accuracy) VALUES (1, ?, ?, ?, ?, ?, ?)",
                    [
                        c,
                        name,
                        sev,
                        int(mine.sum()),
                        float(cos[mine].mean()),
                        float(correct[mine].mean()),
                    ],
                )


def fill_all(index, k: int = 8, robustness: bool = True, sweep_ks=None) -> dict:
    """Every table the report reads, for the whole index; returns what was computed."""
    con = index.catalog.con
    create_tables(con)
    ids, vectors = index.embeddings()
    assign = fill_map_and_clusters(con, ids, vectors, k, sweep_ks)
    names = folder_labels(con, ids)
    fill_insights(con, ids, vectors, names, assign)
    if robustness:
        fill_robustness(con, index.encoder, ids, vectors, names)
    return {"ids": ids, "assign": assign, "names": names}
