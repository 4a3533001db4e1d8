"""Filtered search (--where, --label, --cluster; the Python API) equals an exact search over the
filtered set, whichever way it runs (a scan of the filter's vectors or FAISS with an id
selector) and whatever the index type; SQL that knows vectors; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from idx.cli.main import cli
from idx.indexer.index import Index
from idx.ops import filters
from idx.ops import search as api
from tests.serving import brute_force, exported, insert_vectors, prepare_index


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def found(index_dir, *args) -> list[dict]:
    """`idx search ARGS --json`'s hits."""
    out = run("--index", index_dir, "search", *args, "--json")
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, indexed, tiny_model):
    return prepare_index(indexed, tmp_path_factory.mktemp("filtered") / "index", tiny_model)


@pytest.fixture(scope="module")
def reference(labelled, tmp_path_factory):
    ids, matrix, paths = exported(labelled, tmp_path_factory.mktemp("export"))
    with Index(labelled, read_only=True) as index:
        clusters = dict(index.sql("SELECT image_id, cluster FROM clusters")[1])
    return {
        "ids": ids,
        "matrix": matrix,
        "paths": paths,
        "label": np.array([Path(p).parent.name for p in paths]),
        "cluster": np.array([clusters[int(i)] for i in ids]),
    }


@pytest.mark.parametrize("share", [0.0, 1.0], ids=["selector", "scan"])
def test_library_filters_equal_brute_force_either_way(labelled, reference, monkeypatch, share):
    monkeypatch.setattr(filters, "FILTER_SCAN_SHARE", share)
    ids, matrix = reference["ids"], reference["matrix"]
    query = matrix[5] * 0.6 + matrix[30] * 0.4
    query /= np.linalg.norm(query)
    cases = [
        ({"label": "green_stripes"}, reference["label"] == "green_stripes"),
        ({"cluster": 2}, reference["cluster"] == 2),
        (
            {"where": "cluster = 2 OR list_contains(labels, 'sunsets')"},
            (reference["cluster"] == 2) | (reference["label"] == "sunsets"),
        ),
        (
            {"folder": str(Path(reference["paths"][0]).parent)},
            reference["label"] == reference["label"][0],
        ),
        (
            {
                "label": "sunsets",
                "cluster": int(reference["cluster"][reference["label"] == "sunsets"][0]),
            },
            (reference["label"] == "sunsets")
            & (reference["cluster"] == reference["cluster"][reference["label"] == "sunsets"][0]),
        ),
    ]
    with Index(labelled, read_only=True) as index:
        for given, keep in cases:
            hits = api.search(index, vector=query, k=8, **given)
            want_ids, want_scores = brute_force(ids, matrix, query, 8, keep)
            assert [h.id for h in hits] == want_ids, given
            np.testing.assert_allclose([h.score for h in hits], want_scores, atol=1e-5)
            anchor = int(ids[np.nonzero(keep)[0][-1]])
            near = api.neighbors(index, anchor, k=4, **given)
            assert [h.id for h in near] == brute_force(
                ids, matrix, matrix[ids == anchor], 4, keep & (ids != anchor)
            )[0], given


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_approximate_indexes_answer_small_filters_exactly_and_large_ones_well(tmp_path, kind):
    """3,000 clustered vectors: a small filter is scanned (exact); a large one goes through the
    index's id selector, as good as its unfiltered search (recall@10 >= 0.9 here)."""
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((60, 64)).astype(np.float32)
    matrix = centres[rng.integers(0, 60, 3000)] + 0.5 * rng.standard_normal((3000, 64)).astype(
        np.float32
    )
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    index_dir = tmp_path / "index"
    assert insert_vectors(index_dir, 0, matrix) == list(range(1, 3001))
    with Index(index_dir) as index:
        assert api.reindex(index, kind).type == kind
    ids = np.arange(1, 3001)
    with Index(index_dir, read_only=True) as index:
        recalls = []
        for q in rng.choice(3000, 10, replace=False):
            query = matrix[q]
            small = f"id % 50 = {q % 50}"  # 60 images: 2% of the index
            hits = api.search(index, vector=query, k=10, where=small)
            keep = ids % 50 == q % 50
            assert [h.id for h in hits] == brute_force(ids, matrix, query, 10, keep)[0]
            large = "id % 2 = 0"  # 1,500 images: the selector
            hits = api.search(index, vector=query, k=10, where=large)
            assert len(hits) == 10 and all(h.id % 2 == 0 for h in hits)
            want = brute_force(ids, matrix, query, 10, ids % 2 == 0)[0]
            recalls.append(len({h.id for h in hits} & set(want)) / 10)
    assert np.mean(recalls) >= 0.9, recalls


