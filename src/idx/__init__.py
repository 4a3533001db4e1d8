"""idx: a CLIP embedding index and analysis workbench.

from idx import Index, cluster
with Index("photos.idx") as index:
    index.add(["~/photos"])
    result = cluster(index, 8)        # result.labels, result.metrics["silhouette"], result.plots
"""

from importlib import import_module
from typing import Any

from idx.errors import IdxError
from idx.indexer.index import Index

# Analysis names load on first use: they import scikit-learn, matplotlib and FAISS.
_LAZY = {
    "project": "idx.api.projection",
    "load_projection": "idx.api.projection",
    "cluster": "idx.api.clustering",
    "load_clusters": "idx.api.clustering",
    "sweep": "idx.api.sweep",
    "KMeans": "idx.analysis.clustering",
    "Projector": "idx.analysis.projection",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'idx' has no attribute {name!r}")


__all__ = ["Index", "IdxError", *_LAZY]
__version__ = "0.1.0"
