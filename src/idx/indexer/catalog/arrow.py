"""Arrow at the catalog's edge: matrices as FLOAT[] list columns and back, and Arrow tables
registered as views for the length of a `with` block (how the bulk writers hand DuckDB data).
pyarrow is imported where a table is made: a command that only reads rows (a text query) never
loads it (~55 MB)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa


class Registered:
    """`table` registered on `con` as the view `name` inside a `with` block (which gives `name`)."""

    def __init__(self, con: Any, name: str, table: pa.Table):
        self.con, self.name, self.table = con, name, table

    def __enter__(self) -> str:
        self.con.register(self.name, self.table)
        return self.name

    def __exit__(self, *exc: object) -> None:
        self.con.unregister(self.name)


def list_column(matrix: np.ndarray) -> pa.ListArray:
    """Rows of a float matrix as an Arrow list column (DuckDB FLOAT[])."""
    import pyarrow as pa

    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    n, d = matrix.shape if matrix.ndim == 2 else (0, 0)
    offsets = pa.array(np.arange(0, n * d + 1, d or 1, dtype=np.int32)[: n + 1])
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.ravel()))


def to_arrow(columns: dict[str, Any] | pa.Table) -> pa.Table:
    """Columns (arrays, lists or Arrow arrays; a 2-D array becomes a FLOAT[] column) as a table."""
    import pyarrow as pa

    if isinstance(columns, pa.Table):
        return columns
    return pa.table(
        {
            c: list_column(v) if isinstance(v, np.ndarray) and v.ndim == 2 else v
            for c, v in columns.items()
        }
    )


def arrow_to_matrix(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64 [n], matrix float32 [n, d]) from a two-column (id, FLOAT[]) Arrow table."""
    ids = table.column(0).to_numpy().astype(np.int64, copy=False)
    if table.num_rows == 0:
        return ids, np.zeros((0, 0), dtype=np.float32)
    vectors = table.column(1).combine_chunks()
    flat = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return ids, flat.reshape(table.num_rows, -1)
