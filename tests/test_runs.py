"""Runs are first-class: `idx runs` lists every stored run with a headline figure, `idx runs show`
prints one as its command did, `idx runs remove` deletes one with its rows and plots (not one
that others were made from, unless asked), and `--show` on a command reads a stored run instead
of making a new one."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from idx.cli.main import cli
from idx.cli.runs import RENDER
from idx.indexer.catalog import Catalog
from idx.indexer.catalog.runs import KINDS, RunKind
from idx.indexer.index import Index
from idx.ops import runs as ops_runs


def run(index_dir, *args):
    return CliRunner().invoke(cli, ["--index", str(index_dir), *map(str, args)])


def ok(index_dir, *args):
    result = run(index_dir, *args)
    assert result.exit_code == 0, result.output
    return result


def count(index_dir, table: str, where: str = "") -> int:
    found = ok(index_dir, "sql", f"SELECT count(*) AS n FROM {table} {where}", "--json")
    return json.loads(found.stdout)[0]["n"]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, indexed) -> dict:
    """A labelled copy of `indexed` with a projection, a clustering and an insight run, and what
    each command printed."""
    index_dir = tmp_path_factory.mktemp("runs") / "index"
    shutil.copytree(indexed, index_dir)
    ok(index_dir, "labels", "import", "--from-folders")
    return {
        "dir": index_dir,
        "project": ok(index_dir, "project", "--method", "pca", "--json").stdout,
        "cluster": ok(index_dir, "cluster", "--k", 3, "-q").stdout,
        "insights": ok(index_dir, "insights", "-k", 5, "-q").stdout,
    }


def test_every_run_kind_has_a_run_type_and_a_way_to_print(monkeypatch):
    assert list(ops_runs.registry()) == list(KINDS)
    unprinted = set(KINDS) - set(RENDER)
    assert not unprinted, f"add how `idx runs show` prints {unprinted} to idx.cli.runs.RENDER"
    assert set(RENDER) <= set(KINDS)
    monkeypatch.setitem(KINDS, "embedding_probe", RunKind("probe_runs", "idx probe", {}))
    with pytest.raises(LookupError, match="embedding_probe .* has no RunType: add one to the RUNS"):
        ops_runs.registry()


def test_what_runs_refer_to_are_columns_naming_run_kinds(tmp_path):
    catalog = Catalog(tmp_path / "idx")
    try:
        for kind in KINDS.values():
            columns = {r[0] for r in catalog.rows(f"DESCRIBE {kind.table}")}
            assert set(kind.refers) <= columns, kind.table
            assert set(kind.refers.values()) <= set(KINDS)
    finally:
        catalog.close()


def test_list_shows_each_run_newest_first_with_its_headline(analysed):
    listed = json.loads(ok(analysed["dir"], "runs", "--json").stdout)
    assert [(r["kind"], r["id"]) for r in listed] == [
        ("insight", 1),
        ("cluster", 1),
        ("projection", 1),
    ]
    insight, cluster, projection = listed
    metrics = json.loads(ok(analysed["dir"], "runs", "show", "cluster", "--json").stdout)["metrics"]
    assert cluster["headline"] == f"silhouette {metrics['silhouette']:.4f}"
    assert cluster["parameters"] == "k=3 kmeans on embedding, seed 0, 48 images"
    assert projection["headline"] == "PCA map" and projection["command"] == "idx project"
    knn = json.loads(ok(analysed["dir"], "runs", "show", "insight", "--json").stdout)
    assert insight["headline"] == f"kNN accuracy {knn['metrics']['knn_accuracy']:.4f}"
    assert insight["parameters"].startswith("k_nn=5, cluster run 1, 48 labelled images")
    table = ok(analysed["dir"], "runs", "--kind", "cluster").stdout.splitlines()
    assert table[0].split() == ["kind", "id", "created_at", "parameters", "headline"]
    assert len(table) == 3 and table[2].startswith("cluster  1 ")


def test_show_prints_what_the_command_printed(analysed):
    index_dir = analysed["dir"]
    assert ok(index_dir, "runs", "show", "cluster", 1).stdout == analysed["cluster"]
    assert ok(index_dir, "runs", "show", "insight").stdout == analysed["insights"]
    shown = ok(index_dir, "runs", "show", "projection", "--json").stdout
    assert json.loads(shown) == json.loads(analysed["project"])
    assert "plots [all]:" in analysed["cluster"] and "plot class_bars:" in analysed["insights"]
    missing = run(index_dir, "runs", "show", "sweep")
    make = f"idx --index {index_dir} sweep"
    assert missing.exit_code == 1 and f"no sweep runs yet; run `{make}` first" in missing.stderr
    unknown = run(index_dir, "runs", "show", "cluster", 9)
    assert unknown.exit_code == 1 and f"`idx --index {index_dir} runs --kind cluster`" in (
        unknown.stderr
    )


def test_hints_from_the_catalog_name_the_index_and_run_as_pasted(indexed_copy, monkeypatch):
    """An error's next step names the index it was about (--index), so pasted it runs there,
    whatever IDX_INDEX says: here a folder with no index."""
    monkeypatch.setenv("IDX_INDEX", str(indexed_copy.parent / "no-index"))
    monkeypatch.chdir(indexed_copy.parent)
    named = indexed_copy.name  # under the working folder: the hints name it relative

    def paste(failed, hint_before: str) -> str:
        """Run the command quoted in `failed`'s error right after `hint_before`; its output."""
        assert failed.exit_code == 1, failed.output
        hint = failed.stderr.split(hint_before + " `", 1)[1].split("`", 1)[0]
        words = shlex.split(hint)
        assert words[:3] == ["idx", "--index", named], hint
        result = CliRunner().invoke(cli, words[1:])
        assert result.exit_code == 0, (hint, result.output)
        return result.stdout

    assert "k=8" in paste(run(named, "neighbors", 1, "--cluster", 0), "no clustering yet; run")
    assert ok(named, "neighbors", 1, "--cluster", 0, "-k", 2).stdout
    listed = paste(run(named, "runs", "show", "cluster", 9), "list them with")
    assert listed.splitlines()[2].startswith("cluster  1 ")
    assert not (indexed_copy.parent / "no-index").exists()


