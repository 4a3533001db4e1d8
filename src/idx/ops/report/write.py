"""`idx report`: one self-contained HTML page with everything the catalog knows.

Gathers each section's data (idx.ops.report.data / report_insights), embeds small JPEG
thumbnails as data: URIs, and renders the page (idx.analysis.report_html). The file needs no
server and fetches nothing when opened.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import idx
from idx.analysis.report_html import render_html, thumbnail_uri
from idx.errors import DecodeError, IdxError, UsageError
from idx.indexer.decode import open_image
from idx.ops.report.data import LabelIndex, Tables, clusters_section, map_section, summary
from idx.ops.report.insights import insights_section, robustness_section
from idx.progress import Progress, ProgressEvent

if TYPE_CHECKING:
    from idx.indexer.index import Index

log = logging.getLogger(__name__)

#: Thumbnails embedded at most: ~4 kB each, so the default keeps a report of any size near 10 MB.
DEFAULT_MAX_THUMBNAILS = 2000
THUMB_SIZE = 96
SECTIONS = ("summary", "map", "clusters", "insights", "robustness")


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
    tables = Tables(index.catalog.con)
    labels = LabelIndex(tables)
    data: dict[str, Any] = {
        "title": f"idx report: {index.dir.resolve().name}",
        "index": str(index.dir.resolve()),
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "idx_version": idx.__version__,
        "summary": summary(tables, index.status()),
        "labels": {"names": labels.names, "keys": labels.keys},
        "map": map_section(tables, labels),
        "clusters": clusters_section(tables, labels),
        "insights": insights_section(tables, labels),
        "robustness": robustness_section(tables, labels),
    }
    if "missing" not in data["robustness"]:
        data["robustness"]["examples"] = robustness_examples(tables, data["robustness"], thumb_size)
    chosen = choose_thumbnails(data, max_thumbnails, seed)
    data["thumbs"] = make_thumbnails(tables, chosen, thumb_size, progress)
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
    tables: Tables, ids: list[int], size: int, progress: Progress | None = None
) -> dict[str, str]:
    """{str(id): data URI}; files that are gone or unreadable now are left out (logged)."""
    if not ids:
        return {}
    paths = dict(
        tables.con.execute(
            "SELECT id, path FROM images WHERE id IN (SELECT unnest(?::BIGINT[]))", [ids]
        ).fetchall()
    )

    def one(image_id: int) -> tuple[int, str | None]:
        try:
            return image_id, thumbnail_uri(open_image(paths[image_id], size).image, size)
        except DecodeError as exc:
            log.warning("no thumbnail for %s: %s", paths[image_id], exc)
            return image_id, None

    out: dict[str, str] = {}
    todo = [i for i in ids if i in paths]
    # Decoding releases the GIL in Pillow, so a few threads keep the cores busy.
    with ThreadPoolExecutor(max_workers=min(4, (os.cpu_count() or 1) + 1)) as pool:
        for done, (image_id, uri) in enumerate(pool.map(one, todo), start=1):
            if uri is not None:
                out[str(image_id)] = uri
            if progress is not None and (done % 64 == 0 or done == len(todo)):
                progress(ProgressEvent("thumbnails", done, len(todo)))
    return out


def robustness_examples(
    tables: Tables, section: dict[str, Any], size: int, side: int = 224
) -> list[dict[str, Any]]:
    """One image under each perturbation of the run at each severity, rendered now.

    Uses the robustness feature's perturbation registry (the same seeded functions the run
    used); without it, or for a perturbation this process does not know, there is no example.
    """
    try:
        from idx.analysis.perturbations import apply
    except ImportError:
        return []
    found = tables.con.execute("SELECT id, path FROM images ORDER BY id LIMIT 1").fetchall()
    if not found:
        return []
    image_id, path = found[0]
    try:
        image = open_image(path, side).image
    except DecodeError as exc:
        log.warning("no robustness examples: %s: %s", path, exc)
        return []
    image.thumbnail((side, side))
    seed = int(section["run"].get("seed") or 0)
    clean = {"severity": 0, "uri": thumbnail_uri(image, size)}
    severities: dict[str, list[int]] = {}
    for row in section["results"]["rows"]:
        severities.setdefault(row["perturbation"], []).append(int(row["severity"]))
    examples = []
    for name, levels in severities.items():
        images = [clean]
        for severity in sorted(set(levels)):
            try:
                perturbed = apply(name, image, severity, seed=seed, key=int(image_id))
            except IdxError as exc:
                log.info("no example for %s at severity %s: %s", name, severity, exc)
                continue
            images.append({"severity": severity, "uri": thumbnail_uri(perturbed, size)})
        if len(images) > 1:
            examples.append({"perturbation": name, "images": images})
    return examples


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
