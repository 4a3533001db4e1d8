"""idx: a CLIP embedding index and analysis workbench.

from idx import Index
with Index("photos.idx") as index:
    index.add(["~/photos"])
"""

from idx.api.duplicates import duplicates
from idx.api.search import build_neighbor_graph, neighbors, reindex, search
from idx.errors import IdxError
from idx.indexer.index import Index

__all__ = [
    "Index",
    "IdxError",
    "build_neighbor_graph",
    "duplicates",
    "neighbors",
    "reindex",
    "search",
]
__version__ = "0.1.0"