def test_cli_filters_match_the_library_and_say_when_nothing_passes(labelled, reference):
    hits = found(labelled, "--text", "red circles", "-k", "4", "--label", "Red_Circles")
    assert len(hits) == 4 and all(h["labels"] == ["red_circles"] for h in hits)
    first = int(reference["ids"][0])
    out = run(
        "--index",
        labelled,
        "neighbors",
        first,
        "-k",
        "3",
        "--cluster",
        "1",
        "--where",
        "format = 'JPEG'",
        "--json",
    )
    assert out.exit_code == 0, out.output
    keep = (reference["cluster"] == 1) & np.array([p.endswith(".jpg") for p in reference["paths"]])
    keep &= reference["ids"] != first
    ids, matrix = reference["ids"], reference["matrix"]
    assert [h["id"] for h in json.loads(out.stdout)] == brute_force(
        ids, matrix, matrix[0], 3, keep
    )[0]
    out = run("--index", labelled, "search", "--id", first, "--where", "size < 0")
    assert out.exit_code == 0 and "no image passes the filter" in out.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--where", "no_such_column = 1"], 2, "bad where 'no_such_column = 1': Binder Error"),
        (["--where", "1=1; DROP TABLE images"], 2, "does not parse"),
        (["--where", " "], 2, "where is empty"),
        (["--label", "checkerbords"], 1, "did you mean 'checkerboards'?"),
        (["--cluster", "7"], 2, "clusters 0 to 3"),
    ],
)
def test_cli_filter_errors_name_the_value_and_the_fix(labelled, args, code, message):
    out = run("--index", labelled, "search", "--text", "x", *args)
    assert out.exit_code == code and message in out.stderr, out.output


def test_filters_need_what_they_name(indexed_copy):
    out = run("--index", indexed_copy, "search", "--text", "x", "--cluster", "0")
    make = f"idx --index {indexed_copy} cluster --k 8"
    assert out.exit_code == 1 and f"no clustering yet; run `{make}`" in out.stderr
    out = run("--index", indexed_copy, "search", "--text", "x", "--label", "cats")
    assert out.exit_code == 1 and "no labels yet" in out.stderr
    out = run("--index", indexed_copy, "neighbors", "--all", "--label", "cats")
    assert out.exit_code == 2 and "takes no filter" in out.stderr


def test_sql_knows_vectors(labelled, reference):
    query = (
        "SELECT i.id, i.labels, array_cosine_similarity(v.vector, text_embedding('red circles')) "
        "AS score FROM image_info i JOIN image_vectors v USING (id) "
        "WHERE list_contains(i.labels, 'red_circles') ORDER BY score DESC LIMIT 3"
    )
    out = run("--index", labelled, "sql", query, "--json")
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    hits = found(labelled, "--text", "red circles", "-k", "3", "--label", "red_circles")
    assert [r["id"] for r in rows] == [h["id"] for h in hits]
    np.testing.assert_allclose([r["score"] for r in rows], [h["score"] for h in hits], atol=1e-5)
    first = int(reference["ids"][0])
    out = run(
        "--index",
        labelled,
        "sql",
        f"SELECT image_embedding({first}) AS v, typeof(image_embedding({first})) AS t",
        "--json",
    )
    row = json.loads(out.stdout)[0]
    assert row["t"] == "FLOAT[64]"
    np.testing.assert_allclose(row["v"], reference["matrix"][0], atol=1e-6)
    out = run(
        "--index",
        labelled,
        "sql",
        "SELECT name, size, folder, cluster, cluster_run FROM image_info ORDER BY id LIMIT 1",
        "--json",
    )
    row = json.loads(out.stdout)[0]
    path = Path(reference["paths"][0])
    assert row == {
        "name": path.name,
        "size": path.stat().st_size,
        "folder": str(path.parent),
        "cluster": int(reference["cluster"][0]),
        "cluster_run": 1,
    }
