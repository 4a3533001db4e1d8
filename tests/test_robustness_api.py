"""End to end on a real index: measurement rows, labels and clusters used, inject/eject exact."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.cluster import KMeans

from idx.analysis import perturbations
from idx.errors import NotFoundError, UsageError
from idx.indexer.files.decode import open_image
from idx.indexer.index import Index
from idx.ops.injection import compare, eject, inject, list_injections
from idx.ops.robustness.inputs import sample_ids
from idx.ops.robustness.measure import measure

# The contracts of the labels (0004) and clustering (0003) features, which this branch lacks.
CONTRACT_TABLES = (
    "CREATE TABLE IF NOT EXISTS classes (label_name VARCHAR, display_name VARCHAR)",
    "CREATE TABLE IF NOT EXISTS labels (image_id BIGINT, label_name VARCHAR, source VARCHAR, "
    "confidence DOUBLE)",
    "CREATE TABLE IF NOT EXISTS cluster_runs (id INTEGER, k INTEGER, method VARCHAR, "
    "space VARCHAR, seed INTEGER, model VARCHAR, metrics VARCHAR, n_images INTEGER, "
    "projection_run_id INTEGER, subset VARCHAR, created_at TIMESTAMP)",
    "CREATE TABLE IF NOT EXISTS clusters (run_id INTEGER, image_id BIGINT, cluster INTEGER, "
    "distance DOUBLE)",
    "CREATE TABLE IF NOT EXISTS cluster_centers (run_id INTEGER, cluster INTEGER, vector FLOAT[])",
)


def add_labels_and_clusters(index: Index) -> np.ndarray:
    """Folder-name labels (one negative row each, ignored) and two cluster runs: 1 in the
    embedding space, 2 (latest) in a 2-D projection. Returns run 1's centres."""
    con = index.catalog.con
    for sql in CONTRACT_TABLES:
        con.execute(sql)
    for image_id, path in con.execute("SELECT id, path FROM images").fetchall():
        category = Path(path).parent.name
        con.execute(
            "INSERT INTO labels (image_id, label_name, source, confidence) VALUES (?, ?, 'folder', 1.0)",
            [image_id, category],
        )
        con.execute(
            "INSERT INTO labels (image_id, label_name, source, confidence) "
            "VALUES (?, 'absent_thing', 'human', 0.0)",
            [image_id],
        )
        con.execute(
            "INSERT INTO classes SELECT ?, ? WHERE ? NOT IN (SELECT label_name FROM classes)",
            [category, category.replace("_", " "), category],
        )
    _, vectors = index.embeddings()
    centers = KMeans(4, n_init=2, random_state=0).fit(vectors).cluster_centers_
    con.execute("INSERT INTO cluster_runs (id, k, space) VALUES (1, 4, 'embedding')")
    con.execute("INSERT INTO cluster_runs (id, k, space) VALUES (2, 3, 'umap')")
    for c, v in enumerate(centers):
        con.execute("INSERT INTO cluster_centers VALUES (1, ?, ?)", [c, v.tolist()])
    for c in range(3):
        con.execute("INSERT INTO cluster_centers VALUES (2, ?, ?)", [c, [0.0, float(c)]])
    return centers


