"""idx: a CLIP embedding index and analysis workbench.

>>> from idx import Index, cluster
>>> with Index("photos.idx") as index:
...     report = index.add(["~/photos"])
...     result = cluster(index, 8)    # result.labels, result.metrics["silhouette"], result.plots
>>> sorted(set(result.labels.tolist())) == list(range(8)), "silhouette" in result.metrics
(True, True)
"""

from importlib import import_module
from typing import Any

from idx.errors import IdxError

# Public names load on first use (they import DuckDB, FAISS, scikit-learn, matplotlib, torch), so
# that `import idx` and `idx --help` stay fast. name -> (module, attribute in that module)
_LAZY = {
    "Index": ("idx.indexer.index", "Index"),
    "project": ("idx.ops.maps.projection", "project"),
    "load_projection": ("idx.ops.maps.projection", "load_projection"),
    "cluster": ("idx.ops.maps.clustering", "cluster"),
    "load_clusters": ("idx.ops.maps.clustering", "load_clusters"),
    "sweep": ("idx.ops.maps.sweep", "sweep"),
    "KMeans": ("idx.analysis.clustering", "KMeans"),
    "Projector": ("idx.analysis.projection", "Projector"),
    "import_classes": ("idx.ops.labels.imports", "import_classes"),
    "import_folders": ("idx.ops.labels.imports", "import_folders"),
    "import_labels": ("idx.ops.labels.imports", "import_labels"),
    "list_labels": ("idx.ops.labels.imports", "list_labels"),
    "insights": ("idx.ops.insights.measure", "insights"),
    "load_insights": ("idx.ops.insights.runs", "load_insights"),
    "measure_robustness": ("idx.ops.robustness.measure", "measure"),
    "inject": ("idx.ops.injection", "inject"),
    "eject": ("idx.ops.injection", "eject"),
    "compare_injection": ("idx.ops.injection", "compare"),
    "register_perturbation": ("idx.analysis.perturbations", "register_perturbation"),
    "perturb": ("idx.analysis.perturbations", "perturb"),
    "write_report": ("idx.ops.report.write", "write_report"),
    "search": ("idx.ops.search", "search"),
    "neighbors": ("idx.ops.search", "neighbors"),
    "build_neighbor_graph": ("idx.ops.graph", "build_neighbor_graph"),
    "reindex": ("idx.ops.search", "reindex"),
    "duplicates": ("idx.ops.duplicates", "duplicates"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(import_module(module), attribute)
    raise AttributeError(f"module 'idx' has no attribute {name!r}")


__all__ = ["Index", "IdxError", *_LAZY]
__version__ = "0.1.0"
