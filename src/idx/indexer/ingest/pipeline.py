"""`add`: incremental ingestion of folders into the catalog, one step after another.

Steps: walk (stat only) and compare with the catalog (`walk`) -> read+hash+decode -> embed in
batches (both run by an engine, indexer.ingest.engines: threads here, or Ray tasks and actors) ->
plan each file's operation (`planner`) -> commit each batch in one transaction, here, whatever the
engine (`batches`, `committer`) -> sweep what vanished. `report` is what the run did.

Rules: an unchanged file (size, mtime; size, ETag for an object) is not read; a file whose content
hash is already known keeps that vector (a moved file keeps its id, a copy gets a new id without a
new embedding); changed content is re-embedded under the same id; catalog rows under a walked
folder whose file is gone are removed at the end.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from idx import config
from idx.indexer.catalog import Catalog
from idx.indexer.catalog.operations import Row, SkipFile
from idx.indexer.files import scan, storage
from idx.indexer.ingest import engines, hashes
from idx.indexer.ingest.batches import Batches
from idx.indexer.ingest.committer import Committer
from idx.indexer.ingest.engines.embedding import Embedding
from idx.indexer.ingest.planner import Planner, root_of
from idx.indexer.ingest.report import AddReport, EmptyFolder
from idx.indexer.ingest.settings import RunSettings
from idx.indexer.ingest.walk import Walk, walk
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
        scan.exclude_spec(self.excludes or ())  # a bad pattern ends the run before any work
        self.rules: dict[str, scan.Rules] = {}
        self.report = AddReport(engine=settings.engine)
        self.changed_ids: list[int] = []  # ids whose vector is new or different
        self.removed_ids: list[int] = []
        self._committer = Committer()

    def run(self, paths: Iterable[str | os.PathLike[str]]) -> AddReport:
        start = time.perf_counter()
        roots = [storage.folder(p) for p in paths]
        self.report.roots = roots
        self.rules = {root: self._rules(root) for root in roots}
        found = walk(
            self.catalog,
            roots,
            self.rules,
            exclude=self.exclude,
            source=self.source,
            max_pixels=self.max_pixels,
            progress=self.progress,
        )
        self.report.unchanged += found.unchanged
        for skip in found.skips:
            self._skip(skip.path, skip.reason)
        for path, reason in found.still_skipped:
            self._skip(path, reason)
        self.report.empty_folders = [
            EmptyFolder(root, storage.survey(root, self.rules[root], self.exclude))
            for root in found.empty
        ]
        with self.catalog.transaction():
            if self.source == config.FILES_SOURCE:
                for root, rules in self.rules.items():
                    # a folder that never held an image is not one the index holds
                    if root not in found.empty or self.files.rules(root) is not None:
                        self.files.set_rules(root, rules)
            self.files.apply([SkipFile(skip, root_of(roots, skip.path)) for skip in found.skips])
            self.files.forget_skips(found.forgotten)
        self.report.timings["scan"] = time.perf_counter() - start
        self._ingest(found)
        self._sweep(found.vanished)
        self._fill_hashes(roots)
        self.report.seconds = time.perf_counter() - start
        self.progress(ProgressEvent("done", len(found.todo), len(found.todo)))
        return self.report

    def _fill_hashes(self, roots: list[str]) -> None:
        """Perceptual hashes for the content under `roots` embedded before `add` took them."""
        identity = self.settings.identity
        workers = self.settings.workers or config.workers(None, "cpu")
        self.report.hashed = hashes.fill_missing(
            self.catalog,
            roots,
            self.source,
            min_side=identity.image_size if identity is not None else None,
            workers=workers,
            progress=self.progress,
        )

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

    def _ingest(self, found: Walk) -> None:
        """Read, hash, decode and embed the files to read (an engine), and commit them batch by
        batch."""
        if not found.todo:
            return
        known = self.files.known_content()
        self.catalog.release()  # held again only to commit each batch
        self.settings = self.settings.for_kind(devices.kind(self.settings.device))
        self.engine = engine = engines.create(
            self.encoder_factory, self.settings, check=self.check_batch is not None
        )
        planner = Planner(
            self.files,
            self.source,
            self.report.roots,
            found.existing,
            found.vanished,
            known,
            wait=self._committer.drain,
        )
        batches = Batches(
            self.catalog,
            planner,
            self._committer,
            self.report,
            size=self.settings.sizes()[0],
            check=self.check_batch,
            changed=self.changed_ids,
        )
        total = len(found.todo)
        self.progress(ProgressEvent("embed", 0, total))
        try:
            # Workers skip decoding only content the catalog had before this run.
            results = engine.stream(found.todo, frozenset(known))
            for done, result in enumerate(_timed(results, self.report, "read"), start=1):
                if isinstance(result, scan.Skip):
                    self._skip(result.path, result.reason)
                batches.add(result)
                self.progress(ProgressEvent("embed", done, total))
            batches.commit()
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
            self._note_timings(engine)

    def _note_timings(self, engine: engines.Engine) -> None:
        """Where the run's time went (AddReport.timings)."""
        timings = self.report.timings
        timings["start"] = engine.seconds_starting
        timings["embed"] = engine.seconds_embedding
        # the engine starts and (locally) embeds while its results are waited for
        timings["read"] = max(0.0, timings["read"] - timings["start"] - timings["embed"])
        timings["store"] = self._committer.busy
        timings["store_wait"] = self._committer.waited

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