def test_measure_stores_rows_that_match_a_direct_recomputation(indexed_copy, tiny_model, tmp_path):
    saved = tmp_path / "saved"
    with Index(indexed_copy, **tiny_model) as index:
        centers = add_labels_and_clusters(index)
        report = measure(
            index, ["gaussian_noise", "jpeg"], [1, 5], sample=16, seed=3, k=5, save_dir=saved
        )
        runs = index.catalog.con.execute(
            "SELECT id, perturbations, severities, sample_size, seed, k, cluster_run_id, model "
            "FROM robustness_runs"
        ).fetchall()
        cols, rows = index.sql("SELECT * FROM robustness_results ORDER BY perturbation, severity")
        stored = {(r["perturbation"], r["severity"]): r for r in (dict(zip(cols, x)) for x in rows)}
        cols, class_rows = index.sql("SELECT * FROM robustness_classes")
        ids = sample_ids(index.catalog, 16, 3)
        _, clean = index.embeddings(ids)
        encoder = index.encoder
        paths = dict(index.catalog.con.execute("SELECT id, path FROM images").fetchall())
        # severity 0 is the stored vector: decoding as `add` does reproduces it
        redecoded = encoder.encode_preprocessed(
            [encoder.preprocess(open_image(paths[i], encoder.image_size).image) for i in ids]
        )
        first = open_image(paths[int(ids[0])], encoder.image_size).image
        resized_first = np.asarray(encoder.preprocess(encoder.resize_for_model(first)))
        noisy = encoder.encode_preprocessed(
            [
                encoder.preprocess(Image.open(saved / "gaussian_noise" / "severity-5" / f"{i}.png"))
                for i in ids.tolist()
            ]
        )
    assert runs == [
        (
            report.run_id,
            '["gaussian_noise", "jpeg"]',
            "[1, 5]",
            16,
            3,
            5,
            1,
            report.model,
        )
    ]
    assert "UNTRAINED" in report.model and report.untrained
    assert set(stored) == {
        ("clean", 0),
        ("gaussian_noise", 1),
        ("gaussian_noise", 5),
        ("jpeg", 1),
        ("jpeg", 5),
    }
    assert len(report.results) == 5
    clean_row = stored[("clean", 0)]
    assert clean_row["cos_mean"] == pytest.approx(1.0, abs=1e-5)
    assert clean_row["self_found_at_1"] == 1.0 and clean_row["topk_overlap"] == 1.0
    assert clean_row["cluster_change_share"] == 0.0
    assert np.sum(redecoded * clean, axis=1).min() > 0.9999
    # perturbing at model resolution starts from exactly the picture `add` embedded
    assert np.array_equal(resized_first, np.asarray(encoder.preprocess(first)))
    row = stored[("gaussian_noise", 5)]
    cos = np.sum(noisy * clean, axis=1)
    assert row["cos_mean"] == pytest.approx(cos.mean(), abs=1e-4)
    assert row["cos_p05"] == pytest.approx(np.quantile(cos, 0.05), abs=1e-4)
    moved = np.mean(
        ((clean[:, None] - centers) ** 2).sum(-1).argmin(1)
        != ((noisy[:, None] - centers) ** 2).sum(-1).argmin(1)
    )
    assert row["cluster_change_share"] == pytest.approx(moved)
    for r in stored.values():
        assert r["n"] == 16
        assert 0 <= r["knn_accuracy"] <= 1 and 0 <= r["zero_shot_accuracy"] <= 1
    # per class: the 8 folder categories (never the confidence-0 label), for every condition
    classes = {dict(zip(cols, r))["label_name"] for r in class_rows}
    assert len(classes) <= 8 and "absent_thing" not in classes
    assert len(class_rows) == 5 * len(classes)
    assert sum(dict(zip(cols, r))["n"] for r in class_rows) == 16 * 5
    for name in ("curves", "examples", "classes"):
        assert Image.open(report.plots[name]).format == "PNG"
    assert len(list(saved.rglob("*.png"))) == 16 * 4


def test_measure_without_labels_or_clusters_says_what_is_missing(indexed_copy, tiny_model):
    with Index(indexed_copy, **tiny_model) as index:
        report = measure(index, ["blur"], [2], sample=5, k=3, plots=False)
        make = f"idx --index {indexed_copy} cluster --k K"
        with pytest.raises(NotFoundError, match=re.escape(make)):
            measure(index, ["blur"], [2], sample=5, k=3, cluster_run=7, plots=False)
    assert any(make in n for n in report.notes)
    assert any("no labels" in n for n in report.notes)
    assert all(r["knn_accuracy"] is None for r in report.results)
    assert report.plots == {}


def test_user_registered_perturbation_is_measured(indexed_copy, tiny_model, monkeypatch):
    monkeypatch.setattr(perturbations, "_REGISTRY", dict(perturbations._REGISTRY))
    perturbations.register_perturbation(
        "invert", lambda img, severity, rng: Image.eval(img, lambda v: 255 - v)
    )
    with Index(indexed_copy, **tiny_model) as index:
        report = measure(index, ["invert"], [1], sample=6, k=3, plots=False)
    assert [r["perturbation"] for r in report.results] == ["clean", "invert"]
    assert report.results[1]["cos_mean"] < 0.9999


def _faiss_state(index: Index) -> dict[int, np.ndarray]:
    store = index.vectors.index
    return {
        int(store.id_map.at(i)): store.reconstruct(int(store.id_map.at(i)))
        for i in range(store.ntotal)
    }


