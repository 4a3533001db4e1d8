"""Labels used wherever they exist: sweep and cluster score against them (checked with
scikit-learn on exported rows), project colours its map by them, sweep has a default range, and
duplicates warns when one group swallows the index (and names a threshold that does not)."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.colors import to_rgb
from PIL import Image
from sklearn import metrics as skm

from idx.analysis import palette
from idx.cli.main import cli
from idx.indexer.index import Index
from idx.ops.duplicates import duplicates
from idx.ops.labels import imports as labels_api
from idx.ops.maps.clustering import cluster
from idx.ops.maps.projection import project
from idx.ops.maps.sweep import sweep


@pytest.fixture
def labelled(indexed_copy, tiny_model):
    with Index(indexed_copy, **tiny_model) as index:
        labels_api.import_folders(index)
    return indexed_copy


def folder_truth(index: Index, ids: np.ndarray) -> np.ndarray:
    paths = index.catalog.images.paths_for(ids)
    names = sorted({Path(p).parent.name for p in paths.values()})
    return np.array([names.index(Path(paths[int(i)]).parent.name) for i in ids])


def purity(clusters: np.ndarray, truth: np.ndarray) -> float:
    """A direct loop: each cluster counts the images of its most common label."""
    kept = 0
    for c in np.unique(clusters):
        kept += np.bincount(truth[clusters == c]).max()
    return kept / len(truth)


def test_sweep_and_cluster_score_against_labels_as_scikit_learn_does(labelled, tiny_model):
    with Index(labelled, **tiny_model) as index:
        swept = sweep(index, [3, 8, 12], seed=1, plot=False)
        stored = dict(
            (r[0], r[1:])
            for r in index.sql(
                f"SELECT k, nmi, ari, purity FROM sweep_results WHERE run_id = {swept.run_id}"
            )[1]
        )
        best_by = json.loads(index.sql("SELECT best_k_by FROM sweep_runs")[1][0][0])
        runs = {k: cluster(index, k, seed=1, plot=False) for k in (3, 8, 12)}
        exported = {
            k: index.sql(
                f"SELECT image_id, cluster FROM clusters WHERE run_id = {r.run_id} ORDER BY 1"
            )[1]
            for k, r in runs.items()
        }
        ids = np.array([i for i, _ in exported[3]])
        truth = folder_truth(index, ids)
    for k, rows in exported.items():
        clusters = np.array([c for _, c in rows])
        nmi = skm.normalized_mutual_info_score(truth, clusters)
        ari = skm.adjusted_rand_score(truth, clusters)
        assert stored[k] == pytest.approx((nmi, ari, purity(clusters, truth)))
        m = runs[k].metrics
        assert (m["nmi"], m["ari"], m["purity"]) == pytest.approx(stored[k])
        assert m["labels_scored"] == "48 single-label images in 8 classes"
    for metric, column in (("nmi", 0), ("ari", 1), ("purity", 2)):
        best = max(stored, key=lambda k: stored[k][column])
        assert best_by[metric] == swept.best_by[metric] == best
    assert best_by["silhouette"] == swept.best_k


def test_sweep_has_a_default_range_and_prints_the_best_k_by_each(labelled, tiny_args):
    done = CliRunner().invoke(cli, ["--index", str(labelled), "sweep", "-q"])
    assert done.exit_code == 0, done.output
    assert "k 2:20 (default)" in done.stdout
    found = re.search(r"by NMI (\d+), by ARI (\d+), by purity (\d+)", done.stdout)
    assert found and "48 single-label images in 8 classes" in done.stdout
    as_json = CliRunner().invoke(cli, ["--index", str(labelled), "sweep", "--k", "2:4", "--json"])
    data = json.loads(as_json.stdout)
    assert [r["k"] for r in data["results"]] == [2, 3, 4]
    assert set(data["best_k_by"]) == {"silhouette", "nmi", "ari", "purity"}
    assert all({"nmi", "ari", "purity"} <= set(r) for r in data["results"])
    shown = CliRunner().invoke(cli, ["--index", str(labelled), "cluster", "--k", "8", "-q"])
    assert shown.exit_code == 0, shown.output
    assert "NMI vs labels" in shown.stdout and "ARI vs labels" in shown.stdout
    assert "against the labels [all]: 48 single-label images in 8 classes" in shown.stdout


def test_sweep_without_labels_says_how_to_get_them(indexed_copy):
    done = CliRunner().invoke(cli, ["--index", str(indexed_copy), "sweep", "--k", "2:3", "-q"])
    assert done.exit_code == 0, done.output
    assert "no labels" in done.stdout and "idx labels import" in done.stdout
    assert "nmi" not in done.stdout.split("best k")[0]


def palette_hits(path: Path, k: int) -> int:
    """How many of the first k colours of idx's palette (analysis/palette.py, drawn at alpha
    0.85 on white) appear as pixels in the PNG."""
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(int)
    found = 0
    for i in range(k):
        rgb = np.array(to_rgb(palette.colour(i))) * 255 * 0.85 + 255 * 0.15
        found += bool((np.abs(pixels - rgb).max(axis=1) <= 3).any())
    return found


def test_project_colours_the_map_by_label(labelled, indexed, tiny_model, tmp_path):
    with Index(labelled, **tiny_model) as index:
        coloured = project(index, "pca", out=tmp_path / "a").plots["map"]
    assert palette_hits(coloured, 8) == 8  # one colour per class, each drawn
    plain = tmp_path / "plain"
    shutil.copytree(indexed, plain)
    with Index(plain, **tiny_model) as index:
        uniform = project(index, "pca", out=tmp_path / "b").plots["map"]
    assert palette_hits(uniform, 8) <= 1  # no labels: every point one colour


def test_duplicates_warns_when_one_group_holds_most_images(indexed_copy, tiny_model, caplog):
    with Index(indexed_copy, **tiny_model) as index:
        with caplog.at_level(logging.WARNING, logger="idx.ops.duplicates"):
            groups = duplicates(index, 0.3, by="clip")
        n = len(index.embeddings()[0])
        assert groups[0].size > n / 2
        message = " ".join(r.getMessage() for r in caplog.records)
        assert f"one group holds {groups[0].size} of the {n} images" in message
        suggested = float(re.search(r"--threshold (0\.\d+) \(largest group then", message)[1])
        assert suggested > 0.3
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="idx.ops.duplicates"):
            again = duplicates(index, suggested, by="clip")
        assert not again or again[0].size <= n / 2
        assert not caplog.records
