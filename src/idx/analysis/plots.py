"""PNG plots: 2-D maps, silhouette per cluster, contact sheets of cluster members, sweep curves.

Figures are built on matplotlib's object API with the Agg canvas, so nothing touches pyplot's global
state or needs a display. Every function writes one file and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from idx.analysis import palette

_DPI = 110
_UNTRAINED = "  [UNTRAINED model]"
#: Legend entries at most; a map of more clusters goes without one.
MAX_LEGEND = 50
#: Side of a contact sheet's thumbnails: six to a row make a sheet 1,256 px wide.
SHEET_TILE = 200


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    return path


def _title(text: str, untrained: bool) -> str:
    return text + (_UNTRAINED if untrained else "")


def _dot_size(n: int) -> float:
    """Marker area (points^2): big dots for a few hundred points, never under ~3 px across."""
    return float(np.clip(6000 / max(n, 1), 9, 40))


def class_ranks(labels: np.ndarray, names: Sequence[str]) -> list[int]:
    """Classes present in `labels` (-1 = none), largest first, ties by name: the i-th gets
    `palette.colour(i)`, as on the report's and the web app's maps."""
    counts = np.bincount(labels[labels >= 0], minlength=len(names))
    present = [c for c in range(len(counts)) if counts[c]]
    return sorted(present, key=lambda c: (-counts[c], str(names[c]) if c < len(names) else "", c))


def map_figure(
    xy: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    legend: str = "cluster",
    title: str = "",
    untrained: bool = False,
) -> Figure:
    """The figure of `plot_map`: clusters (no names) coloured `palette.colour(cluster)`; classes
    (names given) ranked by size, the TOP_CLASSES largest coloured `palette.colour(rank)` and the
    rest grey as "other"; -1 is "unlabelled". The legend, sorted as drawn, sits right of the axes
    so it never covers a point."""
    fig = Figure(figsize=(9.5, 6.5))
    ax = fig.add_subplot()
    size = _dot_size(len(xy))
    style: dict[str, Any] = {"s": size, "linewidths": 0, "alpha": 0.85}
    entries: list[tuple[Any, str]] = []  # (artist, legend text), in legend order
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], color=palette.colour(0), **style)
    elif names is None:
        k = int(labels.max()) + 1
        for cluster in range(k):
            mine = labels == cluster
            artist = ax.scatter(*xy[mine].T, color=palette.colour(cluster), **style)
            entries.append((artist, f"{cluster} ({int(mine.sum())})"))
    else:
        entries = _class_layers(ax, xy, labels, names, style)
    if labels is not None and labels.min() < 0 and names is None:
        none = labels < 0
        artist = ax.scatter(*xy[none].T, color=palette.UNLABELLED, zorder=0, **style)
        entries.append((artist, f"none ({int(none.sum())})"))
    if 0 < len(entries) <= MAX_LEGEND:
        ax.legend(
            [a for a, _ in entries],
            [text for _, text in entries],
            title=legend,
            fontsize="small",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0,
            ncols=1 + (len(entries) - 1) // 25,
            markerscale=max(1.0, (60 / size) ** 0.5),
        )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(_title(title, untrained))
    return fig


def _class_layers(
    ax: Any, xy: np.ndarray, labels: np.ndarray, names: Sequence[str], style: dict[str, Any]
) -> list[tuple[Any, str]]:
    """Greys beneath, then the coloured classes smallest on top; legend entries largest first."""
    ranked = class_ranks(labels, names)
    top, rest = ranked[: palette.TOP_CLASSES], ranked[palette.TOP_CLASSES :]
    entries: list[tuple[Any, str]] = []
    none = labels < 0
    if none.any():
        artist = ax.scatter(*xy[none].T, color=palette.UNLABELLED, zorder=1, **style)
        entries.append((artist, f"unlabelled ({int(none.sum())})"))
    if rest:
        other = np.isin(labels, rest)
        artist = ax.scatter(*xy[other].T, color=palette.OTHER, zorder=0, **style)
        entries.insert(0, (artist, f"other: {len(rest)} classes ({int(other.sum())})"))
    coloured = []
    for rank, cls in enumerate(top):
        mine = labels == cls
        artist = ax.scatter(*xy[mine].T, color=palette.colour(rank), zorder=2 + rank, **style)
        coloured.append((artist, f"{names[cls]} ({int(mine.sum())})"))
    return coloured + entries


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
    labels[i] of point i, named names[labels[i]] when names are given (see `map_figure`)."""
    fig = map_figure(
        xy, labels=labels, names=names, legend=legend, title=title, untrained=untrained
    )
    return _save(fig, path)


