"""An engine's results gathered into batches, each stored in one transaction in the commit thread
(committer), in order: the batch's new content, embedded by the engine, with the operations of
the files around it.

New content waits for its batch to fill; files that need no model (moves, unchanged content)
wait at most four batches long, so that their commits are not held back by it. A copy of content
new in the same batch waits for that content's vector.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from idx.indexer.catalog import Catalog
from idx.indexer.catalog.operations import Operation
from idx.indexer.files import scan
from idx.indexer.files.reader import Prepared
from idx.indexer.ingest.committer import Committer
from idx.indexer.ingest.engines.embedding import Embedding
from idx.indexer.ingest.planner import Planner
from idx.indexer.ingest.report import AddReport


class Batches:
    """`check` is called with the first batch's Embedding before anything is stored (the int8
    check); the ids whose vector is new or different are added to `changed` as they commit."""

    def __init__(
        self,
        catalog: Catalog,
        planner: Planner,
        committer: Committer,
        report: AddReport,
        *,
        size: int,
        check: Callable[[Embedding], None] | None,
        changed: list[int],
    ):
        self.catalog, self.planner, self.committer, self.report = (
            catalog,
            planner,
            committer,
            report,
        )
        self.size, self.check, self.changed = size, check, changed
        self._next_batch()

    def _next_batch(self) -> None:
        self.new: list[Prepared] = []  # new content, embedded at the commit
        self.new_shas: set[str] = set()
        self.copies: list[Prepared] = []  # files whose content equals something in `new`
        self.ops: list[Operation] = []

    def add(self, result: Prepared | scan.Skip) -> None:
        """One file's result, committed with its batch once that is full."""
        if isinstance(result, scan.Skip):
            self.ops.append(self.planner.skipped(result))
        elif result.sha256 in self.planner.known:
            self.ops.append(self.planner.known_content(result))
        elif result.sha256 in self.new_shas:
            self.copies.append(result)
        else:
            self.new.append(result)
            self.new_shas.add(result.sha256)
        if len(self.new) >= self.size or len(self.ops) >= 4 * self.size:
            self.commit()

    def commit(self) -> None:
        """Hand what was gathered to the commit thread."""
        if not self.new and not self.copies and not self.ops:
            return
        vectors = self._vectors(self.new) if self.new else None
        planned = [self.planner.new_content(p) for p in self.new]
        planned += [self.planner.copy_in_batch(p) for p in self.copies]
        shas, stored = [p.sha256 for p in self.new], planned + self.ops
        hashes = [p.phash for p in self.new]
        self.committer.submit(lambda: self._store(shas, hashes, vectors, stored))
        self._next_batch()

    def _vectors(self, batch: list[Prepared]) -> np.ndarray:
        """The batch's vectors, taken off its files; where they were embedded, noted."""
        if self.check is not None:  # before anything of this precision is stored
            self.committer.drain()  # the check writes its figure to the catalog
            self.check(_measured(batch))
            self.check = None
        vectors = np.stack([p.vector for p in batch])
        for p in batch:
            self.report.device, self.report.precision = p.embedding.device, p.embedding.precision
            if p.embedding.node:
                self.report.nodes.add(p.embedding.node)
            p.vector = None
        return vectors

    def _store(
        self,
        shas: list[str],
        hashes: list[int | None],
        vectors: np.ndarray | None,
        ops: list[Operation],
    ) -> None:
        """One batch's commit, in the commit thread: its new vectors (with their contents'
        perceptual hashes) and its files' rows."""
        with self.catalog.transaction():
            if vectors is not None:
                self.catalog.images.insert_embeddings(shas, vectors, hashes)
                self.report.embedded += len(shas)
            self.changed.extend(self.catalog.files.apply(ops))
            for op in ops:
                self.report.count(op)
            self.catalog.bump_generation()
        self.catalog.commit_point()


def _measured(batch: list[Prepared]) -> Embedding:
    """The int8 check's figure from a batch: every engine worker measures its first batch."""
    for p in batch:
        if p.embedding.agreement is not None:
            return p.embedding
    raise RuntimeError("the first embedded batch came without the precision check's figure")
