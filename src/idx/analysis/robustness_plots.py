"""Robustness figures: metric vs severity curves, a class x perturbation heatmap, example sheet."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from idx.analysis import palette  # noqa: E402
from idx.analysis.perturbations import get_perturbation  # noqa: E402
from idx.errors import UsageError  # noqa: E402

CURVE_METRICS = (
    ("cos_mean", "cosine clean vs perturbed"),
    ("topk_overlap", "top-k neighbour overlap"),
    ("self_found_at_1", "own clean image found first"),
    ("cluster_change_share", "share changing cluster"),
    ("knn_accuracy", "kNN accuracy"),
    ("zero_shot_accuracy", "zero-shot accuracy"),
)

#: Line style per perturbation family (the registry module a perturbation comes from), so that
#: lines of one family read as kin while each perturbation keeps a colour of its own.
FAMILY_LINES = {"noise": "-", "blur": "--", "weather": "-.", "digital": ":", "extras": (0, (6, 2))}


def perturbation_style(names: Sequence[str], name: str) -> dict[str, Any]:
    """Colour and line of one perturbation: `palette.colour(i)` for the run's i-th perturbation
    (as on the report page), the line style of its family."""
    try:
        family = get_perturbation(name).fn.__module__.rsplit(".", 1)[-1]
    except UsageError:  # a perturbation registered by a session that is gone
        family = ""
    return {
        "color": palette.colour(list(names).index(name)),
        "linestyle": FAMILY_LINES.get(family, "-"),
    }


def plot_curves(
    rows: Sequence[dict[str, Any]], out: Path, title: str, order: Sequence[str] = ()
) -> Path:
    """One panel per metric, one line per perturbation (in the run's `order`, else as the rows
    come); severity 0 is the clean baseline."""
    clean = next((r for r in rows if r["severity"] == 0), None)
    found = dict.fromkeys(r["perturbation"] for r in rows if r["severity"] > 0)
    names = [n for n in order if n in found] + [n for n in found if n not in order]
    shown = [(m, t) for m, t in CURVE_METRICS if any(r.get(m) is not None for r in rows)]
    cols = min(3, len(shown))
    nrows = -(-len(shown) // cols)
    fig, axes = plt.subplots(
        nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False, layout="constrained"
    )
    for ax, (metric, label) in zip(axes.flat, shown):
        for name in names:
            pts = [(r["severity"], r[metric]) for r in rows if r["perturbation"] == name]
            if clean is not None:
                pts.insert(0, (0, clean[metric]))
            pts = [(s, v) for s, v in pts if v is not None]
            if pts:
                xs, ys = zip(*pts)
                style = perturbation_style(names, name)
                ax.plot(xs, ys, marker="o", ms=3, lw=1.6, label=name, **style)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("severity (0 = clean)")
        ax.set_xticks(range(0, 6))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    # Below the panels, in room the layout makes for it however many rows the legend takes.
    fig.legend(handles, labels, loc="outside lower center", ncol=min(6, len(labels)), fontsize=8)
    fig.suptitle(f"Robustness per perturbation: {title}", fontsize=11)
    return _save(fig, out)


def plot_class_heatmap(rows: Sequence[dict[str, Any]], out: Path, title: str) -> Path:
    """Mean cosine per class and perturbation (over the severities run); low = fragile. Classes
    are shown by their display names (a row's `display_name`, else its label_name)."""
    shown = {r["label_name"]: r.get("display_name") or r["label_name"] for r in rows}
    classes = sorted(shown, key=lambda c: (shown[c], c))
    names = list(dict.fromkeys(r["perturbation"] for r in rows if r["severity"] > 0))
    grid = np.full((len(classes), len(names)), np.nan)
    for i, c in enumerate(classes):
        for j, name in enumerate(names):
            values = [
                r["cos_mean"]
                for r in rows
                if r["label_name"] == c and r["perturbation"] == name and r["severity"] > 0
            ]
            if values:
                grid[i, j] = float(np.mean(values))
    order = np.argsort(np.nanmean(grid, axis=1)) if len(names) else np.arange(len(classes))
    grid, classes = grid[order], [classes[i] for i in order]
    width = max(5.5, 2.5 + 0.7 * len(names))
    fig, ax = plt.subplots(figsize=(width, 2.0 + 0.3 * len(classes)), layout="constrained")
    im = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), [shown[c] for c in classes], fontsize=8)
    fig.colorbar(im, ax=ax, label="mean cosine clean vs perturbed")
    # A figure title, wrapped to the figure's width: an axes title wider than its narrow axes
    # was cut on both sides.
    text = "\n".join(
        textwrap.wrap(f"Class fragility (most fragile on top): {title}", int(width * 13))
    )
    fig.suptitle(text, fontsize=9)
    return _save(fig, out)


def plot_examples(
    examples: dict[tuple[str, int], Any],
    names: Sequence[str],
    severities: Sequence[int],
    out: Path,
    title: str,
) -> Path:
    """A sheet: one row per perturbation, the clean image then each severity."""
    cols = 1 + len(severities)
    fig, axes = plt.subplots(
        len(names), cols, figsize=(max(1.6 * cols, 6.0), 1.6 * len(names) + 0.8), squeeze=False
    )
    for i, name in enumerate(names):
        for j, severity in enumerate([0, *severities]):
            ax = axes[i, j]
            image = examples.get(("clean", 0) if severity == 0 else (name, severity))
            if image is not None:
                ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("clean" if severity == 0 else f"severity {severity}", fontsize=8)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.suptitle(f"Perturbations of one sampled image\n{title}", fontsize=9)
    fig.tight_layout()
    return _save(fig, out)


def _save(fig: Any, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
