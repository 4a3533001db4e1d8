"""A class hierarchy: is-a and part-of edges between classes, the is-a closure (every ancestor of
every class) computed by SQL, and the positive labels rolled up to parent classes through it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    import pyarrow as pa

    from idx.indexer.catalog.db import Database

IS_A, PART_OF = "is_a", "part_of"


class HierarchySummary(TypedDict):
    """Hierarchy.summary's counts, by name."""

    classes: int
    is_a_edges: int
    part_of_edges: int
    classes_with_several_parents: int
    roots: int
    deepest_level: int


class Hierarchy:
    def __init__(self, db: Database):
        self.db = db

    def replace(self, edges: Sequence[tuple[str, str, str]], source: str) -> None:
        """Store (parent, child, relation) edges in place of any earlier hierarchy and rebuild
        the closure. The caller has checked that the is-a edges have no cycle."""
        with self.db.transaction():
            self.db.rows("DELETE FROM class_edges")
            self.db.rows("DELETE FROM class_closure")
            if edges:
                parents, children, relations = (list(c) for c in zip(*edges))
                self.db.insert_rows(
                    "class_edges",
                    {
                        "parent": parents,
                        "child": children,
                        "relation": relations,
                        "source": [source] * len(edges),
                    },
                )
            # Walk down the is-a edges from every class (itself at distance 0); UNION drops the
            # repeats a DAG written as a tree brings; the shortest distance is kept.
            self.db.rows(
                "INSERT INTO class_closure WITH RECURSIVE "
                "nodes(name) AS (SELECT parent FROM class_edges UNION SELECT child FROM class_edges), "
                "walk(ancestor, descendant, distance) AS ("
                "  SELECT name, name, 0 FROM nodes "
                "  UNION "
                "  SELECT w.ancestor, e.child, w.distance + 1 FROM walk w "
                f"  JOIN class_edges e ON e.parent = w.descendant AND e.relation = '{IS_A}') "
                "SELECT ancestor, descendant, min(distance) FROM walk GROUP BY 1, 2"
            )

    def exists(self) -> bool:
        return bool(self.db.rows("SELECT 1 FROM class_edges LIMIT 1"))

    def source(self) -> str | None:
        return self.db.value("SELECT min(source) FROM class_edges")

    def ancestors(self, label_names: Sequence[str]) -> dict[str, dict[str, int]]:
        """class -> {is-a ancestor (itself included): distance}, for each of `label_names`."""
        rows = self.db.rows(
            "SELECT descendant, ancestor, distance FROM class_closure "
            "WHERE descendant IN (SELECT unnest(?::VARCHAR[])) ORDER BY 1, 3, 2",
            [list(label_names)],
        )
        out: dict[str, dict[str, int]] = {name: {} for name in label_names}
        for descendant, ancestor, distance in rows:
            out[descendant][ancestor] = int(distance)
        return out

    def levels(self) -> dict[str, int]:
        """class -> its level (shortest is-a distance from a root)."""
        return {name: int(level) for name, level in self.db.rows("SELECT * FROM class_levels")}

    def find(self, names: Sequence[str]) -> dict[str, list[str]]:
        """Each of `names` (a label key, or a display name in any case) -> the hierarchy's classes
        it names (none when unknown; several when a display name is shared)."""
        rows = self.db.rows(
            "WITH asked(name) AS (SELECT unnest(?::VARCHAR[])), "
            "known AS (SELECT DISTINCT descendant AS label_name FROM class_closure) "
            "SELECT a.name, k.label_name FROM asked a JOIN known k ON k.label_name = a.name "
            "UNION SELECT a.name, k.label_name FROM asked a "
            "JOIN classes c ON lower(c.display_name) = lower(a.name) "
            "JOIN known k ON k.label_name = c.label_name ORDER BY 1, 2",
            [list(names)],
        )
        found: dict[str, list[str]] = {name: [] for name in names}
        for name, label in rows:
            found[name].append(label)
        return found

    def at_level(self, level: int) -> list[str]:
        return [
            r[0]
            for r in self.db.rows(
                "SELECT label_name FROM class_levels WHERE level = ? ORDER BY 1", [int(level)]
            )
        ]

    def rolled_positives(
        self, targets: Sequence[str], sources: Sequence[str] | None = None
    ) -> pa.Table:
        """(image_id, label_name, confidence) as `Labels.positives`, but each positive label
        replaced by those of `targets` that are its is-a ancestors (or itself): an image counts
        once for each target class above any of its labels."""
        where, params = "", [list(targets)]
        if sources:
            where, params = (
                " AND l.source IN (SELECT unnest(?::VARCHAR[]))",
                [*params, list(sources)],
            )
        return self.db.arrow(
            "SELECT l.image_id, c.ancestor AS label_name, max(l.confidence) AS confidence "
            "FROM labels l JOIN images i ON i.id = l.image_id "
            "JOIN class_closure c ON c.descendant = l.label_name "
            f"WHERE l.confidence > 0 AND c.ancestor IN (SELECT unnest(?::VARCHAR[])){where} "
            "GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2",
            params,
        )

    def summary(self) -> HierarchySummary:
        """Counts: classes, is-a and part-of edges, classes with several is-a parents, roots,
        the deepest level."""
        (classes, is_a, part_of, shared, roots, deepest) = self.db.rows(
            "SELECT (SELECT count(*) FROM (SELECT parent FROM class_edges UNION "
            "SELECT child FROM class_edges)), "
            f"(SELECT count(*) FROM class_edges WHERE relation = '{IS_A}'), "
            f"(SELECT count(*) FROM class_edges WHERE relation = '{PART_OF}'), "
            "(SELECT count(*) FROM (SELECT child FROM class_edges "
            f"WHERE relation = '{IS_A}' GROUP BY 1 HAVING count(*) > 1)), "
            "(SELECT count(*) FROM class_levels WHERE level = 0), "
            "(SELECT coalesce(max(level), 0) FROM class_levels)"
        )[0]
        return {
            "classes": int(classes),
            "is_a_edges": int(is_a),
            "part_of_edges": int(part_of),
            "classes_with_several_parents": int(shared),
            "roots": int(roots),
            "deepest_level": int(deepest),
        }

    def labelled_classes_outside(self) -> list[str]:
        """Classes with positive labels in the index that the hierarchy does not hold."""
        return [
            r[0]
            for r in self.db.rows(
                "SELECT DISTINCT label_name FROM labels WHERE confidence > 0 AND label_name NOT IN "
                "(SELECT descendant FROM class_closure) ORDER BY 1"
            )
        ]
