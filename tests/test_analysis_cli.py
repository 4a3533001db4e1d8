"""idx project / cluster / sweep through the CLI: exit codes, stdout vs stderr, --json shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from idx.cli.main import cli
from idx.indexer.index import Index


def run(index_dir, *args):
    result = CliRunner().invoke(cli, ["--index", str(index_dir), *args])
    return result


def test_cluster_json_shape_and_plots(indexed_copy, tmp_path):
    result = run(
        indexed_copy, "cluster", "--k", "3", "--seed", "5", "--out", str(tmp_path), "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["k"] == 3 and data["seed"] == 5 and data["space"] == "embedding"
    assert data["n_images"] == 48 and sum(data["sizes"]) == 48 and data["untrained"] is True
    for key in ("silhouette", "davies_bouldin", "calinski_harabasz", "silhouette_exact"):
        assert key in data["metrics"]
    assert Path(data["plots"]["map"]).parent == tmp_path / f"cluster-{data['run_id']}"
    assert len(data["plots"]["contact_sheets"]) == 3
    assert all(
        Path(p).is_file() for p in [data["plots"]["silhouette"], *data["plots"]["contact_sheets"]]
    )
    # large enough to judge: six thumbnails of 200 px to a row (captions: tests/test_palette.py)
    assert max(Image.open(p).width for p in data["plots"]["contact_sheets"]) >= 1200
    assert "UNTRAINED" in result.stderr


def test_cluster_text_output_shows_metrics_beside_baselines_and_plot_paths(indexed_copy):
    result = run(indexed_copy, "cluster", "--k", "4", "--baseline", "--compare-clean")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "baseline: random" in out and "baseline: colour_histogram" in out
    assert "silhouette (cosine" in out and "davies-bouldin" in out and "calinski-harabasz" in out
    assert "[all]" in out and "[clean]" in out
    assert "exact over every image" in out
    paths = [line.strip() for line in out.splitlines() if line.strip().endswith(".png")]
    assert len(paths) == 2 * (2 + 4) and all(Path(p).is_file() for p in paths)


def test_compare_clean_json_has_both_runs(indexed_copy):
    result = run(indexed_copy, "cluster", "--k", "2", "--compare-clean", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"all", "clean"}
    assert data["clean"]["run_id"] == data["all"]["run_id"] + 1
    assert data["clean"]["subset"] == "clean"


def test_project_and_sweep_json(indexed_copy):
    projected = run(indexed_copy, "project", "--method", "pca", "--json")
    assert projected.exit_code == 0, projected.output
    p = json.loads(projected.stdout)
    assert p["method"] == "pca" and p["n_images"] == 48 and Path(p["plots"]["map"]).is_file()
    swept = run(indexed_copy, "sweep", "--k", "2:4", "--space", "pca", "--json")
    assert swept.exit_code == 0, swept.output
    s = json.loads(swept.stdout)
    assert [r["k"] for r in s["results"]] == [2, 3, 4]
    assert s["best_k"] in (2, 3, 4) and s["best_by"] == "silhouette"
    assert s["projection_run_id"] == p["run_id"]
    assert set(s["results"][0]) == {
        "k",
        "silhouette",
        "davies_bouldin",
        "calinski_harabasz",
        "inertia",
    }


def test_sweep_text_names_the_best_k(indexed_copy):
    result = run(indexed_copy, "sweep", "--k", "2:3")
    assert result.exit_code == 0, result.output
    assert "best k by silhouette:" in result.stdout and "metrics.png" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cluster", "--k", "1"], "k=1 is too small"),
        (["cluster", "--k", "60"], "k=60 is too large for 48 images"),
        (["sweep", "--k", "9:3"], "not a range A:B"),
        (["sweep", "--k", "2:48"], "k=48 is too large"),
    ],
)
def test_bad_arguments_exit_2_with_a_reason(indexed_copy, args, message):
    result = run(indexed_copy, *args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stdout == ""


def test_empty_index_exits_1(tmp_path):
    Index(tmp_path / "empty").close()  # an index without images (a folder without one: no index)
    for args in (["cluster", "--k", "2"], ["project"], ["sweep", "--k", "2:3"]):
        result = run(tmp_path / "empty", *args)
        assert result.exit_code == 1, result.output
        assert "has no images" in result.stderr


def test_umap_without_the_package_exits_2(indexed_copy):
    try:
        import umap  # noqa: F401
    except ImportError:
        result = run(indexed_copy, "project", "--method", "umap")
        assert result.exit_code == 2 and "umap-learn" in result.stderr
    else:
        pytest.skip("umap-learn is installed")


def test_plot_paths_are_absolute_however_the_index_is_named(indexed_copy, monkeypatch):
    """One rule for every plot path printed: absolute, whether the index was given as a relative
    folder, an absolute one, or IDX_INDEX; and --out relative too."""
    monkeypatch.chdir(indexed_copy.parent)
    relative = indexed_copy.name
    for args in (
        ["--index", relative, "sweep", "-k", "2:3"],
        ["--index", str(indexed_copy), "project", "--method", "pca"],
        ["--index", relative, "cluster", "--k", "2", "--out", "figures"],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        shown = [w for line in result.stdout.splitlines() for w in line.split() if ".png" in w]
        assert shown and all(Path(p).is_absolute() and Path(p).is_file() for p in shown), shown
    monkeypatch.setenv("IDX_INDEX", relative)
    result = CliRunner().invoke(cli, ["sweep", "-k", "2:3", "--json"])
    assert Path(json.loads(result.stdout)["plots"]["metrics"]).is_absolute()
