"""An Open Images mirror on loopback for the tests and bench/openimages.py: a real HTTP server
(http.server, one thread per connection, bound to 127.0.0.1) serving files in the official layout
(`v5/...`, `2018_04/...`, `<split>/<ImageID>.jpg`), with faults to inject: 503s that succeed on
a later try, a connection reset mid-file, a pause mid-file, a per-request delay."""

from __future__ import annotations

import csv
import io
import json
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

LABELS_HEADER = ["ImageID", "Source", "LabelName", "Confidence"]


class Mirror:
    """Files by path (bytes). Faults, by path: `unavailable[path] = n` answers 503 n times,
    `resets[path] = n` cuts the body in half n times, `pauses[path] = s` waits s seconds
    half-way through the body (every time); `delay_s` waits before every answer."""

    def __init__(self, files: dict[str, bytes], delay_s: float = 0.0):
        self.files = dict(files)
        self.delay_s = delay_s
        self.unavailable: Counter[str] = Counter()
        self.resets: Counter[str] = Counter()
        self.pauses: dict[str, float] = {}
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the mirror first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> Mirror:
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers and body wait on a delayed ACK

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                mirror._answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Mirror:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _take(self, faults: Counter[str], path: str) -> bool:
        with self._lock:
            if faults[path] > 0:
                faults[path] -= 1
                return True
            return False

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = urlsplit(handler.path).path.lstrip("/")
        with self._lock:
            self.requests[path] += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        body = self.files.get(path)
        if body is None or self._take(self.unavailable, path):
            status = 404 if body is None else 503
            handler.send_response(status)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        half = len(body) // 2
        if self._take(self.resets, path):
            handler.wfile.write(body[:half])
            handler.wfile.flush()
            # close with a reset (RST), as a dropped connection does
            handler.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            handler.close_connection = True
            return
        if path in self.pauses:
            handler.wfile.write(body[:half])
            handler.wfile.flush()
            time.sleep(self.pauses[path])
            body = body[half:]
        handler.wfile.write(body)


def layout(
    classes: bytes,
    labels: bytes,
    hierarchy: bytes,
    images: dict[str, bytes],
    split: str = "validation",
    boxes: bytes | None = None,
) -> dict[str, bytes]:
    """Files at the paths Open Images publishes them under."""
    files = {
        "v5/class-descriptions-boxable.csv": classes,
        f"v5/{split}-annotations-human-imagelabels-boxable.csv": labels,
        "2018_04/bbox_labels_600_hierarchy.json": hierarchy,
        **{f"{split}/{image_id}.jpg": data for image_id, data in images.items()},
    }
    if boxes is not None:
        name = "v6/oidv6-train-annotations-bbox.csv" if split == "train" else None
        files[name or f"v5/{split}-annotations-bbox.csv"] = boxes
    return files


def csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


#: The generated mirror's classes: (label name, display name, parent label name or None).
TINY_CLASSES = [
    ("/m/0food", "Food", None),
    ("/m/0fruit", "Fruit", "/m/0food"),
    ("/m/0apple", "Apple", "/m/0fruit"),
    ("/m/0banana", "Banana", "/m/0fruit"),
    ("/m/0cookie", "Cookie", "/m/0food"),
    ("/m/0stem", "Stem", None),  # a Part of Apple: never an Apple, never a Fruit
]


def tiny_mirror(per_class: int = 4, split: str = "validation", size: int = 48) -> dict[str, bytes]:
    """A small generated mirror: JPEGs of Apple, Banana and Cookie (`per_class` each), their
    positive labels plus a verified-absent row each and rows for images the mirror lacks, the
    class file (no header, as v5) and a hierarchy Food > Fruit > Apple, Banana; Food > Cookie;
    Apple has the part Stem."""
    rng = np.random.default_rng(5)
    images: dict[str, bytes] = {}
    rows = [LABELS_HEADER]
    for c, (key, _, _) in enumerate(TINY_CLASSES[2:5]):
        for i in range(per_class):
            image_id = f"{c:02x}{i:02x}" + f"{int(rng.integers(2**48)):012x}"
            images[image_id] = jpeg(rng, size)
            rows.append([image_id, "verification", key, "1"])
            rows.append([image_id, "verification", "/m/0stem", "0"])
    rows.append(["ffffffffffffffff", "verification", "/m/0apple", "1"])  # no such image
    rows.append(["../../etc/passwd", "verification", "/m/0apple", "1"])  # never a path
    classes = csv_bytes([[key, name] for key, name, _ in TINY_CLASSES])
    return layout(classes, csv_bytes(rows), json.dumps(tiny_hierarchy()).encode(), images, split)


def tiny_hierarchy() -> dict:
    def node(key: str) -> dict:
        out: dict = {"LabelName": key}
        kids = [k for k, _, parent in TINY_CLASSES if parent == key]
        if kids:
            out["Subcategory"] = [node(k) for k in kids]
        if key == "/m/0apple":
            out["Part"] = [{"LabelName": "/m/0stem"}]
        return out

    return {"LabelName": "/m/0bl9f", "Subcategory": [node("/m/0food")]}


def jpeg(rng: np.random.Generator, size: int) -> bytes:
    pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=80)
    return out.getvalue()


def shared_mirror(data: Path, hierarchy: Path, split: str = "validation") -> dict[str, bytes]:
    """The real snacks photos and their label, class and box files, reshaped into the official
    layout, with a verified-absent row added for every fifth image (real files have them)."""
    labels = (data / "image-labels.csv").read_text().splitlines()
    extra = [
        f"{line.split(',')[0]},verification,/m/0fszt,0"
        for line in labels[1::5]
        if ",/m/0fszt," not in line
    ]
    images = {p.stem: p.read_bytes() for p in sorted((data / "images").glob("*.jpg"))}
    return layout(
        (data / "class-descriptions-boxable.csv").read_bytes(),
        ("\n".join(labels + extra) + "\n").encode(),
        hierarchy.read_bytes(),
        images,
        split,
        boxes=(data / "bbox-annotations.csv").read_bytes(),
    )
