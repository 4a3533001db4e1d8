"""Leakage runs (`idx duplicates --across A B`) for `idx runs`: their parameters, headline and
how to read one back. Light on purpose: ops/leakage.py loads FAISS, imported only to read a run
back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from idx.ops.run_type import RunType

if TYPE_CHECKING:
    from idx.indexer.index import Index
    from idx.ops.leakage import Leakage


def _parameters(row: dict[str, Any]) -> str:
    limits = []
    if row.get("threshold") is not None:
        limits.append(f"CLIP >= {row['threshold']:g}")
    if row.get("max_distance") is not None:
        limits.append(f"hash <= {row['max_distance']} bits")
    return f"B {row['side_b']} against A {row['side_a']}, {' and '.join(limits)}"


def _headline(index: Index, row: dict[str, Any]) -> str:
    """How much of B has a copy in A."""
    n, total = int(row["b_with_copy"]), int(row["images_b"])
    return f"{n} of {total} images of B have a copy in A" + (f" ({n / total:.1%})" if total else "")


def _load(index: Index, run_id: int) -> Leakage:
    from idx.ops.leakage import load_leakage

    return load_leakage(index, run_id)


def _plots(root: Path, run_id: int) -> list[Path]:
    return []  # a leakage run draws no plots: the report and the web app show its pairs


RUNS = {"leakage": RunType(_parameters, _headline, _load, _plots)}
