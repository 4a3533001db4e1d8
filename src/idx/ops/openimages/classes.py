"""Which classes a fetch asks for: display names (any case) or label names (`/m/...`) resolved
against Open Images' class descriptions; each takes its is-a subclasses from the hierarchy (Fruit
takes Apple, Banana ...; `Part` children such as a Bicycle wheel never count), unless `exact`."""

from __future__ import annotations

import csv
import difflib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from idx.errors import UsageError
from idx.indexer.catalog.hierarchy import IS_A
from idx.ops.labels.files import class_file_header

#: Close names suggested for an unknown one.
SUGGESTIONS = 3


@dataclass(frozen=True)
class ClassChoice:
    """One class asked for, and the classes whose positives count for it."""

    asked: str
    label_name: str
    display_name: str
    #: label names whose positive images count: the class itself, then its is-a subclasses
    members: tuple[str, ...]
    #: display names of the subclasses taken through the hierarchy (empty with --exact)
    subclasses: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_names(values: Iterable[str]) -> list[str]:
    """`--classes` values, each comma-separated, as one list without blanks or repeats."""
    names: dict[str, None] = {}
    for value in values:
        names.update((n.strip(), None) for n in value.split(",") if n.strip())
    return list(names)


def read_classes(path: Path) -> dict[str, str]:
    """label name -> display name of a `LabelName,DisplayName` file, with or without a header."""
    _, header = class_file_header(path)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = csv.reader(fh)
        if header:
            next(rows, None)
        return {row[0].strip(): row[1].strip() for row in rows if len(row) >= 2 and row[0]}


def choose(
    names: Sequence[str],
    classes: dict[str, str],
    edges: Iterable[tuple[str, str, str]],
    *,
    exact: bool = False,
) -> list[ClassChoice]:
    """The classes `names` ask for, in order; UsageError naming each unknown name with the
    closest known ones. `edges` are the hierarchy's (parent, child, relation)."""
    if not names:
        raise UsageError("--classes names no class; give display names such as Fruit,Cookie")
    children: dict[str, list[str]] = {}
    for parent, child, relation in edges:
        if relation == IS_A:
            children.setdefault(parent, []).append(child)
    by_display: dict[str, list[str]] = {}
    for key, display in classes.items():
        by_display.setdefault(display.lower(), []).append(key)
    choices: dict[str, ClassChoice] = {}
    unknown: list[str] = []
    for name in names:
        keys = [name] if name in classes or name in children else by_display.get(name.lower())
        if not keys:
            unknown.append(name)
            continue
        for key in keys:
            members = [key] if exact else _descendants(key, children)
            choices.setdefault(
                key,
                ClassChoice(
                    name,
                    key,
                    classes.get(key, key),
                    tuple(members),
                    tuple(sorted(classes.get(m, m) for m in members[1:])),
                ),
            )
    if unknown:
        raise UsageError(_unknown(unknown, classes))
    return list(choices.values())


def _descendants(key: str, children: dict[str, list[str]]) -> list[str]:
    """`key`, then every class below it through is-a edges (each once, breadth first)."""
    seen = {key: None}
    todo = [key]
    while todo:
        for child in children.get(todo.pop(0), ()):
            if child not in seen:
                seen[child] = None
                todo.append(child)
    return list(seen)


def _unknown(names: list[str], classes: dict[str, str]) -> str:
    displays = {d.lower(): d for d in classes.values()}
    parts = []
    for name in names:
        close = difflib.get_close_matches(name.lower(), displays, n=SUGGESTIONS, cutoff=0.6)
        hint = f" (did you mean {', '.join(displays[c] for c in close)}?)" if close else ""
        parts.append(f"{name!r}{hint}")
    return (
        f"unknown class {'; '.join(parts)}: give Open Images display names (any case, e.g. "
        "Fruit) or label names (/m/...), as class-descriptions-boxable.csv lists them"
    )
