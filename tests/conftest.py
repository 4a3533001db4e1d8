"""Shared fixtures: a tiny real open_clip model with random weights, generated images, temp indexes.

The tiny model goes through the same --model CONFIG.json --checkpoint FILE path as offline users.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

import pytest

from idx import synthetic
from idx.indexer.index import Index
from idx.indexer.model import identity, weights

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "openimages-snacks-val"

# No test downloads. huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported, and idx
# asks huggingface_hub (weights._hub_reachable): so it is set here, before any fixture or test
# loads open_clip, for this process and every process it starts.
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """Derived model files (int8 and text towers) of this test session, not the user's cache."""
    return tmp_path_factory.mktemp("idx-cache")


@pytest.fixture(scope="session", autouse=True)
def _session_model_cache(model_cache):
    """The same cache for what the session- and module-scoped fixtures load, which are set up
    before any test's own environment (a model loaded from the user's cache would differ)."""
    old = os.environ.get("IDX_CACHE")
    os.environ["IDX_CACHE"] = str(model_cache)
    yield
    if old is None:
        os.environ.pop("IDX_CACHE", None)
    else:
        os.environ["IDX_CACHE"] = old


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch, model_cache):
    """Every test gets its own index folder and no IDX_* settings from the caller's shell."""
    for name in (
        "IDX_MODEL",
        "IDX_PRETRAINED",
        "IDX_CHECKPOINT",
        "IDX_BATCH_SIZE",
        "IDX_MAX_PIXELS",
        "IDX_ONNX",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDX_CACHE", str(model_cache))
    monkeypatch.setenv("IDX_INDEX", str(tmp_path / "index"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return weights.save_random_checkpoint(
        identity.tiny_config_path(), tmp_path_factory.mktemp("model") / "idx-tiny.safetensors"
    )


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint) -> dict[str, str]:
    """Keyword arguments for Index(...) that select the tiny random model."""
    return {"model": str(identity.tiny_config_path()), "checkpoint": str(tiny_checkpoint)}


@pytest.fixture
def tiny_args(tiny_model) -> list[str]:
    """The same model as CLI flags."""
    return ["--model", tiny_model["model"], "--checkpoint", tiny_model["checkpoint"]]


@pytest.fixture(scope="session")
def synthetic_set(tmp_path_factory) -> Path:
    """8 categories x 6 generated images (read-only: copy before changing files)."""
    root = tmp_path_factory.mktemp("synthetic") / "images"
    synthetic.generate(root, per_category=6, size=96)
    return root


@pytest.fixture
def images(tmp_path, synthetic_set) -> Path:
    """A private, writable copy of the synthetic set."""
    dest = tmp_path / "images"
    shutil.copytree(synthetic_set, dest)
    return dest


@pytest.fixture(scope="session")
def indexed(tmp_path_factory, synthetic_set, tiny_model) -> Path:
    """An index of the synthetic set, built once (open it read-only, or copy it to change it)."""
    index_dir = tmp_path_factory.mktemp("indexed") / "index"
    with Index(index_dir, **tiny_model) as index:
        index.add([synthetic_set])
    return index_dir


@pytest.fixture
def indexed_copy(tmp_path, indexed) -> Path:
    """A private, writable copy of the `indexed` index."""
    dest = tmp_path / "indexed-copy"
    shutil.copytree(indexed, dest)
    return dest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "images").is_dir():
        pytest.skip("../shared/data is not present (it is only beside the workplace checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def s3_endpoint():
    """A local S3-compatible server (moto) on 127.0.0.1 for the whole session: its URL."""
    moto_server = pytest.importorskip(
        "moto.server", reason="moto is not installed: pip install 'moto[server]'"
    )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch):
    """(s3fs filesystem, name) of a new, empty bucket on the local server, with the AWS_*
    settings of the test pointing at it."""
    pytest.importorskip("s3fs", reason="s3fs is not installed: pip install 'idx-clip[s3]'")
    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    import fsspec

    fs = fsspec.filesystem("s3")
    name = f"idx-test-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    return fs, name


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance for the whole test session, stopped at the end; its address (for
    drivers in child processes). Started as idx starts its own: a new instance even where another
    Ray cluster runs on this machine, on 127.0.0.1 only. 4 logical CPUs on this 2-core machine, so
    that decode tasks still get CPUs beside an embedding actor (with 2, a job can wait forever)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'idx-clip[ray]'")
    pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'ray[data]'")
    from idx.indexer.ingest.engines.ray import start_local

    start_local(ray, num_cpus=4)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


#: Debian's Chromium, driven by Playwright (no browser download), started quiet and offline.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def chromium():
    """A headless Chromium for page tests; skips where it or Playwright is missing."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed: apt-get install -y chromium")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'"
    )
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()