def test_inject_then_eject_restores_images_and_vectors_exactly(indexed_copy, tiny_model):
    with Index(indexed_copy, **tiny_model) as index:
        before_rows = index.sql("SELECT id, path, sha256, source FROM images ORDER BY id")[1]
        before_ids, before_vectors = index.embeddings()
        before_faiss = _faiss_state(index)
        inj = inject(index, "gaussian_blur", severity=4, fraction=0.25, seed=1)
        assert inj.n_images == 12 and inj.source == "inject:1"
        files = sorted(Path(inj.folder).iterdir())
        assert len(files) == 12 and all(Image.open(f).format == "PNG" for f in files)
        sources = dict(index.sql("SELECT source, count(*) FROM images GROUP BY 1")[1])
        assert sources == {"files": 48, "inject:1": 12}
        assert index.vectors.ntotal == 60
        # measurements sample only the user's files
        assert sample_ids(index.catalog, 1000, 0).tolist() == before_ids.tolist()
        noise = inject(index, "pure_noise", fraction=0.1, seed=2)
        assert noise.severity is None and noise.n_images == 5
        result = compare(index, inj.id, k=4)
        assert result["without_injected"]["n"] == 48 and result["with_injected"]["n"] == 60
        assert sum(r["injected"] for r in result["landing"]) == 12
        assert [i.id for i in list_injections(index)] == [1, 2]
        removed = eject(index, all_=True)
        assert [(r["id"], r["removed"]) for r in removed] == [(1, 12), (2, 5)]
        assert (
            index.sql("SELECT id, path, sha256, source FROM images ORDER BY id")[1] == before_rows
        )
        after_ids, after_vectors = index.embeddings()
        assert np.array_equal(after_ids, before_ids)
        assert np.array_equal(after_vectors, before_vectors)
        after_faiss = _faiss_state(index)
        assert after_faiss.keys() == before_faiss.keys()
        assert all(np.array_equal(after_faiss[i], before_faiss[i]) for i in before_faiss)
        assert not (indexed_copy / "injected").exists()
        assert list_injections(index) == []
        with pytest.raises(NotFoundError, match="nothing injected"):
            eject(index)
    with Index(indexed_copy, read_only=True) as index:
        assert index.vectors.ntotal == 48  # the FAISS file on disk is in step too


def test_inject_refuses_bad_arguments_without_storing(indexed_copy, tiny_model):
    with Index(indexed_copy, **tiny_model) as index:
        with pytest.raises(UsageError, match="pure_noise"):
            inject(index, "hail")
        with pytest.raises(UsageError, match="fraction"):
            inject(index, "jpeg", fraction=0)
        with pytest.raises(UsageError, match="1 to 5"):
            inject(index, "jpeg", severity=7)
        assert list_injections(index) == []
        assert json.loads(json.dumps(index.sql("SELECT count(*) FROM images")[1])) == [[48]]


def test_per_corruption_summary_equals_a_direct_computation_on_the_stored_rows(
    indexed_copy, tiny_model
):
    """ImageNet-C's summary: mean over the severities and drop from clean, recomputed from
    robustness_results with a plain loop; the suite mean averages the ImageNet-C rows; classes
    carry display names."""
    with Index(indexed_copy, **tiny_model) as index:
        add_labels_and_clusters(index)
        report = measure(
            index, ["gaussian_noise", "rotation"], [1, 3, 5], sample=8, seed=1, k=3, plots=False
        )
        cols, rows = index.sql("SELECT * FROM robustness_results")
    stored = [dict(zip(cols, r)) for r in rows]
    clean = next(r for r in stored if r["severity"] == 0)
    summary = {r["perturbation"]: r for r in report.by_corruption}
    assert list(summary) == ["gaussian_noise", "rotation", "imagenet-c mean (1 of 15)"]
    for name in ("gaussian_noise", "rotation"):
        mine = [r for r in stored if r["perturbation"] == name]
        assert summary[name]["severities"] == len(mine) == 3
        for metric in ("knn_accuracy", "zero_shot_accuracy", "cos_mean", "topk_overlap"):
            mean = sum(r[metric] for r in mine) / len(mine)
            assert summary[name][metric] == pytest.approx(mean)
            assert summary[name][f"{metric}_drop"] == pytest.approx(clean[metric] - mean)
    # only gaussian_noise is one of ImageNet-C's 15: the suite mean is its row
    suite = summary["imagenet-c mean (1 of 15)"]
    assert suite["severities"] is None
    assert suite["knn_accuracy"] == pytest.approx(summary["gaussian_noise"]["knn_accuracy"])
    assert {r["display_name"] for r in report.classes} <= {
        r["label_name"].replace("_", " ") for r in report.classes
    }
    assert report.as_dict()["by_corruption"] == report.by_corruption
