"""Printing an insight run (`idx insights`): its summary, classes, confused pairs and suspect
labels, one or all of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from idx.cli.output import echo_json, note, render_rows

if TYPE_CHECKING:
    from idx.ops.insights.runs import InsightsResult

#: What `--show` may name: every table, or one of them.
TABLES = ("all", "summary", "classes", "pairs", "suspects")


def show_insights(
    result: InsightsResult, fmt: str, show: str | None = None, limit: int = 10
) -> None:
    """As `idx insights` prints it: json whole unless `show` names a table; else `show` (default:
    all for the table, classes for csv/json), pairs and suspects cut to `limit` rows in a table."""
    for line in result.notes:
        note(line)
    if fmt == "json" and show is None:
        echo_json(result.as_dict())
        return
    show = show or ("all" if fmt == "table" else "classes")
    tables = _tables(result, limit if fmt == "table" else None)
    for name in TABLES[1:] if show == "all" else (show,):
        title, columns, rows = tables[name]
        if show == "all":
            click.echo(f"\n{title}")
        render_rows(columns, rows, fmt)
    if fmt == "table" and show == "all":
        for name, path in result.plots.items():
            click.echo(f"plot {name}: {path}")


def _tables(result: InsightsResult, limit: int | None) -> dict:
    from idx.ops.insights import runs as insight_runs

    m = result.metrics
    display = {row[0]: row[1] for row in result.classes}
    bases = ("random_labels", "majority_class", "random_vectors", "colour_histogram")
    shown = [b for b in bases if b in m["baselines"]]
    names = (
        "purity",
        "nmi",
        "ari",
        "homogeneity",
        "completeness",
        "v_measure",
        "knn_accuracy",
        "zero_shot_accuracy",
        "linear_probe_accuracy",
    )
    summary = [(n, m.get(n), *(m["baselines"][b].get(n) for b in shown)) for n in names if n in m]
    cluster = result.cluster_run_id if result.cluster_run_id is not None else "none"
    head = (
        f"insight run {result.run_id}: {m['n_images']} labelled images "
        f"({m['n_multi_label']} multi-label), {m['n_classes']} classes, k={m['k_nn']}, "
        f"cluster run {cluster}, model {m['model']}"
    )
    probe = m.get("linear_probe")
    if probe:
        low, high = probe["ci95"]
        head += (
            f"\nlinear probe: {m['linear_probe_accuracy']:.3f} (95% CI {low:.3f} to {high:.3f}), "
            f"{probe['folds']}-fold stratified CV, fold sd {probe['fold_sd']:.3f}"
        )
    pairs = [(display.get(a, a), display.get(b, b), n, s) for a, b, n, s in result.pairs]
    suspects = [
        (i, p, display.get(lab, lab), display.get(pred, pred), share, own)
        for i, p, lab, pred, share, own in result.suspects
    ]
    # Best-separated classes first (kNN accuracy), the ones CLIP confuses at the bottom.
    ranked = sorted(result.classes, key=lambda r: (-(r[10] if r[10] is not None else -1), r[1]))
    classes: list[Any] = [(r[1], *r[2:7], display.get(r[7], r[7]), *r[8:]) for r in ranked]
    return {
        "summary": (head, ("metric", "value", *shown), summary),
        "classes": ("per class:", ("class", *insight_runs.CLASS_COLUMNS[2:]), classes),
        "pairs": (f"most confused pairs ({len(pairs)}):", insight_runs.PAIR_COLUMNS, pairs[:limit]),
        "suspects": (
            f"suspect labels ({len(suspects)}; label disagrees with a strong kNN vote):",
            insight_runs.SUSPECT_COLUMNS,
            suspects[:limit],
        ),
    }
