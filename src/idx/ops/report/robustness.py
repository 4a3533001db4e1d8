"""The report's robustness section: the latest run's results per perturbation and severity, per
class, and one image shown under each perturbation it measured (see report_data)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from idx.analysis.perturbations import IMAGENET_C, IMAGENET_C_SUITE, apply
from idx.analysis.report_html import thumbnail_uri
from idx.analysis.robustness import per_corruption
from idx.errors import DecodeError, IdxError
from idx.ops.report.data import (
    LabelIndex,
    command,
    latest_run,
    missing,
    result_table,
    run_info,
)
from idx.ops.thumbnails import thumbnail_image

if TYPE_CHECKING:
    from idx.indexer.catalog import Catalog

log = logging.getLogger(__name__)

#: Side of the image the examples are perturbed at (the model's usual input size).
EXAMPLE_SIDE = 224


def robustness_section(catalog: Catalog, labels: LabelIndex, thumb_size: int) -> dict[str, Any]:
    run = latest_run(catalog, "robustness")
    if run is None:
        return missing("No robustness run yet.", command(catalog, "robustness"))
    # both in their tables' order: perturbation, severity (classes: label_name first)
    results = result_table(catalog, "robustness", "robustness_results", run["id"])
    classes = labels.display_columns(
        result_table(catalog, "robustness", "robustness_classes", run["id"])
    )
    section = {
        "run": run_info(run),
        "results": results,
        "by_corruption": per_corruption(results["rows"], IMAGENET_C, f"{IMAGENET_C_SUITE} mean"),
        "classes": classes,
    }
    section["examples"] = examples(catalog, section, thumb_size)
    return section


def examples(
    catalog: Catalog, section: dict[str, Any], size: int, side: int = EXAMPLE_SIDE
) -> list[dict[str, Any]]:
    """One image under each perturbation of the run at each severity, rendered now with the
    perturbation registry (the same seeded functions the run used); a perturbation this process
    does not know has no example."""
    first = catalog.images.first()
    if first is None:
        return []
    try:
        image = thumbnail_image(first.path, side)
    except DecodeError as exc:
        log.warning("no robustness examples: %s: %s", first.path, exc)
        return []
    seed = int(section["run"].get("seed") or 0)
    clean = {"severity": 0, "uri": thumbnail_uri(image, size)}
    severities: dict[str, list[int]] = {}
    for row in section["results"]["rows"]:
        severities.setdefault(row["perturbation"], []).append(int(row["severity"]))
    shown = []
    for name, levels in severities.items():
        images = [clean]
        for severity in sorted(set(levels)):
            try:
                perturbed = apply(name, image, severity, seed=seed, key=first.id)
            except IdxError as exc:
                log.info("no example for %s at severity %s: %s", name, severity, exc)
                continue
            images.append({"severity": severity, "uri": thumbnail_uri(perturbed, size)})
        if len(images) > 1:
            shown.append({"perturbation": name, "images": images})
    return shown