def test_show_flag_reads_the_stored_run_and_makes_none(analysed, tmp_path):
    index_dir = tmp_path / "index"
    shutil.copytree(analysed["dir"], index_dir)
    printed = {
        name: analysed[name].replace(str(analysed["dir"]), str(index_dir))
        for name in ("project", "cluster", "insights")
    }
    before = {t: count(index_dir, t) for t in ("cluster_runs", "insight_runs", "projection_runs")}
    shown = ok(index_dir, "cluster", "--k", 3, "--show")
    assert shown.stdout == printed["cluster"] and "computing" not in shown.stderr
    pca = ok(index_dir, "project", "--method", "pca", "--show", "--json").stdout
    assert json.loads(pca) == json.loads(printed["project"])
    pairs = ok(index_dir, "insights", "-k", 5, "--show", "pairs")
    assert pairs.stdout.split()[:2] == ["label_a", "label_b"]
    assert ok(index_dir, "insights", "-k", 5, "--show", "all").stdout == printed["insights"]
    assert {t: count(index_dir, t) for t in before} == before
    # other parameters, or asked to: a new run
    other = ok(index_dir, "cluster", "--k", 4, "--show")
    assert "no stored cluster run with these parameters: computing one" in other.stderr
    assert "cluster run 2 [all]: k=4" in other.stdout
    ok(index_dir, "insights", "-k", 5, "--show", "pairs", "--recompute", "--no-probe", "-q")
    assert count(index_dir, "cluster_runs") == count(index_dir, "insight_runs") == 2


