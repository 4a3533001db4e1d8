"""CLI contract of add/status/sql/export: exit codes, stdout vs stderr, machine-readable output."""

from __future__ import annotations

import csv
import io
import json

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from idx import config
from idx.cli.main import cli
from idx.indexer.index import Index


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_add_json_counts_and_status(images, tiny_args):
    n = len([p for p in images.rglob("*") if p.suffix in (".jpg", ".png")])
    result = run("add", images, *tiny_args, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert {
        k: report[k] for k in ("added", "unchanged", "updated", "moved", "removed", "skipped")
    } == {"added": n, "unchanged": 0, "updated": 0, "moved": 0, "removed": 0, "skipped": 0}
    assert "UNTRAINED" in report["model"]
    # where the time went: each stage measured, none more than the run, the model's time > 0
    timings = report["timings"]
    assert set(timings) == {"scan", "start", "read", "embed", "store", "store_wait"}
    assert all(0 <= t <= report["seconds"] for t in timings.values()), timings
    # (start may round to 0: a model another test loaded in this process is reused)
    assert timings["embed"] > 0 and timings["store"] > 0
    main_thread = ("scan", "start", "read", "embed", "store_wait")
    assert sum(timings[k] for k in main_thread) <= report["seconds"], timings
    status = json.loads(run("status", "--json").stdout)
    assert status["images"] == n and status["vectors"]["in_sync"] and status["health"] == "ok"
    assert status["model"]["untrained"] is True
    text = run("status").stdout
    assert f"images:    {n}" in text and "UNTRAINED" in text
    Image.new("RGB", (40, 30), (200, 30, 60)).save(images / "one more.png")
    again = run("add", images, *tiny_args).stdout
    assert "added 1," in again and "\ntime: scan " in again and "reading and decoding" in again


def test_sql_formats_and_read_only(indexed):
    csv_out = run(
        "--index",
        indexed,
        "sql",
        "SELECT format, count(*) AS n FROM images GROUP BY 1 ORDER BY 1",
        "--format",
        "csv",
    )
    assert csv_out.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(csv_out.stdout)))
    assert {r["format"] for r in rows} == {"JPEG", "PNG"}
    as_json = json.loads(
        run(
            "--index",
            indexed,
            "sql",
            "SELECT id, path FROM images ORDER BY id LIMIT 2",
            "--format",
            "json",
        ).stdout
    )
    assert list(as_json[0]) == ["id", "path"]
    table = run("--index", indexed, "sql", "SELECT count(*) AS n FROM images").stdout.splitlines()
    assert table[0].strip() == "n" and table[1].startswith("-")
    for statement in ("DELETE FROM images", "DROP TABLE images", "UPDATE images SET path = 'x'"):
        refused = run("--index", indexed, "sql", statement)
        assert refused.exit_code == 2 and "read-only" in refused.stderr
    with Index(indexed, read_only=True) as index:
        assert index.catalog.images.count() == 48
    bad = run("--index", indexed, "sql", "SELECT nope FROM images")
    assert bad.exit_code == 2 and "SQL error" in bad.stderr


def test_export_parquet_and_npy_match_the_index(indexed, tmp_path):
    with Index(indexed, read_only=True) as index:
        ids, vectors = index.embeddings()
    assert (
        run("--index", indexed, "export", tmp_path / "e.parquet", "--format", "parquet").exit_code
        == 0
    )
    rows = duckdb.sql(
        f"SELECT id, embedding FROM '{tmp_path / 'e.parquet'}' ORDER BY id"
    ).fetchall()
    assert [r[0] for r in rows] == ids.tolist()
    np.testing.assert_array_equal(np.array([r[1] for r in rows], dtype=np.float32), vectors)
    result = run("--index", indexed, "export", tmp_path / "npy", "--format", "npy", "--json")
    assert json.loads(result.stdout)["images"] == len(ids)
    np.testing.assert_array_equal(np.load(tmp_path / "npy" / "embeddings.npy"), vectors)
    np.testing.assert_array_equal(np.load(tmp_path / "npy" / "ids.npy"), ids)
    paths = json.loads((tmp_path / "npy" / "paths.json").read_text())
    assert len(paths) == len(ids) and all(p.startswith("/") for p in paths)


