"""Analysis runs: one way to create a run id, find the latest run of a kind, and read a run back.

A kind names a pair of tables: `<kind>_runs` (one row per run) and the rows it stores elsewhere
with a run_id column. Runs are kept; the highest id is the latest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from idx.errors import NotFoundError

if TYPE_CHECKING:
    from idx.indexer.catalog.db import Database

#: kind -> (runs table, the command that makes one)
KINDS = {
    "projection": ("projection_runs", "idx project"),
    "cluster": ("cluster_runs", "idx cluster"),
    "sweep": ("sweep_runs", "idx sweep"),
    "insight": ("insight_runs", "idx insights"),
    "robustness": ("robustness_runs", "idx robustness"),
    "injection": ("injections", "idx robustness inject"),
}


class Runs:
    def __init__(self, db: Database):
        self.db = db

    def create(self, kind: str, values: dict[str, Any]) -> int:
        """Insert one run row (inside a transaction) and return its id: the next value of the
        table's sequence, moved past any id written without it."""
        table = _table(kind)
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
        sets = ", ".join(f"{c} = ?" for c in values)
        self.db.rows(f"UPDATE {_table(kind)} SET {sets} WHERE id = ?", [*values.values(), run_id])

    def latest(self, kind: str) -> int | None:
        """The newest run id of `kind`, None when there is none."""
        found = self.db.value(f"SELECT max(id) FROM {_table(kind)}")
        return None if found is None else int(found)

    def resolve(self, kind: str, run_id: int | None = None) -> int:
        """`run_id` checked to exist, or the latest run when None; NotFoundError says how to
        make or list runs."""
        table, command = KINDS[kind]
        if run_id is None:
            latest = self.latest(kind)
            if latest is None:
                raise NotFoundError(f"the index has no {kind} runs yet; run `{command}` first")
            return latest
        if self.get(kind, run_id) is None:
            raise NotFoundError(
                f'{kind} run {run_id} does not exist; list runs with `idx sql "SELECT * FROM '
                f'{table}"`'
            )
        return int(run_id)

    def get(self, kind: str, run_id: int) -> dict[str, Any] | None:
        """The run's row as a dict, None when there is no such run."""
        columns, rows = self.db.query(f"SELECT * FROM {_table(kind)} WHERE id = ?", [run_id])
        return dict(zip(columns, rows[0])) if rows else None

    def rows(self, table: str, run_id: int, columns: str, order_by: str = "image_id") -> pa.Table:
        """`columns` of a run's rows in `table` (e.g. clusters, projections), ordered."""
        return self.db.arrow(
            f"SELECT {columns} FROM {table} WHERE run_id = ? ORDER BY {order_by}", [int(run_id)]
        )

    def add_rows(self, table: str, run_id: int, columns: dict[str, Any]) -> None:
        """Store a run's rows: `columns` of equal length, each row tagged with run_id."""
        n = len(next(iter(columns.values())))
        self.db.insert_rows(table, {"run_id": np.full(n, run_id, dtype=np.int32), **columns})

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


def _table(kind: str) -> str:
    return KINDS[kind][0]
