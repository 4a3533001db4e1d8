"""`idx status`: what an index holds and whether its parts agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idx import config
from idx.indexer.ingest import jobs
from idx.indexer.model import precision
from idx.indexer.vectors.store import VectorStore

if TYPE_CHECKING:
    from idx.indexer.catalog import Catalog
    from idx.indexer.model.identity import ModelIdentity


def collect_status(
    index_dir: Path, catalog: Catalog, ident: ModelIdentity | None
) -> dict[str, Any]:
    """What `Index.status()` returns for the index at `index_dir`, whose stored model is `ident`."""
    counts = catalog.images.summary()
    images = counts["images"]
    orphans = counts["without_vector"]
    generation = catalog.generation()
    vmeta = VectorStore(index_dir).read_meta()
    # an index that never held an image needs no FAISS file
    recorded = vmeta.get("generation", generation if images == 0 else None)
    vectors_ok = recorded == generation and vmeta.get("count", 0) == images
    problems = []
    if images == 0:
        add = config.command(index_dir, "add", "FOLDER")
        problems.append(f"no images yet: add a folder of images with `{add}`")
    if orphans:
        add = config.command(index_dir, "add")
        problems.append(f"{orphans} images without a vector (run `{add}` on their folder again)")
    if not vectors_ok:
        problems.append(
            f"FAISS file behind the catalog (it holds generation {recorded}, the catalog "
            f"{generation}): each command rebuilds it in memory until the next `idx add` saves it"
        )
    last_add = catalog.get_meta("last_add")
    return {
        "index": str(index_dir.resolve()),
        **{k: v for k, v in counts.items() if k != "without_vector"},
        "model": None
        if ident is None
        else {
            "name": ident.name,
            "pretrained": ident.pretrained,
            "checkpoint": ident.checkpoint,
            "embed_dim": ident.embed_dim,
            "untrained": ident.untrained,
            "description": ident.describe(),
        },
        "vectors": {
            "type": vmeta.get("type", "flat"),
            "count": vmeta.get("count", 0),
            "generation": vmeta.get("generation"),
            "catalog_generation": generation,
            "in_sync": vectors_ok,
            **{k: v for k, v in vmeta.items() if k not in ("type", "count", "generation")},
        },
        "health": "empty" if images == 0 else "ok" if not problems else "attention",
        "problems": problems,
        "last_add": json.loads(last_add) if last_add else None,
        "job": jobs.current(index_dir),
        "precision": precision.describe(catalog),
        "folders": {
            path: {"include_hidden": rules.include_hidden, "excludes": list(rules.excludes)}
            for path, rules in catalog.files.folders().items()
        },
    }
