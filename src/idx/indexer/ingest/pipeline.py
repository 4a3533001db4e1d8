"""`add`: incremental ingestion of folders into the catalog.

Stages: walk (stat only) -> plan (compare with the catalog) -> read+hash+decode -> embed in
batches (both run by an engine, indexer.ingest.engines: threads here, or Ray tasks and actors) -> commit
each batch in one transaction, here, whatever the engine.

Rules: an unchanged file (size, mtime; size, ETag for an object) is not read; a file whose content hash is already known
keeps that vector (a moved file keeps its id, a copy gets a new id without a new embedding);
changed content is re-embedded under the same id; catalog rows under a walked folder whose file
is gone are removed at the end.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from idx import config
from idx.indexer.catalog import Catalog
from idx.indexer.catalog.operations import Add, Move, Operation, Row, SkipFile, Touch, Update
from idx.indexer.files import scan, storage
from idx.indexer.files.reader import Prepared
from idx.indexer.ingest import engines
from idx.indexer.ingest.committer import Committer
from idx.indexer.ingest.engines.embedding import Embedding
from idx.indexer.ingest.report import AddReport
from idx.indexer.ingest.settings import RunSettings
from idx.indexer.model import devices
from idx.progress import Progress, ProgressEvent

log = logging.getLogger(__name__)


class Ingest:
    """One `add` run. Needs the catalog; gets the encoder lazily (only if something is new).

    `settings` (RunSettings, with the model's `identity`) say who reads and embeds, where and how;
    `check_batch` is called with the first batch's engines.embedding.Embedding before anything is
    stored (the int8 check).
    """

    def __init__(
        self,
        catalog: Catalog,
        encoder_factory: Callable[[], Any],
        settings: RunSettings,
        *,
        check_batch: Callable[[Embedding], None] | None = None,
        progress: Progress | None = None,
        on_skip: Callable[[str, str], None] | None = None,
        source: str = config.FILES_SOURCE,
        exclude: Iterable[str] = (),
        include_hidden: bool | None = None,
        excludes: Sequence[str] | None = None,
    ):
        self.catalog = catalog
        self.files = catalog.files
        self.encoder_factory = encoder_factory
        engines.require(settings.engine)
        self.engine: engines.Engine | None = None
        self.settings = settings  # sized for the device once it is known (_ingest)
        # Read here, in this process: a bad IDX_MAX_PIXELS fails the run (exit 2) rather than
        # every file, each skipped for it by a worker that decodes; a file skipped under another
        # limit is tried again.
        self.max_pixels = config.max_pixels()
        self.check_batch = check_batch
        self.progress = progress or (lambda event: None)
        self.on_skip = on_skip or (lambda path, reason: None)
        self.source = source
        self.exclude = frozenset(os.path.abspath(p) for p in exclude)
        self.include_hidden = include_hidden
        self.excludes = None if excludes is None else tuple(excludes)
        self.rules: dict[str, scan.Rules] = {}
        self.report = AddReport(engine=settings.engine)
        self.changed_ids: list[int] = []  # ids whose vector is new or different
        self.removed_ids: list[int] = []
        self._moved_ids: set[int] = set()  # rows already given a new path in this run
        self._committer = Committer()

    # -- plan -------------------------------------------------------------------------------

    def run(self, paths: Iterable[str | os.PathLike[str]]) -> AddReport:
        start = time.perf_counter()
        roots = [storage.folder(p) for p in paths]
        self.report.roots = roots
        self.rules = {root: self._rules(root) for root in roots}
        existing = self.files.rows_under(roots, self.source)
        prev_skips = self.files.skips_under(roots)
        self.catalog.release()  # readers get the catalog while the tree is walked
        seen: set[str] = set()
        walk_skips: list[scan.Skip] = []
        todo: list[scan.FileEntry] = []
        still_skipped: list[tuple[str, str]] = []
        next_report = 2000
        # One pass over the walk: this loop is the whole cost of re-adding an unchanged tree.
        for root in roots:
            for files, skips in storage.walk(root, self.exclude, self.rules[root]):
                walk_skips += skips
                for item in files:
                    path = item.path
                    if path in seen:  # overlapping roots
                        continue
                    seen.add(path)
                    row = existing.get(path)
                    if row is not None and item.same_as(row[3], row[4], row[5]):
                        self.report.unchanged += 1
                        continue
                    prev = prev_skips.get(path)
                    if (
                        row is None
                        and prev is not None
                        and item.same_as(prev[1], prev[2], prev[4])
                        and (item.etag is not None or prev[3] == item.ctime_ns)
                        and prev[5] in (None, self.max_pixels)
                    ):
                        still_skipped.append((path, prev[0]))
                        continue
                    todo.append(item)
                if len(seen) >= next_report:
                    self.progress(ProgressEvent("scan", len(seen), 0))
                    next_report = len(seen) + 2000
        todo.sort()  # new images get ids in path order
        vanished = {p: existing[p] for p in existing.keys() - seen}
        for skip in walk_skips:
            self._skip(skip.path, skip.reason)
        for path, reason in still_skipped:
            self._skip(path, reason)
        with self.catalog.transaction():
            if self.source == config.FILES_SOURCE:
                for root, rules in self.rules.items():
                    self.files.set_rules(root, rules)
            self.files.apply([SkipFile(skip, self._root_of(skip.path)) for skip in walk_skips])
            walked_skips = {s.path for s in walk_skips}
            self.files.forget_skips(
                p for p in prev_skips if p not in seen and p not in walked_skips
            )
        self.report.timings["scan"] = time.perf_counter() - start
        self._ingest(todo, vanished, existing)
        self._sweep(vanished)
        self.report.seconds = time.perf_counter() - start
        self.progress(ProgressEvent("done", len(todo), len(todo)))
        return self.report

    def _rules(self, root: str) -> scan.Rules:
        """The folder's stored rules, with what this run was told instead."""
        stored = self.files.rules(root) or scan.Rules()
        return scan.Rules(
            stored.include_hidden if self.include_hidden is None else self.include_hidden,
            stored.excludes if self.excludes is None else self.excludes,
        )

    def _skip(self, path: str, reason: str) -> None:
        self.report.skipped += 1
        self.report.skipped_files.append((path, reason))
        self.on_skip(path, reason)

    # -- read, hash, decode, embed ----------------------------------------------------------

    def _ingest(
        self, todo: list[scan.FileEntry], vanished: dict[str, Row], existing: dict[str, Row]
    ) -> None:
        if not todo:
            return
        known = self.files.known_content()
        self.catalog.release()  # held again only to commit each batch
        self.settings = self.settings.for_kind(devices.kind(self.settings.device))
        self.engine = engines.create(
            self.encoder_factory, self.settings, check=self.check_batch is not None
        )
        batch_size = self.settings.sizes()[0]
        vanished_by_sha: dict[str, list[Row]] = {}
        for row in vanished.values():
            vanished_by_sha.setdefault(row.sha256, []).append(row)
        batch: list[Prepared] = []  # new content, embedded at the commit
        in_batch: set[str] = set()  # its content hashes
        waiting: list[Prepared] = []  # files whose content equals something in `batch`
        ops: list[Operation] = []
        done = 0
        total = len(todo)
        self.progress(ProgressEvent("embed", 0, total))
        try:
            # Workers skip decoding only content the catalog had before this run.
            for result in _timed(self.engine.stream(todo, frozenset(known)), self.report, "read"):
                done += 1
                if isinstance(result, scan.Skip):
                    self._skip(result.path, result.reason)
                    ops.append(SkipFile(result, self._root_of(result.path)))
                    gone = existing.get(result.path)
                    if gone is not None:  # an indexed file that is no longer a readable image
                        vanished[gone.path] = gone
                elif result.sha256 in known:
                    old = existing.get(result.entry.path)
                    ops.append(self._plan_known(result, old, known, vanished_by_sha, vanished))
                elif result.sha256 in in_batch:
                    waiting.append(result)
                else:
                    batch.append(result)
                    in_batch.add(result.sha256)
                if len(batch) >= batch_size or len(ops) >= 4 * batch_size:
                    self._commit(batch, waiting, ops, existing, known)
                    batch, waiting, ops, in_batch = [], [], [], set()
                self.progress(ProgressEvent("embed", done, total))
            self._commit(batch, waiting, ops, existing, known)
            self._committer.drain()  # the last commit's wait and error, like the others'
        except BaseException:
            self.catalog.give_up_waiting = True  # a commit not begun for a reader: not at all
            try:
                self._committer.close(failing=True)  # one begun is stored whole
            finally:
                self.catalog.give_up_waiting = False
            raise
        else:
            self._committer.close()
        finally:
            timings = self.report.timings
            timings["start"] = self.engine.seconds_starting
            timings["embed"] = self.engine.seconds_embedding
            # the engine starts and (locally) embeds while its results are waited for
            timings["read"] = max(0.0, timings["read"] - timings["start"] - timings["embed"])
            timings["store"] = self._committer.busy
            timings["store_wait"] = self._committer.waited

    def _plan_known(
        self,
        p: Prepared,
        old: Row | None,
        known: dict[str, tuple],
        vanished_by_sha: dict[str, list[Row]],
        vanished: dict[str, Row],
    ) -> Operation:
        """A file whose content the index already has a vector for: no embedding needed."""
        _, _, p.width, p.height, p.format = known[p.sha256]
        if old is not None:
            return Touch(p, old) if old.sha256 == p.sha256 else Update(p, old, reused=True)
        moved_from = vanished_by_sha.get(p.sha256)
        if moved_from:
            row = moved_from.pop()
            vanished.pop(row.path, None)
            self._moved_ids.add(row.id)
            return Move(p, row, self._root_of(p.entry.path))
        # Moved in from a folder that is not being walked now: its old file is gone.
        self._committer.drain()  # the catalog is the commit thread's while it commits
        for row in self.files.rows_with_content(p.sha256, self.source):
            if row.id not in self._moved_ids and not storage.exists(row.path):
                vanished.pop(row.path, None)
                self._moved_ids.add(row.id)
                return Move(p, row, self._root_of(p.entry.path))
        return self._new_content(p, existing_row=None, reused=True)

    def _new_content(self, p: Prepared, existing_row: Row | None, reused: bool) -> Operation:
        if existing_row is not None:
            return Update(p, existing_row, reused=reused)
        return Add(p, self._root_of(p.entry.path), self.source, reused=reused)

    def _commit(
        self,
        batch: list[Prepared],
        waiting: list[Prepared],
        ops: list[Operation],
        existing: dict[str, Row],
        known: dict[str, tuple],
    ) -> None:
        if not batch and not waiting and not ops:
            return
        vectors = None
        if batch:  # embedded by the engine; stored now
            if self.check_batch is not None:  # before anything of this precision is stored
                self._committer.drain()  # the check writes its figure to the catalog
                self.check_batch(_measured(batch))
                self.check_batch = None
            vectors = np.stack([p.vector for p in batch])
            for p in batch:
                self.report.device, self.report.precision = (
                    p.embedding.device,
                    p.embedding.precision,
                )
                if p.embedding.node:
                    self.report.nodes.add(p.embedding.node)
                p.vector = None
        planned: list[Operation] = []
        for p in batch:
            known.setdefault(p.sha256, (0, p.entry.path, p.width, p.height, p.format))
            planned.append(self._new_content(p, existing.get(p.entry.path), reused=False))
        for p in waiting:
            p.width, p.height, p.format = known[p.sha256][2:]
            planned.append(self._new_content(p, existing.get(p.entry.path), reused=True))
        shas, stored = [p.sha256 for p in batch], planned + ops
        self._committer.submit(lambda: self._store(shas, vectors, stored))

    def _store(self, shas: list[str], vectors: np.ndarray | None, ops: list[Operation]) -> None:
        """One batch's commit, in the commit thread: its new vectors and its files' rows."""
        with self.catalog.transaction():
            if vectors is not None:
                self.catalog.images.insert_embeddings(shas, vectors)
                self.report.embedded += len(shas)
            self.changed_ids.extend(self.files.apply(ops))
            for op in ops:
                self.report.count(op)
            self.catalog.bump_generation()
        self.catalog.commit_point()

    def _root_of(self, path: str) -> str:
        best = ""
        for r in self.report.roots:
            if path.startswith(r.rstrip(os.sep) + os.sep) and len(r) > len(best):
                best = r
        return best or os.path.dirname(path)

    # -- sweep ------------------------------------------------------------------------------

    def _sweep(self, vanished: dict[str, Row]) -> None:
        """Remove rows whose file is gone, and vectors no image uses any more."""
        if not vanished and not self.report.updated:
            return
        ids = [r.id for r in vanished.values()]
        with self.catalog.transaction():
            if ids:
                self.catalog.images.delete(ids)
            else:  # content changed in place: the old vectors are unused now
                self.catalog.images.delete_unused_embeddings()
        self.report.removed += len(ids)
        self.report.excluded += sum(storage.exists(r.path) for r in vanished.values())
        self.removed_ids.extend(ids)


def _timed(results: Iterable[Any], report: AddReport, stage: str) -> Iterator[Any]:
    """`results` as they come, the time spent waiting for each added to `report.timings`."""
    it = iter(results)
    while True:
        start = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        finally:
            report.timings[stage] += time.perf_counter() - start
        yield item


def _measured(batch: list[Prepared]) -> Embedding:
    """The int8 check's figure from a batch: every engine worker measures its first batch."""
    for p in batch:
        if p.embedding.agreement is not None:
            return p.embedding
    raise RuntimeError("the first embedded batch came without the precision check's figure")
