"""Printing results on stdout: aligned tables for people, csv/json/jsonl for scripts."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click

from idx.jsonable import to_jsonable


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(to_jsonable(obj), indent=2))


def echo_jsonl(objects: Iterable[Any]) -> None:
    for obj in objects:
        click.echo(json.dumps(to_jsonable(obj)))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:.4f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text  # not -0.0000
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"[{', '.join(_cell(v) for v in value[:3])}, ... {len(value)} values]"
    return str(value)


def render_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> None:
    """Print rows as table, csv, json (a list of objects) or jsonl (an object per line)."""
    if fmt == "json":
        echo_json([dict(zip(columns, row)) for row in rows])
    elif fmt == "jsonl":
        echo_jsonl(dict(zip(columns, row)) for row in rows)
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else v for v in to_jsonable(list(row))])
    else:
        cells = [[_cell(v) for v in row] for row in rows]
        widths = [len(c) for c in columns]
        for row in cells:
            widths = [max(w, len(c)) for w, c in zip(widths, row)]
        click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
        click.echo("  ".join("-" * w for w in widths))
        for row in cells:
            click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def render_dicts(objects: Sequence[dict[str, Any]], fmt: str) -> None:
    """Rows given as dicts: their scalar fields, columns in first-seen order."""
    columns: dict[str, None] = {}
    flat = [_scalars(o) for o in objects]
    for row in flat:
        columns.update(dict.fromkeys(row))
    render_rows(list(columns), [[row.get(c) for c in columns] for row in flat], fmt)


def render_summary(
    summary: Any,
    fmt: str,
    table: Callable[[], None],
    rows: Sequence[dict[str, Any]] | None = None,
) -> None:
    """One result object: json prints it whole (jsonl on one line); table calls `table`; csv
    prints `rows` when the result is a list of rows, else its scalar fields as key,value (nested
    ones named parent.child)."""
    if fmt == "json":
        echo_json(summary)
    elif fmt == "jsonl":
        echo_jsonl([summary])
    elif fmt == "table":
        table()
    elif rows is not None or isinstance(summary, list):
        render_dicts(rows if rows is not None else summary, fmt)
    else:
        render_rows(["key", "value"], list(_scalars(summary).items()), fmt)


def _scalars(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The scalar fields of `obj`, nested dicts flattened to parent.child; lists left out."""
    out: dict[str, Any] = {}
    for key, value in to_jsonable(obj).items():
        if isinstance(value, dict):
            out.update(_scalars(value, f"{prefix}{key}."))
        elif not isinstance(value, list):
            out[f"{prefix}{key}"] = value
    return out


def warn(message: str) -> None:
    click.echo(message, err=True)


#: ctx.meta key: the command was given -q, so no notes (notes_option, or a command's own -q).
QUIET_NOTES = "quiet notes"


def note(message: str) -> None:
    """A `note:` line on stderr, left out when the command was given -q (notes_option)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or not ctx.meta.get(QUIET_NOTES):
        warn(f"note: {message}")


def note_untrained(untrained: bool, what: str = "similarities are not meaningful") -> None:
    """The stderr note of every command whose results come from an untrained model."""
    if untrained:
        note(f"the model has UNTRAINED random weights; {what}")
