"""One palette for every plot, the report and the web app (issue 24): cluster i and the i-th
largest class have one colour wherever they are drawn, and grey is never a real class.

Colours are read from the figure objects (legend handles, filled areas, lines), not from pixels.
"""

from __future__ import annotations

import json
import re
from importlib import resources

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex, to_rgb
from PIL import Image

from idx.analysis import palette, plots, robustness_plots
from idx.analysis.perturbations import IMAGENET_C
from idx.analysis.report_html import render_html
from idx.ops.browse import SHARED_SCRIPTS, shared_script

GREYS = (palette.OTHER, palette.UNLABELLED)


def rgb(colour) -> tuple[float, ...]:
    return tuple(round(c, 3) for c in to_rgb(colour))


def chroma(colour: str) -> float:
    r, g, b = to_rgb(colour)
    return max(r, g, b) - min(r, g, b)


def legend_colours(fig) -> dict[str, str]:
    """Legend text -> the hex colour of its handle."""
    legend = fig.axes[0].get_legend()
    return {
        text.get_text(): to_hex(handle.get_facecolor()[0], keep_alpha=False)
        for text, handle in zip(legend.get_texts(), legend.legend_handles)
    }


# -- the palette -------------------------------------------------------------------------------


def test_the_palette_is_distinct_and_never_grey():
    assert len(set(palette.COLOURS)) == len(palette.COLOURS) >= palette.TOP_CLASSES
    assert "#7f7f7f" not in palette.COLOURS  # tab10's grey
    shown = [palette.colour(i) for i in range(200)]
    assert shown[: len(palette.COLOURS)] == list(palette.COLOURS)
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in shown)
    assert not set(shown) & set(GREYS)
    # a real class is saturated: at least a fifth of the range between its channels
    assert min(chroma(c) for c in shown) >= 0.2
    assert max(chroma(c) for c in GREYS) < 0.1
    assert palette.colour(palette.OTHER_CATEGORY) == palette.OTHER
    assert palette.colour(palette.UNLABELLED_CATEGORY) == palette.UNLABELLED


def test_the_pages_get_the_python_palette_and_keep_no_list_of_their_own():
    script = palette.script()
    found = re.search(r"const PALETTE = (\[.*?\]);", script)
    assert found and json.loads(found.group(1)) == list(palette.COLOURS)
    assert f"const TOP_CLASSES = {palette.TOP_CLASSES};" in script
    assert json.dumps(palette.OTHER) in script and json.dumps(palette.UNLABELLED) in script
    # the report inlines it; the web app fetches it, before the scripts that use it
    assert script in render_html({"title": "t"})
    assert SHARED_SCRIPTS[0] == "palette.js" and shared_script("palette.js") == script
    page = (resources.files("idx.serve") / "static" / "index.html").read_text(encoding="utf-8")
    assert page.index("/static/lib/palette.js") < page.index("/static/lib/charts.js")
    assets = [resources.files("idx.analysis") / "report_assets", resources.files("idx.serve")]
    for folder in (assets[0], assets[1] / "static"):
        for asset in folder.iterdir():
            if asset.name.endswith(".js"):
                text = asset.read_text(encoding="utf-8")
                assert "const PALETTE" not in text and "function colourOf" not in text, asset


# -- maps and silhouettes --------------------------------------------------------------------


def test_a_cluster_has_one_colour_on_its_map_and_its_silhouette():
    rng = np.random.default_rng(0)
    k = 12
    labels = np.repeat(np.arange(k), 10)
    xy = rng.normal(size=(len(labels), 2)) + labels[:, None] * 3
    values = rng.uniform(-0.2, 0.9, len(labels))
    mapped = legend_colours(plots.map_figure(xy, labels=labels))
    fig = plots.silhouette_figure(values, labels, score=0.4)
    filled = {
        area.get_gid(): to_hex(area.get_facecolor()[0], keep_alpha=False)
        for area in fig.axes[0].collections
    }
    for cluster in range(k):
        assert mapped[f"{cluster} (10)"] == filled[f"cluster {cluster}"]
        assert rgb(filled[f"cluster {cluster}"]) == rgb(palette.colour(cluster))


def test_the_map_legend_sits_outside_the_points():
    labels = np.arange(60) % 6
    xy = np.random.default_rng(1).normal(size=(60, 2))
    fig = plots.map_figure(xy, labels=labels)
    FigureCanvasAgg(fig).draw()
    axes_box = fig.axes[0].get_window_extent()
    legend_box = fig.axes[0].get_legend().get_window_extent()
    assert legend_box.x0 >= axes_box.x1


