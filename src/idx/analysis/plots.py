"""PNG plots: 2-D maps, silhouette per cluster, contact sheets of cluster members, sweep curves.

Figures are built on matplotlib's object API with the Agg canvas, so nothing touches pyplot's global
state or needs a display. Every function writes one file and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

_DPI = 110
_UNTRAINED = "  [UNTRAINED model]"


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    return path


def _title(text: str, untrained: bool) -> str:
    return text + (_UNTRAINED if untrained else "")


def _cmap(k: int) -> str:
    return "tab10" if k <= 10 else "tab20" if k <= 20 else "turbo"


def plot_map(
    xy: np.ndarray,
    path: Path,
    *,
    labels: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    legend: str = "cluster",
    title: str = "",
    untrained: bool = False,
) -> Path:
    """Scatter of a 2-D map, coloured by cluster (or class) when labels are given: group
    labels[i] of point i, named names[labels[i]] when names are given; -1 (unlabelled) is grey."""
    fig = Figure(figsize=(7, 6) if names is None else (9, 6))
    ax = fig.add_subplot()
    size = float(np.clip(4000 / max(len(xy), 1), 1, 30))
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.8, linewidths=0)
    else:
        k = max(int(labels.max()) + 1, len(names or ()))
        none = labels < 0
        if none.any():
            ax.scatter(xy[none, 0], xy[none, 1], s=size, color="#c4c9cf", alpha=0.6, linewidths=0)
        cmap = colormaps[_cmap(k)]  # tab10 / tab20: group i gets the palette's i-th colour
        for group in range(k) if k <= 20 else ():
            mine = labels == group
            if mine.any():
                ax.scatter(
                    xy[mine, 0],
                    xy[mine, 1],
                    s=size,
                    color=cmap(group),
                    alpha=0.85,
                    linewidths=0,
                    label=names[group] if names is not None else str(group),
                )
        if k > 20:  # too many to name: one colour map, no legend
            ax.scatter(
                xy[~none, 0], xy[~none, 1], c=labels[~none], cmap=_cmap(k), s=size, linewidths=0
            )
        else:
            if none.any():
                ax.scatter([], [], color="#c4c9cf", label="unlabelled")
            ax.legend(
                title=legend,
                fontsize="small",
                loc="center left" if names is not None else "best",
                bbox_to_anchor=(1.0, 0.5) if names is not None else None,
                markerscale=max(1.0, 20 / size) ** 0.5,
            )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(_title(title, untrained))
    return _save(fig, path)


def plot_silhouette(
    values: np.ndarray,
    labels: np.ndarray,
    path: Path,
    *,
    score: float,
    title: str = "",
    untrained: bool = False,
) -> Path:
    """The classic silhouette plot: per cluster, its points' s(i) sorted, and the mean as a line."""
    k = int(labels.max()) + 1
    fig = Figure(figsize=(7, max(4.0, min(12.0, 0.35 * k + 3))))
    ax = fig.add_subplot()
    colours = colormaps[_cmap(k)]
    y = 0
    for cluster in range(k):
        part = np.sort(values[labels == cluster])
        ax.fill_betweenx(
            np.arange(y, y + len(part)), 0, part, color=colours(cluster / max(k - 1, 1)), alpha=0.8
        )
        if len(part):
            ax.text(-0.02, y + len(part) / 2, str(cluster), ha="right", va="center", fontsize=8)
        y += len(part) + max(2, len(values) // 100)
    ax.axvline(score, color="black", linestyle="--", label=f"mean {score:.3f}")
    ax.set_xlabel("silhouette s(i)")
    ax.set_ylabel("cluster")
    ax.set_yticks([])
    ax.legend(loc="lower right")
    ax.set_title(_title(title, untrained))
    return _save(fig, path)


def contact_sheet(
    nearest: Sequence[np.ndarray],
    farthest: Sequence[np.ndarray],
    path: Path,
    *,
    title: str,
    tile: int = 96,
    untrained: bool = False,
) -> Path:
    """Two rows of thumbnails (HxWx3 uint8): nearest the centre on top, farthest below."""
    columns = max(len(nearest), len(farthest), 1)
    pad, header, caption = 4, 22, 16
    width = columns * (tile + pad) + pad
    height = header + 2 * (caption + tile + pad) + pad
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 4), _title(title, untrained), fill="black")
    for row, (label, images) in enumerate((("nearest", nearest), ("farthest", farthest))):
        top = header + row * (caption + tile + pad)
        draw.text((pad, top), label, fill="dimgray")
        for col, array in enumerate(images):
            thumb = Image.fromarray(np.asarray(array, dtype=np.uint8))
            thumb.thumbnail((tile, tile))
            x = pad + col * (tile + pad) + (tile - thumb.width) // 2
            sheet.paste(thumb, (x, top + caption + (tile - thumb.height) // 2))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path


def plot_sweep(
    ks: Sequence[int],
    curves: Mapping[str, Sequence[float]],
    path: Path,
    *,
    best_k: int | None = None,
    best_by: Mapping[str, int] | None = None,
    title: str = "",
    untrained: bool = False,
) -> Path:
    """One panel per metric against k (four to a row), the best k marked: `best_by[metric]` in
    that metric's panel, else `best_k` in every panel."""
    cols = min(4, len(curves))
    rows = -(-len(curves) // cols)
    fig = Figure(figsize=(4 * cols, 3.4 * rows + 0.4))
    for i, (name, values) in enumerate(curves.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.plot(list(ks), list(values), marker="o")
        mark = (best_by or {}).get(name, best_k if not best_by else None)
        if mark is not None:
            ax.axvline(mark, color="gray", linestyle=":")
        ax.set_xlabel("k")
        ax.set_title(name.replace("_", " ") + (f" (best k={mark})" if best_by and mark else ""))
    fig.suptitle(_title(title, untrained))
    fig.tight_layout()
    return _save(fig, path)
