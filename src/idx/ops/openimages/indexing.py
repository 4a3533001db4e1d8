"""`idx openimages fetch --index`: the fetched images added to an index and their labels, class
names and hierarchy imported, with the same library calls `idx add` and `idx labels import` make,
so `idx insights --rollup Fruit` works next."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idx.errors import IdxError
from idx.ops.labels import imports
from idx.ops.labels.hierarchy import import_hierarchy
from idx.ops.openimages.fetch import FetchReport
from idx.ops.openimages.images import on_disk
from idx.progress import Progress

if TYPE_CHECKING:
    from idx.indexer.index import Index


def add_to_index(
    index: Index,
    report: FetchReport,
    *,
    progress: Progress | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Add the split's folder to `index` (incrementally), then import the class descriptions,
    the label file (and box file) and the hierarchy, each replacing its earlier import; what
    each step did, also stored in `report.index`."""
    if not on_disk(Path(report.images_dir)):
        raise IdxError(
            f"no image of {report.images_dir} could be fetched, so there is nothing to add to "
            f"{index.dir}; see the messages above, then run the same command again"
        )
    added = index.add([report.images_dir], progress=progress, on_skip=on_skip)
    files = report.files
    steps = [imports.import_classes(index, files["classes"], progress)]
    steps.append(imports.import_labels(index, files["label_file"], progress=progress))
    if "box_file" in files:
        steps.append(
            imports.import_labels(index, files["box_file"], kind="boxes", progress=progress)
        )
    done = {
        "index": str(index.dir),
        "add": added.as_dict(),
        "imports": [step.as_dict() for step in steps],
        "hierarchy": import_hierarchy(index, Path(files["hierarchy"])).as_dict(),
    }
    report.index = done
    return done
