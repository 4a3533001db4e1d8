"""Stored analysis runs as one list: what each run is (its parameters, one headline figure),
reading one back as its command returned it, and removing one with its rows and plots.

Each run kind of the catalog (`idx.indexer.catalog.runs.KINDS`) has a `RunType` (run_type.py)
in the `RUNS` dict of the ops module that computes it; HOMES names those modules, and `registry()` gathers
them, saying what to add where when a kind has none (a test checks every kind has one). The
homes import their heavy modules (scikit-learn, matplotlib, FAISS) only when a run is read back,
so listing runs stays quick.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idx import config
from idx.errors import InUseError
from idx.indexer.catalog.runs import KINDS
from idx.ops.run_type import RunType

if TYPE_CHECKING:
    from idx.indexer.index import Index

#: The ops modules whose `RUNS` dicts ({kind: RunType}) together cover KINDS.
HOMES = (
    "idx.ops.maps.runs",
    "idx.ops.insights.runs",
    "idx.ops.robustness.runs",
    "idx.ops.leakage_runs",
)


def registry() -> dict[str, RunType]:
    """kind -> its RunType, in KINDS order; LookupError naming what to add where when a kind of
    KINDS has none, or a home describes a kind that KINDS does not know."""
    found: dict[str, RunType] = {}
    for home in HOMES:
        found |= import_module(home).RUNS
    missing = [kind for kind in KINDS if kind not in found]
    if missing:
        raise LookupError(
            f"run kind {', '.join(missing)} (idx.indexer.catalog.runs.KINDS) has no RunType: add "
            "one to the RUNS dict of the ops module that computes it, and name that module in "
            "idx.ops.runs.HOMES"
        )
    unknown = [kind for kind in found if kind not in KINDS]
    if unknown:
        raise LookupError(
            f"RUNS in {', '.join(HOMES)} describe {', '.join(unknown)}, which is not a run kind "
            "of idx.indexer.catalog.runs.KINDS; add it there (with its migration) or drop it"
        )
    return {kind: found[kind] for kind in KINDS}


@dataclass
class RunSummary:
    """One stored run, as `idx runs` lists it."""

    kind: str
    run_id: int
    created_at: datetime | None
    parameters: str
    headline: str
    command: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.run_id,
            "created_at": _when(self.created_at),
            "parameters": self.parameters,
            "headline": self.headline,
            "command": self.command,
        }


def list_runs(index: Index, kind: str | None = None) -> list[RunSummary]:
    """Every stored run (of `kind`, if given), newest first."""
    types = registry()
    kinds = [kind] if kind is not None else list(types)
    found = [
        RunSummary(
            name,
            int(row["id"]),
            row.get("created_at"),
            types[name].parameters(row),
            types[name].headline(index, row),
            KINDS[name].command,
        )
        for name in kinds
        for row in index.catalog.runs.all(name)
    ]
    return sorted(found, key=lambda r: (r.created_at or datetime.min, r.run_id), reverse=True)


def load_run(index: Index, kind: str, run_id: int | None = None) -> Any:
    """A stored run (default: the latest of its kind) as its command returned it."""
    types = registry()
    return types[kind].load(index, index.catalog.runs.resolve(kind, run_id))


@dataclass
class RemovedRun:
    kind: str
    run_id: int
    rows: dict[str, int]  # table (or what else) -> how many removed
    plots: list[str] = field(default_factory=list)
    dependent_of: tuple[str, int] | None = None  # removed with the run it was made from

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.run_id,
            "rows": self.rows,
            "plots": self.plots,
            "dependent_of": (
                None
                if self.dependent_of is None
                else {"kind": self.dependent_of[0], "id": self.dependent_of[1]}
            ),
        }


def remove_run(
    index: Index, kind: str, run_id: int, *, with_dependents: bool = False
) -> list[RemovedRun]:
    """Delete a run with its rows (one transaction) and then its plots; with `with_dependents`,
    also the runs made from it. InUseError naming them when there are some and it is not given."""
    types = registry()
    runs = index.catalog.runs
    run_id = runs.resolve(kind, run_id)
    dependents = runs.dependents(kind, run_id)
    if dependents and not with_dependents:
        named = "; ".join(
            f"{d.kind} run {d.run_id} (made from {d.of[0]} run {d.of[1]})" for d in dependents
        )
        raise InUseError(
            f"{kind} run {run_id} is used by {named}; remove those first, or all of them with "
            f"`{config.command(index.dir, 'runs', 'remove', kind, str(run_id), '--with-dependents')}`"
        )
    targets = [(kind, run_id, None), *((d.kind, d.run_id, d.of) for d in dependents)]
    special = types[kind].remove
    if special is not None:  # no kind refers to such a run: it has no dependents
        counts = [special(index, run_id)]
    else:
        counts = runs.remove([(k, i) for k, i, _ in targets])
    root = Path(index.dir) / config.PLOTS_DIR
    removed = []
    for (name, found_id, of), rows in zip(targets, counts):
        plots = types[name].plots(root, found_id)
        for path in plots:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        removed.append(RemovedRun(name, found_id, rows, [str(p) for p in plots], of))
    return removed


def _when(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return None if value is None else str(value)
