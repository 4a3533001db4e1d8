"""Defaults in one place. Precedence: flag > IDX_* env var > what the index stored > these."""

from __future__ import annotations

import math
import os
import shlex
import sys
from pathlib import Path
from typing import TypeVar

from idx.errors import UsageError

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

#: A decompression-bomb guard: images above this many pixels are skipped, not decoded, unless
#: IDX_MAX_PIXELS says otherwise (the default is Pillow's own, about 89.5 megapixels).
MAX_IMAGE_PIXELS = 89_478_485

#: Seconds to wait for the model hub before declaring ourselves offline.
HUB_TIMEOUT_S = 4.0

CATALOG_FILE = "catalog.duckdb"
VECTORS_FILE = "vectors.faiss"
VECTORS_META_FILE = "vectors.json"
#: Beside an ivfpq index: its exact vectors (float32 rows, re-ranking reads them mapped), the id
#: of each row, and the on-disk inverted lists of one too large for IDX_IVF_RAM_MB.
VECTORS_FLOATS_FILE = "vectors.f32"
VECTORS_IDS_FILE = "vectors.ids"
VECTORS_IVFDATA_FILE = "vectors.ivfdata"
LOCK_FILE = "write.lock"
JOB_FILE = "job.json"
READERS_DIR = "readers"
PLOTS_DIR = "plots"
#: What idx itself keeps in an index folder (besides catalog.duckdb and its .wal).
INDEX_FILES = frozenset(
    {VECTORS_FILE, VECTORS_META_FILE, LOCK_FILE, JOB_FILE, READERS_DIR, PLOTS_DIR}
    | {VECTORS_FLOATS_FILE, VECTORS_IDS_FILE, VECTORS_IVFDATA_FILE}
)


def env(name: str, default: str | None = None) -> str | None:
    """Read an IDX_* environment variable (empty counts as unset)."""
    value = os.environ.get(f"IDX_{name}")
    return value if value else default


N = TypeVar("N", int, float)


def env_number(
    name: str, kind: type[N], *, minimum: N, example: N, exclusive: bool = False
) -> N | None:
    """The number IDX_<name> holds, None when it is unset: a whole number when `kind` is int, a
    finite one when float, at least `minimum` (above it when `exclusive`). Anything else is a
    UsageError that names the variable, its value and what it must be, so a typo in the shell
    ends the command with exit 2 and the fix, not a traceback (or a skip per file)."""
    text = env(name)
    if text is None:
        return None
    value: N | None
    try:
        value = kind(text)
    except ValueError:
        value = None
    if (
        value is None
        or not math.isfinite(value)
        or value < minimum
        or (exclusive and value == minimum)
    ):
        what = "a whole number" if kind is int else "a number"
        bound = f"{'>' if exclusive else '>='} {_plain(minimum)}"
        raise UsageError(
            f"IDX_{name}={text!r} is not {what} {bound}; unset it or give e.g. {_plain(example)}"
        )
    return value


def _plain(number: float) -> str:
    """20000000 as itself, 5.0 as 5 (`:g` alone writes a large int as 2e+07)."""
    return str(number) if isinstance(number, int) else f"{number:g}"


def index_dir(flag: str | os.PathLike[str] | None = None) -> Path:
    """The index folder: flag > IDX_INDEX > ./.idx, as an absolute path (links kept), so that
    every path made from it and printed or stored (plots, injected files, the catalog) is
    absolute too: one form whether the index was named `.idx`, `sub/dir` or `/abs/dir`."""
    return Path(os.path.abspath(flag or env("INDEX") or DEFAULT_INDEX_DIR))


#: Characters that keep their meaning inside double quotes in a POSIX shell (`!` in bash's
#: interactive history): a word holding one is single-quoted instead.
_DOUBLE_QUOTE_SPECIAL = frozenset('"$`\\!')


def command(index: str | os.PathLike[str], *args: str, relative: bool = True) -> str:
    """An idx command line for the index folder `index`, to print as a next step: `idx --index
    DIR ARGS...`, DIR relative to the working folder when it lies under it (`idx-demo/index`),
    else absolute. `--index` is always there, so the line runs as pasted whatever IDX_INDEX
    says then. A word that needs quoting is double-quoted as people write it (`sql "SELECT
    ..."`), unless it holds a character that is special there; then single-quoted (shlex).
    `relative=False`: DIR always absolute, for a line kept to be shown later, elsewhere."""
    path = os.path.abspath(index)
    here = os.getcwd()
    under = relative and path.startswith(os.path.join(here, ""))
    shown = os.path.relpath(path, here) if under else path
    return " ".join(_shell_word(word) for word in ("idx", "--index", shown, *args))


