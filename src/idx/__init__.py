"""idx: a CLIP embedding index and analysis workbench.

from idx import Index
with Index("photos.idx") as index:
    index.add(["~/photos"])
"""

from idx.analysis.perturbations import register_perturbation
from idx.api.injection import compare as compare_injection
from idx.api.injection import eject, inject
from idx.api.insight_runs import load_insights
from idx.api.insights import insights
from idx.api.labels import import_classes, import_folders, import_labels, list_labels
from idx.api.robustness import measure as measure_robustness
from idx.errors import IdxError
from idx.indexer.index import Index

__all__ = [
    "Index",
    "IdxError",
    "compare_injection",
    "eject",
    "inject",
    "measure_robustness",
    "register_perturbation",
    "import_classes",
    "import_folders",
    "import_labels",
    "insights",
    "list_labels",
    "load_insights",
]
__version__ = "0.1.0"
