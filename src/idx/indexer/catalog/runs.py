"""Analysis runs: one way to create a run id, find the latest run of a kind, and read a run back.

A kind (KINDS) names a table of runs (one row per run) and the tables of the rows a run stores,
each with a run_id column. Runs are kept; the highest id is the latest.

What callers (ops) may name: a run kind from KINDS, and, for stored rows, one of the tables that
kind stores; column names (a run's values, the columns of its rows, their order) only as columns
of that table. Never a table or column of their own: each name is checked against KINDS and the
migrated schema before it reaches SQL, and a wrong one raises ValueError naming the allowed ones.
A new kind of run is a migration plus its entry in KINDS (and, for `idx runs`, its entry in
idx.ops.runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from idx import config
from idx.errors import NotFoundError

if TYPE_CHECKING:
    import pyarrow as pa

    from idx.indexer.catalog.db import Database


class RunKind(NamedTuple):
    table: str  # one row per run
    command: str  # the command that makes one
    stores: dict[str, tuple[str, ...]]  # tables of its rows -> the order they are read in
    #: columns of its table naming a run of another kind -> that kind: the run it was made from
    refers: dict[str, str] = {}


class Dependent(NamedTuple):
    kind: str
    run_id: int
    of: tuple[str, int]  # the (kind, run id) whose run it names


#: kind -> its tables and command, as the migrations made them (a test checks they agree)
KINDS = {
    "projection": RunKind("projection_runs", "idx project", {"projections": ("image_id",)}),
    "cluster": RunKind(
        "cluster_runs",
        "idx cluster",
        {"clusters": ("image_id",), "cluster_centers": ("cluster",)},
        {"projection_run_id": "projection"},
    ),
    "sweep": RunKind(
        "sweep_runs", "idx sweep", {"sweep_results": ("k",)}, {"projection_run_id": "projection"}
    ),
    "insight": RunKind(
        "insight_runs",
        "idx insights",
        {
            "class_insights": ("label_name",),
            "confused_pairs": ("label_a", "label_b"),
            "suspect_labels": ("image_id", "label_name"),
            "linear_probes": ("features",),
        },
        {"cluster_run_id": "cluster"},
    ),
    "robustness": RunKind(
        "robustness_runs",
        "idx robustness",
        {
            "robustness_results": ("perturbation", "severity"),
            "robustness_classes": ("label_name", "perturbation", "severity"),
        },
        {"cluster_run_id": "cluster"},
    ),
    "injection": RunKind("injections", "idx robustness inject", {}),
    "leakage": RunKind(
        "leakage_runs",
        "idx duplicates --across A B",
        {"leakage_pairs": ("distance", "image_id", "neighbor_id")},
    ),
}


class Runs:
    def __init__(self, db: Database):
        self.db = db
        self._columns: dict[str, list[str]] = {}  # table -> its columns (migrations fix them)

    def create(self, kind: str, values: dict[str, Any]) -> int:
        """Insert one run row (inside a transaction) and return its id: the next value of the
        table's sequence, moved past any id written without it."""
        table = _table(kind)
        self._check_columns(table, values)
        run_id = int(
            self.db.value(
                f"SELECT greatest(nextval('{table}_id_seq'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}))"
            )
        )
        columns = ["id", *values]
        self.db.rows(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [run_id, *values.values()],
        )
        return run_id

    def update(self, kind: str, run_id: int, values: dict[str, Any]) -> None:
        table = _table(kind)
        self._check_columns(table, values)
        sets = ", ".join(f"{c} = ?" for c in values)
        self.db.rows(f"UPDATE {table} SET {sets} WHERE id = ?", [*values.values(), run_id])

    def latest(self, kind: str) -> int | None:
        """The newest run id of `kind`, None when there is none."""
        found = self.db.value(f"SELECT max(id) FROM {_table(kind)}")
        return None if found is None else int(found)

    def resolve(self, kind: str, run_id: int | None = None) -> int:
        """`run_id` checked to exist, or the latest run when None; NotFoundError says how to
        make or list runs."""
        table, index_dir = _table(kind), self.db.index_dir
        if run_id is None:
            latest = self.latest(kind)
            if latest is None:
                # KINDS' command describes the run (`idx runs` shows it); its words after `idx`
                # are the command to paste
                make = config.command(index_dir, *KINDS[kind].command.split()[1:])
                raise NotFoundError(f"the index has no {kind} runs yet; run `{make}` first")
            return latest
        if self.get(kind, run_id) is None:
            raise NotFoundError(
                f"{kind} run {run_id} does not exist; list them with "
                f"`{config.command(index_dir, 'runs', '--kind', kind)}` "
                f"or `{config.command(index_dir, 'sql', f'SELECT * FROM {table}')}`"
            )
        return int(run_id)

    def get(self, kind: str, run_id: int) -> dict[str, Any] | None:
        """The run's row as a dict, None when there is no such run."""
        columns, rows = self.db.query(f"SELECT * FROM {_table(kind)} WHERE id = ?", [run_id])
        return dict(zip(columns, rows[0])) if rows else None

    def rows(
        self,
        kind: str,
        stored: str,
        run_id: int,
        columns: Sequence[str] | None = None,
        order_by: Sequence[str] | None = None,
    ) -> pa.Table:
        """A run's rows in `stored` (one of the tables its kind stores): `columns` (default:
        every one but run_id), in the order of the `order_by` columns ("-name": descending;
        NULLs last either way), by default the table's own (KINDS)."""
        table = _stored(kind, stored)
        known = self._table_columns(table)
        if columns is None:
            columns = [c for c in known if c != "run_id"]
        order_by = KINDS[kind].stores[stored] if order_by is None else order_by
        self._check_columns(table, columns)
        self._check_columns(table, order_by, descending="-")
        order = ", ".join(
            f'"{c[1:]}" DESC NULLS LAST' if c.startswith("-") else f'"{c}" NULLS LAST'
            for c in order_by
        )
        select = ", ".join(f'"{c}"' for c in columns)
        return self.db.arrow(
            f"SELECT {select} FROM {table} WHERE run_id = ? ORDER BY {order}", [int(run_id)]
        )

    def add_rows(self, kind: str, stored: str, run_id: int, columns: dict[str, Any]) -> None:
        """Store a run's rows in `stored` (one of the tables its kind stores): `columns` of
        equal length, each row tagged with run_id."""
        table = _stored(kind, stored)
        self._check_columns(table, columns)
        n = len(next(iter(columns.values())))
        self.db.insert_rows(table, {"run_id": np.full(n, run_id, dtype=np.int32), **columns})

    def _table_columns(self, table: str) -> list[str]:
        if table not in self._columns:
            self._columns[table] = [
                r[0]
                for r in self.db.rows(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                    "AND table_schema = 'main' ORDER BY ordinal_position",
                    [table],
                )
            ]
        return self._columns[table]

    def _check_columns(
        self, table: str, names: Sequence[str] | dict[str, Any], descending: str = ""
    ) -> None:
        """ValueError naming the table's columns unless every one of `names` (each maybe
        prefixed with `descending`) is one of them."""
        if isinstance(names, str):
            raise TypeError(f"columns of {table} as one string {names!r}: give a list of names")
        known = self._table_columns(table)
        unknown = [c for c in (n.removeprefix(descending) for n in names) if c not in known]
        if unknown:
            raise ValueError(
                f"{table} has no column {', '.join(map(repr, unknown))}; its columns: "
                f"{', '.join(known)}"
            )

    def covering_projection(self, ids: np.ndarray, method: str | None = None) -> int | None:
        """The newest 2-D map (of `method`, if given) holding a point for every one of `ids`."""
        where, params = ("WHERE method = ?", [method]) if method else ("", [])
        candidates = self.db.rows(
            f"SELECT id FROM projection_runs {where} ORDER BY id DESC", params
        )
        wanted = np.asarray(ids, dtype=np.int64).tolist()
        for (run_id,) in candidates:
            found = self.db.value(
                "SELECT count(*) FROM projections WHERE run_id = ? "
                "AND image_id IN (SELECT unnest(?::BIGINT[]))",
                [run_id, wanted],
            )
            if found == len(wanted):
                return int(run_id)
        return None

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Every run of `kind`, newest first."""
        columns, rows = self.db.query(f"SELECT * FROM {_table(kind)} ORDER BY id DESC")
        return [dict(zip(columns, r)) for r in rows]

    def nearest_to_centres(self, run_id: int, per_cluster: int) -> dict[int, list[int]]:
        """cluster -> the ids of its `per_cluster` images nearest the centre of a clustering run
        (ties and missing distances: lowest image id first)."""
        rows = self.db.rows(
            "SELECT cluster, image_id FROM (SELECT cluster, image_id, row_number() OVER "
            "(PARTITION BY cluster ORDER BY distance NULLS LAST, image_id) AS rn FROM clusters "
            "WHERE run_id = ?) WHERE rn <= ? ORDER BY cluster, rn",
            [int(run_id), int(per_cluster)],
        )
        nearest: dict[int, list[int]] = {}
        for cluster, image_id in rows:
            nearest.setdefault(int(cluster), []).append(int(image_id))
        return nearest

    def delete(self, kind: str, run_id: int) -> None:
        """Delete one run's row; rows stored elsewhere under its id are the caller's to delete."""
        self.db.rows(f"DELETE FROM {_table(kind)} WHERE id = ?", [int(run_id)])

    def dependents(self, kind: str, run_id: int) -> list[Dependent]:
        """The runs made from this one (KINDS' `refers`), and the runs made from those, nearest
        first, each once."""
        found: list[Dependent] = []
        seen = {(kind, int(run_id))}
        todo = [(kind, int(run_id))]
        while todo:
            of = todo.pop(0)
            for other, spec in KINDS.items():
                for column, target in spec.refers.items():
                    if target != of[0]:
                        continue
                    ids = self.db.rows(
                        f"SELECT id FROM {spec.table} WHERE {column} = ? ORDER BY id", [of[1]]
                    )
                    for (found_id,) in ids:
                        if (other, int(found_id)) not in seen:
                            seen.add((other, int(found_id)))
                            found.append(Dependent(other, int(found_id), of))
                            todo.append((other, int(found_id)))
        return found

    def remove(self, targets: Sequence[tuple[str, int]]) -> list[dict[str, int]]:
        """Delete runs, each (kind, run id), with every row they stored, in one transaction:
        for each, {table: rows deleted}, its own table first. NotFoundError, and nothing
        deleted, when one of them does not exist."""
        for kind, run_id in targets:
            self.resolve(kind, run_id)
        removed = []
        with self.db.transaction():
            for kind, run_id in targets:
                counts = {}
                for table in (KINDS[kind].table, *KINDS[kind].stores):
                    key = "id" if table == KINDS[kind].table else "run_id"
                    deleted = self.db.rows(f"DELETE FROM {table} WHERE {key} = ?", [int(run_id)])
                    counts[table] = int(deleted[0][0]) if deleted else 0
                removed.append(counts)
        return removed


def _table(kind: str) -> str:
    """The runs table of `kind`; ValueError naming the kinds for one that is not in KINDS."""
    if kind not in KINDS:
        raise ValueError(f"run kind {kind!r} is unknown; the kinds are {', '.join(KINDS)}")
    return KINDS[kind].table


def _stored(kind: str, stored: str) -> str:
    """`stored`, checked to be one of the tables a run of `kind` stores its rows in."""
    _table(kind)
    if stored not in KINDS[kind].stores:
        held = ", ".join(KINDS[kind].stores) or "none"
        raise ValueError(
            f"{kind} runs store no rows in {stored!r}; the tables of their rows: {held}"
        )
    return stored