def test_a_label_map_colours_the_largest_classes_and_greys_the_rest():
    rng = np.random.default_rng(2)
    n_classes = 18
    sizes = 200 // np.arange(1, n_classes + 1) + 3
    ids = rng.permutation(n_classes)  # label numbers unrelated to size, as in a catalog
    names = [f"class {i:02d}" for i in range(n_classes)]
    labels = np.concatenate([np.full(s, c) for s, c in zip(sizes, ids)] + [np.full(7, -1)])
    xy = rng.normal(size=(len(labels), 2))
    fig = plots.map_figure(xy, labels=labels, names=names, legend="class")
    shown = legend_colours(fig)
    texts = list(shown)
    top = palette.TOP_CLASSES
    # largest first, then the grey "other" and "unlabelled"
    assert texts[:top] == [f"{names[c]} ({s})" for c, s in zip(ids, sizes)][:top]
    assert texts[top:] == [
        f"other: {n_classes - top} classes ({sizes[top:].sum()})",
        "unlabelled (7)",
    ]
    assert [shown[t] for t in texts[:top]] == list(palette.COLOURS[:top])
    assert [shown[t] for t in texts[top:]] == [palette.OTHER, palette.UNLABELLED]
    # every point of a top class carries its colour; the small classes are drawn grey
    drawn = {
        tuple(np.round(a.get_offsets()[0], 6)): to_hex(a.get_facecolor()[0], keep_alpha=False)
        for a in fig.axes[0].collections
        if len(a.get_offsets())
    }
    assert set(drawn.values()) == set(palette.COLOURS[:top]) | set(GREYS)
    assert plots._dot_size(len(labels)) >= 9 and plots._dot_size(100_000) >= 9


def test_equal_classes_rank_by_name_as_the_pages_do():
    labels = np.array([2, 2, 0, 0, 1, 1, 1, -1])
    assert plots.class_ranks(labels, ["b", "c", "a"]) == [1, 2, 0]


# -- robustness and contact sheets ------------------------------------------------------------


def test_each_perturbation_gets_its_own_colour_and_its_family_a_line(tmp_path, monkeypatch):
    rows = [{"perturbation": "clean", "severity": 0, "cos_mean": 1.0}]
    rows += [
        {"perturbation": name, "severity": s, "cos_mean": 1 - 0.01 * s * (i + 1)}
        for i, name in enumerate(IMAGENET_C)
        for s in (1, 3)
    ]
    figures = []
    monkeypatch.setattr(robustness_plots, "_save", lambda fig, out: figures.append(fig) or out)
    robustness_plots.plot_curves(rows, tmp_path / "c.png", "t", order=IMAGENET_C)
    lines = {line.get_label(): line for line in figures[0].axes[0].get_lines()}
    assert list(lines) == list(IMAGENET_C)
    colours = [to_hex(line.get_color()) for line in lines.values()]
    assert colours == [palette.colour(i) for i in range(len(IMAGENET_C))]
    assert len(set(colours)) == len(colours)
    assert lines["gaussian_noise"].get_linestyle() != lines["defocus_blur"].get_linestyle()
    assert lines["gaussian_noise"].get_linestyle() == lines["shot_noise"].get_linestyle()
    robustness_plots.plt.close(figures[0])


def test_the_class_heatmap_keeps_its_long_title_inside_the_figure(tmp_path):
    rows = [
        {"label_name": c, "perturbation": p, "severity": 1, "cos_mean": 0.9}
        for c in ("a", "b")
        for p in ("jpeg", "gaussian_blur")
    ]
    title = "idx-tiny (checkpoint sha256:c8c3639400ef) [UNTRAINED random weights], 40 images"
    out = robustness_plots.plot_class_heatmap(rows, tmp_path / "classes.png", title)
    image = np.asarray(Image.open(out).convert("L"))
    # tight bounding box: ink reaches no edge but the title's line is whole (no clipped glyphs)
    assert image.shape[1] >= 500
    assert image[:, 0].min() > 200 and image[:, -1].min() > 200


def test_contact_sheets_are_wide_and_caption_every_image(tmp_path):
    rng = np.random.default_rng(0)
    thumbs = [rng.integers(0, 256, size=(300, 260, 3), dtype=np.uint8) for _ in range(6)]
    captions = [f"#{i}\nlabel {i}" for i in range(6)]
    out = plots.contact_sheet(
        thumbs, thumbs[:3], tmp_path / "s.png", title="cluster 0", captions=(captions, captions)
    )
    sheet = np.asarray(Image.open(out).convert("L"))
    assert sheet.shape[1] >= 1200
    # under each thumbnail of the first row, dark text in the caption band
    tile, pad = plots.SHEET_TILE, 8
    band = sheet[34 + 22 + tile + 2 : 34 + 22 + tile + 2 + 34]
    for col in range(6):
        x = pad + col * (tile + pad)
        assert band[:, x : x + tile].min() < 100, col


@pytest.mark.parametrize("n", [10, 5000])
def test_a_plain_map_uses_the_first_colour(n):
    xy = np.random.default_rng(0).normal(size=(n, 2))
    fig = plots.map_figure(xy)
    (points,) = fig.axes[0].collections
    assert to_hex(points.get_facecolor()[0], keep_alpha=False) == palette.colour(0)
    assert fig.axes[0].get_legend() is None
