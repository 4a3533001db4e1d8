"""`idx report`: one self-contained HTML page with everything the catalog knows.

Gathers each section's data from the catalog (idx.ops.report.data, .insights, .robustness),
embeds small JPEG thumbnails as data: URIs, and renders the page (idx.analysis.report_html). The
file needs no server and fetches nothing when opened.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import idx
from idx.analysis.report_html import render_html, thumbnail_uri
from idx.errors import UsageError
from idx.ops.report.data import LabelIndex, clusters_section, commands, map_section, summary
from idx.ops.report.insights import insights_section
from idx.ops.report.leakage import leakage_section
from idx.ops.report.robustness import robustness_section
from idx.ops.thumbnails import each_image
from idx.progress import Progress

if TYPE_CHECKING:
    from idx.indexer.index import Index

#: Thumbnails embedded at most: ~4 kB each, so the default keeps a report of any size near 10 MB.
DEFAULT_MAX_THUMBNAILS = 2000
THUMB_SIZE = 96
SECTIONS = ("summary", "map", "clusters", "insights", "robustness", "leakage")


@dataclass
class ReportResult:
    path: str
    bytes: int
    seconds: float
    images: int
    thumbnails: int
    untrained: bool
    sections: dict[str, bool]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def report_data(
    index: Index,
    *,
    max_thumbnails: int = DEFAULT_MAX_THUMBNAILS,
    thumb_size: int = THUMB_SIZE,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Everything the page shows, as one JSON-able dict (thumbnails included)."""
    if max_thumbnails < 0:
        raise UsageError(f"--max-thumbnails must be 0 or more, not {max_thumbnails}")
    index.require_images("report on")
    catalog = index.catalog
    labels = LabelIndex(catalog.labels)
    data: dict[str, Any] = {
        "title": f"idx report: {index.dir.resolve().name}",
        "index": str(index.dir.resolve()),
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "idx_version": idx.__version__,
        "summary": summary(catalog, index.status(), labels),
        "commands": commands(catalog),
        "labels": {"names": labels.names, "keys": labels.keys},
        "map": map_section(catalog, labels),
        "clusters": clusters_section(catalog, labels),
        "insights": insights_section(catalog, labels),
        "robustness": robustness_section(catalog, labels, thumb_size),
        "leakage": leakage_section(index, thumb_size),
    }
    chosen = choose_thumbnails(data, max_thumbnails, seed)
    data["thumbs"] = make_thumbnails(index, chosen, thumb_size, progress)
    data["thumbs_note"] = {
        "embedded": len(data["thumbs"]),
        "max": max_thumbnails,
        "capped": any(str(i) not in data["thumbs"] for i in data["map"].get("ids", ())),
    }
    return data


def _priority_ids(data: dict[str, Any]) -> list[int]:
    """Images shown as pictures on the page itself: contact sheets, confused pairs, suspects."""
    ids: list[int] = []
    clusters, insights = data["clusters"], data["insights"]
    for sheet in clusters.get("sheets", ()):
        ids += [im["id"] for im in sheet["images"]]
    for pair in insights.get("pairs", ()):
        ids += [im["id"] for im in pair["examples_a"] + pair["examples_b"]]
    ids += [s["image_id"] for s in insights.get("suspects", ())]
    return list(dict.fromkeys(ids))


def choose_thumbnails(data: dict[str, Any], limit: int, seed: int = 0) -> list[int]:
    """Page pictures first, then a seeded random sample of map points for hovering, up to limit."""
    chosen = _priority_ids(data)[:limit]
    taken = set(chosen)
    map_ids = np.asarray(data["map"].get("ids", ()), dtype=np.int64)
    rest = [int(i) for i in np.random.default_rng(seed).permutation(map_ids) if int(i) not in taken]
    return chosen + rest[: max(0, limit - len(chosen))]


def make_thumbnails(
    index: Index, ids: list[int], size: int, progress: Progress | None = None
) -> dict[str, str]:
    """{str(id): data URI}; files that are gone or unreadable now are left out (logged)."""
    uris = each_image(
        index, ids, size, lambda image: thumbnail_uri(image, size), progress, "thumbnails"
    )
    return {str(image_id): uri for image_id, uri in uris if uri is not None}


def write_report(
    index: Index,
    out: str | os.PathLike[str],
    *,
    max_thumbnails: int = DEFAULT_MAX_THUMBNAILS,
    thumb_size: int = THUMB_SIZE,
    progress: Progress | None = None,
) -> ReportResult:
    """Write the HTML report to `out` (replaced atomically) and say what it holds."""
    start = time.perf_counter()
    target = Path(out)
    if target.is_dir():
        raise UsageError(
            f"--out {target} is a folder; give a file name such as {target}/report.html"
        )
    data = report_data(
        index, max_thumbnails=max_thumbnails, thumb_size=thumb_size, progress=progress
    )
    html = render_html(data)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(html, encoding="utf-8")
    os.replace(partial, target)
    return ReportResult(
        path=str(target.resolve()),
        bytes=target.stat().st_size,
        seconds=round(time.perf_counter() - start, 3),
        images=int(data["summary"]["images"]),
        thumbnails=len(data["thumbs"]),
        untrained=bool(data["summary"]["untrained"]),
        sections={name: "missing" not in data[name] for name in SECTIONS},
    )
