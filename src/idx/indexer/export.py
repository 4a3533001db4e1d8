"""`idx export`: ids, paths and embeddings exactly as stored, for other tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from idx.errors import UsageError

if TYPE_CHECKING:
    from idx.indexer.catalog import Catalog
    from idx.indexer.model.identity import ModelIdentity

FORMATS = ("parquet", "npy")


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")


def export(catalog: Catalog, ident: ModelIdentity | None, out: Path, fmt: str) -> list[Path]:
    """Write `out` (parquet: one file; npy: a folder of embeddings.npy, ids.npy, paths.json,
    model.json) from a catalog that holds images (`Index.export` checks both first)."""
    check_format(fmt)
    if fmt == "parquet":
        out.parent.mkdir(parents=True, exist_ok=True)
        catalog.images.export_parquet(str(out))
        return [out]
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file; npy export writes a folder, give a folder path")
    out.mkdir(parents=True, exist_ok=True)
    ids, matrix = catalog.images.vectors()
    paths = catalog.images.paths_for(ids)
    np.save(out / "embeddings.npy", matrix.astype(np.float32, copy=False))
    np.save(out / "ids.npy", ids.astype(np.int64, copy=False))
    (out / "paths.json").write_text(json.dumps([paths[int(i)] for i in ids], indent=0))
    (out / "model.json").write_text(
        json.dumps(None if ident is None else json.loads(ident.to_json()), indent=2)
    )
    return [out / "embeddings.npy", out / "ids.npy", out / "paths.json", out / "model.json"]
