"""`idx serve`'s JSON API against a real server on loopback: every endpoint, filtered results
equal to brute force over the filtered set (from `idx export`), hostile requests answered with
a 4xx while the server keeps serving, and an index left exactly as it was."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import urllib.parse
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from idx.indexer.index import Index
from idx.indexer.model.encoder import Encoder
from idx.indexer.model.identity import ModelIdentity
from tests.serving import Server, brute_force, exported, multipart, prepare_index

LIMITS = {"IDX_MAX_UPLOAD": "300000", "IDX_SQL_MAX_ROWS": "20", "IDX_SQL_TIMEOUT": "2"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def site(tmp_path_factory, indexed, tiny_model):
    root = tmp_path_factory.mktemp("serve")
    index_dir = prepare_index(indexed, root / "index", tiny_model)
    ids, matrix, paths = exported(index_dir, root / "export")
    with Index(index_dir, read_only=True) as index:
        cluster_of = dict(index.sql("SELECT image_id, cluster FROM clusters")[1])
        model = ModelIdentity.from_json(index.catalog.get_meta("model"))
    before = _sha(index_dir / "catalog.duckdb")
    server = Server(index_dir, env=LIMITS).start()
    yield {
        "server": server,
        "dir": index_dir,
        "ids": ids,
        "matrix": matrix,
        "paths": paths,
        "label": np.array([Path(p).parent.name for p in paths]),
        "cluster": np.array([cluster_of[int(i)] for i in ids]),
        "encoder": Encoder.load(model),
        "catalog_sha": before,
    }
    code = server.stop()
    assert code == 0, server.stderr()
    assert "Traceback" not in server.stderr(), server.stderr()
    # read-only: no request changed the catalog file
    assert _sha(index_dir / "catalog.duckdb") == before


def _q(**params) -> str:
    return urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})


def _check_hits(hits, want_ids, want_scores, paths_by_id):
    assert [h["id"] for h in hits] == want_ids
    np.testing.assert_allclose([h["score"] for h in hits], want_scores, atol=1e-5)
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    for h in hits:
        assert h["path"] == paths_by_id[h["id"]] and isinstance(h["labels"], list)


def test_status_page_and_assets(site):
    server = site["server"]
    assert server.info["images"] == 48 and server.info["loopback_only"] is True
    status, body = server.json("/api/status")
    assert status == 200 and body["images"] == 48 and body["vectors"]["in_sync"]
    status, headers, page = server.request("/")
    assert status == 200 and b'<script src="/static/app.js">' in page
    assert "default-src 'self'" in headers["content-security-policy"]
    for asset in (
        "/static/app.js",
        "/static/app.css",
        "/static/lib/scatter.js",
        "/static/lib/charts.js",
    ):
        status, _, body = server.request(asset)
        assert status == 200 and len(body) > 500, asset


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"label": "red_circles"},
        {"label": "SUNSETS"},  # any case
        {"cluster": 1},
        {"where": "format = 'JPEG' AND size > 1000"},
        {"where": "list_contains(labels, 'checkerboards') OR cluster = 0", "cluster": 0},
    ],
    ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()) or "unfiltered",
)
def test_text_neighbors_and_image_queries_equal_brute_force_over_the_filter(site, filters):
    server, ids, matrix, paths = site["server"], site["ids"], site["matrix"], site["paths"]
    paths_by_id = dict(zip(map(int, ids), paths))
    keep = np.ones(len(ids), bool)
    if "label" in filters:
        keep &= site["label"] == filters["label"].lower()
    if "cluster" in filters:
        keep &= site["cluster"] == filters["cluster"]
    if "where" in filters:  # the same condition, evaluated here by hand
        sizes = np.array([Path(p).stat().st_size for p in paths])
        jpeg = np.array([p.endswith(".jpg") for p in paths])
        if filters["where"].startswith("format"):
            keep &= jpeg & (sizes > 1000)
        else:
            keep &= (site["label"] == "checkerboards") | (site["cluster"] == 0)
    assert 0 < keep.sum() < len(ids) or not filters

    query = site["encoder"].encode_texts(["red circles"])
    status, hits = server.json(f"/api/search?{_q(text='red circles', k=7, **filters)}")
    assert status == 200, hits
    _check_hits(hits, *brute_force(ids, matrix, query, 7, keep), paths_by_id)

    anchor = int(ids[np.nonzero(keep)[0][0]])
    status, near = server.json(f"/api/neighbors/{anchor}?{_q(k=5, **filters)}")
    assert status == 200, near
    others = keep & (ids != anchor)
    _check_hits(near, *brute_force(ids, matrix, matrix[ids == anchor], 5, others), paths_by_id)

    data = Path(paths_by_id[anchor]).read_bytes()
    status, by_image = server.post_image(f"/api/search?{_q(k=4, **filters)}", data)
    assert status == 200, by_image
    assert by_image[0]["id"] == anchor and by_image[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert [h["id"] for h in by_image] == brute_force(ids, matrix, matrix[ids == anchor], 4, keep)[
        0
    ]


def test_search_by_id_and_form_fields(site):
    server, ids = site["server"], site["ids"]
    status, hits = server.json(f"/api/search?id={int(ids[3])}&k=3")
    assert status == 200 and hits[0]["id"] == int(ids[3]) and hits[0]["score"] == pytest.approx(1)
    data = Path(site["paths"][5]).read_bytes()
    status, hits = server.post_image("/api/search", data, fields={"k": "2", "label": "sunsets"})
    assert status == 200 and len(hits) == 2 and all(h["labels"] == ["sunsets"] for h in hits)


def test_image_bytes_thumbnails_and_details(site):
    server, ids, paths = site["server"], site["ids"], site["paths"]
    image_id, path = int(ids[10]), paths[10]
    status, headers, body = server.request(f"/api/images/{image_id}")
    assert status == 200 and body == Path(path).read_bytes()
    for size, most in ((None, 256), (32, 64)):  # sizes round up to 64, 128, 256, 512
        query = f"?size={size}" if size else ""
        status, headers, body = server.request(f"/api/thumbs/{image_id}{query}")
        assert status == 200 and headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(body)) as thumb:
            assert thumb.format == "JPEG" and max(thumb.size) <= most
    status, info = server.json(f"/api/details/{image_id}")
    assert status == 200
    assert info["path"] == path and info["labels"] == [Path(path).parent.name]
    assert info["folder"] == str(Path(path).parent) and info["size"] == Path(path).stat().st_size
    assert info["cluster"] == int(site["cluster"][10])


def test_facets_and_map(site):
    server = site["server"]
    status, facets = server.json("/api/facets")
    assert status == 200
    assert sorted(f["name"] for f in facets["labels"]) == sorted(set(site["label"]))
    assert all(f["images"] == 6 for f in facets["labels"]) and facets["labels_complete"]
    assert facets["clusters"]["k"] == 4 and sum(n for _, n in facets["clusters"]["sizes"]) == 48
    status, headers, body = server.request("/api/map", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    points = json.loads(gzip.decompress(body))
    assert sorted(points["ids"]) == sorted(map(int, site["ids"]))
    assert len(points["x"]) == len(points["cluster"]) == len(points["label"]) == 48
    by_id = dict(zip(points["ids"], points["cluster"]))
    assert all(by_id[int(i)] == c for i, c in zip(site["ids"], site["cluster"]))
    status, plain = server.json("/api/map")  # without gzip too
    assert plain["ids"] == points["ids"]


def test_sql_rows_cap_vectors_and_time_limit(site):
    server = site["server"]
    status, out = server.json("/api/sql?" + _q(q="SELECT id, path FROM image_info ORDER BY id"))
    assert status == 200 and out["columns"] == ["id", "path"]
    assert len(out["rows"]) == 20 and out["truncated"] is True  # IDX_SQL_MAX_ROWS
    ranked = (
        "SELECT i.id, array_cosine_similarity(v.vector, text_embedding('red circles')) AS s "
        "FROM image_info i JOIN image_vectors v USING (id) WHERE list_contains(i.labels, "
        "'red_circles') ORDER BY s DESC LIMIT 3"
    )
    status, out = server.json("/api/sql?" + _q(q=ranked))
    assert status == 200, out
    _, hits = server.json("/api/search?" + _q(text="red circles", k=3, label="red_circles"))
    assert [r["id"] for r in out["rows"]] == [h["id"] for h in hits]
    np.testing.assert_allclose([r["s"] for r in out["rows"]], [h["score"] for h in hits], atol=1e-5)
    image_id = int(site["ids"][0])
    status, out = server.json("/api/sql?" + _q(q=f"SELECT image_embedding({image_id}) AS v"))
    np.testing.assert_allclose(out["rows"][0]["v"], site["matrix"][0], atol=1e-6)
    slow = "SELECT count(*) FROM range(100000000000) a, range(1000) b"
    status, out = server.json("/api/sql?" + _q(q=slow))
    assert status == 400 and "time limit of 2 s" in out["error"]


def _bomb() -> bytes:
    """A 32x32 PNG whose header claims 40000 x 40000 pixels."""
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", 40000, 40000)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


HOSTILE_GETS = [
    ("/api/images/../../etc/passwd", 404),
    ("/api/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 404),
    ("/api/images/..%2F..%2Fetc%2Fpasswd", 404),
    ("/api/images/%252e%252e%252fetc%252fpasswd", 404),
    ("/api/images/9999", 404),
    ("/api/images/-1", 404),
    ("/api/images/1.5", 404),
    ("/api/images/99999999999999999999999999", 404),
    ("/api/thumbs/abc", 404),
    ("/api/thumbs/3?size=100000", 400),
    ("/static/../../../../etc/passwd", 404),
    ("/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", 404),
    ("/static/lib/..%2F..%2Fapp.py", 404),
    ("/api/nothing-here", 404),
    ("/api/search", 400),
    ("/api/search?text=", 400),
    ("/api/search?text=a&id=3", 400),
    ("/api/search?text=a&k=0", 400),
    ("/api/search?text=a&k=-5", 400),
    ("/api/search?text=a&k=100000", 400),
    ("/api/search?text=a&k=ten", 400),
    ("/api/search?text=a&cluster=x", 400),
    ("/api/search?text=a&cluster=99", 400),
    ("/api/search?text=a&label=Bananna", 404),
    ("/api/search?text=a&where=" + urllib.parse.quote("no_such_column = 1"), 400),
    ("/api/search?text=a&where=" + urllib.parse.quote("1=1); DROP TABLE images; --"), 400),
    (
        "/api/search?text=a&where="
        + urllib.parse.quote("id IN (SELECT 1 FROM read_text('/etc/passwd'))"),
        400,
    ),
    ("/api/neighbors/9999", 404),
    ("/api/details/9999", 404),
    ("/api/sql", 400),
    ("/api/sql?q=", 400),
    ("/api/sql?q=" + urllib.parse.quote("DROP TABLE images"), 400),
    ("/api/sql?q=" + urllib.parse.quote("DELETE FROM labels"), 400),
    ("/api/sql?q=" + urllib.parse.quote("SELECT 1; DROP TABLE images"), 400),
    ("/api/sql?q=" + urllib.parse.quote("COPY images TO '/tmp/idx-leak.csv'"), 400),
    ("/api/sql?q=" + urllib.parse.quote("ATTACH '/tmp/idx-other.duckdb' AS o"), 400),
    ("/api/sql?q=" + urllib.parse.quote("SELECT * FROM read_text('/etc/passwd')"), 400),
    ("/api/sql?q=" + urllib.parse.quote("SELECT * FROM read_csv('/etc/passwd')"), 400),
    ("/api/sql?q=" + urllib.parse.quote("INSTALL httpfs"), 400),
    ("/api/sql?q=" + urllib.parse.quote("SELEC nonsense"), 400),
]


def test_hostile_requests_get_a_4xx_and_the_server_keeps_serving(site):
    server = site["server"]
    for path, expected in HOSTILE_GETS:
        status, body = server.raw("GET", path)
        assert status == expected, (path, status, body[:300])
        assert "error" in json.loads(body), (path, body[:300])
        assert server.json("/api/status")[0] == 200, f"server down after {path}"
    assert not Path("/tmp/idx-leak.csv").exists() and not Path("/tmp/idx-other.duckdb").exists()


def test_hostile_uploads_and_methods(site):
    server = site["server"]
    cases = [
        (server.post_image("/api/search", b"not an image at all"), 400, "not an image"),
        (server.post_image("/api/search", b""), 400, "empty"),
        (server.post_image("/api/search", _bomb()), 400, "decompression-bomb"),
        (server.post_image("/api/search", b"\xff\xd8\xff\xe0" + b"\0" * 500), 400, "image"),
        (
            server.post_image("/api/search", Path(site["paths"][0]).read_bytes(), field="file"),
            400,
            "`image`",
        ),
        (server.post_image("/api/search", b"x" * 400_000), 413, "upload limit"),
    ]
    for (status, body), expected, words in cases:
        assert status == expected and words in body["error"], (status, body)
    body, content_type = multipart({}, {"image": ("big.jpg", b"x" * 400_000)})
    status, body = server.raw("POST", "/api/search", body, chunked=True, content_type=content_type)
    assert status == 413 and "upload limit" in json.loads(body)["error"]
    for method, path in (("DELETE", "/api/status"), ("PUT", "/api/search"), ("POST", "/api/sql")):
        status, body = server.raw(method, path)
        assert status in (404, 405) and "error" in json.loads(body), (method, path, status)
    assert server.json("/api/status")[0] == 200 and server.alive()


def test_port_in_use_is_a_clear_error_and_other_hosts_are_warned_about(site):
    from click.testing import CliRunner

    from idx.cli.main import cli

    port = str(site["server"].info["port"])
    result = CliRunner().invoke(cli, ["--index", str(site["dir"]), "serve", "--port", port])
    assert result.exit_code == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.output and "--port 0" in result.output
    # beyond loopback it warns first (and here fails the same way: the port is taken)
    result = CliRunner().invoke(
        cli, ["--index", str(site["dir"]), "serve", "--host", "0.0.0.0", "--port", port]
    )
    assert result.exit_code == 1 and "is in use" in result.stderr
    assert "anyone who can reach port" in result.stderr and "indexed image" in result.stderr


def test_the_first_text_embedding_in_sql_is_not_timed_with_the_text_tower_loading(
    indexed, tiny_model, tmp_path
):
    """The SQL process loads what texts need on the first statement that calls
    text_embedding, before that statement's time limit starts: a limit shorter than the load
    still lets the query run, and still stops a slow statement. The load here is the model in
    torch (IDX_ONNX=0, as where no text tower applies, e.g. a model on a GPU): importing torch
    alone takes longer than the 1 s limit."""
    index_dir = prepare_index(indexed, tmp_path / "index", tiny_model)
    dim = exported(index_dir, tmp_path / "export")[1].shape[1]
    limits = {**LIMITS, "IDX_SQL_TIMEOUT": "1", "IDX_ONNX": "0"}
    server = Server(index_dir, env=limits).start()
    try:
        ranked = (
            "SELECT id, array_cosine_similarity(vector, text_embedding('red circles')) AS s, "
            "len(text_embedding('red circles')) AS d FROM image_vectors ORDER BY s DESC LIMIT 3"
        )
        status, out = server.json("/api/sql?" + _q(q=ranked))
        assert status == 200, out
        assert [r["d"] for r in out["rows"]] == [dim] * 3
        slow = "SELECT count(*) FROM range(100000000000) a, range(1000) b"
        status, out = server.json("/api/sql?" + _q(q=slow))
        assert status == 400 and "time limit of 1 s" in out["error"]
    finally:
        assert server.stop() == 0, server.stderr()