def silhouette_figure(
    values: np.ndarray,
    labels: np.ndarray,
    *,
    score: float,
    title: str = "",
    untrained: bool = False,
) -> Figure:
    """The figure of `plot_silhouette`; cluster i filled with `palette.colour(i)`, as on its map."""
    k = int(labels.max()) + 1
    fig = Figure(figsize=(7, max(4.0, min(12.0, 0.35 * k + 3))))
    ax = fig.add_subplot()
    y = 0
    for cluster in range(k):
        part = np.sort(values[labels == cluster])
        ax.fill_betweenx(
            np.arange(y, y + len(part)),
            0,
            part,
            color=palette.colour(cluster),
            alpha=0.85,
            gid=f"cluster {cluster}",
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
    return fig


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
    fig = silhouette_figure(values, labels, score=score, title=title, untrained=untrained)
    return _save(fig, path)


def contact_sheet(
    nearest: Sequence[np.ndarray],
    farthest: Sequence[np.ndarray],
    path: Path,
    *,
    title: str,
    tile: int = SHEET_TILE,
    captions: tuple[Sequence[str], Sequence[str]] | None = None,
    untrained: bool = False,
) -> Path:
    """Two rows of thumbnails (HxWx3 uint8): nearest the centre on top, farthest below; under
    each, its caption (`captions` = (nearest's, farthest's), a line or two each: id, label)."""
    rows = []
    for row, (name, arrays) in enumerate(
        (("nearest the centre", nearest), ("farthest from the centre", farthest))
    ):
        thumbs = [Image.fromarray(np.asarray(a, dtype=np.uint8)) for a in arrays]
        for thumb in thumbs:
            thumb.thumbnail((tile, tile))
        texts = list(captions[row]) if captions else []
        rows.append((name, thumbs, texts))
    small, big = _font(13), _font(16)
    pad, header, row_title, line = 8, 34, 22, 17
    lines = max((len(t.splitlines()) for _, _, texts in rows for t in texts), default=0)
    caption = lines * line + (4 if lines else 0)
    # Each row as tall as its tallest thumbnail, so small images leave no empty band.
    tall = [max((t.height for t in thumbs), default=0) for _, thumbs, _ in rows]
    columns = max(len(nearest), len(farthest), 1)
    width = max(columns * (tile + pad) + pad, 640)
    height = header + sum(row_title + h + caption + pad for h in tall) + pad
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 8), _fit(draw, _title(title, untrained), big, width - 2 * pad), "black", big)
    top = header
    for (name, thumbs, texts), h in zip(rows, tall):
        draw.text((pad, top + 2), name, fill="dimgray", font=small)
        for col, thumb in enumerate(thumbs):
            x = pad + col * (tile + pad)
            sheet.paste(thumb, (x + (tile - thumb.width) // 2, top + row_title + h - thumb.height))
            for i, text in enumerate(texts[col].splitlines() if col < len(texts) else []):
                y = top + row_title + h + 4 + i * line
                draw.text((x, y), _fit(draw, text, small, tile), "black", small)
        top += row_title + h + caption + pad
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans, which matplotlib ships, so the text is legible wherever matplotlib is."""
    try:
        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except (OSError, ImportError):  # no FreeType in this Pillow: its small bitmap font
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """`text`, cut with an ellipsis to fit `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


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
        ax.plot(list(ks), list(values), marker="o", color=palette.LINE)
        mark = (best_by or {}).get(name, best_k if not best_by else None)
        if mark is not None:
            ax.axvline(mark, color="gray", linestyle=":")
        ax.set_xlabel("k")
        ax.set_title(name.replace("_", " ") + (f" (best k={mark})" if best_by and mark else ""))
    fig.suptitle(_title(title, untrained))
    fig.tight_layout()
    return _save(fig, path)
