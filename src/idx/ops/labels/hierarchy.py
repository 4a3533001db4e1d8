"""Class hierarchies: read Open Images' `bbox_labels_600_hierarchy.json`, store it (is-a and
part-of edges, the is-a closure), and roll positive labels up to parent classes for insights.

The file is a DAG written as a tree: each node is `{"LabelName": ..., "Subcategory": [...],
"Part": [...]}`, and a class under several parents (Cookie under Snack, Dessert and Baked goods)
is written out, with its whole subtree, under each. `Subcategory` children are kinds of their
parent (is-a); `Part` children are parts of it (a Bicycle wheel is no Bicycle) and never count
in a roll-up.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idx import config
from idx.errors import UsageError
from idx.indexer.catalog.hierarchy import IS_A, PART_OF
from idx.indexer.catalog.label_files import not_utf8
from idx.ops.labels.positives import Positives, positives_from

if TYPE_CHECKING:
    from idx.indexer.catalog import Catalog
    from idx.indexer.index import Index

SHAPE = (
    'expected Open Images\' class hierarchy: nested {"LabelName": "/m/...", '
    '"Subcategory": [...], "Part": [...]} objects (bbox_labels_600_hierarchy.json)'
)
#: The JSON keys of a node's is-a and part-of children.
RELATIONS = {"Subcategory": IS_A, "Part": PART_OF}


@dataclass
class HierarchyReport:
    file: str
    classes: int
    is_a_edges: int
    part_of_edges: int
    classes_with_several_parents: int
    roots: int
    deepest_level: int
    #: classes the index has positive labels for that the hierarchy does not hold
    labelled_outside: list[str] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_hierarchy(path: str | Path) -> list[tuple[str, str, str]]:
    """The distinct (parent, child, relation) edges of a hierarchy file; UsageError naming the
    file and the node when it is not one, or when its is-a edges have a cycle."""
    path = Path(path)
    try:
        root = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise UsageError(not_utf8(path)) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: cannot read it as JSON ({exc}); {SHAPE}") from None
    edges: dict[tuple[str, str, str], None] = {}
    stack: list[tuple[Any, str]] = [(root, "the top level")]
    while stack:
        node, where = stack.pop()
        if not isinstance(node, dict) or not isinstance(node.get("LabelName"), str):
            raise UsageError(f"{path}: {where} is not a node with a LabelName; {SHAPE}")
        name = node["LabelName"]
        unknown = set(node) - {"LabelName", *RELATIONS}
        if unknown:
            raise UsageError(
                f"{path}: node {name} has unknown key(s) {', '.join(sorted(unknown))}; {SHAPE}"
            )
        for key, relation in RELATIONS.items():
            children = node.get(key, [])
            if not isinstance(children, list):
                raise UsageError(f"{path}: {key} of {name} is not a list; {SHAPE}")
            for i, child in enumerate(children):
                stack.append((child, f"{key} entry {i + 1} of {name}"))
                if isinstance(child, dict) and isinstance(child.get("LabelName"), str):
                    edges[(name, child["LabelName"], relation)] = None
    _check_acyclic(path, [e for e in edges if e[2] == IS_A])
    return list(edges)


def _check_acyclic(path: Path, edges: list[tuple[str, str, str]]) -> None:
    children: dict[str, list[str]] = {}
    for parent, kid, _ in edges:  # not `child`: the walk below has it None at a node's end
        children.setdefault(parent, []).append(kid)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in children:
        if state.get(start):
            continue
        trail = [start]
        todo = [iter(children.get(start, ()))]
        state[start] = 1
        while todo:
            child = next(todo[-1], None)
            if child is None:
                state[trail.pop()] = 2
                todo.pop()
            elif state.get(child) == 1:
                loop = " > ".join(trail[trail.index(child) :] + [child])
                raise UsageError(
                    f"{path}: class {child} is its own is-a ancestor ({loop}); a hierarchy "
                    "must have no cycle"
                )
            elif not state.get(child):
                state[child] = 1
                trail.append(child)
                todo.append(iter(children.get(child, ())))


def import_hierarchy(index: Index, path: str | Path, *, dry_run: bool = False) -> HierarchyReport:
    """Read and store a hierarchy file (replacing an earlier one); with `dry_run`, only read and
    count it."""
    edges = read_hierarchy(path)
    catalog = index.catalog
    if dry_run:
        is_a = [(p, c) for p, c, r in edges if r == IS_A]
        return HierarchyReport(
            file=str(path),
            classes=len({p for p, _, _ in edges} | {c for _, c, _ in edges}),
            is_a_edges=len(is_a),
            part_of_edges=len(edges) - len(is_a),
            classes_with_several_parents=sum(n > 1 for n in Counter(c for _, c in is_a).values()),
            roots=len({p for p, _ in is_a} - {c for _, c in is_a}),
            deepest_level=0,
            dry_run=True,
        )
    catalog.hierarchy.replace(edges, source=Path(path).name)
    return HierarchyReport(
        file=str(path),
        **catalog.hierarchy.summary(),
        labelled_outside=catalog.hierarchy.labelled_classes_outside(),
    )


@dataclass
class Rollup:
    """Which parent classes insights report at: those at one level, or those named."""

    level: int | None = None
    names: Sequence[str] = ()

    def describe(self) -> str:
        return f"level {self.level}" if self.level is not None else ", ".join(self.names)


def rollup_targets(catalog: Catalog, rollup: Rollup) -> list[str]:
    """The label keys a roll-up reports at; UsageError saying what to do when there are none."""
    if not catalog.hierarchy.exists():
        file = "bbox_labels_600_hierarchy.json"
        raise UsageError(
            "the index has no class hierarchy; import one with "
            f"`{config.command(catalog.index_dir, 'labels', 'import', '--hierarchy', file)}`"
        )
    if rollup.level is not None:
        targets = catalog.hierarchy.at_level(rollup.level)
        if not targets:
            deepest = catalog.hierarchy.summary()["deepest_level"]
            raise UsageError(f"--level {rollup.level} holds no class; use 0 to {deepest}")
        return targets
    found = catalog.hierarchy.find(list(rollup.names))
    unknown = [name for name, keys in found.items() if not keys]
    if unknown:
        raise UsageError(
            f"--rollup: {', '.join(unknown)} is not a class of the hierarchy; give display names "
            "(e.g. Fruit) or label names (e.g. /m/02xwb)"
        )
    return sorted({key for keys in found.values() for key in keys})


def rolled_positives(
    catalog: Catalog, rollup: Rollup, sources: Sequence[str] | None = None
) -> Positives | None:
    """Positive labels rolled up: each image carries each target class that is an is-a
    ancestor of (or is) one of its labels; None when no image reaches any target."""
    targets = rollup_targets(catalog, rollup)
    return positives_from(catalog, catalog.hierarchy.rolled_positives(targets, sources))
