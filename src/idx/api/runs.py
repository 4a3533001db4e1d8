"""What the analysis operations share: which images, where plots go, storing and finding runs."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from idx import config
from idx.errors import NotFoundError, UsageError
from idx.indexer.decode import open_image
from idx.indexer.index import Index
from idx.progress import Progress, ProgressEvent

log = logging.getLogger(__name__)

#: 'all' images, or only the 'clean' ones: added from files (the robustness feature adds
#: perturbed copies under another source).
SUBSETS = {"all": "", "clean": "WHERE i.source = 'files'"}


def load_embeddings(index: Index, subset: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """(ids, unit vectors) of the subset, ordered by id; EmptyIndexError when there are none."""
    if subset not in SUBSETS:
        raise UsageError(f"subset {subset!r} is unknown; use 'all' or 'clean'")
    index.require_images("analyse")
    ids, vectors = index.catalog.vectors(SUBSETS[subset])
    if len(ids) == 0:
        raise UsageError(
            f"no {subset} images to analyse: the index holds only images added by other "
            "commands (source other than 'files'); add folders with `idx add FOLDER`"
        )
    return ids, vectors


def describe_model(index: Index) -> tuple[str | None, bool]:
    """(model description as stored, whether its weights are untrained)."""
    ident = index.stored_identity()
    return (ident.describe(), ident.untrained) if ident else (None, False)


def plots_dir(index: Index, out: str | os.PathLike[str] | None, name: str) -> Path:
    """`<out>/<name>` or `<index>/plots/<name>`, created."""
    base = Path(out) if out is not None else index.dir / config.PLOTS_DIR
    folder = base / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def insert_rows(index: Index, table: str, columns: dict[str, Any]) -> None:
    """Bulk insert columns (arrays or lists) through Arrow; call inside a transaction."""
    con = index.catalog.con
    name = f"_idx_new_{table}"
    con.register(name, pa.table(columns))
    try:
        con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM {name}")
    finally:
        con.unregister(name)


def insert_run(index: Index, table: str, values: dict[str, Any]) -> int:
    """Insert one run row (inside a transaction) and return its id: the next value of
    `<table>_id_seq`, moved past any id written without the sequence."""
    con = index.catalog.con
    run_id = int(
        con.execute(
            f"SELECT greatest(nextval('{table}_id_seq'), "
            f"(SELECT coalesce(max(id), 0) + 1 FROM {table}))"
        ).fetchall()[0][0]
    )
    columns = ["id", *values]
    con.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        [run_id, *values.values()],
    )
    return run_id


def resolve_run(index: Index, table: str, run_id: int | None, what: str) -> int:
    """run_id checked to exist in `table`, or the latest run when None."""
    con = index.catalog.con
    if run_id is None:
        row = con.execute(f"SELECT max(id) FROM {table}").fetchall()[0][0]
        if row is None:
            raise NotFoundError(f"the index has no {what} runs yet; run `idx {what}` first")
        return int(row)
    if not con.execute(f"SELECT 1 FROM {table} WHERE id = ?", [run_id]).fetchall():
        raise NotFoundError(
            f'{what} run {run_id} does not exist; list runs with `idx sql "SELECT * FROM {table}"`'
        )
    return int(run_id)


def image_paths(index: Index, ids: Sequence[int]) -> dict[int, str]:
    rows = index.catalog.con.execute(
        "SELECT id, path FROM images WHERE id IN (SELECT unnest(?::BIGINT[]))",
        [list(map(int, ids))],
    ).fetchall()
    return {int(i): p for i, p in rows}


def decode_thumbnails(
    index: Index,
    ids: Sequence[int],
    side: int,
    progress: Progress | None = None,
    phase: str = "decode",
) -> list[np.ndarray]:
    """HxWx3 uint8 arrays no larger than side x side, in the order of ids.

    A file that can no longer be read (moved since `idx add`) becomes a grey tile and a log line,
    so that one missing file does not lose a run.
    """
    paths = image_paths(index, ids)
    out: list[np.ndarray] = []
    grey = np.full((side, side, 3), 128, dtype=np.uint8)
    for done, image_id in enumerate(ids, 1):
        path = paths.get(int(image_id))
        try:
            if path is None:
                raise OSError("not in the catalog")
            image = open_image(path, min_side=side).image
            image.thumbnail((side, side))
            out.append(np.asarray(image, dtype=np.uint8))
        except Exception as exc:  # noqa: BLE001 - DecodeError or OSError: keep going, say why
            log.warning("image %s (%s) shown as a grey tile: %s", image_id, path, exc)
            out.append(grey)
        if progress and (done % 64 == 0 or done == len(ids)):
            progress(ProgressEvent(phase, done, len(ids)))
    return out


def tick(progress: Progress | None, phase: str) -> Callable[[int, int], None] | None:
    """An analysis-level progress(done, total) that forwards to the CLI's progress events."""
    if progress is None:
        return None
    return lambda done, total: progress(ProgressEvent(phase, done, total))


def list_column(matrix: np.ndarray) -> pa.ListArray:
    """Rows of a float matrix as an Arrow list column (DuckDB FLOAT[])."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    n, d = matrix.shape
    offsets = pa.array(np.arange(0, n * d + 1, d, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.ravel()))
