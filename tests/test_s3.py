"""Images on object storage: `idx add s3://bucket/prefix` against a local S3-compatible server
(moto, on loopback, started by the tests), with both engines: add, re-add, a changed, a deleted
and a bad object; thumbnails read through the same layer."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from idx.cli.main import cli
from idx.errors import UsageError
from idx.indexer.index import Index
from idx.ops.thumbnails import decode_thumbnails

moto_server = pytest.importorskip(
    "moto.server", reason="moto is not installed: pip install 'moto[server]'"
)
pytest.importorskip("s3fs", reason="s3fs is not installed: pip install 'idx-clip[s3]'")

ROWS = "SELECT id, path, sha256, bytes, width, height, format FROM images ORDER BY id"


@pytest.fixture
def bucket(s3_bucket, synthetic_set):
    """(filesystem, bucket name): a new bucket holding the synthetic set under photos/."""
    fs, name = s3_bucket
    for path in sorted(synthetic_set.rglob("*")):
        if path.suffix in (".jpg", ".png"):
            fs.pipe(
                f"{name}/photos/{path.relative_to(synthetic_set).as_posix()}", path.read_bytes()
            )
    return fs, name


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def test_add_readd_change_delete_and_bad_objects(bucket, tiny_model, tiny_args, tmp_path):
    fs, name = bucket
    url = f"s3://{name}/photos"
    fs.pipe(f"{name}/photos/bad.jpg", b"not an image at all")
    with Index(tmp_path / "index", **tiny_model) as index:
        first = index.add([url])
        assert (first.added, first.skipped, first.embedded) == (48, 1, 48)
        rows = index.catalog.con.execute("SELECT path, etag FROM images ORDER BY path").fetchall()
        listing = fs.find(f"{name}/photos", detail=True)
        assert rows == [
            (f"s3://{key}", listing[key]["ETag"].strip('"'))
            for key in sorted(listing)
            if not key.endswith("/bad.jpg")
        ]
        reason = index.catalog.con.execute("SELECT reason FROM skipped").fetchall()
        assert reason == [
            (
                "not an image Pillow can read (its content is none of the formats idx reads: "
                '`python -m idx.indexer.files.formats` lists them, as the README\'s "Which files" '
                "does)",
            )
        ]
        tiles = decode_thumbnails(index, [1, 2], 32)  # read back through the storage layer
        assert all(tile.std() > 0 for tile in tiles), "a grey tile: the object was not read"
    again = CliRunner().invoke(cli, ["--index", str(tmp_path / "index"), "add", url, "--json"])
    assert again.exit_code == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["unchanged"], summary["added"], summary["embedded"]) == (48, 0, 0)

    changed, deleted = sorted(
        k for k in listing if k.endswith(".jpg") and not k.endswith("/bad.jpg")
    )[:2]
    fs.pipe(changed, _png(1))  # same key, new content: a new ETag and size
    fs.rm(deleted)
    fs.pipe(f"{name}/photos/bad.jpg", _png(2))  # the bad object fixed
    with Index(tmp_path / "index", **tiny_model) as index:
        before = dict(index.catalog.con.execute("SELECT path, id FROM images").fetchall())
        report = index.add([url])
        assert (report.updated, report.removed, report.added) == (1, 1, 1)
        assert (report.embedded, report.unchanged, report.skipped) == (2, 46, 0)
        after = dict(index.catalog.con.execute("SELECT path, id FROM images").fetchall())
        assert after[f"s3://{changed}"] == before[f"s3://{changed}"]  # same id, new vector
        assert f"s3://{deleted}" not in after
        assert index.status()["vectors"]["in_sync"]


def test_ray_engine_reads_s3_like_the_local_engine(ray_cluster, bucket, tiny_model, tmp_path):
    fs, name = bucket
    url = f"s3://{name}/photos"
    fs.pipe(f"{name}/photos/bad.jpg", b"\x89PNG\r\n\x1a\n truncated")
    for engine in ("local", "ray"):
        with Index(tmp_path / engine, **tiny_model) as index:
            report = index.add([url], engine=engine)
            assert (report.added, report.skipped) == (48, 1)
    with Index(tmp_path / "local") as local, Index(tmp_path / "ray") as ray_index:
        assert (
            local.catalog.con.execute(ROWS).fetchall()
            == ray_index.catalog.con.execute(ROWS).fetchall()
        )
        np.testing.assert_allclose(local.embeddings()[1], ray_index.embeddings()[1], atol=1e-5)
        nothing = ray_index.add([url], engine="ray")
        assert (nothing.unchanged, nothing.embedded, nothing.skipped) == (48, 0, 1)


def test_a_prefix_without_images_says_what_it_holds(s3_bucket, tiny_model, tmp_path):
    fs, name = s3_bucket
    fs.pipe(f"{name}/docs/a.txt", b"a")
    fs.pipe(f"{name}/docs/sub/b.TXT", b"b")
    fs.pipe(f"{name}/docs/.thumbs/c.jpg", _png(2))
    with Index(tmp_path / "index", **tiny_model) as index:
        report = index.add([f"s3://{name}/docs"])
        (empty,) = report.empty_folders
        assert (empty.folder, empty.found.files, empty.found.left_out) == (
            f"s3://{name}/docs",
            2,
            1,
        )
        assert empty.found.extensions == {".txt": 2}
        assert index.catalog.files.folders() == {}


def test_a_missing_prefix_or_an_object_given_is_a_usage_error(bucket, tiny_model, tmp_path):
    fs, name = bucket
    an_object = "s3://" + sorted(fs.find(f"{name}/photos"))[0]
    for given, refusal in (
        (f"s3://{name}/nothing-here", "no bucket or objects there"),
        (an_object, "is an object; give the prefix"),
    ):
        with Index(tmp_path / "index", **tiny_model) as index:
            with pytest.raises(UsageError, match=refusal):
                index.add([given])
    result = CliRunner().invoke(cli, ["--index", str(tmp_path / "i"), "add", "s3://no-such-bkt"])
    assert result.exit_code == 2 and "cannot add s3://no-such-bkt" in result.stderr


def test_serve_shows_and_searches_with_images_on_object_storage(bucket, tiny_model, tmp_path):
    from tests.serving import Server

    fs, name = bucket
    with Index(tmp_path / "index", **tiny_model) as index:
        index.add([f"s3://{name}/photos"])
        paths = index.catalog.images.all_paths()
    image_id, path = min(paths.items())
    server = Server(tmp_path / "index").start()  # inherits the endpoint and keys from the env
    try:
        status, headers, body = server.request(f"/api/images/{image_id}")
        assert status == 200 and body == fs.cat_file(path)
        assert headers["content-type"] in ("image/jpeg", "image/png")
        status, headers, body = server.request(f"/api/thumbs/{image_id}?size=64")
        assert status == 200 and headers["content-type"] == "image/jpeg"
        assert max(Image.open(io.BytesIO(body)).size) <= 64
        status, hits = server.json(f"/api/neighbors/{image_id}?k=3")
        assert status == 200 and all(h["path"].startswith(f"s3://{name}/") for h in hits)
        fs.rm(path.removeprefix("s3://"))  # gone from the bucket: 404, and still serving
        status, error = server.json(f"/api/images/{image_id}")
        assert status == 404 and "is gone" in error["error"]
        assert server.json("/api/status")[0] == 200
    finally:
        assert server.stop() == 0
