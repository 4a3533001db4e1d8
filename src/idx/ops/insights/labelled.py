"""The labelled images an insight run measures: ids, paths, vectors and labels as arrays.

Its own module so that each step of `insights` (measure, probe, plots, runs) takes the same
`LabelledSet` without importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from idx import config
from idx.errors import EmptyIndexError
from idx.ops.labels.hierarchy import Rollup, rolled_positives
from idx.ops.labels.positives import load_positives

if TYPE_CHECKING:
    from idx.indexer.index import Index


@dataclass
class LabelledSet:
    """The images with at least one positive label, as arrays."""

    ids: np.ndarray  # image ids [n]
    paths: list[str]
    vectors: np.ndarray  # [n, d]
    y: np.ndarray  # bool [n, C]
    label_names: list[str]
    display_names: list[str]
    primary: np.ndarray  # [n] each image's best label (highest confidence): what a probe learns


def load_labelled(
    index: Index, sources: list[str] | None = None, rollup: Rollup | None = None
) -> LabelledSet:
    """Positive labels of indexed images (optionally only from some sources; rolled up a class
    hierarchy with `rollup`) and their vectors."""
    if rollup is not None:
        positives = rolled_positives(index.catalog, rollup, sources)
        if positives is None:
            raise EmptyIndexError(
                f"no labelled image has a class at {rollup.describe()} of the hierarchy; "
                "pick another --level or --rollup"
            )
    else:
        positives = load_positives(index.catalog, sources)
    if positives is None:
        hint = f" from source(s) {', '.join(sources)}" if sources else ""
        raise EmptyIndexError(
            f"index {index.dir} has no positive labels{hint}; import some with "
            f"`{config.command(index.dir, 'labels', 'import', '--from-folders')}` or "
            f"`{config.command(index.dir, 'labels', 'import', '--labels', 'FILE')}`"
        )
    ids, vectors = index.embeddings(positives.ids)
    paths = index.catalog.images.paths_for(ids)
    return LabelledSet(
        ids=ids,
        paths=[paths[int(i)] for i in ids],
        vectors=vectors,
        y=positives.matrix(ids),
        label_names=positives.names,
        display_names=positives.display,
        primary=positives.primary[np.searchsorted(positives.ids, ids)],
    )
