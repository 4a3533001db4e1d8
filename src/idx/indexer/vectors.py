"""The FAISS file: derived from the catalog, rebuilt or caught up whenever it disagrees with it.

`vectors.json` beside the index records the catalog generation the FAISS file reflects; a crash
between a catalog commit and the FAISS save leaves an older generation there, which the next open
detects and repairs from DuckDB.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from idx import config

log = logging.getLogger(__name__)

FetchAll = Callable[[], "tuple[np.ndarray, np.ndarray]"]


def build_flat(dim: int) -> Any:
    """Exact inner-product search over unit vectors (= cosine similarity), ids = image ids."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


class VectorStore:
    """A FAISS index of image ids -> unit vectors, kept in step with the catalog."""

    def __init__(self, index_dir: Path):
        self.index_dir = Path(index_dir)
        self.file = self.index_dir / config.VECTORS_FILE
        self.meta_file = self.index_dir / config.VECTORS_META_FILE
        self.index: Any = None
        self.meta: dict[str, Any] = {}

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal) if self.index is not None else 0

    def read_meta(self) -> dict[str, Any]:
        try:
            return json.loads(self.meta_file.read_text())
        except (OSError, ValueError):
            return {}

    def load(
        self,
        generation: int,
        fetch_all: FetchAll,
        *,
        writable: bool,
        builder: Callable[[int], Any] = build_flat,
    ) -> str:
        """Load the file if it matches `generation`, else rebuild from the catalog.

        Returns "loaded", "rebuilt" or "empty".
        """
        meta = self.read_meta()
        if meta.get("generation") == generation and self.file.exists():
            try:
                self.index = faiss.read_index(str(self.file))
                self.meta = meta
                return "loaded"
            except RuntimeError as exc:
                log.warning(
                    "FAISS file %s unreadable (%s); rebuilding from the catalog", self.file, exc
                )
        ids, matrix = fetch_all()
        if len(ids) == 0:
            self.index, self.meta = None, {"generation": generation, "count": 0}
            if writable:
                self.save(generation)
            return "empty"
        log.info("rebuilding FAISS index from the catalog (%d vectors)", len(ids))
        self.index = builder(matrix.shape[1])
        self.train_and_add(ids, matrix)
        self.meta = {**meta, "generation": generation}
        if writable:
            self.save(generation)
        return "rebuilt"

    def train_and_add(self, ids: np.ndarray, matrix: np.ndarray) -> None:
        if not self.index.is_trained:
            self.index.train(np.ascontiguousarray(matrix, dtype=np.float32))
        self.add(ids, matrix)

    def add(self, ids: np.ndarray, matrix: np.ndarray) -> None:
        if len(ids) == 0:
            return
        if self.index is None:
            self.index = build_flat(matrix.shape[1])
        self.index.add_with_ids(
            np.ascontiguousarray(matrix, dtype=np.float32), np.asarray(ids, dtype=np.int64)
        )

    def remove(self, ids: np.ndarray) -> None:
        if self.index is None or len(ids) == 0:
            return
        self.index.remove_ids(np.asarray(ids, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores [q, k], ids [q, k]); missing slots have id -1."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self.index is None or self.index.ntotal == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        return self.index.search(q, min(k, self.index.ntotal))

    def save(self, generation: int) -> None:
        """Write the FAISS file, then the generation it reflects (each atomically)."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        if self.index is not None:
            tmp = self.file.with_suffix(".faiss.tmp")
            faiss.write_index(self.index, str(tmp))
            os.replace(tmp, self.file)
        else:
            self.file.unlink(missing_ok=True)
        self.meta = {**self.meta, "generation": generation, "count": self.ntotal}
        tmp_meta = self.meta_file.with_suffix(".json.tmp")
        tmp_meta.write_text(json.dumps(self.meta, indent=2, sort_keys=True))
        os.replace(tmp_meta, self.meta_file)
