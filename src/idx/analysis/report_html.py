"""The HTML report page: a dict of report data in, one self-contained HTML document out.

The page's CSS and JavaScript live beside this module (report_assets/) and are inlined, and the
data goes in as a JSON script block, so the file opens offline with nothing to fetch.
"""

from __future__ import annotations

import base64
import io
import json
import numbers
import re
from importlib import resources
from typing import Any

from PIL import Image

from idx.analysis import palette
from idx.jsonable import to_jsonable

ASSETS = "report_assets"
#: The page's scripts, in load order, after the palette's (`palette.script()`); they share one
#: function scope in the page.
SCRIPTS = ("charts.js", "scatter.js", "report.js", "leakage.js")
BASELINE_SUFFIXES = ("_baseline", "_random", "_shuffled")
#: Entries of a metrics JSON that set the run up rather than score it: shown with the run (see
#: `counts`), not among the metrics beside their baselines. Counts are `n_*` and `*_size`, ids
#: of other runs `*_id`.
PARAMETERS = frozenset({"k", "k_nn", "folds", "seed", "dim"})


def is_count(key: str) -> bool:
    """Whether a metrics entry is a count or a parameter of the run, not a score."""
    return key in PARAMETERS or key.startswith("n_") or key.endswith(("_size", "_id"))


def counts(metrics: dict[str, Any] | None) -> dict[str, float]:
    """The numeric counts and parameters in a metrics JSON (n_images, k_nn, cluster_run_id...)."""
    return {
        key: value for key, value in (metrics or {}).items() if is_count(key) and _is_number(value)
    }


def render_html(data: dict[str, Any]) -> str:
    """The whole page: template with CSS, data (as inert JSON) and JavaScript filled in."""
    folder = resources.files("idx.analysis") / ASSETS
    template = (folder / "report.html").read_text(encoding="utf-8")
    parts = {
        "@@TITLE@@": _escape_text(str(data.get("title", "idx report"))),
        "/*@@CSS@@*/": (folder / "report.css").read_text(encoding="utf-8"),
        "@@DATA@@": json_for_script(data),
        "/*@@JS@@*/": '(function () {\n"use strict";\n'
        + palette.script()
        + "\n".join((folder / name).read_text(encoding="utf-8") for name in SCRIPTS)
        + "\n})();",
    }
    # One pass, so text that was just inserted (a path, a label) is never taken for a marker.
    pattern = "|".join(re.escape(marker) for marker in parts)
    return re.sub(pattern, lambda match: parts[match.group(0)], template)


def json_for_script(data: Any) -> str:
    """JSON safe inside <script>: no `</script>`, no HTML comment openers, and NaN or infinities
    as null (JSON has neither)."""
    text = json.dumps(to_jsonable(data), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def thumbnail_uri(image: Image.Image, size: int = 96, quality: int = 70) -> str:
    """A JPEG thumbnail (longest side `size`) as a data: URI, ready for <img src>."""
    thumb = image.convert("RGB")
    thumb.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    thumb.save(buffer, "JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def metric_rows(metrics: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each numeric metric with the baselines stored for it, whatever the exact JSON layout.

    Reads `{"silhouette": 0.4, "silhouette_baseline": 0.0}`, `{"silhouette": 0.4, "baselines":
    {"silhouette": 0.0}}`, `{"baselines": {"silhouette": {"random": 0.0, "shuffled": 0.01}}}` and
    nested `{"silhouette": {"value": 0.4, "ci95": [..]}}` alike, so the report survives small
    differences between the analysis commands' outputs. Non-numeric entries become notes; counts
    and parameters (`is_count`) are left to `counts`.
    """
    metrics = {k: v for k, v in (metrics or {}).items() if not is_count(k)}
    baselines = metrics.pop("baselines", None)
    baselines = baselines if isinstance(baselines, dict) else {}
    values: dict[str, float] = {}
    notes: dict[str, dict[str, Any]] = {}
    for key, value in metrics.items():
        if _is_number(value):
            values[key] = float(value)
        elif isinstance(value, dict) and _is_number(value.get("value")):
            values[key] = float(value["value"])
            notes[key] = {k: v for k, v in value.items() if k != "value"}
    rows: list[dict[str, Any]] = []
    for key, value in values.items():
        base_of = _baseline_owner(key, values)
        if base_of is not None:
            continue
        found: dict[str, float] = {}
        for other, other_value in values.items():
            if _baseline_owner(other, values) == key:
                found[other[len(key) + 1 :] or "baseline"] = other_value
        found.update(_named_baselines(baselines.get(key)))
        found.update(_named_baselines(_per_baseline(baselines, values, key)))
        rows.append({"name": key, "value": value, "baselines": found, "notes": notes.get(key, {})})
    return rows


def _baseline_owner(key: str, values: dict[str, float]) -> str | None:
    """`silhouette_baseline` -> `silhouette` when that metric exists too."""
    for suffix in BASELINE_SUFFIXES:
        if key.endswith(suffix) and key[: -len(suffix)] in values:
            return key[: -len(suffix)]
    return None


def _named_baselines(entry: Any) -> dict[str, float]:
    if _is_number(entry):
        return {"baseline": float(entry)}
    if isinstance(entry, dict):
        out = {}
        for name, value in entry.items():
            if _is_number(value):
                out[str(name)] = float(value)
            elif isinstance(value, dict) and _is_number(value.get("value")):
                out[str(name)] = float(value["value"])
        return out
    return {}


def _per_baseline(baselines: dict[str, Any], values: dict[str, float], key: str) -> dict:
    """`{baseline name: {metric: value}}` entries, read for one metric: `{name: value}`."""
    return {
        name: entry[key]
        for name, entry in baselines.items()
        if name not in values and isinstance(entry, dict) and key in entry
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
