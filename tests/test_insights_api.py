"""`idx insights` end to end: stored tables, plots, and numbers that an independent computation
from `idx export --format npy` and the folder labels reproduces."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn import metrics as skm
from sklearn.cluster import KMeans
from sklearn.neighbors import NearestNeighbors

from idx.cli.main import cli
from idx.errors import EmptyIndexError, NotFoundError
from idx.indexer.index import Index
from idx.ops.insights import measure as insights_api
from idx.ops.insights import runs as insight_runs
from idx.ops.labels import imports as labels_api

# The clustering feature's tables, exactly as its contract states them.
CLUSTER_TABLES = """
CREATE TABLE IF NOT EXISTS cluster_runs (
    id INTEGER PRIMARY KEY, k INTEGER, method VARCHAR, space VARCHAR, seed INTEGER,
    model VARCHAR, metrics VARCHAR, n_images INTEGER, projection_run_id INTEGER,
    subset VARCHAR, created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS clusters (
    run_id INTEGER, image_id BIGINT, cluster INTEGER, distance FLOAT);
"""


def _export(index_dir: Path, out: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    res = CliRunner().invoke(
        cli, ["--index", str(index_dir), "export", str(out), "--format", "npy"]
    )
    assert res.exit_code == 0, res.output
    paths = json.loads((out / "paths.json").read_text())
    return np.load(out / "ids.npy"), np.load(out / "embeddings.npy"), paths


def _folder_labels(paths: list[str]) -> tuple[list[str], np.ndarray]:
    names = sorted({Path(p).parent.name for p in paths})
    return names, np.array([names.index(Path(p).parent.name) for p in paths])


@pytest.fixture
def labelled(indexed_copy, tiny_model):
    with Index(indexed_copy, **tiny_model) as index:
        labels_api.import_folders(index)
    return indexed_copy


def test_insights_agree_with_an_independent_computation(labelled, tiny_model, tmp_path):
    with Index(labelled, **tiny_model) as index:
        result = insights_api.insights(index, k_nn=5, plots_dir=tmp_path / "plots")
        prompts = [
            f"a photo of a {name.replace('_', ' ')}"
            for name in sorted({r[0] for r in result.classes})
        ]
        texts = index.encoder.encode_texts(prompts)
    ids, x, paths = _export(labelled, tmp_path / "emb")
    names, truth = _folder_labels(paths)
    n = len(ids)

    nn = NearestNeighbors(n_neighbors=6, metric="cosine").fit(x).kneighbors(x)[1][:, 1:]
    predicted = []
    for row in nn:
        votes = Counter(truth[row].tolist())
        best = max(votes.values())
        predicted.append(min(c for c, v in votes.items() if v == best))  # equal sizes: first name
    predicted = np.array(predicted)
    zero_shot = np.argmax(x @ texts.T, axis=1)
    silhouette = skm.silhouette_samples(x, truth, metric="cosine")

    m = result.metrics
    assert m["n_images"] == n and m["n_classes"] == len(names) and m["k_nn"] == 5
    assert m["knn_accuracy"] == pytest.approx(np.mean(predicted == truth))
    assert m["zero_shot_accuracy"] == pytest.approx(np.mean(zero_shot == truth))
    by_name = {r[0]: dict(zip(insight_runs.CLASS_COLUMNS, r)) for r in result.classes}
    for c, name in enumerate(names):
        members = x[truth == c]
        sims = members @ members.T
        cohesion = (sims.sum() - np.trace(sims)) / (len(members) * (len(members) - 1))
        row = by_name[name]
        assert row["size"] == len(members)
        assert row["cohesion"] == pytest.approx(cohesion, abs=1e-5)
        assert row["knn_accuracy"] == pytest.approx(np.mean(predicted[truth == c] == c))
        assert row["zero_shot_accuracy"] == pytest.approx(np.mean(zero_shot[truth == c] == c))
        assert row["silhouette"] == pytest.approx(silhouette[truth == c].mean(), abs=1e-5)

    with Index(labelled, read_only=True) as index:
        stored_run = insight_runs.load_insights(index)
        with pytest.raises(NotFoundError, match="insight run 42"):
            insight_runs.load_insights(index, 42)
        _, runs = index.sql("SELECT id, cluster_run_id, k_nn, metrics FROM insight_runs")
        _, stored = index.sql(
            "SELECT label_name, size, knn_accuracy FROM class_insights ORDER BY 1"
        )
        _, suspects = index.sql("SELECT count(*) FROM suspect_labels")
    assert [(r[0], r[1], r[2]) for r in runs] == [(result.run_id, None, 5)]
    assert json.loads(runs[0][3])["knn_accuracy"] == pytest.approx(m["knn_accuracy"])
    assert stored == [(r[0], r[2], pytest.approx(r[10])) for r in sorted(result.classes)]
    assert suspects == [(len(result.suspects),)]
    assert stored_run.run_id == result.run_id and stored_run.metrics == json.loads(runs[0][3])
    assert stored_run.classes == [
        tuple(pytest.approx(v) if isinstance(v, float) else v for v in row)
        for row in sorted(result.classes)
    ]
    assert stored_run.suspects == [
        tuple(pytest.approx(v) if isinstance(v, float) else v for v in row)
        for row in result.suspects
    ]
    for path in result.plots.values():
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"class_bars", "knn_confusion"} <= set(result.plots)
    assert any(f"idx --index {labelled} cluster --k K" in note for note in result.notes)
    assert any("UNTRAINED" in note for note in result.notes)


def test_insights_against_a_clustering_run(labelled, tiny_model, tmp_path):
    ids, x, paths = _export(labelled, tmp_path / "emb")
    names, truth = _folder_labels(paths)
    assignments = KMeans(n_clusters=4, n_init=2, random_state=0).fit_predict(x)
    # The run covers all but the first 5 images (a clustering of a subset): those are left out.
    ids, truth, assignments = ids[5:], truth[5:], assignments[5:]
    with Index(labelled, **tiny_model) as index:
        index.catalog.con.execute(CLUSTER_TABLES)
        index.catalog.con.execute(
            "INSERT INTO cluster_runs (id, k, method, space) VALUES (7, 4, 'kmeans', 'clip')"
        )
        index.catalog.con.executemany(
            "INSERT INTO clusters VALUES (7, ?, ?, 0.0)",
            [(int(i), int(c)) for i, c in zip(ids, assignments)],
        )
        result = insights_api.insights(index, zero_shot=False, plots_dir=tmp_path / "plots")
        # The example query, verbatim: labels by cluster of the latest run.
        _, by_cluster = index.sql(
            "SELECT l.display_name, c.cluster, count(*) FROM labels l JOIN clusters c "
            "USING (image_id) WHERE c.run_id = (SELECT max(id) FROM cluster_runs) "
            "GROUP BY ALL ORDER BY 1, 3 DESC"
        )
        with pytest.raises(NotFoundError, match="cluster run 99"):
            insights_api.insights(index, cluster_run=99, plots=False)
    m = result.metrics
    assert result.cluster_run_id == 7 and m["n_clustered"] == len(ids)
    assert m["nmi"] == pytest.approx(skm.normalized_mutual_info_score(truth, assignments))
    assert m["ari"] == pytest.approx(skm.adjusted_rand_score(truth, assignments))
    table = skm.cluster.contingency_matrix(truth, assignments)
    assert m["purity"] == pytest.approx(table.max(axis=0).sum() / len(truth))
    assert set(m["baselines"]["random_labels"]) >= {"nmi", "purity", "knn_accuracy"}
    for row in result.classes:
        c = names.index(row[0])
        counts = np.bincount(assignments[truth == c], minlength=4)
        assert row[3] == int(np.argmax(counts))
        assert row[4] == pytest.approx(counts.max() / counts.sum())
    assert "zero_shot_accuracy" not in m
    expected = Counter((names[t], int(a)) for t, a in zip(truth, assignments))
    assert {(name, cl): n for name, cl, n in by_cluster} == expected
    assert Path(result.plots["label_cluster_heatmap"]).stat().st_size > 0


def test_insights_cli_formats_and_errors(labelled, indexed_copy, tmp_path):
    runner = CliRunner()
    base = ["--index", str(labelled), "insights", "--no-plots", "--k-nn", "3"]
    res = runner.invoke(cli, [*base, "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["metrics"]["k_nn"] == 3 and len(out["classes"]) == 8
    assert f"idx --index {labelled} cluster --k K" in res.stderr
    res = runner.invoke(cli, [*base, "--show", "suspects", "--format", "csv"])
    assert res.exit_code == 0
    assert res.stdout.splitlines()[0] == ",".join(insight_runs.SUSPECT_COLUMNS)
    res = runner.invoke(cli, [*base])
    assert res.exit_code == 0 and "knn_accuracy" in res.stdout and "random_labels" in res.stdout
    res = runner.invoke(cli, [*base, "--run", "3"])
    assert res.exit_code == 1 and f"idx --index {labelled} cluster --k K" in res.stderr


def test_insights_need_labels(indexed_copy):
    with Index(indexed_copy) as index, pytest.raises(EmptyIndexError, match="labels import"):
        insights_api.insights(index)


def test_source_filter_and_multi_label_images(labelled, tiny_model, tmp_path):
    extra = tmp_path / "extra.csv"
    extra.write_text("red_circles_000,sunsets\nred_circles_001,sunsets\n")
    with Index(labelled, **tiny_model) as index:
        labels_api.import_labels(index, extra, kind="csv", source="extra")
        both = insights_api.insights(index, zero_shot=False, plots=False)
        only = insights_api.insights(index, zero_shot=False, plots=False, sources=["extra"])
    assert both.metrics["n_multi_label"] == 2
    sizes = {r[0]: r[2] for r in both.classes}
    assert sizes["sunsets"] == sizes["red_circles"] + 2
    assert only.metrics["n_images"] == 2 and only.metrics["n_classes"] == 1
