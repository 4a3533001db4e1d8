"""Hostile HTTP against a real `idx serve` on loopback (security issue 21): DNS rebinding (any
`Host`), cross-site requests (`Origin`, `Sec-Fetch-Site`), the token a server beyond loopback
needs, files served by the format the catalog stored and only while they are what was indexed,
an id too long for int() and a method the path does not take.

Every server here listens on loopback or on 0.0.0.0, and is only ever spoken to on 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from idx.indexer.index import Index
from tests.serving import Server

#: A GIF that Pillow reads (so `idx add` indexes it by its content) and that a browser told it
#: is text/html would run: its comment block holds a script.
SCRIPT = b"<script>document.title='pwned'</script>"


def _polyglot_gif(path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), (200, 30, 30)).save(buf, "GIF", comment=b"<html>" + SCRIPT)
    path.write_bytes(buf.getvalue())


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    Image.new("RGB", (40, 30), colour).save(path, "PNG")


@pytest.fixture(scope="module")
def site(tmp_path_factory, synthetic_set, tiny_model):
    root = tmp_path_factory.mktemp("hostile")
    images = root / "images"
    shutil.copytree(synthetic_set, images)
    _polyglot_gif(images / "x.html")
    _polyglot_gif(images / "y.js")
    names = (
        "to-private.png",
        "to-catalog.png",
        "to-twin.png",
        "linked.png",
        "edited.png",
        "gone.png",
    )
    for name in names:
        _png(images / name, (20, 120, 220))
    _png(images / "same-size-and-time.png", (20, 120, 221))
    private = root / "private"  # beside the indexed folder, never given to `idx add`
    private.mkdir()
    _png(private / "secret.png", (0, 0, 0))
    index_dir = root / "index"
    with Index(index_dir, **tiny_model) as index:
        index.add([images])
        ids = {Path(p).name: i for i, p in index.catalog.images.all_paths().items()}
    assert {"x.html", "y.js", "to-private.png"} <= set(ids)
    server = Server(index_dir).start()
    yield {"server": server, "ids": ids, "images": images, "private": private, "dir": index_dir}
    code = server.stop()
    assert code == 0, server.stderr()
    assert "Traceback" not in server.stderr(), server.stderr()


def _error(body: bytes) -> str:
    return json.loads(body)["error"]


# -- malformed ids and methods -------------------------------------------------------------------


def test_an_id_too_long_for_int_is_a_404(site):
    server = site["server"]
    long_id = "9" * 5000
    for route in ("images", "thumbs", "neighbors", "details"):
        status, headers, body = server.request(f"/api/{route}/{long_id}")
        assert status == 404, (route, status, body[:300])
        assert headers["content-type"] == "application/json"
        assert "no image with id" in _error(body) and len(_error(body)) < 200
    status, _, body = server.request(f"/api/search?id={long_id}")
    assert status == 400 and len(_error(body)) < 300
    assert server.request("/api/status")[0] == 200
    assert "Traceback" not in server.stderr(), server.stderr()[-3000:]


def test_a_method_the_path_does_not_take_is_405(site):
    server = site["server"]
    for method, path, allowed in (
        ("POST", "/api/status", {"GET", "HEAD"}),
        ("PUT", f"/api/images/{site['ids']['to-twin.png']}", {"GET", "HEAD"}),
        ("DELETE", "/api/search", {"GET", "HEAD", "POST"}),
        ("POST", "/api/facets", {"GET", "HEAD"}),
    ):
        status, headers, body = server.request(path, data=b"", method=method)
        assert status == 405, (method, path, status, body[:200])
        assert {m.strip() for m in headers["allow"].split(",")} == allowed
        assert method in _error(body) and "GET" in _error(body)
    status, _, body = server.request("/api/no-such-thing", data=b"", method="POST")
    assert status == 404 and "no such API path" in _error(body)