@pytest.mark.parametrize(
    "command",
    [
        ["cluster", "--k", "3"],
        ["project"],
        ["insights"],
        ["labels", "import", "--from-folders"],
        ["neighbors", "--all"],
        ["reindex"],
        ["robustness", "inject", "--kind", "gaussian_noise", "--fraction", "0.2"],
        ["runs", "remove", "cluster", "1"],
    ],
)
def test_a_command_that_needs_an_index_does_not_make_one_at_a_mistyped_path(tmp_path, command):
    """Only add (and openimages fetch --index) make a new index: every other command that
    writes, pointed at a folder with no index, says how to make one and leaves nothing."""
    where = tmp_path / "typo"
    result = run("--index", where, *command)
    hint = config.command(where, "add", "FOLDER")
    assert result.exit_code == 1, result.output
    assert f"no index at {where}; create one with `{hint}`" in result.stderr
    assert not where.exists()


def test_bad_arguments_exit_2_and_failures_exit_1(tmp_path, tiny_args):
    missing = run("add", tmp_path / "nope", *tiny_args)
    assert missing.exit_code == 2
    empty = run("status")
    assert empty.exit_code == 1 and "no index at" in empty.stderr and " add FOLDER" in empty.stderr
    bad_batch = run("add", tmp_path, "--batch-size", "0")
    assert bad_batch.exit_code == 2
    no_format = run("export", tmp_path / "x")
    assert no_format.exit_code == 2


def test_second_writer_gets_index_is_busy(indexed_copy, images, tiny_args):
    with Index(indexed_copy):  # holds the write lock, like a running `idx add`
        result = run("--index", indexed_copy, "add", images, *tiny_args)
    assert result.exit_code == 1
    assert "index is busy" in result.stderr and "wait for it to finish" in result.stderr


def test_no_progress_bar_when_stderr_is_not_a_terminal(images, tiny_args):
    result = run("add", images, *tiny_args)
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "note: the model has UNTRAINED random weights; similarities are not meaningful",
        "device: cpu (auto)",  # auto names the device it chose (issue 12)
    ]


