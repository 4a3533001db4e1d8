"""The real Open Images snacks files (../shared/data; skipped when absent): counts match the files.

Only a subset of the photos is indexed, so the files also carry rows for images not in the index,
as real Open Images files do.
"""

from __future__ import annotations

import csv
import shutil

from idx.indexer.index import Index
from idx.ops.insights import measure as insights_api
from idx.ops.labels import imports as labels_api

N_INDEXED = 60


def _rows(path, header: bool = True) -> list[list[str]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[1:] if header else rows


def test_real_open_images_files(shared_data, tmp_path, tiny_model):
    photos = sorted((shared_data / "images").glob("*.jpg"))[:N_INDEXED]
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in photos:
        shutil.copy(p, folder / p.name)
    have = {p.stem for p in photos}
    classes = _rows(shared_data / "class-descriptions-boxable.csv", header=False)
    labels = _rows(shared_data / "image-labels.csv")
    boxes = _rows(shared_data / "bbox-annotations.csv")
    assert classes[0][0].startswith("/m/")  # the real file has no header

    with Index(tmp_path / "index", **tiny_model) as index:
        index.add([folder])
        c = labels_api.import_classes(index, shared_data / "class-descriptions-boxable.csv")
        lab = labels_api.import_labels(index, shared_data / "image-labels.csv")
        box = labels_api.import_labels(index, shared_data / "bbox-annotations.csv", kind="boxes")
        again = labels_api.import_labels(index, shared_data / "image-labels.csv")
        _, stored = index.sql("SELECT count(*) FROM labels")
        result = insights_api.insights(index, k_nn=5, zero_shot=False, plots=False)

    assert (c.rows, c.imported) == (len(classes), len({r[0] for r in classes}))
    mine = [r for r in labels if r[0] in have]
    assert lab.rows == len(labels)
    assert lab.imported == len({(r[0], r[1], r[2]) for r in mine})
    assert lab.positives == len({(r[0], r[1], r[2]) for r in mine if float(r[3]) > 0})
    assert lab.unknown_image_rows == len(labels) - len(mine)
    assert lab.unknown_images == len({r[0] for r in labels} - have)
    assert lab.unknown_classes == 0
    box_mine = [r for r in boxes if r[0] in have]
    assert box.rows == len(boxes)
    assert box.imported == len({(r[0], r[2]) for r in box_mine})
    assert box.duplicate_rows == len(box_mine) - box.imported
    assert box.unknown_image_rows == len(boxes) - len(box_mine)
    assert (again.imported, again.new) == (lab.imported, 0)
    assert stored == [(lab.imported + box.imported,)]
    labelled = {r[0] for r in mine if float(r[3]) > 0} | {r[0] for r in box_mine}
    assert result.metrics["n_images"] == len(labelled)
