"""A real `idx serve` on loopback for the tests: started as its own process with --port 0,
spoken to over HTTP (urllib, no proxy), stopped with Ctrl-C (SIGINT) and checked to exit
cleanly."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np

SRC = str(Path(__file__).resolve().parents[1] / "src")
START_TIMEOUT_S = 180


class Server:
    def __init__(self, index_dir: Path, *args: str, env: dict[str, str] | None = None):
        self.index_dir = Path(index_dir)
        self.args = [str(a) for a in args]
        # a token in the caller's shell would make every test server ask for it
        inherited = {k: v for k, v in os.environ.items() if k != "IDX_SERVE_TOKEN"}
        self.env = {**inherited, "PYTHONPATH": SRC, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}
        self._stderr = tempfile.TemporaryFile()
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def start(self) -> Server:
        cmd = [sys.executable, "-m", "idx", "--index", str(self.index_dir), "serve"]
        cmd += ["--port", "0", "--json", "-q", *self.args]
        self.proc = subprocess.Popen(
            cmd, env=self.env, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        text = ""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"idx serve exited ({self.proc.wait()}):\n{self.stderr()}")
            text += line
            if line.startswith("}"):
                self.info = json.loads(text)
                return self
        raise RuntimeError(f"idx serve did not start in {START_TIMEOUT_S} s:\n{self.stderr()}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.info['port']}"

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def stop(self) -> int:
        """Ctrl-C, then the exit code (killed after 30 s)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- requests -----------------------------------------------------------------------

    def request(
        self,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lower-case names, body)."""
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        if method:
            req.method = method
        try:
            with self._opener.open(req, timeout=120) as resp:
                return resp.status, _lower(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, _lower(err.headers), err.read()

    def raw(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        chunked: bool = False,
        content_type: str = "application/octet-stream",
    ) -> tuple[int, bytes]:
        """A request whose path goes out byte for byte (no client-side normalising)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.info["port"], timeout=120)
        try:
            if chunked:
                conn.putrequest(method, path, skip_accept_encoding=True)
                conn.putheader("Transfer-Encoding", "chunked")
                conn.putheader("Content-Type", content_type)
                conn.endheaders()
                for at in range(0, len(body), 65536):
                    part = body[at : at + 65536]
                    try:
                        conn.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    except OSError:  # the server answered and closed before the end
                        break
                else:
                    conn.send(b"0\r\n\r\n")
            else:
                conn.request(method, path, body=body or None)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def json(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, _, body = self.request(path, **kwargs)
        return status, json.loads(body)

    def post_image(
        self,
        path: str,
        data: bytes,
        filename: str = "query.jpg",
        field: str = "image",
        fields: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        body, content_type = multipart({**(fields or {})}, {field: (filename, data)})
        status, _, out = self.request(path, data=body, headers={"Content-Type": content_type})
        return status, json.loads(out)


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, data) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def prepare_index(indexed: Path, dest: Path, tiny_model: dict[str, str]) -> Path:
    """A copy of the synthetic index with folder labels, a PCA map and 4 clusters: what the web
    app shows and the filters filter by."""
    import shutil

    from idx.indexer.index import Index
    from idx.ops.labels import imports
    from idx.ops.maps import clustering, projection

    shutil.copytree(indexed, dest)
    with Index(dest, **tiny_model) as index:
        imports.import_folders(index)
        projection.project(index, "pca", plot=False)
        clustering.cluster(index, 4, plot=False)
    return dest


def exported(index_dir: Path, out: Path) -> tuple[Any, Any, list[str]]:
    """(ids, vectors, paths) as `idx export` writes them: the brute-force reference."""
    from click.testing import CliRunner

    from idx.cli.main import cli

    result = CliRunner().invoke(cli, ["--index", str(index_dir), "export", f"{out}/"])
    assert result.exit_code == 0, result.output
    paths = json.loads((out / "paths.json").read_text())
    return np.load(out / "ids.npy"), np.load(out / "embeddings.npy"), paths


def brute_force(ids: Any, matrix: Any, query: Any, k: int, keep: Any = None) -> tuple[list, list]:
    """The exact top k (ids, scores) among `keep` (a boolean mask over ids; all by default)."""
    mask = np.ones(len(ids), bool) if keep is None else np.asarray(keep, bool)
    scores = matrix[mask] @ np.asarray(query, np.float32).ravel()
    order = np.argsort(-scores, kind="stable")[:k]
    return [int(i) for i in ids[mask][order]], [float(s) for s in scores[order]]


def insert_vectors(index_dir: Path, start: int, matrix: np.ndarray) -> list[int]:
    """What a running add does between batches: images with these vectors committed (paths
    /live/img<start + i>.jpg), the generation moved, the FAISS file not written; their ids."""
    from idx.indexer.index import Index

    n = len(matrix)
    shas = [f"{start + i:064x}" for i in range(n)]
    with Index(index_dir) as writer:
        cat = writer.catalog
        with cat.transaction():
            cat.images.insert_embeddings(shas, matrix)
            cat.insert_rows(
                "images",
                {
                    "path": [f"/live/img{start + i}.jpg" for i in range(n)],
                    "root": ["/live"] * n,
                    "sha256": shas,
                    "bytes": np.full(n, 10),
                    "mtime_ns": np.zeros(n, np.int64),
                    "width": np.full(n, 8),
                    "height": np.full(n, 8),
                    "format": ["JPEG"] * n,
                },
            )
            cat.bump_generation()
        return [int(i) for i in cat.images.ids()[-n:]]
