"""Defaults in one place. Precedence: flag > IDX_* env var > what the index stored > these."""

from __future__ import annotations

import os
from pathlib import Path

#: The model used when neither a flag, IDX_MODEL nor the index says otherwise.
DEFAULT_MODEL = "ViT-B-32"
#: open_clip pretrained tag for DEFAULT_MODEL (OpenAI's released CLIP weights).
DEFAULT_PRETRAINED = "openai"
DEFAULT_BATCH_SIZE = 64
DEFAULT_INDEX_DIR = ".idx"
#: images.source of the images added from the user's files; other sources mark images that idx
#: made itself (robustness injection: 'inject:<id>').
FILES_SOURCE = "files"
#: The zero-shot prompt of every command (insights, robustness): `prompt(display_name)` fills it.
PROMPT_TEMPLATE = "a photo of a {}"

#: Image formats idx ingests. Files are recognised by content (magic bytes), not only by name.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
)
#: Pillow's decompression-bomb guard: images above this many pixels are skipped, not decoded.
MAX_IMAGE_PIXELS = 89_478_485 * 2

#: Seconds to wait for the model hub before declaring ourselves offline.
HUB_TIMEOUT_S = 4.0

CATALOG_FILE = "catalog.duckdb"
VECTORS_FILE = "vectors.faiss"
VECTORS_META_FILE = "vectors.json"
LOCK_FILE = "write.lock"
JOB_FILE = "job.json"
READERS_DIR = "readers"
PLOTS_DIR = "plots"
#: What idx itself keeps in an index folder (besides catalog.duckdb and its .wal).
INDEX_FILES = frozenset(
    {VECTORS_FILE, VECTORS_META_FILE, LOCK_FILE, JOB_FILE, READERS_DIR, PLOTS_DIR}
)


def env(name: str, default: str | None = None) -> str | None:
    """Read an IDX_* environment variable (empty counts as unset)."""
    value = os.environ.get(f"IDX_{name}")
    return value if value else default


def index_dir(flag: str | os.PathLike[str] | None = None) -> Path:
    """The index folder: flag > IDX_INDEX > ./.idx."""
    return Path(flag or env("INDEX") or DEFAULT_INDEX_DIR)


def batch_size(flag: int | None = None) -> int:
    """Images per model call: flag > IDX_BATCH_SIZE > DEFAULT_BATCH_SIZE."""
    return int(flag or env("BATCH_SIZE") or DEFAULT_BATCH_SIZE)


def workers(flag: int | None = None) -> int:
    """Decode threads: flag > IDX_WORKERS > cores + 1, at most 4 (decoding outruns a CPU model)."""
    return int(flag or env("WORKERS") or min(4, (os.cpu_count() or 2) + 1))


def plots_dir(
    index: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, name: str = ""
) -> Path:
    """Where a run's plots go, created: `<out>/<name>` when out is given, else
    `<index>/plots/<name>`."""
    folder = (Path(out) if out is not None else Path(index) / PLOTS_DIR) / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def prompt(display_name: str) -> str:
    """The zero-shot text for a class: folder names read their underscores as spaces."""
    return PROMPT_TEMPLATE.format(display_name.replace("_", " "))


def lock_wait() -> float:
    """Seconds a reader waits for a writer to release the catalog: IDX_LOCK_WAIT, default 30."""
    return float(env("LOCK_WAIT") or 30.0)
