"""What the web app (`idx serve`) shows besides search results: one image's details, the values
to filter by, the latest 2-D map, and the map's drawing code shared with the report."""

from __future__ import annotations

from importlib import resources
from typing import Any

from idx.errors import NotFoundError
from idx.indexer.index import Index
from idx.ops.report.data import LabelIndex, map_section

#: Scripts of the report page the web app reuses: DOM helpers and colours, the canvas scatter.
SHARED_SCRIPTS = ("charts.js", "scatter.js")


def image_details(index: Index, image_id: int) -> dict[str, Any]:
    """The image's row of the image_info view (path, folder, size, labels, cluster, ...)."""
    found = index.catalog.image_info.details(int(image_id))
    if found is None:
        raise NotFoundError(f"no image with id {image_id} in index {index.dir}")
    return found


def image_path(index: Index, image_id: int) -> str:
    """The indexed file of an image id (NotFoundError for an id the index does not hold)."""
    found = index.catalog.images.paths_for([int(image_id)])
    if int(image_id) not in found:
        raise NotFoundError(f"no image with id {image_id} in index {index.dir}")
    return found[int(image_id)]


def facets(index: Index, labels: int = 2000, folders: int = 500) -> dict[str, Any]:
    """The values people filter by: the most frequent labels (name, key, images), the latest
    clustering's clusters and sizes, and the folders holding the most images."""
    info = index.catalog.image_info
    return {
        "labels": [
            {"name": name, "key": key, "images": n} for name, key, n in info.label_counts(labels)
        ],
        "clusters": info.cluster_sizes(),
        "folders": [{"folder": f, "images": n} for f, n in info.folder_counts(folders)],
    }


def latest_map(index: Index) -> dict[str, Any]:
    """The latest 2-D map as arrays (ids, x, y, cluster number and most specific label number
    of each point, label names), or {"missing": {what, command}} when there is none yet."""
    labels = LabelIndex(index.catalog.labels)
    section = map_section(index.catalog, labels)
    if "missing" in section:
        return section
    keep = ("run", "ids", "x", "y", "cluster", "cluster_run", "label")
    return {key: section[key] for key in keep} | {"label_names": labels.names}


def map_fingerprint(index: Index) -> tuple[Any, ...]:
    """Changes whenever `latest_map` may: a new map or clustering, new labels, new images."""
    runs = index.catalog.runs
    return (
        runs.latest("projection"),
        runs.latest("cluster"),
        index.catalog.image_info.labels_fingerprint(),
        index.catalog.generation(),
    )


def shared_script(name: str) -> str:
    """One of SHARED_SCRIPTS, as the report ships it."""
    if name not in SHARED_SCRIPTS:
        raise NotFoundError(f"no shared script {name!r}")
    folder = resources.files("idx.analysis") / "report_assets"
    return (folder / name).read_text(encoding="utf-8")
