"""idx: a CLIP embedding index and analysis workbench.

from idx import Index
with Index("photos.idx") as index:
    index.add(["~/photos"])
"""

from idx.api.report import write_report
from idx.errors import IdxError
from idx.indexer.index import Index

__all__ = ["Index", "IdxError", "write_report"]
__version__ = "0.1.0"
