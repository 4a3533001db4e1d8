"""Label files are checked before anything is written, and every import can be undone exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from idx.cli.main import cli
from idx.indexer.index import Index

TABLES = ("labels", "classes", "label_imports", "label_rows", "class_rows")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _snapshot(index_dir: Path, tables=TABLES) -> dict[str, list[tuple]]:
    with Index(index_dir, read_only=True) as index:
        return {t: sorted(index.sql(f"SELECT * FROM {t}")[1], key=repr) for t in tables}


@pytest.fixture
def labelled(indexed_copy: Path) -> dict[str, Path]:
    """An index whose images are named <category>_<nnn>, and Open Images style files for it."""
    with Index(indexed_copy, read_only=True) as index:
        stems = sorted(Path(p).stem for p in index.catalog.images.all_paths().values())
    folder = indexed_copy.parent
    classes = _write(
        folder / "classes.csv", ["/m/sun,Sunset", "/m/red,Red circle", "/m/blue,Blue square"]
    )
    rows = ["ImageID,Source,LabelName,Confidence"]
    for stem in stems:
        rows.append(f"{stem},verification,/m/{stem.split('_')[0][:4]},1")
    labels = _write(folder / "image-labels.csv", rows)
    return {"index": indexed_copy, "classes": classes, "labels": labels, "stems": stems}


def _refused(index_dir: Path, *args: str, match: str) -> None:
    before = _snapshot(index_dir)
    result = run("--index", index_dir, "labels", "import", *args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert match in result.stderr and "nothing was imported" in result.stderr
    assert _snapshot(index_dir) == before


def test_wrong_files_are_refused_and_change_nothing(labelled, tmp_path):
    index_dir = labelled["index"]
    assert (
        run("--index", index_dir, "labels", "import", "--classes", labelled["classes"]).exit_code
        == 0
    )
    # A label file given as the class file: its header says so.
    _refused(index_dir, "--classes", labelled["labels"], match="is a label file's")
    # The same without a header: its keys are the ids of indexed images, not label names.
    headerless = _write(tmp_path / "ids.csv", [f"{s},{s.split('_')[0]}" for s in labelled["stems"]])
    _refused(index_dir, "--classes", headerless, match="ids of indexed images")
    wide = _write(tmp_path / "wide.csv", ["/m/a,Apple,extra"])
    _refused(index_dir, "--classes", wide, match="expected two columns")
    # A plain image,label CSV given as Open Images labels.
    plain = _write(tmp_path / "plain.csv", ["image,label", f"{labelled['stems'][0]},apple"])
    _refused(index_dir, "--labels", plain, match="use --csv")
    # A label file for other images: no id matches an indexed image.
    other = _write(
        tmp_path / "other.csv", ["ImageID,Source,LabelName,Confidence", "0001eeaf4aed83f9,x,/m/a,1"]
    )
    _refused(index_dir, "--labels", other, match="none of its 1 image ids")


def test_dry_run_counts_and_writes_nothing(labelled):
    index_dir = labelled["index"]
    before = _snapshot(index_dir)
    result = run(
        "--index",
        index_dir,
        "labels",
        "import",
        "--labels",
        labelled["labels"],
        "--dry-run",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)["imports"][0]
    assert report["dry_run"] and report["imported"] == len(labelled["stems"])
    assert "nothing was written" in result.stderr
    assert _snapshot(index_dir) == before


def test_import_then_remove_restores_the_label_tables_exactly(labelled, tmp_path):
    index_dir = labelled["index"]
    first = tmp_path / "first.csv"
    stem = labelled["stems"][0]
    _write(first, ["ImageID,Source,LabelName,Confidence", f"{stem},verification,/m/sun,1"])
    assert (
        run(
            "--index",
            index_dir,
            "labels",
            "import",
            "--classes",
            labelled["classes"],
            "--labels",
            first,
        ).exit_code
        == 0
    )
    before = _snapshot(index_dir)
    # A later import overlaps the first: it says the same label is verified absent.
    result = run(
        "--index",
        index_dir,
        "labels",
        "import",
        "--labels",
        labelled["labels"],
        "--classes",
        _write(tmp_path / "more.csv", ["/m/sun,Dusk", "/m/gree,Green"]),
    )
    assert result.exit_code == 0, result.stderr
    overlap = _write(
        tmp_path / "overlap.csv",
        ["ImageID,Source,LabelName,Confidence", f"{stem},verification,/m/sun,0"],
    )
    assert run("--index", index_dir, "labels", "import", "--labels", overlap).exit_code == 0
    with Index(index_dir, read_only=True) as index:
        assert index.sql(
            f"SELECT confidence FROM labels WHERE label_name = '/m/sun' AND image_id = "
            f"(SELECT id FROM images WHERE path LIKE '%/{stem}.%')"
        )[1] == [(0.0,)]
        assert index.sql("SELECT display_name FROM classes WHERE label_name = '/m/sun'")[1] == [
            ("Dusk",)
        ]
    listed = json.loads(run("--index", index_dir, "labels", "list", "--imports", "--json").stdout)
    assert [i["name"] for i in listed] == [
        "classes.csv",
        "first.csv",
        "more.csv",
        "image-labels.csv",
        "overlap.csv",
    ]
    for name in ("overlap.csv", "image-labels.csv", "more.csv"):
        removed = run("--index", index_dir, "labels", "remove", "--source", name, "--json")
        assert removed.exit_code == 0, removed.stderr
    assert _snapshot(index_dir) == before
    unknown = run("--index", index_dir, "labels", "remove", "--source", "nope.csv")
    assert unknown.exit_code == 1 and "first.csv" in unknown.stderr


def test_reimporting_under_the_same_name_replaces_it(labelled):
    index_dir = labelled["index"]
    for _ in range(2):
        assert (
            run("--index", index_dir, "labels", "import", "--labels", labelled["labels"]).exit_code
            == 0
        )
    imports = json.loads(run("--index", index_dir, "labels", "list", "--imports", "--json").stdout)
    assert [(i["name"], i["label_rows"]) for i in imports] == [
        ("image-labels.csv", len(labelled["stems"]))
    ]


def test_few_matching_images_warn_with_the_figures(labelled, tmp_path):
    stem = labelled["stems"][0]
    few = _write(tmp_path / "few.csv", ["ImageID,Source,LabelName,Confidence", f"{stem},v,/m/x,1"])
    result = run("--index", labelled["index"], "labels", "import", "--labels", few, "-q")
    assert result.exit_code == 0
    n = len(labelled["stems"])
    assert f"only 1 of the {n} indexed images" in result.stderr
    assert f"idx --index {labelled['index']} labels remove --source few.csv" in result.stderr