def test_sql_reads_files_but_writes_nothing(indexed, tmp_path):
    """`idx sql` runs in the user's own shell: it may read files, but no statement writes
    (finding 9: it refused writes to the catalog yet wrote files with COPY ... TO)."""
    listing = tmp_path / "list.csv"
    listing.write_text("name\na\nb\n")
    out = run(
        "--index", indexed, "sql", f"SELECT count(*) AS n FROM read_csv('{listing}')", "--json"
    )
    assert out.exit_code == 0 and json.loads(out.stdout) == [{"n": 2}]
    for statement in (
        f"COPY images TO '{tmp_path / 'leak.csv'}'",
        f"COPY (SELECT 1) TO '{tmp_path / 'leak.csv'}'",
        f"EXPORT DATABASE '{tmp_path / 'dump'}'",
        f"ATTACH '{tmp_path / 'other.duckdb'}' AS o",
        "CREATE TEMP TABLE t AS SELECT 1",
        "EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1",
        "SET threads = 64",
    ):
        refused = run("--index", indexed, "sql", statement)
        assert refused.exit_code == 2 and "read-only" in refused.stderr, (statement, refused.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.csv"]
    slow = run(
        "--index",
        indexed,
        "sql",
        "SELECT count(*) FROM range(100000000000) a, range(9) b",
        "--timeout",
        "0.5",
    )
    assert slow.exit_code == 2 and "time limit of 0.5 s" in slow.stderr


def test_tables_print_no_negative_zero(indexed):
    """Issue 24: an entropy of -1e-17 printed as -0.0000."""
    out = run("--index", indexed, "sql", "SELECT -0.0::DOUBLE AS z, -0.00001::DOUBLE AS t")
    assert out.exit_code == 0 and out.stdout.splitlines()[2].split() == ["0.0000", "0.0000"]


def test_quiet_leaves_out_notes_on_every_command_that_has_them(indexed, tiny_args):
    """Issue 24: -q was missing on search, sql, status, duplicates and robustness compare."""
    loud = run("--index", indexed, "search", "--text", "red circles", "-k", "2", *tiny_args)
    assert loud.exit_code == 0 and "note: the model has UNTRAINED" in loud.stderr
    for args in (
        ["search", "--text", "red circles", "-k", "2", *tiny_args],
        ["sql", "SELECT 1 AS one"],
        ["status"],
        ["duplicates", "--threshold", "0.999"],
    ):
        quiet = run("--index", indexed, *args, "-q")
        assert quiet.exit_code == 0 and "note:" not in quiet.stderr, (args, quiet.stderr)
        assert "device:" not in quiet.stderr, (args, quiet.stderr)
    assert run("--index", indexed, "robustness", "compare", "--help").stdout.count("-q") >= 1


def test_a_folder_without_images_says_what_it_holds_and_is_not_recorded(tmp_path, tiny_args):
    """Issue 24: `add` of a folder with no image said only 'added 0' and recorded the folder;
    status then read `images: 0 (0.0 MB; )` and `health: attention`. The folder is fine, so
    add still exits 0, with a warning that says what it found."""
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("add", empty, *tiny_args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("added 0,")
    assert f"warning: no image files in {empty}: it holds no files; idx reads JPEG, PNG" in (
        result.stderr
    )
    status = json.loads(run("status", "--json").stdout)
    assert status["folders"] == {} and status["vectors"]["in_sync"]
    assert status["health"] == "empty" and " add FOLDER`" in status["problems"][0]
    text = run("status").stdout
    assert "images:    0\n" in text and "MB; )" not in text and "folder:" not in text
    assert "health:    empty\n" in text

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("a")
    (notes / "b.md").write_text("b")
    (notes / "c.txt").write_text("c")
    Image.new("RGB", (8, 8)).save(notes / ".hidden.png")
    result = run("add", notes, *tiny_args, "--json", "-q")
    assert result.exit_code == 0, result.stderr
    (found,) = json.loads(result.stdout)["empty_folders"]
    assert (found["folder"], found["files"], found["left_out"]) == (str(notes), 3, 1)
    assert found["extensions"] == {".txt": 2, ".md": 1}
    assert (
        "it holds 3 files, none an image (.txt 2, .md 1); 1 more left out as hidden "
        "(--hidden takes them)" in result.stderr
    )
    assert "added 1," in run("add", notes, "--hidden").stdout  # now it holds an image
    assert list(json.loads(run("status", "--json").stdout)["folders"]) == [str(notes)]


def test_a_folder_with_images_beside_an_empty_one_is_added_and_the_empty_one_named(
    images, tmp_path, tiny_args
):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("add", images, empty, *tiny_args)
    assert result.exit_code == 0, result.stderr
    assert "added 0," not in result.stdout
    assert result.stderr.count("warning: no image files in") == 1 and str(empty) in result.stderr
    status = json.loads(run("status", "--json").stdout)
    assert list(status["folders"]) == [str(images)] and status["health"] == "ok"


def test_quiet_on_a_command_with_progress_also_leaves_out_notes(indexed, tiny_args):
    """-q on add/neighbors/robustness/insights left their notes (issue 24's loose ends)."""
    loud = run("--index", indexed, "neighbors", "1", "-k", "2")
    assert loud.exit_code == 0 and "note: the model has UNTRAINED" in loud.stderr
    quiet = run("--index", indexed, "neighbors", "1", "-k", "2", "-q")
    assert quiet.exit_code == 0 and "note:" not in quiet.stderr, quiet.stderr
