"""The report's leakage section: the latest `idx duplicates --across A B` run, how many images of
each set have a near-duplicate in the other, and its closest pairs as pictures side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from idx.analysis.report_html import thumbnail_uri
from idx.ops.leakage import load_leakage
from idx.ops.report.data import command, latest_run, missing, run_info
from idx.ops.thumbnails import each_image

if TYPE_CHECKING:
    from idx.indexer.index import Index

#: Pairs shown as pictures.
PAIRS_SHOWN = 8


def leakage_section(index: Index, thumb_size: int) -> dict[str, Any]:
    run = latest_run(index.catalog, "leakage")
    if run is None:
        return missing(
            "No comparison of two sets yet (are the same photos in both?).",
            command(index.catalog, "leakage"),
            "label:NAME or where:SQL name a set too.",
        )
    found = load_leakage(index, run["id"], shown=PAIRS_SHOWN)
    ids = [i for p in found.pairs for i in (p.b_id, p.a_id)]
    uris = dict(each_image(index, ids, thumb_size, lambda im: thumbnail_uri(im, thumb_size)))
    section = found.as_dict() | {"run": run_info(run)}
    for shown in section["pairs"]:
        shown["b_uri"], shown["a_uri"] = uris.get(shown["b_id"]), uris.get(shown["a_id"])
    return section
