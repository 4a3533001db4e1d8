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

# Public names load on first use: they import scikit-learn, matplotlib and FAISS.
# name -> (module, attribute in that module)
_LAZY = {
    "project": ("idx.api.projection", "project"),
    "load_projection": ("idx.api.projection", "load_projection"),
    "cluster": ("idx.api.clustering", "cluster"),
    "load_clusters": ("idx.api.clustering", "load_clusters"),
    "sweep": ("idx.api.sweep", "sweep"),
    "KMeans": ("idx.analysis.clustering", "KMeans"),
    "Projector": ("idx.analysis.projection", "Projector"),
    "import_classes": ("idx.api.labels", "import_classes"),
    "import_folders": ("idx.api.labels", "import_folders"),
    "import_labels": ("idx.api.labels", "import_labels"),
    "list_labels": ("idx.api.labels", "list_labels"),
    "insights": ("idx.api.insights", "insights"),
    "load_insights": ("idx.api.insight_runs", "load_insights"),
    "measure_robustness": ("idx.api.robustness", "measure"),
    "inject": ("idx.api.injection", "inject"),
    "eject": ("idx.api.injection", "eject"),
    "compare_injection": ("idx.api.injection", "compare"),
    "register_perturbation": ("idx.analysis.perturbations", "register_perturbation"),
    "write_report": ("idx.api.report", "write_report"),
    "search": ("idx.api.search", "search"),
    "neighbors": ("idx.api.search", "neighbors"),
    "build_neighbor_graph": ("idx.api.search", "build_neighbor_graph"),
    "reindex": ("idx.api.search", "reindex"),
    "duplicates": ("idx.api.duplicates", "duplicates"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(import_module(module), attribute)
    raise AttributeError(f"module 'idx' has no attribute {name!r}")


__all__ = ["Index", "IdxError", *_LAZY]
__version__ = "0.1.0"