def _shell_word(word: str) -> str:
    quoted = shlex.quote(word)
    if quoted == word or _DOUBLE_QUOTE_SPECIAL.intersection(word):
        return quoted
    return f'"{word}"'


#: Images per model call by device kind, when neither --batch-size nor IDX_BATCH_SIZE says:
#: a GPU needs large batches to be busy; a CPU gains nothing past ~64.
BATCH_SIZES = {"cpu": DEFAULT_BATCH_SIZE, "cuda": 256, "mps": 128}
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS = ("fp32", "int8")
#: int8 is trusted on an index only when its vectors agree with fp32 this well (mean cosine)
#: on a sample of the index's own images.
INT8_MIN_AGREEMENT = 0.99
INT8_CHECK_SAMPLE = 32


def batch_size(flag: int | None = None, device: str = "cpu") -> int:
    """Images per model call: flag > IDX_BATCH_SIZE > the device kind's default."""
    default = BATCH_SIZES.get(device.split(":")[0], DEFAULT_BATCH_SIZE)
    return flag or env_number("BATCH_SIZE", int, minimum=1, example=default) or default


def workers(flag: int | None = None, device: str = "cpu") -> int:
    """Decode threads: flag > IDX_WORKERS > cores + 1, at most 4 on a CPU (decoding outruns a CPU
    model); every core on a GPU, which embeds faster than one core decodes."""
    cores = os.cpu_count() or 2
    default = min(4, cores + 1) if device == "cpu" else cores
    return flag or env_number("WORKERS", int, minimum=1, example=default) or default


def decode_processes(device_kind: str) -> bool:
    """Whether `add` decodes in processes rather than threads: IDX_DECODE=processes|threads,
    else processes on a GPU under Linux (threads, sharing one interpreter, decode at a fraction
    of what it embeds; bench/README.md, "GPU") and threads on the CPU, where the model is the
    slow part. Elsewhere processes are spawned, which runs an unguarded calling script again in
    each (no `if __name__ == "__main__"`), so there they are only used when asked for."""
    chosen = (env("DECODE") or "").strip().lower()
    if chosen not in ("", "processes", "threads"):
        raise UsageError(f"IDX_DECODE={chosen!r} is unknown; use processes or threads")
    default = device_kind == "cuda" and sys.platform.startswith("linux")
    return chosen == "processes" or (not chosen and default)


def device(flag: str | None = None) -> str:
    """The device asked for: flag > IDX_DEVICE > auto (CUDA, then Apple MPS, then the CPU)."""
    return flag or env("DEVICE") or "auto"


def precision(flag: str | None = None) -> str:
    """fp32, or int8 (the image tower quantised, CPU only): flag > IDX_PRECISION > fp32."""
    return flag or env("PRECISION") or "fp32"


