"""Printing a robustness measurement (`idx robustness`) and an injection (`idx robustness
inject`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from idx import config
from idx.cli.output import note, render_rows, render_summary

if TYPE_CHECKING:
    from idx.ops.injection import Injection
    from idx.ops.robustness.measure import RobustnessReport

#: Columns of the table view (csv and json carry every column).
TABLE_COLUMNS = (
    "perturbation",
    "severity",
    "n",
    "cos_mean",
    "cos_p05",
    "topk_overlap",
    "self_found_at_1",
    "self_rank_mean",
    "cluster_change_share",
    "knn_accuracy",
    "zero_shot_accuracy",
)

#: (column, heading) of the per-corruption table: mean over the severities, drop from clean.
CORRUPTION_COLUMNS = (
    ("perturbation", "perturbation"),
    ("severities", "levels"),
    ("knn_accuracy", "knn_acc"),
    ("knn_accuracy_drop", "knn_drop"),
    ("zero_shot_accuracy", "zero_shot"),
    ("zero_shot_accuracy_drop", "zero_shot_drop"),
    ("cos_mean", "cos_mean"),
    ("topk_overlap", "topk_overlap"),
    ("self_found_at_1", "found_at_1"),
    ("self_found_at_1_drop", "found_at_1_drop"),
)


def show_report(report: RobustnessReport, fmt: str) -> None:
    """Its notes on stderr; csv: one row per condition; else the summary or the tables."""
    from idx.ops.robustness.measure import RESULT_COLUMNS

    for line in report.notes:
        note(line)
    if fmt == "csv":
        render_rows(RESULT_COLUMNS, [[r[c] for c in RESULT_COLUMNS] for r in report.results], fmt)
    else:
        render_summary(report.as_dict(), fmt, lambda: _print_table(report))


def _print_table(report: RobustnessReport) -> None:
    columns = [c for c in TABLE_COLUMNS if any(r[c] is not None for r in report.results)]
    render_rows(columns, [[r[c] for c in columns] for r in report.results], "table")
    _print_summary(report)


def _print_by_corruption(report: RobustnessReport) -> None:
    rows = report.by_corruption
    shown = [(c, h) for c, h in CORRUPTION_COLUMNS if any(r.get(c) is not None for r in rows)]
    click.echo(
        "\nper perturbation: mean over the severities measured; drop = clean minus that mean"
    )
    render_rows([h for _, h in shown], [[r.get(c) for c, _ in shown] for r in rows], "table")


def _print_summary(report: RobustnessReport) -> None:
    _print_by_corruption(report)
    fragile = _most_fragile(report.classes)
    if fragile:
        click.echo("\nmost fragile classes (mean cosine over the perturbed conditions):")
        render_rows(["class", "n", "cos_mean", "knn_accuracy"], fragile, "table")
    click.echo(
        f"\nrun {report.run_id}: {report.sample_size} images x {len(report.perturbations)} "
        f"perturbations x {len(report.severities)} severities with {report.model}; "
        f"{report.images_per_s:.1f} perturbed images/s"
    )
    for name, path in report.plots.items():
        click.echo(f"{name}: {path}")


def _most_fragile(classes: list[dict[str, Any]], top: int = 5) -> list[list[Any]]:
    by_label: dict[str, list[dict[str, Any]]] = {}
    for row in classes:
        if row["severity"] > 0:
            by_label.setdefault(row.get("display_name") or row["label_name"], []).append(row)
    summary = []
    for label, rows in by_label.items():
        cos = sum(r["cos_mean"] for r in rows) / len(rows)
        acc = [r["knn_accuracy"] for r in rows if r["knn_accuracy"] is not None]
        summary.append([label, rows[0]["n"], cos, sum(acc) / len(acc) if acc else None])
    return sorted(summary, key=lambda r: r[2])[:top]


def show_injection(inj: Injection, fmt: str, index_dir: Path) -> None:
    """The injection, then the commands that compare with it and remove it, for `index_dir`."""

    def table() -> None:
        level = f" severity {inj.severity}" if inj.severity else ""
        click.echo(
            f"injection {inj.id}: added {inj.n_images} {inj.kind}{level} images "
            f"(source '{inj.source}') from {inj.folder}"
        )
        same = ("--id", str(inj.id))
        click.echo(
            f"compare with: {config.command(index_dir, 'robustness', 'compare', *same)}; "
            f"remove with: {config.command(index_dir, 'robustness', 'eject', *same)}"
        )

    render_summary(inj.as_dict(), fmt, table)
