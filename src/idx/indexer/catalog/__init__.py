"""The catalog: the DuckDB file that is the source of truth for images, vectors, labels and runs.

The only package that imports duckdb. Callers ask `Catalog` and its parts questions named for what
they want (`catalog.images.paths_for(ids)`, `catalog.labels.positives()`,
`catalog.runs.latest("cluster")`) and never write SQL; people's own SQL goes through
`Catalog.user_sql` (user_sql.py), one read at a time on a connection of its own.
"""

from __future__ import annotations

from pathlib import Path

from idx.indexer.catalog.arrow import arrow_to_matrix, list_column
from idx.indexer.catalog.db import Database
from idx.indexer.catalog.files import Files
from idx.indexer.catalog.hierarchy import Hierarchy
from idx.indexer.catalog.image_info import ImageInfo
from idx.indexer.catalog.images import Images
from idx.indexer.catalog.label_files import LabelFiles
from idx.indexer.catalog.labels import Labels
from idx.indexer.catalog.neighbors import Neighbors
from idx.indexer.catalog.runs import Runs
from idx.indexer.catalog.user_sql import UserSQL

__all__ = ["Catalog", "arrow_to_matrix", "list_column"]


class Catalog(Database):
    """`<index>/catalog.duckdb`, migrated, with its parts: images, files, labels, runs."""

    def __init__(
        self, index_dir: Path, *, read_only: bool = False, wait: float = 0.0, create: bool = True
    ):
        super().__init__(index_dir, read_only=read_only, wait=wait, create=create)
        self.images = Images(self)
        self.files = Files(self)
        self.labels = Labels(self)
        self.hierarchy = Hierarchy(self)
        self.label_files = LabelFiles(self, self.labels)
        self.runs = Runs(self)
        self.neighbors = Neighbors(self)
        self.user_sql = UserSQL(self)
        self.image_info = ImageInfo(self, self.user_sql)