def onnx_towers() -> bool:
    """Whether the model's fp32 towers may run in ONNX Runtime without torch (indexer.model.towers);
    IDX_ONNX=0 turns them off."""
    return (env("ONNX") or "1").strip().lower() not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    """Derived model files (the int8 image tower, the ONNX text tower): IDX_CACHE > $XDG_CACHE_HOME/idx > ~/.cache/idx."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(env("CACHE") or os.path.join(base, "idx"))


def plots_dir(
    index: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, name: str = ""
) -> Path:
    """Where a run's plots go, created: `<out>/<name>` when out is given, else
    `<index>/plots/<name>`; absolute, as every path idx prints."""
    folder = Path(os.path.abspath(Path(out) if out is not None else Path(index) / PLOTS_DIR)) / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def prompt(display_name: str) -> str:
    """The zero-shot text for a class: folder names read their underscores as spaces."""
    return PROMPT_TEMPLATE.format(display_name.replace("_", " "))


#: `idx serve`: where it listens unless told otherwise (loopback: only this machine can connect).
SERVE_HOST = "127.0.0.1"
SERVE_PORT = 8765
#: `idx serve`: the largest query image accepted (IDX_MAX_UPLOAD, bytes) and the most results one
#: request may ask for.
SERVE_MAX_UPLOAD = 20_000_000
SERVE_MAX_K = 1000
#: People's SQL (`idx sql`, --where, /api/sql): the rows and about the bytes /api/sql returns at
#: most (IDX_SQL_MAX_ROWS, IDX_SQL_MAX_BYTES), the seconds one statement may run
#: (IDX_SQL_TIMEOUT; `idx sql` has no limit unless it is set), the memory it may use
#: (IDX_SQL_MEMORY_MB: DuckDB's memory_limit, and in `idx serve` the SQL process's whole data
#: size) and DuckDB's threads for it (IDX_SQL_THREADS).
SQL_MAX_ROWS = 1000
SQL_MAX_BYTES = 5_000_000
SQL_TIMEOUT_S = 5.0
SQL_MEMORY_MB = 2048
SQL_THREADS = 1


def serve_token(flag: str | None = None) -> str | None:
    """The token `idx serve` asks every request for: --token > IDX_SERVE_TOKEN; None when
    neither gives one (a server beyond loopback then makes one)."""
    return flag or env("SERVE_TOKEN")


def max_upload() -> int:
    return env_number("MAX_UPLOAD", int, minimum=1, example=SERVE_MAX_UPLOAD) or SERVE_MAX_UPLOAD


def sql_max_rows() -> int:
    return env_number("SQL_MAX_ROWS", int, minimum=1, example=SQL_MAX_ROWS) or SQL_MAX_ROWS


def sql_max_bytes() -> int:
    return env_number("SQL_MAX_BYTES", int, minimum=1, example=SQL_MAX_BYTES) or SQL_MAX_BYTES


def sql_timeout(default: float | None = SQL_TIMEOUT_S) -> float | None:
    timeout = env_number("SQL_TIMEOUT", float, minimum=0.0, exclusive=True, example=SQL_TIMEOUT_S)
    return timeout or default


def sql_memory_mb() -> float:
    memory = env_number("SQL_MEMORY_MB", float, minimum=64.0, example=float(SQL_MEMORY_MB))
    return memory or SQL_MEMORY_MB


def sql_threads() -> int:
    return env_number("SQL_THREADS", int, minimum=1, example=2) or SQL_THREADS


def index_workers() -> int:
    """Processes that fill IVF-PQ shards in a large build: IDX_INDEX_WORKERS > cores."""
    default = os.cpu_count() or 1
    return env_number("INDEX_WORKERS", int, minimum=1, example=default) or default


def ivf_ram_limit() -> float | None:
    """MiB of IVF-PQ codes kept in RAM (IDX_IVF_RAM_MB); a larger index is merged into on-disk
    inverted lists (memory-mapped). Unset: always in RAM."""
    return env_number("IVF_RAM_MB", float, minimum=0.0, example=4096.0)


LOCK_WAIT_S = 30.0


def lock_wait() -> float:
    """Seconds a reader waits for a writer to release the catalog: IDX_LOCK_WAIT, default 30."""
    wait = env_number("LOCK_WAIT", float, minimum=0.0, example=LOCK_WAIT_S)
    return LOCK_WAIT_S if wait is None else wait


def max_pixels() -> int:
    """The most pixels an image may have to be decoded: IDX_MAX_PIXELS > MAX_IMAGE_PIXELS."""
    limit = env_number("MAX_PIXELS", int, minimum=1, example=2 * MAX_IMAGE_PIXELS)
    return limit or MAX_IMAGE_PIXELS


#: `add --engine`: who reads, decodes and embeds (indexer.ingest.engines). The Ray engine needs the ray
#: extra; without an address it starts a Ray instance on this machine for the run.
ENGINES = ("local", "ray")


def engine(flag: str | None = None) -> str:
    """local or ray: flag > IDX_ENGINE > local."""
    return flag or env("ENGINE") or "local"


def ray_address(flag: str | None = None) -> str | None:
    """The Ray cluster to use: flag > RAY_ADDRESS (Ray's own variable) > None (a local one)."""
    return flag or os.environ.get("RAY_ADDRESS") or None


def ray_actors() -> int | None:
    """Embedding actors of the Ray engine (IDX_RAY_ACTORS); unset: one per GPU of the cluster,
    else one per node."""
    return env_number("RAY_ACTORS", int, minimum=1, example=2)
