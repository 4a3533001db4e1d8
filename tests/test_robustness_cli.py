"""`idx robustness` on the command line: exit codes, stdout vs stderr, stored rows."""

from __future__ import annotations

import csv
import io
import json
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from idx.analysis import perturbations
from idx.cli.main import cli
from idx.indexer.index import Index
from idx.ops.robustness.measure import RESULT_COLUMNS


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--perturb", "hail"], "valid ones: gaussian_noise"),
        (["--severity", "0:3"], "each from 1 to 5"),
        (["inject", "--kind", "hail"], "valid kinds: gaussian_noise"),
        (["inject", "--kind", "jpeg", "--fraction", "1.5"], "at most 1"),
        (["eject", "--id", "1", "--all"], "not both"),
    ],
)
def test_bad_arguments_exit_2_with_the_valid_values(args, message):
    result = run("robustness", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stdout == ""


def test_list_shows_every_registered_perturbation():
    result = run("robustness", "list", "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == perturbations.perturbation_names()
    jpeg = next(r for r in rows if r["name"] == "jpeg")
    assert (jpeg["s1"], jpeg["s5"], jpeg["origin"]) == (25, 7, "ImageNet-C")


def test_list_gives_json_numbers_and_the_table_its_text():
    """Severity levels are numbers in JSON (lists of numbers for a tuple of parameters), the
    text the table shows otherwise."""
    lines = run("robustness", "list", "--format", "jsonl").stdout.splitlines()
    rows = {r["name"]: r for r in map(json.loads, lines)}
    assert rows["gaussian_noise"]["s1"] == 0.08 and rows["shot_noise"]["s5"] == 3
    assert rows["defocus_blur"]["s1"] == [3, 0.1] and rows["zoom_blur"]["s5"] == [1, 1.3]
    levels = [v for r in rows.values() for k, v in r.items() if k[0] == "s" and k[1:].isdigit()]
    numbers = [x for v in levels for x in (v if isinstance(v, list) else [v])]
    assert numbers and all(isinstance(x, (int, float)) for x in numbers)
    table = csv.DictReader(io.StringIO(run("robustness", "list", "--format", "csv").stdout))
    assert {r["name"]: r["s1"] for r in table}["defocus_blur"] == "(3, 0.1)"


def test_measurement_csv_and_json(indexed_copy):
    base = ["--index", str(indexed_copy), "robustness", "--perturb", "noise,blur"]
    result = run(*base, "--severity", "2", "--sample", "8", "--k", "3", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == RESULT_COLUMNS
    assert [(r["perturbation"], r["severity"]) for r in rows] == [
        ("clean", "0"),
        ("gaussian_noise", "2"),
        ("gaussian_blur", "2"),
    ]
    make = f"idx --index {indexed_copy} cluster --k K"
    assert make in result.stderr and "UNTRAINED" in result.stderr
    result = run(*base, "--severity", "1,5", "--sample", "4", "--no-plots", "--format", "json")
    report = json.loads(result.stdout)
    assert report["run_id"] == 2 and report["sample_size"] == 4 and len(report["results"]) == 5
    with Index(indexed_copy, read_only=True) as index:
        assert index.sql("SELECT count(*) FROM robustness_results")[1] == [(8,)]


def test_table_output_names_the_run_and_plots(indexed_copy):
    result = run(
        "--index", str(indexed_copy), "robustness", "--perturb", "jpeg", "--severity", "3",
        "--sample", "4", "--k", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "cos_mean" in result.stdout and "run 1: 4 images x 1 perturbations" in result.stdout
    assert "curves: " in result.stdout


def test_inject_compare_eject_round_trip(indexed_copy, monkeypatch, tmp_path):
    # injected from beside the index, named relative; ejected from elsewhere, named absolute
    monkeypatch.chdir(indexed_copy.parent)
    result = run(
        "--index",
        indexed_copy.name,
        "robustness",
        "inject",
        "--kind",
        "blank",
        "--fraction",
        "0.1",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    injected = json.loads(result.stdout)
    assert injected["n_images"] == 5 and Path(injected["folder"]).is_absolute()
    monkeypatch.chdir(tmp_path)
    base = ["--index", str(indexed_copy), "robustness"]
    result = run(*base, "compare", "--k", "3")
    assert result.exit_code == 0, result.stderr
    assert "silhouette" in result.stdout and "where the injected images land" in result.stdout
    result = run(*base, "eject", "--json")
    assert [r["removed"] for r in json.loads(result.stdout)] == [5]
    assert not Path(injected["folder"]).exists()  # its files went too
    result = run(*base, "eject")
    assert result.exit_code == 1 and "nothing injected" in result.stderr


def test_the_commands_inject_suggests_run_as_pasted(indexed_copy, monkeypatch, tmp_path):
    """Its `compare with:` and `remove with:` lines name the index (relative to the working
    folder under it, else absolute), so they run whatever IDX_INDEX says, here a folder with
    no index."""
    monkeypatch.setenv("IDX_INDEX", str(tmp_path / "no-index"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd, named, shown in (
        (indexed_copy.parent, indexed_copy.name, indexed_copy.name),
        (elsewhere, str(indexed_copy), str(indexed_copy)),
    ):
        monkeypatch.chdir(cwd)
        args = ["inject", "--kind", "blank", "--fraction", "0.05"]
        result = run("--index", named, "robustness", *args)
        assert result.exit_code == 0, result.stderr
        hints = dict(
            part.split(": ", 1)
            for line in result.stdout.splitlines()
            if line.startswith("compare with: ")
            for part in line.split("; ")
        )
        assert set(hints) == {"compare with", "remove with"}, result.stdout
        for hint in (hints["compare with"], hints["remove with"]):
            words = shlex.split(hint)
            assert words[:3] == ["idx", "--index", shown], hint
            result = run(*words[1:])
            assert result.exit_code == 0, (hint, result.stderr)
    assert not (tmp_path / "no-index").exists()
    assert "nothing injected" in run("--index", str(indexed_copy), "robustness", "eject").stderr


def test_a_sample_larger_than_the_index_is_lowered_with_a_note(indexed_copy):
    """Issue 24: --sample was capped silently (insights -k says when it lowers k)."""
    base = ["--index", str(indexed_copy), "robustness", "--perturb", "blur", "--severity", "1"]
    result = run(*base, "--sample", "500", "--no-plots", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["sample_size"] == 48
    assert "note: --sample 500 lowered to 48: the index holds 48 images of its own" in (
        result.stderr
    )
    quiet = run(*base, "--sample", "500", "--no-plots", "--json", "-q")
    assert quiet.exit_code == 0 and "note:" not in quiet.stderr, quiet.stderr
    asked = run(*base, "--sample", "8", "--no-plots", "--json")
    assert "lowered" not in asked.stderr
