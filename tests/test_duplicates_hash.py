"""Near-duplicates confirmed by a perceptual hash (issue 23): `add` stores each image's pHash (equal
to imagehash's), fills in those of images indexed before it did; `idx duplicates` links images by
CLIP and the hash, within one set or across two (`--across A B`, stored as a leakage run)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import duckdb
import imagehash
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from idx.analysis.groups import connected_groups
from idx.cli.main import cli
from idx.errors import UsageError
from idx.indexer.index import Index
from idx.indexer.vectors.pairs import hamming
from idx.ops.duplicates import Criteria, duplicates
from idx.ops.leakage import leakage, load_leakage
from tests.near_copies import write_copies
from tests.serving import Server


def _stored_hashes(index: Index) -> dict[str, int | None]:
    ids = index.catalog.images.ids()
    paths = index.catalog.images.paths_for(ids)
    hashes, present = index.catalog.images.phashes(ids)
    return {paths[int(i)]: int(h) if has else None for i, h, has in zip(ids, hashes, present)}


def _imagehash(path: str) -> int:
    with Image.open(path) as image:
        return int(str(imagehash.phash(image)), 16)


def test_the_stored_hash_is_imagehash_phash_of_the_file(indexed, tiny_model):
    with Index(indexed, read_only=True) as index:
        stored = _stored_hashes(index)
    assert len(stored) == 48
    assert stored == {path: _imagehash(path) for path in stored}


def test_add_fills_in_the_hashes_of_images_indexed_before_it_took_them(indexed_copy, tiny_model):
    with Index(indexed_copy, **tiny_model) as index:
        before = _stored_hashes(index)
        roots = index.catalog.images.roots()
    # as an index made before migration 0013 has them: no hash
    con = duckdb.connect(str(indexed_copy / "catalog.duckdb"))
    con.execute("UPDATE embeddings SET phash = NULL")
    con.close()
    with Index(indexed_copy, **tiny_model) as index:
        assert set(_stored_hashes(index).values()) == {None}
        report = index.add(roots)
        assert (report.unchanged, report.embedded, report.hashed) == (48, 0, 48)
        assert _stored_hashes(index) == before
        assert index.add(roots).hashed == 0  # nothing left to fill in


def test_groups_link_by_clip_and_hash_as_brute_force_does(images, tiny_model):
    original = images / "green_stripes" / "green_stripes_002.jpg"
    shutil.copyfile(original, images / "green_stripes" / "copy_of_002.jpg")
    with Image.open(images / "blue_squares" / "blue_squares_001.jpg") as img:
        img.resize((70, 70)).save(images / "blue_squares" / "smaller_001.jpg", quality=60)
    with Index(**tiny_model) as index:
        index.add([images])
        ids, matrix = index.embeddings()
        hashes, present = index.catalog.images.phashes(ids)
        found = {
            by: duplicates(index, threshold, max_distance=distance, by=by)
            for by, threshold, distance in (
                ("both", 0.9, 10),
                ("hash", None, 6),
                ("clip", 0.9999, None),
            )
        }
    assert present.all()
    sims = matrix @ matrix.T
    bits = hamming(np.repeat(hashes, len(ids)), np.tile(hashes, len(ids))).reshape(sims.shape)
    expected = {
        "both": (sims >= np.float32(0.9)) & (bits <= 10),
        "hash": bits <= 6,
        "clip": sims >= np.float32(0.9999),
    }
    for by, groups in found.items():
        linked = expected[by]
        np.fill_diagonal(linked, False)
        left, right = np.nonzero(np.triu(linked))
        want = {frozenset(int(ids[p]) for p in g) for g in connected_groups(len(ids), left, right)}
        assert {frozenset(g.ids) for g in groups} == want, by
        position = {int(i): p for p, i in enumerate(ids)}
        for g in groups:
            for p in g.pairs:  # each pair with its own similarity and distance
                a, b = position[p.a], position[p.b]
                assert p.distance == bits[a, b] and abs(p.similarity - sims[a, b]) < 1e-5
            assert g.max_distance == max(p.distance for p in g.pairs)
            assert g.min_score == pytest.approx(min(p.similarity for p in g.pairs))
    names = [{Path(p).name for p in g.paths} for g in found["both"]]
    assert any({"green_stripes_002.jpg", "copy_of_002.jpg"} <= g for g in names)
    assert any({"blue_squares_001.jpg", "smaller_001.jpg"} <= g for g in names)


def test_criteria_defaults_and_refusals():
    assert Criteria.of() == Criteria("both", 0.9, 10)
    assert Criteria.of("clip") == Criteria("clip", 0.97, None)
    assert Criteria.of("hash") == Criteria("hash", None, 10)
    for args, message in (
        (("hash", 0.9), "--by hash links by the hash alone"),
        (("clip", None, 4), "--by clip links by CLIP alone"),
        (("both", 1.5), "--threshold must be in (0, 1]"),
        (("both", None, 65), "--max-distance must be from 0 to 64"),
        (("pixels",), "--by 'pixels' is unknown"),
    ):
        with pytest.raises(UsageError, match=re.escape(message)):
            Criteria.of(*args)


def test_duplicates_help_shows_the_defaults_criteria_use(monkeypatch):
    """--help reads the defaults from ops.duplicates, so it cannot drift from Criteria.of."""
    from idx.ops import duplicates as ops_duplicates

    def options_help() -> str:
        text = CliRunner().invoke(cli, ["duplicates", "--help"], terminal_width=200).output
        return " ".join(text.split())

    assert "[default: 0.9 with the hash, 0.97 with --by clip]" in options_help()
    assert "near-duplicates [default: 10]" in options_help()
    monkeypatch.setattr(ops_duplicates, "DEFAULT_CONFIRMED_THRESHOLD", 0.85)
    monkeypatch.setattr(ops_duplicates, "DEFAULT_DUPLICATE_THRESHOLD", 0.95)
    monkeypatch.setattr(ops_duplicates, "DEFAULT_MAX_DISTANCE", 8)
    assert "[default: 0.85 with the hash, 0.95 with --by clip]" in options_help()
    assert "near-duplicates [default: 8]" in options_help()


@pytest.fixture
def leaky_sets(shared_data, tmp_path) -> tuple[Path, Path, dict[Path, Path]]:
    """A: 16 real photos; B: an altered copy of 8 of them (2 of each alteration) and 8 others."""
    photos = sorted((shared_data / "images").glob("*.jpg"))[:32]
    a, b = tmp_path / "sets" / "train", tmp_path / "sets" / "validation"
    a.mkdir(parents=True)
    for photo in photos[:16]:
        shutil.copy(photo, a)
    copies = write_copies(photos[:8], b)
    for photo in photos[16:24]:
        shutil.copy(photo, b)
    return a, b, {copy: a / source.name for copy, source in copies.items()}


def test_across_finds_the_altered_copies_and_nothing_else(leaky_sets, tiny_model):
    a, b, copies = leaky_sets
    with Index(**tiny_model) as index:
        index.add([a.parent])
        found = leakage(index, str(a), str(b))
        stored = load_leakage(index, shown=100)
        rows = index.sql("SELECT count(*) FROM leakage_pairs WHERE run_id = 1")[1][0][0]
    assert {(Path(p.b_path), Path(p.a_path)) for p in found.pairs} == set(copies.items())
    assert all(p.distance <= 10 and p.similarity >= 0.9 for p in found.pairs)
    assert (found.images_a, found.images_b, found.a_with_copy, found.b_with_copy) == (16, 16, 8, 8)
    assert (found.share_b, found.share_a, found.in_both, found.without_hash) == (0.5, 0.5, 0, 0)
    assert found.run_id == stored.run_id == 1 and rows == 8
    assert stored.pairs == found.pairs and stored.b_with_copy == 8 and stored.pair_count == 8


def test_across_by_hash_alone_and_by_clip_alone(leaky_sets, tiny_model):
    a, b, copies = leaky_sets
    with Index(**tiny_model) as index:
        index.add([a.parent])
        by_hash = leakage(index, str(a), str(b), by="hash")
        by_clip = leakage(index, str(a), str(b), by="clip", threshold=0.5, store=False)
    assert {(Path(p.b_path), Path(p.a_path)) for p in by_hash.pairs} == set(copies.items())
    # an untrained model's CLIP links every photo with every other: the hash is what tells
    assert by_clip.pair_count == 16 * 16 and by_clip.run_id is None
    assert by_clip.pairs[0].distance is not None and by_clip.pairs[0].distance <= 10


def test_across_cli_prints_the_counts_and_pairs(leaky_sets, tiny_model, tiny_args):
    a, b, copies = leaky_sets
    with Index(**tiny_model) as index:
        index.add([a.parent])
    runner = CliRunner()
    table = runner.invoke(cli, ["duplicates", "--across", str(a), str(b)])
    assert table.exit_code == 0, table.output
    first = table.stdout.splitlines()[0]
    assert first.startswith("leakage run 1: 8 of 16 (50.0%) images of B have a near-duplicate in A")
    assert table.stdout.splitlines()[1].split() == [
        "similarity", "distance", "b_id", "b_path", "a_id", "a_path"
    ]  # fmt: skip
    assert len(table.stdout.splitlines()) == 3 + 8 and "UNTRAINED" in table.stderr
    result = runner.invoke(cli, ["duplicates", "--across", str(a), str(b), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["run_id"], data["b_with_copy"], data["share_b"], len(data["pairs"])) == (
        2,
        8,
        0.5,
        8,
    )
    where = f"where:folder = '{b}'"
    same = runner.invoke(cli, ["duplicates", "--across", str(a), where, "--json"])
    assert json.loads(same.stdout)["pairs"] == data["pairs"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--across", "nowhere", "SYNTH"], "set A ('nowhere') holds no indexed image"),
        (["--across", "SYNTH", "SYNTH", "--by", "hash", "--threshold", "0.9"], "--by hash"),
        (["--max-distance", "70"], "--max-distance must be from 0 to 64"),
    ],
)
def test_duplicates_cli_refusals(args, message, indexed_copy, synthetic_set):
    args = [str(synthetic_set) if a == "SYNTH" else a for a in args]
    result = CliRunner().invoke(cli, ["--index", str(indexed_copy), "duplicates", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stdout == ""


def test_an_image_in_both_sets_is_not_its_own_copy(indexed_copy, synthetic_set, tiny_model):
    with Index(indexed_copy, **tiny_model) as index:
        found = leakage(index, str(synthetic_set), str(synthetic_set / "sunsets"), by="hash")
    assert found.in_both == 6 == found.images_b
    assert all(p.a_id != p.b_id for p in found.pairs)


def test_the_web_app_shows_the_latest_leakage_run(chromium, indexed_copy, synthetic_set):
    a, b = synthetic_set / "sunsets", synthetic_set / "starry_nights"
    server = Server(indexed_copy).start()
    try:
        status, body = server.json("/api/leakage")
        make = f"idx --index {indexed_copy} duplicates --across A B"
        assert status == 200 and body["missing"]["command"] == make
    finally:
        assert server.stop() == 0
    with Index(indexed_copy) as index:
        found = leakage(index, str(a), str(b), by="hash", max_distance=64)
    server = Server(indexed_copy).start()
    try:
        status, body = server.json("/api/leakage?pairs=3")
        assert status == 200 and (body["run_id"], body["b_with_copy"], body["share_b"]) == (
            1,
            6,
            1.0,
        )
        assert [p["b_id"] for p in body["pairs"]] == [p.b_id for p in found.pairs[:3]]
        page = chromium.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(server.base + "/")
        page.wait_for_selector("#leakage-pairs .card img")
        assert "6 of 6 images of B" in page.text_content("#leakage-note")
        assert page.locator("#leakage-pairs .card").count() == 2 * 12  # the pairs shown, each side
        page.locator("#leakage-pairs .card").first.click()
        page.wait_for_selector("#neighbors .card")  # it opens the image, as a result card does
        assert page.text_content("#d-id") == f"#{found.pairs[0].b_id}"
        page.close()
        assert errors == []
    finally:
        assert server.stop() == 0
