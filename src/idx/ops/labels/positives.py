"""The positive labels of indexed images as arrays, and their classes' zero-shot prompts: the one
loader behind insights, robustness and injection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from idx import config

if TYPE_CHECKING:
    from idx.indexer.catalog import Catalog
    from idx.indexer.index import Index

#: Prompts per text-encoder call.
PROMPT_BATCH = 256


@dataclass
class Positives:
    """Positive labels (confidence > 0): pair i says image image_ids[i] carries label columns[i].

    Pairs are ordered by image, then by confidence (highest first), then by label name."""

    names: list[str]  # label_name of each column, sorted
    display: list[str]  # display name of each column (its label_name when the class has none)
    image_ids: np.ndarray  # int64 [pairs]
    columns: np.ndarray  # int64 [pairs]

    @cached_property
    def ids(self) -> np.ndarray:
        """The labelled images, sorted."""
        return np.unique(self.image_ids)

    @cached_property
    def primary(self) -> np.ndarray:
        """The column of each of `ids`' best label (the one it votes for in kNN)."""
        _, first = np.unique(self.image_ids, return_index=True)
        return self.columns[first]

    def matrix(self, ids: np.ndarray) -> np.ndarray:
        """bool [len(ids), classes]: which labels each of `ids` (sorted) carries."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros((len(ids), len(self.names)), dtype=bool)
        if len(ids):
            rows = np.minimum(np.searchsorted(ids, self.image_ids), len(ids) - 1)
            hit = ids[rows] == self.image_ids
            out[rows[hit], self.columns[hit]] = True
        return out


def load_positives(catalog: Catalog, sources: Sequence[str] | None = None) -> Positives | None:
    """The positive labels of indexed images (optionally only from `sources`); None when there
    are none."""
    return positives_from(catalog, catalog.labels.positives(sources))


def positives_from(catalog: Catalog, table: pa.Table) -> Positives | None:
    """Positives from (image_id, label_name, confidence) rows ordered as `Labels.positives`
    orders them (e.g. labels rolled up a class hierarchy); None when there are none."""
    if table.num_rows == 0:
        return None
    labels = table.column("label_name")
    names = sorted(pc.unique(labels).to_pylist())
    shown = catalog.labels.display_names()
    return Positives(
        names=names,
        display=[shown.get(n, n) for n in names],
        image_ids=table.column("image_id").to_numpy().astype(np.int64),
        columns=pc.index_in(labels, value_set=pa.array(names)).to_numpy().astype(np.int64),
    )


def prompt_vectors(index: Index, display_names: Sequence[str]) -> np.ndarray:
    """Unit text vectors of each class's zero-shot prompt (`config.prompt`)."""
    prompts = [config.prompt(name) for name in display_names]
    return np.concatenate(
        [
            index.texts.encode(prompts[i : i + PROMPT_BATCH])
            for i in range(0, len(prompts), PROMPT_BATCH)
        ]
    )
