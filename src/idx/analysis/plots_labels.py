"""Plots of label insights (matplotlib, Agg): heatmaps, per-class bars, a contact sheet.

Callers pass arrays and decoded thumbnails; every function writes one PNG and returns its path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

#: Beyond this many classes a heatmap shows only the largest ones (the title says so).
MAX_CLASSES_SHOWN = 40


def _title(text: str, untrained: bool) -> str:
    return ("UNTRAINED random weights - " if untrained else "") + text


def _save(fig: plt.Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def _largest(sizes: np.ndarray) -> np.ndarray:
    return np.argsort(-sizes, kind="stable")[:MAX_CLASSES_SHOWN]


def _shares(table: np.ndarray) -> np.ndarray:
    totals = table.sum(axis=1, keepdims=True)
    return np.divide(table, totals, out=np.zeros(table.shape, float), where=totals > 0)


def _heatmap(
    shares: np.ndarray,
    rows: Sequence[str],
    cols: Sequence[str],
    xlabel: str,
    title: str,
    out: Path,
) -> Path:
    fig, ax = plt.subplots(figsize=(min(3 + 0.35 * len(cols), 22), min(2 + 0.3 * len(rows), 18)))
    image = ax.imshow(shares, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="share of the class's images")
    return _save(fig, out)


def label_cluster_heatmap(
    table: np.ndarray,
    class_names: Sequence[str],
    cluster_ids: Sequence[int] | np.ndarray,
    out: Path,
    untrained: bool = False,
) -> Path:
    """Rows: classes; columns: clusters; cells: share of the class's images in the cluster."""
    keep = _largest(table.sum(axis=1))
    title = "Where each class's images fall among the clusters"
    if len(keep) < len(class_names):
        title += f" ({len(keep)} largest of {len(class_names)} classes)"
    return _heatmap(
        _shares(table[keep]),
        [class_names[i] for i in keep],
        [str(c) for c in cluster_ids],
        "cluster",
        _title(title, untrained),
        out,
    )


def knn_confusion_heatmap(
    confusion: np.ndarray, class_names: Sequence[str], out: Path, untrained: bool = False
) -> Path:
    """Rows: true label; columns: the label most neighbours carry (correct on the diagonal)."""
    keep = _largest(confusion.sum(axis=1))
    names = [class_names[i] for i in keep]
    title = "kNN vote: true label (rows) vs most-voted label (columns)"
    return _heatmap(
        _shares(confusion[np.ix_(keep, keep)]),
        names,
        names,
        "predicted by kNN vote",
        _title(title, untrained),
        out,
    )


def class_bars(
    class_names: Sequence[str],
    values: dict[str, np.ndarray],
    out: Path,
    untrained: bool = False,
) -> Path:
    """One horizontal bar panel per measure, classes sorted by the first measure."""
    first = np.nan_to_num(next(iter(values.values())), nan=-1.0)
    order = np.argsort(first, kind="stable")[-MAX_CLASSES_SHOWN:]
    fig, axes = plt.subplots(
        1,
        len(values),
        figsize=(3.2 * len(values), 1.5 + 0.25 * len(order)),
        sharey=True,
        squeeze=False,
    )
    for ax, (name, v) in zip(axes[0], values.items()):
        ax.barh(range(len(order)), np.nan_to_num(v[order]), color="tab:blue")
        ax.set_title(name.replace("_", " "), fontsize=9)
        ax.axvline(0, color="black", linewidth=0.5)
    axes[0][0].set_yticks(range(len(order)), [class_names[i] for i in order], fontsize=7)
    fig.suptitle(_title("Per-class measures", untrained), fontsize=10)
    return _save(fig, out)


def confused_pairs_sheet(
    pairs: Sequence[tuple[str, str, Sequence[np.ndarray], Sequence[np.ndarray]]],
    out: Path,
    untrained: bool = False,
) -> Path:
    """One row per pair (label a, label b, thumbnails of a, thumbnails of b)."""
    per_side = max([max(len(ta), len(tb)) for _, _, ta, tb in pairs] + [1])
    fig, axes = plt.subplots(
        max(len(pairs), 1),
        2 * per_side,
        figsize=(1.3 * 2 * per_side, 1.5 * max(len(pairs), 1)),
        squeeze=False,
    )
    for ax in axes.ravel():
        ax.axis("off")
    for row, (a, b, thumbs_a, thumbs_b) in enumerate(pairs):
        for j, thumb in enumerate(thumbs_a):
            axes[row][j].imshow(thumb)
        for j, thumb in enumerate(thumbs_b):
            axes[row][per_side + j].imshow(thumb)
        axes[row][0].set_title(a, fontsize=8, loc="left")
        axes[row][per_side].set_title(b, fontsize=8, loc="left")
    fig.suptitle(_title("Most confused class pairs (left: a, right: b)", untrained), fontsize=10)
    return _save(fig, out)
