"""The analysis API on a real index (tiny random model): stored runs match returned arrays."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from idx import config
from idx.analysis.clustering import nearest_centres
from idx.analysis.metrics import silhouette
from idx.errors import EmptyIndexError, NotFoundError, UsageError
from idx.indexer.catalog import Catalog
from idx.indexer.catalog.runs import KINDS
from idx.indexer.index import Index
from idx.ops.maps.clustering import cluster, load_clusters
from idx.ops.maps.projection import load_projection, project
from idx.ops.maps.sweep import parse_k_range, sweep


def _count(index: Index, sql: str) -> int:
    return index.catalog.con.execute(sql).fetchall()[0][0]


def test_cluster_rows_centres_and_metrics_are_stored_as_returned(indexed_copy, tmp_path):
    with Index(indexed_copy) as index:
        ids, vectors = index.embeddings()
        r = cluster(index, 4, seed=3, out=tmp_path / "plots")
        rows = index.catalog.con.execute(
            "SELECT image_id, cluster, distance FROM clusters WHERE run_id = ? ORDER BY image_id",
            [r.run_id],
        ).fetchall()
        run = index.catalog.con.execute(
            "SELECT k, method, space, seed, metrics, n_images, projection_run_id, subset, model "
            "FROM cluster_runs WHERE id = ?",
            [r.run_id],
        ).fetchall()[0]
        loaded = load_clusters(index)  # the latest run by default
    np.testing.assert_array_equal(r.ids, ids)
    assert [row[0] for row in rows] == ids.tolist()
    assert [row[1] for row in rows] == r.labels.tolist()
    np.testing.assert_allclose([row[2] for row in rows], r.distances)
    assert run[:4] == (4, "kmeans", "embedding", 3)
    assert json.loads(run[4]) == json.loads(json.dumps(r.metrics))
    assert run[5:8] == (len(ids), None, "all")
    assert "UNTRAINED" in run[8] and r.untrained
    assert loaded.run_id == r.run_id
    np.testing.assert_array_equal(loaded.labels, r.labels)
    np.testing.assert_allclose(loaded.centers, r.centers)
    # the stored centres reassign every image to its stored cluster (what robustness relies on)
    np.testing.assert_array_equal(nearest_centres(vectors, loaded.centers)[0], r.labels)
    assert r.metrics["silhouette"] == pytest.approx(silhouette(vectors, r.labels).score)
    assert r.metrics["sizes"] == np.bincount(r.labels).tolist() and sum(r.sizes) == len(ids)
    assert r.plots["map"].parent == tmp_path / "plots" / f"cluster-{r.run_id}"
    assert len(r.plots["contact_sheets"]) == 4
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in r.plots["contact_sheets"])


def test_same_seed_same_data_same_result_and_runs_are_kept(indexed_copy):
    with Index(indexed_copy) as index:
        a = cluster(index, 5, seed=11, plot=False)
        b = cluster(index, 5, seed=11, plot=False)
        runs = _count(index, "SELECT count(*) FROM cluster_runs")
    assert b.run_id == a.run_id + 1 and runs == 2
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centers, b.centers)
    assert a.metrics == b.metrics


def test_synthetic_categories_cluster_better_than_random_vectors(indexed_copy):
    with Index(indexed_copy) as index:
        r = cluster(index, 8, baseline=True, plot=False)
    base = r.metrics["baselines"]
    assert set(base) == {"random", "colour_histogram", "thumbnail_pixels"}
    assert base["random"]["dim"] == 64 and base["thumbnail_pixels"]["dim"] == 8 * 8 * 3
    # Even untrained, the tiny model separates the 8 drawn categories far better than noise.
    assert r.metrics["silhouette"] > base["random"]["silhouette"] + 0.2


def test_projection_is_stored_and_tsne_space_reuses_the_latest_map(indexed_copy):
    with Index(indexed_copy) as index:
        p = project(index, "tsne", seed=2, plot=False)
        stored = load_projection(index)
        c1 = cluster(index, 3, space="tsne", plot=False)
        c2 = cluster(index, 3, space="pca", plot=False)  # no PCA map yet: one is computed
        c3 = cluster(index, 3, space="pca", plot=False)
        maps = _count(index, "SELECT count(*) FROM projection_runs")
    np.testing.assert_array_equal(stored.ids, p.ids)
    np.testing.assert_allclose(stored.xy, p.xy)
    assert stored.params["perplexity"] == pytest.approx(47 / 3)
    assert c1.projection_run_id == p.run_id and c1.centers.shape == (3, 2)
    assert c1.metrics["map"]["silhouette_metric"] == "euclidean"
    assert c2.projection_run_id == c3.projection_run_id != p.run_id and maps == 2
    # the map was clustered: the stored distances are 2-D distances to 2-D centres
    xy = stored.xy
    d = np.linalg.norm(xy - c1.centers[c1.labels], axis=1)
    np.testing.assert_allclose(c1.distances, d, rtol=1e-4, atol=1e-4)


def test_compare_clean_leaves_out_images_of_another_source(indexed_copy):
    with Index(indexed_copy) as index:
        index.catalog.con.execute(
            "INSERT INTO images (path, root, sha256, bytes, mtime_ns, width, height, format, "
            "source) SELECT path || '#blur', root, sha256, bytes, mtime_ns, width, height, format, "
            "'perturbed' FROM images ORDER BY id LIMIT 5"
        )
        everything = cluster(index, 4, subset="all", plot=False)
        clean = cluster(index, 4, subset="clean", plot=False)
        subsets = index.catalog.con.execute(
            "SELECT subset, n_images FROM cluster_runs ORDER BY id"
        ).fetchall()
    assert len(everything.ids) == 53 and len(clean.ids) == 48
    assert subsets == [("all", 53), ("clean", 48)]


def test_sweep_stores_each_k_and_names_the_best_by_silhouette(indexed_copy, tmp_path):
    with Index(indexed_copy) as index:
        s = sweep(index, parse_k_range("2:5"), seed=1, out=tmp_path)
        one = cluster(index, 4, seed=1, plot=False)
        rows = index.catalog.con.execute(
            "SELECT k, silhouette FROM sweep_results WHERE run_id = ? ORDER BY k", [s.run_id]
        ).fetchall()
        best, inertia = index.catalog.con.execute(
            "SELECT best_k, inertia FROM sweep_runs WHERE id = ?", [s.run_id]
        ).fetchall()[0]
    assert [r[0] for r in rows] == [2, 3, 4, 5] == s.ks
    assert [r[1] for r in rows] == pytest.approx(s.curves["silhouette"])
    assert best == s.best_k == s.ks[int(np.argmax(s.curves["silhouette"]))]
    assert s.curves["silhouette"][2] == pytest.approx(one.metrics["silhouette"])
    assert json.loads(inertia) == {str(k): v for k, v in zip(s.ks, s.curves["inertia"])}
    assert s.curves["inertia"][2] == pytest.approx(one.metrics["inertia"])
    assert s.plots["metrics"].read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("text", ["5:2", "a:b", "2:3:4", ""])
def test_bad_k_ranges_are_refused(text):
    with pytest.raises(UsageError, match="A:B"):
        parse_k_range(text)


def test_empty_index_and_bad_k_get_clear_errors(indexed_copy, tmp_path):
    with Index(tmp_path / "empty") as empty:
        for call in (
            lambda: cluster(empty, 2),
            lambda: project(empty),
            lambda: sweep(empty, [2, 3]),
        ):
            hint = config.command(tmp_path / "empty", "add", "FOLDER")  # names this index
            with pytest.raises(EmptyIndexError, match=re.escape(f"add some with `{hint}`")):
                call()
        with pytest.raises(NotFoundError, match="no cluster runs"):
            load_clusters(empty)
    with Index(indexed_copy) as index:
        with pytest.raises(UsageError, match="k=48 is too large for 48 images"):
            cluster(index, 48)
        with pytest.raises(UsageError, match="too small"):
            sweep(index, [1, 2])
        with pytest.raises(UsageError, match="--space"):
            cluster(index, 3, space="tnse")
        assert _count(index, "SELECT count(*) FROM cluster_runs") == 0


def test_deleting_an_image_deletes_its_analysis_rows(indexed_copy):
    with Index(indexed_copy) as index:
        project(index, "pca", plot=False)
        r = cluster(index, 3, plot=False)
        gone = int(r.ids[0])
        with index.catalog.transaction():
            index.catalog.images.delete([gone])
        for table in ("clusters", "projections"):
            assert _count(index, f"SELECT count(*) FROM {table} WHERE image_id = {gone}") == 0


def test_run_ids_continue_past_runs_written_without_the_sequence(indexed_copy):
    with Index(indexed_copy) as index:
        index.catalog.con.execute("INSERT INTO cluster_runs (id, k, space) VALUES (7, 4, 'x')")
        assert cluster(index, 2, plot=False).run_id == 8
        assert load_clusters(index).run_id == 8


def test_run_kinds_name_every_table_the_migrations_made_for_runs(tmp_path):
    catalog = Catalog(tmp_path / "idx")
    try:
        tables = {
            name
            for (name,) in catalog.rows(
                "SELECT DISTINCT table_name FROM information_schema.columns "
                "WHERE column_name = 'run_id' AND table_schema = 'main' "
                "AND table_name IN (SELECT table_name FROM information_schema.tables "
                "WHERE table_type = 'BASE TABLE')"
            )
        }
        stored = {table for kind in KINDS.values() for table in kind.stores}
        assert stored == tables
        for kind in KINDS.values():
            assert catalog.value(f"SELECT count(*) FROM {kind.table}") == 0
            for table, order in kind.stores.items():  # each default order names its columns
                columns = [r[0] for r in catalog.rows(f"DESCRIBE {table}")]
                assert set(order) <= set(columns), table
    finally:
        catalog.close()


def test_ops_may_name_only_run_kinds_their_tables_and_columns(indexed_copy):
    with Index(indexed_copy) as index:
        runs = index.catalog.runs
        r = cluster(index, 2, plot=False)
        with pytest.raises(ValueError, match="run kind 'clusters' is unknown; the kinds are proj"):
            runs.latest("clusters")
        with pytest.raises(ValueError, match="store no rows in 'projections'.*clusters, cluster_c"):
            runs.rows("cluster", "projections", r.run_id)
        with pytest.raises(ValueError, match="no column 'id; DROP TABLE images'.*image_id"):
            runs.rows("cluster", "clusters", r.run_id, ["id; DROP TABLE images"])
        with pytest.raises(ValueError, match="clusters has no column 'image'"):
            runs.rows("cluster", "clusters", r.run_id, order_by=["-image"])
        with pytest.raises(ValueError, match="cluster_runs has no column 'kk'"):
            runs.update("cluster", r.run_id, {"kk": 3})
        with pytest.raises(ValueError, match="cluster_centers has no column 'centre'"):
            runs.add_rows("cluster", "cluster_centers", r.run_id, {"centre": [1]})
        with pytest.raises(TypeError, match="give a list of names"):
            runs.rows("cluster", "clusters", r.run_id, "image_id")
        table = runs.rows("cluster", "clusters", r.run_id, order_by=["-cluster", "image_id"])
    assert table.column_names == ["image_id", "cluster", "distance"]  # every column but run_id
    pairs = list(zip(table.column("cluster").to_pylist(), table.column("image_id").to_pylist()))
    assert pairs == sorted(pairs, key=lambda p: (-p[0], p[1]))
