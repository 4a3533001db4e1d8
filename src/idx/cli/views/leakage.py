"""Printing a leakage run (`idx duplicates --across A B`): a summary line, then every pair."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from idx.cli.output import note, render_rows, render_summary

if TYPE_CHECKING:
    from idx.ops.leakage import Leakage

COLUMNS = ["similarity", "distance", "b_id", "b_path", "a_id", "a_path"]


def show_leakage(found: Leakage, fmt: str) -> None:
    rows = [[getattr(p, c) for c in COLUMNS] for p in found.pairs]

    def share(n: int, total: int) -> str:
        return f"{n} of {total} ({n / total:.1%})" if total else "0 of 0"

    summary = (
        f"leakage run {found.run_id}: {share(found.b_with_copy, found.images_b)} images of B "
        f"have a near-duplicate in A; {share(found.a_with_copy, found.images_a)} of A have one "
        f"in B ({found.pair_count} pairs"
        + (f"; {found.in_both} images in both sets" if found.in_both else "")
        + ")"
    )
    if fmt in ("json", "jsonl"):
        render_summary(found.as_dict(), fmt, lambda: None)
    elif fmt == "csv":
        note(summary)
        render_rows(COLUMNS, rows, fmt)
    else:
        click.echo(summary)
        render_rows(COLUMNS, rows, fmt)
