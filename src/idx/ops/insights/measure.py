"""`insights`: compare the index's embedding space with its labels and store what was found.

Reads the positive labels (confidence > 0) of indexed images, their vectors, the latest (or a
given) clustering run when the clustering tables exist, and the text encoder's embeddings of
"a photo of a {display name}", runs `idx.analysis.insights.LabelInsights`, and writes
insight_runs, class_insights, confused_pairs and suspect_labels.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from idx import config
from idx.errors import EmptyIndexError, ModelLoadError, NotFoundError, UsageError
from idx.ops.insights.runs import InsightsResult, store_insights
from idx.progress import Progress, ProgressEvent

if TYPE_CHECKING:
    from idx.indexer.index import Index

log = logging.getLogger(__name__)

PROMPT = "a photo of a {}"


@dataclass
class LabelledSet:
    """The images with at least one positive label, as arrays."""

    ids: np.ndarray  # image ids [n]
    paths: list[str]
    vectors: np.ndarray  # [n, d]
    y: np.ndarray  # bool [n, C]
    label_names: list[str]
    display_names: list[str]


def load_labelled(index: Index, sources: list[str] | None = None) -> LabelledSet:
    """Positive labels of indexed images (optionally only from some sources) and their vectors."""
    where = "l.confidence > 0"
    params: list[Any] = []
    if sources:
        where += " AND l.source IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(sources))
    con = index.catalog.con
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _idx_positive AS SELECT DISTINCT l.image_id, l.label_name "
        f"FROM labels l JOIN images i ON i.id = l.image_id WHERE {where}",
        params,
    )
    try:
        names = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT label_name FROM _idx_positive ORDER BY 1"
            ).fetchall()
        ]
        # Label columns are numbered in SQL so millions of label rows never become Python tuples.
        pairs = con.sql(
            "SELECT image_id, dense_rank() OVER (ORDER BY label_name) - 1 AS col FROM _idx_positive"
        ).to_arrow_table()
    finally:
        con.execute("DROP TABLE IF EXISTS _idx_positive")
    if not names:
        hint = f" from source(s) {', '.join(sources)}" if sources else ""
        raise EmptyIndexError(
            f"index {index.dir} has no positive labels{hint}; import some with "
            "`idx labels import --from-folders` or `idx labels import --labels FILE`"
        )
    image_ids = pairs.column("image_id").to_numpy()
    ids, vectors = index.embeddings(np.unique(image_ids).tolist())
    rows = np.searchsorted(ids, image_ids)
    embedded = (rows < len(ids)) & (ids[np.minimum(rows, len(ids) - 1)] == image_ids)
    y = np.zeros((len(ids), len(names)), dtype=bool)
    y[rows[embedded], pairs.column("col").to_numpy()[embedded]] = True
    display = dict(index.catalog.query("SELECT label_name, display_name FROM classes")[1])
    paths = dict(
        index.catalog.query(
            "SELECT id, path FROM images WHERE id IN (SELECT unnest(?::BIGINT[]))", [ids.tolist()]
        )[1]
    )
    return LabelledSet(
        ids=ids,
        paths=[paths[int(i)] for i in ids],
        vectors=vectors,
        y=y,
        label_names=names,
        display_names=[display.get(n) or n for n in names],
    )


def latest_cluster_run(index: Index, run: int | None = None) -> int | None:
    """The clustering run to compare with: `run`, else the newest; None when there is none."""
    con = index.catalog.con
    tables = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_name IN ('cluster_runs', 'clusters')"
        ).fetchall()
    }
    has_runs = tables == {"cluster_runs", "clusters"} and bool(
        con.execute("SELECT 1 FROM cluster_runs LIMIT 1").fetchall()
    )
    if not has_runs:
        if run is not None:
            raise NotFoundError(
                f"cluster run {run} does not exist: this index has no clustering runs; "
                "make one with `idx cluster --k K`"
            )
        return None
    if run is None:
        return con.execute("SELECT max(id) FROM cluster_runs").fetchall()[0][0]
    if not con.execute("SELECT 1 FROM cluster_runs WHERE id = ?", [run]).fetchall():
        raise NotFoundError(
            f"cluster run {run} does not exist; list runs with "
            '`idx sql "SELECT id, k, method, created_at FROM cluster_runs"`'
        )
    return run


def cluster_assignments(index: Index, run_id: int, ids: np.ndarray) -> np.ndarray:
    """Cluster of each image in `ids` (sorted) for a clustering run; -1 where the run has none."""
    table = index.catalog.con.sql(
        "SELECT image_id, cluster FROM clusters WHERE run_id = ? ORDER BY image_id",
        params=[run_id],
    ).to_arrow_table()
    found = table.column("image_id").to_numpy()
    out = np.full(len(ids), -1, dtype=np.int64)
    if len(found):
        at = np.minimum(np.searchsorted(found, ids), len(found) - 1)
        hit = found[at] == ids
        out[hit] = table.column("cluster").to_numpy()[at[hit]]
    return out


def text_embeddings(index: Index, display_names: list[str]) -> np.ndarray:
    """Unit text vectors of "a photo of a {name}" (folder names: underscores read as spaces)."""
    prompts = [PROMPT.format(name.replace("_", " ")) for name in display_names]
    return np.concatenate(
        [index.encoder.encode_texts(prompts[i : i + 256]) for i in range(0, len(prompts), 256)]
    )


def insights(
    index: Index,
    *,
    cluster_run: int | None = None,
    k_nn: int = 10,
    zero_shot: bool = True,
    sources: list[str] | None = None,
    suspect_vote_share: float = 0.6,
    plots_dir: str | os.PathLike[str] | None = None,
    plots: bool = True,
    random_state: int = 0,
    progress: Progress | None = None,
) -> InsightsResult:
    """Measure how well the embedding space matches the labels; store and return the results."""
    if k_nn < 1:
        raise UsageError(f"--k-nn must be at least 1, not {k_nn}")
    if not 0 < suspect_vote_share <= 1:
        raise UsageError(f"suspect vote share must be in (0, 1], not {suspect_vote_share}")
    index.require_images("analyse")
    step = _stepper(progress)
    step("load labels")
    data = load_labelled(index, sources)
    notes: list[str] = []
    if len(data.ids) < 2:
        raise EmptyIndexError("insights need at least 2 labelled images; import more labels")
    if k_nn >= len(data.ids):
        notes.append(
            f"--k-nn {k_nn} lowered to {len(data.ids) - 1}: only {len(data.ids)} labelled images"
        )
    run_id = latest_cluster_run(index, cluster_run)
    clusters = None
    if run_id is None:
        notes.append(
            "cluster metrics unavailable: no clustering run in this index; run `idx cluster --k K` "
            "and then `idx insights` again"
        )
    else:
        clusters = cluster_assignments(index, run_id, data.ids)
    texts = None
    if zero_shot:
        step("encode class prompts")
        try:
            texts = text_embeddings(index, data.display_names)
        except ModelLoadError as exc:
            notes.append(f"zero-shot accuracy unavailable: {exc}")
    ident = index.stored_identity()
    if ident is not None and ident.untrained:
        notes.append("the model has UNTRAINED random weights: these numbers say nothing about CLIP")
    step("neighbours and metrics")
    from idx.analysis.insights import LabelInsights  # scikit-learn: slow to import, load late

    fitted = LabelInsights(
        k_nn=k_nn, suspect_vote_share=suspect_vote_share, random_state=random_state
    ).fit(data.vectors, data.y, clusters=clusters, text_embeddings=texts)
    metrics = fitted.summary_ | {
        "model": ident.describe() if ident else None,
        "untrained": bool(ident and ident.untrained),
        "sources": sources,
        "cluster_run_id": run_id,
        "prompt": PROMPT.format("{display_name}") if zero_shot else None,
    }
    result = store_insights(index, data, fitted, metrics, run_id)
    result.notes = notes
    if plots:
        step("plots")
        from idx.ops.insights.plots import draw_insights

        out = Path(plots_dir) if plots_dir else index.dir / config.PLOTS_DIR
        result.plots = draw_insights(data, fitted, result, out)
    step("done")
    return result


def _stepper(progress: Progress | None):
    phases = ("load labels", "encode class prompts", "neighbours and metrics", "plots", "done")

    def step(phase: str) -> None:
        log.info("insights: %s", phase)
        if progress is not None:
            progress(ProgressEvent(phase, phases.index(phase), len(phases) - 1))

    return step
