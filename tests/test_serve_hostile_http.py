"""Hostile HTTP against a real `idx serve` on loopback (security issue 21): DNS rebinding (any
`Host`), cross-site requests (`Origin`, `Sec-Fetch-Site`), the token a server beyond loopback
needs, files served by the format the catalog stored and only while they are what was indexed,
an id too long for int() and a method the path does not take.

Every server here listens on loopback or on 0.0.0.0, and is only ever spoken to on 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
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


# -- Host: DNS rebinding ----------------------------------------------------------------------


def test_a_foreign_host_name_is_refused(site):
    """A page on evil.example whose name now resolves to 127.0.0.1 sends `Host: evil.example`:
    the same-origin policy no longer protects the API from it."""
    server = site["server"]
    port = server.info["port"]
    for host in (
        "evil.example",
        f"evil.example:{port}",
        f"127.0.0.1.evil.example:{port}",
        f"localhost.evil.example:{port}",
        f"0.0.0.0:{port}",
        f"[::ffff:7f00:1]:{port}",
    ):
        for path in ("/api/status", "/api/sql?q=SELECT+1", "/"):
            status, headers, body = server.request(path, headers={"Host": host})
            assert status == 403, (host, path, status, body[:200])
            assert headers["content-type"] == "application/json"
            assert "Host" in _error(body) and host.split(":")[0] in _error(body), body


def test_loopback_host_names_are_served(site):
    server = site["server"]
    port = server.info["port"]
    for host in (
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        f"LocalHost:{port}",
        "localhost",
        f"127.8.9.10:{port}",
        f"[::1]:{port}",
    ):
        status, _, body = server.request("/api/status", headers={"Host": host})
        assert status == 200, (host, body[:200])


# -- cross-site requests ------------------------------------------------------------------------


def test_cross_site_api_requests_are_refused(site):
    server = site["server"]
    port = server.info["port"]
    image_id = site["ids"]["to-twin.png"]
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": f"http://localhost:{port + 1}"},
        {"Origin": f"https://127.0.0.1:{port}.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": f"http://127.0.0.1:{port}"},
    ):
        for path in ("/api/status", f"/api/thumbs/{image_id}", "/api/sql?q=SELECT+1"):
            status, _, body = server.request(path, headers=headers)
            assert status == 403, (headers, path, status, body[:200])
            assert "cross-site" in _error(body), body
    status, _, body = server.request(
        "/api/search", data=b"x", headers={"Origin": "http://evil.example"}, method="POST"
    )
    assert status == 403 and "cross-site" in _error(body)


def test_same_origin_and_direct_requests_are_served(site):
    server = site["server"]
    port = server.info["port"]
    for headers in (
        {},  # curl, scripts: no Origin, no Sec-Fetch-*
        {"Origin": f"http://127.0.0.1:{port}"},
        {"Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "none"},  # typed in the address bar, a bookmark
    ):
        status, _, body = server.request("/api/status", headers=headers)
        assert status == 200, (headers, body[:200])
    # a link from another site to the app itself is fine: only the API is guarded
    status, _, page = server.request("/", headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 200 and b"<script" in page


# -- a token beyond loopback --------------------------------------------------------------------


@pytest.fixture(scope="module")
def remote(site):
    """A server bound to every interface (spoken to on 127.0.0.1 only), token generated."""
    server = Server(site["dir"], "--host", "0.0.0.0").start()
    yield server
    assert server.stop() == 0, server.stderr()
    assert "Traceback" not in server.stderr(), server.stderr()


def test_beyond_loopback_a_token_is_generated_and_printed(remote):
    token = remote.info["token"]
    assert len(token) >= 32 and remote.info["loopback_only"] is False
    assert remote.info["url"] == f"http://0.0.0.0:{remote.info['port']}/?token={token}"


def test_beyond_loopback_requests_need_the_token(remote):
    token = remote.info["token"]
    for path in ("/api/status", "/", f"/api/images/{1}"):
        status, headers, body = remote.request(path)
        assert status == 401, (path, status, body[:200])
        assert "token" in _error(body) and headers["www-authenticate"].startswith("Bearer")
    for wrong in ({"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {token}x"}):
        status, _, body = remote.request("/api/status", headers=wrong)
        assert status == 403 and "token" in _error(body), body
    status, _, body = remote.request("/api/status?token=nope")
    assert status == 403
    status, _, body = remote.request("/api/status", headers={"Authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(body)["images"] > 40
    # with the token, any Host: the name people reach the machine by
    status, _, _ = remote.request(
        "/api/status", headers={"Authorization": f"Bearer {token}", "Host": "photos.lan:8765"}
    )
    assert status == 200


def test_the_token_in_the_url_sets_a_cookie_the_page_then_uses(remote, site):
    token, port = remote.info["token"], remote.info["port"]
    status, headers, page = remote.request(f"/?token={token}")
    assert status == 200 and b"<script" in page
    cookie = headers["set-cookie"]
    name_value = cookie.split(";")[0]
    assert name_value == f"idx_token_{port}={token}"
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    with_cookie = {"Cookie": name_value, "Sec-Fetch-Site": "same-origin"}
    for path in ("/api/status", "/static/app.js", f"/api/thumbs/{site['ids']['to-twin.png']}"):
        status, _, body = remote.request(path, headers=with_cookie)
        assert status == 200, (path, body[:200])
    status, _, body = remote.request("/api/status", headers={"Cookie": f"idx_token_{port}=old"})
    assert status == 403


def test_on_loopback_a_token_given_is_required_and_the_flag_wins(site):
    server = Server(
        site["dir"], "--token", "from-the-flag", env={"IDX_SERVE_TOKEN": "from-the-env"}
    ).start()
    try:
        assert server.info["loopback_only"] is True
        assert server.info["url"].endswith("/?token=from-the-flag")
        assert server.request("/api/status")[0] == 401
        bearer = {"Authorization": "Bearer from-the-env"}
        assert server.request("/api/status", headers=bearer)[0] == 403
        bearer = {"Authorization": "Bearer from-the-flag"}
        assert server.request("/api/status", headers=bearer)[0] == 200
    finally:
        assert server.stop() == 0, server.stderr()
    server = Server(site["dir"], env={"IDX_SERVE_TOKEN": "from-the-env"}).start()
    try:
        assert server.request("/api/status")[0] == 401
        bearer = {"Authorization": "Bearer from-the-env"}
        assert server.request("/api/status", headers=bearer)[0] == 200
    finally:
        assert server.stop() == 0, server.stderr()


# -- files: by the format indexed, only while they are what was indexed ------------------------


@pytest.mark.parametrize("name", ["x.html", "y.js"])
def test_a_gif_named_like_a_page_or_script_is_served_as_a_gif(site, name):
    server = site["server"]
    path = site["images"] / name
    status, headers, body = server.request(f"/api/images/{site['ids'][name]}")
    assert status == 200 and body == path.read_bytes() and SCRIPT in body
    assert headers["content-type"] == "image/gif"
    assert headers["x-content-type-options"] == "nosniff"
    policy = headers["content-security-policy"]
    assert "sandbox" in policy and "default-src 'none'" in policy and "'self'" not in policy
    assert headers["content-disposition"] == f'inline; filename="{Path(name).stem}.gif"'


def test_files_are_served_with_their_indexed_format(site):
    server = site["server"]
    status, headers, body = server.request(f"/api/images/{site['ids']['to-twin.png']}")
    assert status == 200 and headers["content-type"] == "image/png"
    assert headers["content-disposition"] == 'inline; filename="to-twin.png"'
    jpeg = next(n for n in site["ids"] if n.endswith(".jpg"))
    status, headers, body = server.request(f"/api/images/{site['ids'][jpeg]}")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    status, headers, body = server.request(f"/api/images/{site['ids']['x.html']}", method="HEAD")
    assert status == 200 and headers["content-type"] == "image/gif" and body == b""
    assert int(headers["content-length"]) == (site["images"] / "x.html").stat().st_size


def _replace_by_link(path: Path, target: Path) -> None:
    path.unlink()
    path.symlink_to(target)


def test_a_file_replaced_by_a_link_out_of_its_folder_is_refused(site):
    server, ids, images = site["server"], site["ids"], site["images"]
    secret = site["private"] / "secret.png"
    _replace_by_link(images / "to-private.png", secret)
    _replace_by_link(images / "to-catalog.png", site["dir"] / "catalog.duckdb")
    for name in ("to-private.png", "to-catalog.png"):
        for path in (f"/api/images/{ids[name]}", f"/api/thumbs/{ids[name]}"):
            status, _, body = server.request(path)
            assert status == 404, (path, status, body[:200])
            assert "outside" in _error(body) and str(images) in _error(body), body
            assert b"DUCK" not in body and secret.read_bytes() not in body


def test_a_link_out_of_the_folder_is_refused_even_when_size_and_time_match(site):
    """A planted link whose target was given the indexed size and mtime: only the folder check
    tells it from the indexed file."""
    server, ids, images = site["server"], site["ids"], site["images"]
    original = images / "same-size-and-time.png"
    st = original.stat()
    planted = site["private"] / "planted.bin"
    planted.write_bytes(b"PRIVATE " * (st.st_size // 8) + b"!" * (st.st_size % 8))
    os.utime(planted, ns=(st.st_atime_ns, st.st_mtime_ns))
    _replace_by_link(original, planted)
    status, _, body = server.request(f"/api/images/{ids['same-size-and-time.png']}")
    assert status == 404 and b"PRIVATE" not in body and "outside" in _error(body), body


def test_a_link_to_another_indexed_file_is_a_change(site):
    server, ids, images = site["server"], site["ids"], site["images"]
    _replace_by_link(images / "linked.png", images / "to-twin.png")
    status, _, body = server.request(f"/api/images/{ids['linked.png']}")
    assert status == 409 and "idx add" in _error(body), body


def test_a_changed_file_is_409_and_a_removed_one_404(site):
    server, ids, images = site["server"], site["ids"], site["images"]
    Image.new("RGB", (41, 30), (255, 255, 0)).save(images / "edited.png", "PNG")
    for path in (f"/api/images/{ids['edited.png']}", f"/api/thumbs/{ids['edited.png']}"):
        status, headers, body = server.request(path)
        assert status == 409, (path, status, body[:200])
        assert headers["content-type"] == "application/json"
        assert "changed since it was indexed" in _error(body) and "idx add" in _error(body)
    (images / "gone.png").unlink()
    for path in (f"/api/images/{ids['gone.png']}", f"/api/thumbs/{ids['gone.png']}"):
        status, _, body = server.request(path)
        assert status == 404 and "gone" in _error(body), body


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


# -- the web app with a token --------------------------------------------------------------------


def _until(page, expression: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
        time.sleep(0.05)


def test_the_web_app_works_with_the_token_from_the_printed_url(chromium, remote):
    """The page opened at the printed URL gets the cookie; its API requests, thumbnails and
    the link to a full image carry it. Without it, the page is a 401."""
    url = remote.info["url"].replace("0.0.0.0", "127.0.0.1")
    base = url.split("?")[0].rstrip("/")
    context = chromium.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url)
        _until(page, "document.querySelector('#status').textContent.includes('images')")
        page.fill("#query", "red circles")
        page.press("#query", "Enter")
        page.wait_for_selector("#results .card img")
        _until(
            page,
            "[...document.querySelectorAll('#results .card img')]"
            ".every(i => i.complete && i.naturalWidth > 0)",
        )
        assert errors == []
        first = page.eval_on_selector("#results .card", "e => e.dataset.id")
        shown = page.goto(f"{base}/api/images/{first}")
        assert shown.status == 200 and shown.headers["content-type"].startswith("image/")
    finally:
        context.close()
    context = chromium.new_context()  # another browser session: no cookie
    try:
        assert context.new_page().goto(base + "/").status == 401
    finally:
        context.close()
