"""The linear probe of `idx insights`: its stored accuracy, interval, folds and per-class figures
equal scikit-learn's cross-validation run here on `idx export` data and the folder labels; the
baselines (random vectors, colour histograms) are probed the same way."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from idx.analysis import baselines
from idx.analysis.linear_probe import LinearProbe, wilson_interval
from idx.cli.main import cli
from idx.indexer.index import Index
from idx.ops.insights import measure as insights_api
from idx.ops.labels import imports as labels_api
from idx.ops.thumbnails import decode_thumbnails


@pytest.fixture
def labelled(indexed_copy, tiny_model):
    with Index(indexed_copy, **tiny_model) as index:
        labels_api.import_folders(index)
    return indexed_copy


def sklearn_probe(x: np.ndarray, y: np.ndarray, folds: int, seed: int) -> tuple[np.ndarray, list]:
    """Out-of-fold predictions and per-fold accuracies, written out with scikit-learn."""
    predicted = np.empty(len(y), dtype=y.dtype)
    per_fold = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
        predicted[test] = model.fit(x[train], y[train]).predict(x[test])
        per_fold.append(float(np.mean(predicted[test] == y[test])))
    return predicted, per_fold


def test_probe_rows_equal_scikit_learn_on_exported_data(labelled, tiny_model, tmp_path):
    with Index(labelled, **tiny_model) as index:
        result = insights_api.insights(index, k_nn=5, folds=3, plots=False)
        cols, rows = index.sql(f"SELECT * FROM linear_probes WHERE run_id = {result.run_id}")
        class_cols, class_rows = index.sql(
            "SELECT label_name, size, linear_probe_accuracy FROM class_insights "
            f"WHERE run_id = {result.run_id}"
        )
        ids = index.embeddings()[0]
        pictures = decode_thumbnails(index, ids, 64)
    done = CliRunner().invoke(
        cli, ["--index", str(labelled), "export", str(tmp_path / "x"), "--format", "npy"]
    )
    assert done.exit_code == 0, done.output
    exported_ids = np.load(tmp_path / "x" / "ids.npy")
    x = np.load(tmp_path / "x" / "embeddings.npy")
    paths = json.loads((tmp_path / "x" / "paths.json").read_text())
    assert np.array_equal(exported_ids, ids)
    names = sorted({Path(p).parent.name for p in paths})
    y = np.array([names.index(Path(p).parent.name) for p in paths])

    stored = {r[cols.index("features")]: dict(zip(cols, r)) for r in rows}
    assert set(stored) == {"clip", "random_vectors", "colour_histogram"}
    features = {
        "clip": x,
        "random_vectors": baselines.random_vectors(*x.shape, random_state=0),
        "colour_histogram": baselines.colour_histograms(pictures),
    }
    for name, feats in features.items():
        predicted, per_fold = sklearn_probe(feats, y, 3, 0)
        hits = int((predicted == y).sum())
        row = stored[name]
        assert row["accuracy"] == pytest.approx(hits / len(y))
        assert row["folds"] == 3 and row["n_images"] == len(y) == 48
        assert row["fold_accuracies"] == pytest.approx(per_fold)
        assert row["fold_sd"] == pytest.approx(np.std(per_fold, ddof=1))
        # Wilson's score interval, written out
        p, n, z = hits / len(y), len(y), 1.959964
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((centre - half, centre + half))
        if name == "clip":
            per_class = {
                names[c]: float(np.mean(predicted[y == c] == c)) for c in range(len(names))
            }
            got = {r[0]: r[2] for r in class_rows}
            assert got == pytest.approx(per_class)
    assert [p["features"] for p in result.as_dict()["linear_probes"]] == [
        "clip",
        "random_vectors",
        "colour_histogram",
    ]
    metrics = result.metrics
    assert metrics["linear_probe_accuracy"] == pytest.approx(stored["clip"]["accuracy"])
    assert metrics["linear_probe"]["ci95"] == pytest.approx(
        [stored["clip"]["ci_low"], stored["clip"]["ci_high"]]
    )
    for name in ("random_vectors", "colour_histogram"):
        base = metrics["baselines"][name]
        assert base["linear_probe_accuracy"] == pytest.approx(stored[name]["accuracy"])
        assert base["knn_accuracy"] == pytest.approx(stored[name]["knn_accuracy"])
        assert 0 <= base["knn_accuracy"] <= 1
    assert metrics["baselines"]["majority_class"]["linear_probe_accuracy"] == pytest.approx(6 / 48)


def test_probe_counts_any_label_of_a_multi_label_image_and_lowers_folds_for_small_classes():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c * 3.0, 1.0, (5, 4)) for c in range(3)])
    primary = np.repeat([0, 1, 2], 5)
    y = np.zeros((15, 3), dtype=bool)
    y[np.arange(15), primary] = True
    y[:, 2] = True  # every image also carries label 2: any prediction of 2 is right
    probe = LinearProbe(n_splits=10).fit(x, primary, y)
    assert probe.folds_ == 5  # no more folds than the largest class has images
    assert probe.accuracy_ == pytest.approx(np.mean(y[np.arange(15), probe.predicted_]))
    assert probe.accuracy_ == 1.0
    assert wilson_interval(15, 15)[1] == 1.0 and wilson_interval(0, 10)[0] == 0.0


def test_cli_prints_the_probe_beside_its_baselines_and_skips_it_on_request(labelled, tiny_args):
    base = ["--index", str(labelled), "insights", "--no-plots", "-q"]
    shown = CliRunner().invoke(cli, [*base, "--folds", "3"])
    assert shown.exit_code == 0, shown.output
    assert "linear probe: " in shown.output and "3-fold stratified CV" in shown.output
    assert "linear_probe_accuracy" in shown.output and "colour_histogram" in shown.output
    skipped = CliRunner().invoke(cli, [*base, "--no-probe", "--json"])
    assert "linear_probe_accuracy" not in json.loads(skipped.stdout)["metrics"]
    bad = CliRunner().invoke(cli, [*base, "--folds", "1"])
    assert bad.exit_code == 2 and "--folds" in bad.output