def test_sweep_and_robustness_show_as_computed(indexed_copy):
    swept = ok(indexed_copy, "sweep", "--k", "2:3", "-q").stdout
    assert ok(indexed_copy, "sweep", "--k", "2:3", "--show").stdout == swept
    assert ok(indexed_copy, "runs", "show", "sweep").stdout == swept
    measure = ("robustness", "--perturb", "noise,blur", "--severity", "1,2", "--sample", 6)
    measured = ok(indexed_copy, *measure, "-k", 3, "-q").stdout
    assert ok(indexed_copy, *measure, "-k", 3, "--show").stdout == measured
    assert ok(indexed_copy, "runs", "show", "robustness").stdout == measured
    assert count(indexed_copy, "sweep_runs") == count(indexed_copy, "robustness_runs") == 1
    listed = json.loads(ok(indexed_copy, "runs", "--json").stdout)
    lowest = listed[0]["headline"]
    assert listed[0]["kind"] == "robustness" and lowest.startswith("lowest mean cosine 0.")
    assert listed[1]["headline"].startswith("best k ") and listed[1]["parameters"].startswith(
        "k 2:3"
    )


def test_remove_deletes_rows_and_plots_and_keeps_what_others_use(analysed, tmp_path):
    index_dir = tmp_path / "index"
    shutil.copytree(analysed["dir"], index_dir)
    plots = index_dir / "plots"
    assert (plots / "cluster-1" / "map.png").is_file()
    assert len(list(plots.glob("insights-1-*.png"))) >= 3
    refused = run(index_dir, "runs", "remove", "cluster", 1)
    assert refused.exit_code == 1 and refused.stdout == ""
    assert "cluster run 1 is used by insight run 1 (made from cluster run 1)" in refused.stderr
    assert "--with-dependents" in refused.stderr and count(index_dir, "cluster_runs") == 1

    with Index(index_dir):  # another writer holds it
        busy = run(index_dir, "runs", "remove", "projection", 1)
    assert busy.exit_code == 1 and "index is busy" in busy.stderr

    removed = ok(index_dir, "runs", "remove", "cluster", 1, "--with-dependents", "--json")
    gone = json.loads(removed.stdout)
    assert [(r["kind"], r["id"]) for r in gone] == [("cluster", 1), ("insight", 1)]
    assert gone[0]["rows"] == {"cluster_runs": 1, "clusters": 48, "cluster_centers": 3}
    assert gone[1]["dependent_of"] == {"kind": "cluster", "id": 1}
    for table in ("cluster_runs", "clusters", "cluster_centers", "insight_runs", "class_insights"):
        assert count(index_dir, table) == 0, table
    assert not (plots / "cluster-1").exists() and not list(plots.glob("insights-1-*"))
    said = ok(index_dir, "runs", "remove", "projection", 1).stdout
    assert said.startswith("removed projection run 1: 1 from projection_runs, 48 from projections")
    assert f"  removed {plots / 'projection-1'}" in said and not (plots / "projection-1").exists()
    assert json.loads(ok(index_dir, "runs", "--json").stdout) == []
    assert count(index_dir, "labels") > 0 and count(index_dir, "images") == 48


def test_remove_an_injection_takes_its_images(indexed_copy):
    ok(indexed_copy, "robustness", "inject", "--kind", "blank", "--fraction", "0.1", "-q")
    added = count(indexed_copy, "images") - 48
    listed = json.loads(ok(indexed_copy, "runs", "--kind", "injection", "--json").stdout)
    assert listed[0]["headline"] == f"{added} images added" and added > 0
    removed = json.loads(ok(indexed_copy, "runs", "remove", "injection", 1, "--json").stdout)
    assert removed[0]["rows"] == {"injections": 1, "images": added}
    assert count(indexed_copy, "images") == 48 and count(indexed_copy, "injections") == 0
    assert not (Path(indexed_copy) / "injected" / "1").exists()
