"""Label files in every shape users bring, imported with exact counts; re-import changes nothing."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from idx.cli.main import cli
from idx.errors import NotFoundError, UsageError
from idx.indexer.index import Index
from idx.ops.labels import imports as labels_api


def _write(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.write_text(newline.join(lines) + newline)
    return path


def _stems(index: Index) -> dict[str, int]:
    _, rows = index.sql("SELECT parse_filename(path, true), id FROM images ORDER BY id")
    return dict(rows)


def _labels(index: Index, source: str | None = None) -> set[tuple]:
    where = f"WHERE l.source = '{source}'" if source else ""
    _, rows = index.sql(
        "SELECT parse_filename(i.path, true), l.label_name, l.source, round(l.confidence::DOUBLE, 3) "
        f"FROM labels l JOIN images i ON i.id = l.image_id {where}"
    )
    return set(rows)


def test_class_files_with_and_without_header(indexed_copy, tmp_path):
    bare = _write(tmp_path / "bare.csv", ["/m/01,Apple", "/m/02,Hot dog", "/m/01,Apple"], "\r\n")
    headed = _write(tmp_path / "v7.csv", ["LabelName,DisplayName", "/m/02,Hotdog", '/m/03,"A, b"'])
    with Index(indexed_copy) as index:
        first = labels_api.import_classes(index, bare)
        assert (first.rows, first.imported, first.new, first.duplicate_rows) == (3, 2, 2, 0 + 1)
        second = labels_api.import_classes(index, headed)
        assert (second.rows, second.imported, second.new) == (2, 2, 1)
        _, rows = index.sql("SELECT * FROM classes ORDER BY 1")
    assert rows == [("/m/01", "Apple"), ("/m/02", "Hotdog"), ("/m/03", "A, b")]


def test_open_images_labels_negatives_duplicates_and_unknown_images(indexed_copy, tmp_path):
    f = _write(
        tmp_path / "image-labels.csv",
        [
            "ImageID,Source,LabelName,Confidence",
            "red_circles_000,verification,/m/red,1",
            "red_circles_000,verification,/m/red,1",  # duplicate row
            "red_circles_000,verification,/m/blue,0",  # verified absent
            "red_circles_001,crowdsource-verified,/m/red,1",
            "red_circles_001,machine,/m/red,0.7",  # same label, another source: its own row
            "blue_squares_000,verification,/m/blue,1",
            "0123456789abcdef,verification,/m/red,1",  # image not in the index
            "0123456789abcdef,verification,/m/blue,0",
            "fedcba9876543210,verification,/m/red,1",
        ],
        "\r\n",
    )
    with Index(indexed_copy) as index:
        r = labels_api.import_labels(index, f)
        assert (r.rows, r.imported, r.new, r.duplicate_rows) == (9, 5, 5, 1)
        assert (r.positives, r.negatives) == (4, 1)
        assert (r.unknown_image_rows, r.unknown_images) == (3, 2)
        assert r.unknown_classes == 2  # no class file imported yet
        assert _labels(index) == {
            ("red_circles_000", "/m/red", "verification", 1.0),
            ("red_circles_000", "/m/blue", "verification", 0.0),
            ("red_circles_001", "/m/red", "crowdsource-verified", 1.0),
            ("red_circles_001", "/m/red", "machine", 0.7),
            ("blue_squares_000", "/m/blue", "verification", 1.0),
        }
        events = []
        again = labels_api.import_labels(index, f, progress=events.append)
        assert (again.imported, again.new) == (5, 0)
        assert (events[-1].phase, events[-1].done, events[-1].total) == (
            "read image-labels.csv",
            100,
            100,
        )
        assert index.sql("SELECT count(*) FROM labels")[1] == [(5,)]
        labels_api.import_classes(index, _write(tmp_path / "c.csv", ["/m/red,Red thing"]))
        _, names = index.sql("SELECT DISTINCT label_name, display_name FROM labels ORDER BY 1")
        assert names == [("/m/blue", "/m/blue"), ("/m/red", "Red thing")]
        columns, rows = labels_api.list_labels(index)
    listed = {r[0]: dict(zip(columns, r)) for r in rows}
    assert (listed["/m/red"]["images"], listed["/m/red"]["verified_absent"]) == (2, 0)
    assert (listed["/m/blue"]["images"], listed["/m/blue"]["verified_absent"]) == (1, 1)


def test_box_rows_imply_positive_image_labels(indexed_copy, tmp_path):
    f = _write(
        tmp_path / "boxes.csv",
        [
            "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded",
            "sunsets_000,xclick,/m/sun,1,0.1,0.2,0.3,0.4,0",
            "sunsets_000,xclick,/m/sun,1,0.5,0.6,0.3,0.4,1",  # second box, same label
            "sunsets_000,xclick,/m/sea,1,0,1,0.8,1,0",
            "sunsets_001,activemil,/m/sun,0,0,1,0,1,0",  # a box is a positive whatever it says
            "ffffffffffffffff,xclick,/m/sun,1,0,1,0,1,0",
        ],
    )
    with Index(indexed_copy) as index:
        r = labels_api.import_labels(index, f, kind="boxes")
        assert (r.rows, r.imported, r.duplicate_rows, r.positives, r.negatives) == (5, 3, 1, 3, 0)
        assert (r.unknown_image_rows, r.unknown_images) == (1, 1)
        assert _labels(index) == {
            ("sunsets_000", "/m/sun", "bbox", 1.0),
            ("sunsets_000", "/m/sea", "bbox", 1.0),
            ("sunsets_001", "/m/sun", "bbox", 1.0),
        }
        packed = tmp_path / "boxes.csv.gz"
        packed.write_bytes(gzip.compress(f.read_bytes()))
        again = labels_api.import_labels(index, packed, kind="boxes")
        assert (again.rows, again.imported, again.new) == (5, 3, 0)


def test_plain_csv_with_relative_paths_and_header(indexed_copy, synthetic_set):
    with Index(indexed_copy) as index:
        r = labels_api.import_labels(index, synthetic_set / "labels.csv", kind="csv")
        n = len(_stems(index))
        assert (r.rows, r.imported, r.new, r.positives, r.unknown_image_rows) == (n, n, n, n, 0)
        labelled = _labels(index, "csv")
        assert {(stem.rsplit("_", 1)[0], lab) for stem, lab, _, _ in labelled} == {
            (lab, lab) for _, lab, _, _ in labelled
        }
        assert index.sql("SELECT count(*) FROM classes")[1] == [(8,)]


def test_plain_csv_without_header_by_name_and_by_regex(indexed_copy, tmp_path):
    by_name = _write(
        tmp_path / "n.csv", ["sunsets_002.jpg,dusk", "sunsets_003.png,dusk", "x.jpg,dusk"]
    )
    by_id = _write(tmp_path / "r.csv", ["002,two", "005,five", "999,none"])
    with Index(indexed_copy) as index:
        r = labels_api.import_labels(index, by_name, kind="csv", id_from="name", source="mine")
        assert (r.rows, r.imported, r.unknown_image_rows) == (3, 2, 1)
        assert {(s, lab, src) for s, lab, src, _ in _labels(index)} == {
            ("sunsets_002", "dusk", "mine"),
            ("sunsets_003", "dusk", "mine"),
        }
        r = labels_api.import_labels(index, by_id, kind="csv", id_regex=r"_(\d+)\.\w+$")
        assert (r.rows, r.unknown_image_rows, r.unknown_images) == (3, 1, 1)
        assert (r.ambiguous_ids, r.imported) == (2, 16), r  # 8 categories share each number
        with pytest.raises(UsageError, match="--id-regex"):
            labels_api.import_labels(index, by_id, kind="csv", id_regex="(unclosed")


def test_from_folders_labels_every_image_and_is_idempotent(indexed_copy, tmp_path):
    with Index(indexed_copy) as index:
        first = labels_api.import_folders(index)
        stems = _stems(index)
        assert (first.rows, first.imported, first.new) == (len(stems), len(stems), len(stems))
        again = labels_api.import_folders(index)
        assert (again.imported, again.new) == (len(stems), 0)
        assert {(s.rsplit("_", 1)[0], lab) for s, lab, _, _ in _labels(index, "folder")} == {
            (lab, lab) for _, lab, _, _ in _labels(index, "folder")
        }
        with pytest.raises(NotFoundError, match="no indexed images under"):
            labels_api.import_folders(index, [tmp_path / "elsewhere"])
        # A class folder given as the dataset folder: its images sit directly in it, no label.
        one_class = Path(index.sql("SELECT min(path) FROM images")[1][0][0]).parent
        part = labels_api.import_folders(index, [one_class])
        assert (part.rows, part.imported, part.unlabelled_images) == (6, 0, 6)
        # Imports are independent: the first import's labels stay until it is removed.
        assert index.sql("SELECT count(*) FROM labels")[1] == [(len(stems),)]
        labels_api.remove_import(index, first.name)
        assert index.sql("SELECT count(*) FROM labels")[1] == [(0,)]


def test_bad_files_are_refused_and_nothing_is_stored(indexed_copy, tmp_path):
    bad_conf = _write(
        tmp_path / "bad.csv",
        ["ImageID,Source,LabelName,Confidence", "sunsets_000,v,/m/a,1", "sunsets_001,v,/m/a,high"],
    )
    no_id = _write(tmp_path / "noid.csv", ["ImageID,Where", "a,b"])
    ragged = _write(tmp_path / "ragged.csv", ["ImageID,LabelName", "sunsets_000", "sunsets_1,/m/a"])
    with Index(indexed_copy) as index:
        with pytest.raises(UsageError, match="'high'"):
            labels_api.import_labels(index, bad_conf)
        with pytest.raises(UsageError, match="no 'labelname' column"):
            labels_api.import_labels(index, no_id)
        with pytest.raises(UsageError, match=r"ragged.csv.*Line"):
            labels_api.import_labels(index, ragged)
        with pytest.raises(NotFoundError):
            labels_api.import_labels(index, tmp_path / "missing.csv")
        assert index.sql("SELECT count(*) FROM labels")[1] == [(0,)]


def test_cli_import_and_list(indexed_copy, tmp_path):
    f = _write(
        tmp_path / "l.csv",
        ["ImageID,Source,LabelName,Confidence", "sunsets_000,v,/m/sun,1", "nope,v,/m/sun,1"],
    )
    classes = _write(tmp_path / "c.csv", ["/m/sun,Sun"])
    runner = CliRunner()
    base = ["--index", str(indexed_copy), "labels"]
    res = runner.invoke(
        cli, [*base, "import", "--classes", str(classes), "--labels", str(f), "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)["imports"]
    assert [(r["kind"], r["imported"], r["unknown_image_rows"]) for r in out] == [
        ("classes", 1, 0),
        ("labels", 1, 1),
    ]
    assert "1 rows for 1 images not in the index" in res.stderr
    res = runner.invoke(cli, [*base, "list", "--format", "json"])
    assert res.exit_code == 0
    assert json.loads(res.stdout) == [
        {
            "label_name": "/m/sun",
            "display_name": "Sun",
            "images": 1,
            "verified_absent": 0,
            "sources": "v",
        }
    ]
    res = runner.invoke(cli, [*base, "import"])
    assert res.exit_code == 2 and "nothing to import" in res.stderr
    res = runner.invoke(cli, [*base, "import", "--from-folders"])
    assert res.exit_code == 0 and "folders" in res.stdout


def _import_csv(index_dir: Path, file: Path, *flags: str):
    return CliRunner().invoke(
        cli, ["--index", str(index_dir), "labels", "import", "--csv", str(file), *flags, "--json"]
    )


@pytest.mark.parametrize("where", ["first row", "past the first 8 KiB"])
def test_a_latin_1_file_is_refused_with_the_line_byte_and_the_fix(indexed_copy, tmp_path, where):
    rows = [b"sunsets_000.jpg,dusk"] * (1 if where == "first row" else 1000)
    rows.append("sunsets_001.jpg,crépuscule".encode("latin-1"))
    file = tmp_path / "latin.csv"
    file.write_bytes(b"\n".join(rows) + b"\n")
    res = _import_csv(indexed_copy, file, "--id-from", "name")
    assert res.exit_code == 2, res.output
    line = len(rows)
    offset = sum(len(r) + 1 for r in rows[:-1]) + len("sunsets_001.jpg,cr")
    assert res.stderr.strip() == (
        f"error: {file}: line {line} (byte 19 of it, 0xe9; byte offset {offset} in the file) is "
        "not UTF-8, which idx reads label files as; re-save the file as UTF-8 and import that, "
        "e.g. for a Latin-1 file `iconv -f latin1 -t utf-8 latin.csv > utf8-latin.csv`; "
        "nothing was imported"
    )
    with Index(indexed_copy, read_only=True) as index:
        assert index.sql("SELECT count(*) FROM labels")[1] == [(0,)]


def test_a_compressed_latin_1_label_file_names_zcat_in_the_fix(indexed_copy, tmp_path):
    file = tmp_path / "image-labels.csv.gz"
    with gzip.open(file, "wb") as fh:
        fh.write("ImageID,Source,LabelName,Confidence\nsunsets_000,v,/m/é,1\n".encode("latin-1"))
    res = CliRunner().invoke(
        cli, ["--index", str(indexed_copy), "labels", "import", "--labels", str(file)]
    )
    assert res.exit_code == 2, res.output
    assert "line 2 (byte 18 of it, 0xe9; byte offset 53 in the file) is not UTF-8" in res.stderr
    assert "`zcat image-labels.csv.gz | iconv -f latin1 -t utf-8 > utf8-image-labels.csv`" in (
        res.stderr
    )


@pytest.mark.parametrize("header", [True, False])
def test_a_utf_8_file_with_a_byte_order_mark_is_read(indexed_copy, tmp_path, header):
    file = tmp_path / "bom.csv"
    rows = ["path,label"] * header + ["sunsets_000.jpg,crépuscule", "sunsets_001.jpg,dusk"]
    file.write_text("\n".join(rows) + "\n", encoding="utf-8-sig")
    res = _import_csv(indexed_copy, file, "--id-from", "name")
    assert res.exit_code == 0, res.output
    with Index(indexed_copy, read_only=True) as index:
        assert {(s, lab) for s, lab, _, _ in _labels(index, "csv")} == {
            ("sunsets_000", "crépuscule"),
            ("sunsets_001", "dusk"),
        }


def test_csv_paths_with_dot_dot_and_links_name_the_indexed_images(
    indexed_copy, synthetic_set, tmp_path
):
    """Paths relative to the CSV's folder, written as people write them (`../photos/a.jpg`,
    `./`, `//`), and the CSV reached through a linked folder (macOS's /tmp is one): each names
    the image as `add` stored it (absolute, links kept)."""
    real = tmp_path / "real" / "meta"
    real.mkdir(parents=True)
    (tmp_path / "meta").symlink_to(real)  # the CSV is given as tmp_path/meta/labels.csv
    folder = tmp_path / "meta"
    up = os.path.relpath(synthetic_set, folder)
    assert up.startswith("..")
    rows = {
        f"{up}/sunsets/sunsets_000.jpg": "dusk",
        f"./{up}/sunsets/../sunsets//sunsets_001.jpg": "dusk",
        f"{synthetic_set}/./sunsets/sunsets_002.jpg": "dusk",
        f"{up}/sunsets/sunsets_999.jpg": "dusk",  # not indexed
    }
    csv_file = folder / "labels.csv"
    csv_file.write_text("".join(f"{path},{label}\n" for path, label in rows.items()))
    res = _import_csv(indexed_copy, csv_file)
    assert res.exit_code == 0, res.output
    (report,) = json.loads(res.stdout)["imports"]
    assert (report["rows"], report["imported"], report["unknown_image_rows"]) == (4, 3, 1)
    with Index(indexed_copy, read_only=True) as index:
        assert {(s, lab) for s, lab, _, _ in _labels(index, "csv")} == {
            ("sunsets_000", "dusk"),
            ("sunsets_001", "dusk"),
            ("sunsets_002", "dusk"),
        }
