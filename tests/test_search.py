"""Search, neighbours, duplicates and index types, checked against brute-force numpy."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from idx import synthetic
from idx.cli.main import cli
from idx.indexer.index import Index
from idx.indexer.vectors import store as vectors
from idx.ops import graph
from idx.ops import search as api
from idx.ops.duplicates import duplicates


def _brute_force(matrix: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int):
    scores = matrix @ query.ravel()
    order = np.argsort(-scores, kind="stable")[:k]
    return ids[order], scores[order]


def _assert_matches_brute_force(hits, index: Index, query: np.ndarray, k: int) -> None:
    ids, matrix = index.embeddings()
    want_ids, want_scores = _brute_force(matrix, ids, query, k)
    np.testing.assert_allclose([h.score for h in hits], want_scores, atol=1e-5)
    assert [h.rank for h in hits] == list(range(1, k + 1))
    paths = dict(index.sql("SELECT id, path FROM images")[1])
    for h in hits:  # each hit's score is the cosine of that very image, and its path is its own
        assert h.score == pytest.approx(float(matrix[ids == h.id][0] @ query.ravel()), abs=1e-5)
        assert h.path == paths[h.id]
    assert {h.id for h in hits} <= set(map(int, ids))


def test_text_image_and_id_queries_match_brute_force(indexed):
    with Index(indexed, read_only=True) as index:
        text_hits = api.search(index, text="red circles", k=5)
        _assert_matches_brute_force(
            text_hits, index, index.encoder.encode_texts(["red circles"]), 5
        )

        image_id, path = index.sql("SELECT id, path FROM images ORDER BY id LIMIT 1 OFFSET 7")[1][0]
        by_image = api.search(index, image=path, k=4)
        assert (by_image[0].id, by_image[0].rank) == (image_id, 1)
        assert by_image[0].score == pytest.approx(1.0, abs=1e-4)

        by_id = api.search(index, id=image_id, k=4)
        assert by_id[0].id == image_id and by_id[0].score == pytest.approx(1.0, abs=1e-5)
        _assert_matches_brute_force(by_id, index, index.embeddings([image_id])[1], 4)

        near = api.neighbors(index, path, k=4)
        assert [h.id for h in near] == [h.id for h in by_id[1:]] + [near[-1].id]
        assert image_id not in {h.id for h in near}
        assert api.neighbors(index, image_id, k=4) == near
        assert all(h.labels is None for h in near)  # no labels tables in this index


def test_removed_images_never_returned_and_new_ones_found_at_once(images, tiny_model, tmp_path):
    with Index(**tiny_model) as index:
        index.add([images])
        gone = images / "sunsets" / "sunsets_001.jpg"
        gone_id = api.resolve_image(index, str(gone))
        gone.unlink()
        index.add([images])
        n = index.catalog.images.count()
        assert gone_id not in {h.id for h in api.search(index, text="sunset", k=n + 5)}
        assert gone_id not in {h.id for h in api.search(index, id=1, k=n)}
        assert index.sql(f"SELECT count(*) FROM images WHERE id = {gone_id}")[1][0][0] == 0

        extra = tmp_path / "extra"
        synthetic.generate(extra, per_category=2, size=80, seed=7, categories=["checkerboards"])
        index.add([images, extra])
        new_path = str(next((extra / "checkerboards").glob("*.jpg")))
        hit = api.search(index, image=new_path, k=1)[0]
        assert hit.path == new_path and hit.score == pytest.approx(1.0, abs=1e-4)
    # a later process (read-only) sees the same: nothing stale in the FAISS file
    with Index(read_only=True) as index:
        results = api.search(index, text="sunset", k=n + 10)
        assert gone_id not in {h.id for h in results}
        assert new_path in {h.path for h in results}


@pytest.mark.parametrize("exact", [True, False], ids=["brute-force", "through-faiss"])
def test_neighbor_graph_matches_brute_force_and_is_replaced(exact, indexed_copy, monkeypatch):
    if not exact:
        monkeypatch.setattr(graph, "EXACT_GRAPH_MAX", 10)  # the FAISS index (flat) answers
    with Index(indexed_copy) as index:
        report = graph.build_neighbor_graph(index, k=5, batch_size=7)  # several batches
        assert report.index_type == ("exact" if exact else "flat")
        ids, matrix = index.embeddings()
        _, rows = index.sql(
            "SELECT image_id, neighbor_id, rank, score FROM neighbors ORDER BY image_id, rank"
        )
        assert report.rows == len(rows) == 5 * len(ids)
        sims = matrix @ matrix.T
        np.fill_diagonal(sims, -np.inf)
        position = {int(i): p for p, i in enumerate(ids)}
        got = np.array(rows, dtype=np.float64).reshape(len(ids), 5, 4)
        assert (got[:, :, 0] != got[:, :, 1]).all()  # never itself
        assert (got[:, :, 2] == np.arange(1, 6)).all()
        want_scores = -np.sort(-sims, axis=1)[:, :5]
        np.testing.assert_allclose(got[:, :, 3], want_scores, atol=1e-5)
        pair_scores = [sims[position[int(a)], position[int(b)]] for a, b, _, _ in rows]
        np.testing.assert_allclose(got[:, :, 3].ravel(), pair_scores, atol=1e-5)

        again = graph.build_neighbor_graph(index, k=2)
        assert index.sql("SELECT count(*), max(rank) FROM neighbors")[1][0] == (2 * len(ids), 2)
        run = graph.neighbor_graph_run(index)
        assert (run["k"], run["rows"], run["created_at"]) == (2, again.rows, again.created_at)


def test_duplicates_finds_identical_and_reencoded_copies(images, tiny_model):
    original = images / "green_stripes" / "green_stripes_002.jpg"
    shutil.copyfile(original, images / "green_stripes" / "copy_of_002.jpg")
    reencoded = images / "blue_squares" / "reencoded_001.jpg"
    with Image.open(images / "blue_squares" / "blue_squares_001.jpg") as img:
        img.save(reencoded, format="JPEG", quality=75)
    with Index(**tiny_model) as index:
        index.add([images])
        ids, matrix = index.embeddings()
        paths = dict(index.sql("SELECT id, path FROM images")[1])
        by_name = {paths[int(i)].rsplit("/", 1)[-1]: p for p, i in enumerate(ids)}
        reenc_score = float(
            matrix[by_name["reencoded_001.jpg"]] @ matrix[by_name["blue_squares_001.jpg"]]
        )
        threshold = min(0.9999, reenc_score - 1e-6)
        groups = duplicates(index, threshold, by="clip")

    # expected: connected components of the brute-force pairs at that threshold
    sims = matrix @ matrix.T
    linked = sims >= threshold
    np.fill_diagonal(linked, False)
    parent = list(range(len(ids)))

    def root(a: int) -> int:
        while parent[a] != a:
            a = parent[a]
        return a

    for a, b in zip(*np.nonzero(linked)):
        parent[root(a)] = root(b)
    expected: dict[int, set[str]] = {}
    for p, i in enumerate(ids):
        expected.setdefault(root(p), set()).add(paths[int(i)])
    expected_groups = sorted(sorted(g) for g in expected.values() if len(g) > 1)
    assert sorted(sorted(g.paths) for g in groups) == expected_groups

    names = [{p.rsplit("/", 1)[-1] for p in g.paths} for g in groups]
    assert any({"green_stripes_002.jpg", "copy_of_002.jpg"} <= g for g in names)
    assert any({"blue_squares_001.jpg", "reencoded_001.jpg"} <= g for g in names)
    assert all(g.min_score >= threshold and g.size == len(g.ids) for g in groups)


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_reindex_keeps_search_working_and_type_survives_add(
    kind, indexed_copy, synthetic_set, tiny_model, tmp_path
):
    runner = CliRunner()
    result = runner.invoke(cli, ["--index", str(indexed_copy), "reindex", "--type", kind, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["type"] == kind and report["count"] == 48
    assert report["recall_at_10"] >= vectors.RECALL_TARGET

    status = runner.invoke(cli, ["--index", str(indexed_copy), "status"])
    assert f"({kind})" in status.stdout and "recall@10:" in status.stdout

    with Index(indexed_copy, read_only=True) as index:
        assert index.vectors.kind == kind
        assert api.search(index, id=5, k=3)[0].id == 5

    extra = tmp_path / "extra"
    synthetic.generate(extra, per_category=2, size=80, seed=3, categories=["sunsets"])
    with Index(indexed_copy, **tiny_model) as index:
        index.add([synthetic_set, extra])  # additions only: applied in place
        new_file, gone = sorted((extra / "sunsets").glob("*.jpg"))
        new_path = str(new_file)
        assert api.search(index, image=new_path, k=1)[0].path == new_path
        gone_id = api.resolve_image(index, str(gone))
        gone.unlink()
        index.add([synthetic_set, extra])  # a removal: rebuilt where the type cannot remove
        n = index.catalog.images.count()
        assert gone_id not in {h.id for h in api.search(index, id=1, k=n)}
    meta = json.loads((indexed_copy / "vectors.json").read_text())
    assert (meta["type"], meta["requested"], meta["count"]) == (kind, kind, 48 + 1)


def test_auto_moves_to_an_approximate_index_as_the_collection_grows(
    images, tiny_model, monkeypatch, tmp_path
):
    monkeypatch.setattr(vectors, "AUTO_FLAT_MAX", 50)
    with Index(**tiny_model) as index:
        index.add([images])
        assert index.vectors.kind == "flat"
        extra = tmp_path / "extra"
        synthetic.generate(extra, per_category=3, size=80, seed=5, categories=["sunsets"])
        index.add([images, extra])
        assert (index.vectors.kind, index.vectors.requested) == ("ivfpq", "auto")
        assert index.vectors.ntotal == 51
        assert 0.0 <= index.vectors.meta["recall_at_10"] <= 1.0
        assert api.search(index, id=51, k=1)[0].id == 51


def test_labels_are_shown_once_labels_tables_exist(indexed_copy):
    with Index(indexed_copy) as index:
        con = index.catalog.con
        con.execute(
            "CREATE TABLE IF NOT EXISTS classes (label_name VARCHAR PRIMARY KEY, display_name VARCHAR)"
        )
        con.execute(
            "CREATE TABLE IF NOT EXISTS labels (image_id BIGINT, label_name VARCHAR, "
            "source VARCHAR, confidence FLOAT)"
        )
        con.execute("INSERT INTO classes (label_name, display_name) VALUES ('/m/red', 'Red')")
        con.execute(
            "INSERT INTO labels (image_id, label_name, source, confidence) VALUES "
            "(3, '/m/red', 'a', 1.0), (3, 'plain', 'a', 0.7), (3, '/m/absent', 'a', 0.0), "
            "(3, '/m/red', 'b', 1.0)"
        )
    with Index(indexed_copy, read_only=True) as index:
        hit = api.search(index, id=3, k=2)
        assert hit[0].labels == ["Red", "plain"]  # positives only, display names, no repeats
        assert hit[1].labels == []
    result = CliRunner().invoke(
        cli, ["--index", str(indexed_copy), "search", "--id", "3", "-k", "1"]
    )
    assert result.exit_code == 0 and "Red, plain" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["search", "--id", "999"], 1, "no image with id 999"),
        (["neighbors", "no/such.jpg"], 1, "no image 'no/such.jpg'"),
        (["search", "--image", "LABELS"], 1, "cannot search with"),
        (["search", "--image", "missing.jpg"], 1, "does not exist"),
        (["search", "--text", "a", "--id", "1"], 2, "exactly one"),
        (["search", "--id", "1", "-k", "0"], 2, "-k"),
        (["neighbors"], 2, "--all"),
        (["duplicates", "--threshold", "1.5"], 2, "--threshold"),
        (["reindex", "--type", "lsh"], 2, "lsh"),
    ],
)
def test_cli_errors(args, code, message, indexed_copy, synthetic_set):
    args = [str(synthetic_set / "labels.csv") if a == "LABELS" else a for a in args]
    result = CliRunner().invoke(cli, ["--index", str(indexed_copy), *args])
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert message in result.stderr


def test_cli_empty_index(tmp_path):
    empty = tmp_path / "empty"
    Index(empty).close()
    for args in (["search", "--text", "x"], ["neighbors", "--all"], ["duplicates"]):
        result = CliRunner().invoke(cli, ["--index", str(empty), *args])
        assert result.exit_code == 1, (args, result.output)
        assert "has no images" in result.stderr and result.stdout == ""


def test_cli_search_and_neighbors_output(indexed_copy):
    runner = CliRunner()
    base = ["--index", str(indexed_copy)]
    result = runner.invoke(
        cli, [*base, "search", "--text", "red circles", "-k", "3", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert [h["rank"] for h in hits] == [1, 2, 3] and {"score", "id", "path"} <= set(hits[0])
    assert "UNTRAINED" in result.stderr

    result = runner.invoke(cli, [*base, "neighbors", "--all", "-k", "4", "--format", "json", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 4 * 48
    result = runner.invoke(
        cli, [*base, "sql", "SELECT count(DISTINCT image_id) FROM neighbors", "--format", "csv"]
    )
    assert result.stdout.splitlines()[1] == "48"

    result = runner.invoke(cli, [*base, "neighbors", "2", "-k", "3", "--format", "csv"])
    lines = result.stdout.splitlines()
    assert lines[0] == "rank,score,id,path" and len(lines) == 4
    assert all(line.split(",")[2] != "2" for line in lines[1:])


def test_ivfpq_on_a_tiny_collection_is_exact_until_it_grows(images, tiny_model, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    shutil.copyfile(images / "sunsets" / "sunsets_000.jpg", one / "a.jpg")
    with Index(**tiny_model) as index:
        index.add([one])
        assert api.reindex(index, "ivfpq").type == "flat"  # one vector: nothing to train on
        assert api.search(index, id=1, k=3)[0].id == 1
        index.add([one, images])
        assert (index.vectors.kind, index.vectors.requested) == ("ivfpq", "ivfpq")
        assert index.vectors.ntotal == 49


def test_a_k_larger_than_what_can_come_is_lowered_with_a_note(indexed_copy):
    """Issue 24: search -k was capped silently (insights -k says when it lowers k)."""
    base = ["--index", str(indexed_copy)]
    runner = CliRunner()
    result = runner.invoke(cli, [*base, "search", "--text", "red circles", "-k", "100"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2 + 48
    assert "note: -k 100 lowered to 48: the index holds 48 images" in result.stderr
    quiet = runner.invoke(cli, [*base, "search", "--text", "red circles", "-k", "100", "-q"])
    assert quiet.exit_code == 0 and "note:" not in quiet.stderr
    filtered = runner.invoke(
        cli, [*base, "search", "--text", "x", "-k", "30", "--where", "id <= 5"]
    )
    assert "note: -k 30 lowered to 5: only 5 images pass the filter" in filtered.stderr
    near = runner.invoke(cli, [*base, "neighbors", "2", "-k", "60"])
    assert "note: -k 60 lowered to 47: the index holds 47 other images" in near.stderr
    enough = runner.invoke(cli, [*base, "search", "--text", "x", "-k", "48"])
    assert "lowered" not in enough.stderr
