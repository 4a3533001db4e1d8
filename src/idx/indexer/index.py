"""`Index`: the Python API over one index folder (catalog + vectors + model)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from idx import config
from idx.errors import EmptyIndexError, UsageError
from idx.indexer.catalog import Catalog
from idx.indexer.catalog.lock import writer_pid
from idx.indexer.ingest.settings import RunSettings
from idx.indexer.model import precision as precisions
from idx.indexer.model.identity import ModelIdentity, check_compatible
from idx.indexer.model.texts import TextEncoder
from idx.indexer.vectors import live, sync
from idx.indexer.vectors.store import VectorStore
from idx.progress import Progress

if TYPE_CHECKING:  # loaded where used: a query never loads the add pipeline or the encoder
    from idx.indexer.ingest.engines.embedding import Embedding
    from idx.indexer.ingest.pipeline import Ingest
    from idx.indexer.ingest.report import AddReport
    from idx.indexer.model.encoder import Encoder

log = logging.getLogger(__name__)


class Index:
    """An idx index folder.

    >>> with Index("photos.idx") as index:
    ...     report = index.add(["~/photos"])
    ...     ids, vectors = index.embeddings()
    >>> report.added == len(ids), vectors.dtype, vectors.shape[0] == len(ids)
    (True, dtype('float32'), True)

    model / pretrained / checkpoint override what the index stored (flag > IDX_* env > stored >
    default); an index refuses a model other than the one it was built with. `encoder` passes a
    model already loaded (Encoder.load) instead. `settings` (RunSettings) gives device, precision
    and model, and the settings of `add`, as one value resolved once, instead of those arguments.
    `create=False`: a folder without an index is an error (EmptyIndexError, saying how to make
    one) rather than a new, empty index: for commands that only work on what an index holds.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        read_only: bool = False,
        model: str | None = None,
        pretrained: str | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        encoder: Encoder | None = None,
        wait: float = 0.0,
        device: str | None = None,
        precision: str | None = None,
        settings: RunSettings | None = None,
        create: bool = True,
    ):
        self.dir = config.index_dir(path)
        asked = (model, pretrained, checkpoint, device, precision)
        if settings is not None and any(a is not None for a in asked):
            raise UsageError(
                "Index takes settings= or model, pretrained, checkpoint, device and precision, "
                "not both: the settings hold them (RunSettings.resolve(model=..., ...))"
            )
        self.settings = settings or RunSettings.resolve(
            device=device,
            precision=precision,
            model=model,
            pretrained=pretrained,
            checkpoint=checkpoint,
        )
        #: where and how the model runs (with int8: the CPU)
        self.precision, self.device = self.settings.precision, self.settings.device
        self.read_only = read_only
        # A new index that ends up holding nothing is removed again (see add): no half-made index.
        self._new_dir = not self.dir.exists()
        self._new = not (self.dir / config.CATALOG_FILE).exists()
        self.catalog = Catalog(self.dir, read_only=read_only, wait=wait, create=create)
        self._identity: ModelIdentity | None = None
        self._encoder: Encoder | None = None
        #: Texts to vectors (queries, prompts): the torch-free text tower where it applies.
        self.texts = TextEncoder(
            self.identity, self._text_model, device=self.device, loaded=lambda: self._encoder
        )
        if encoder is not None:
            # A model already loaded (several indexes, one model): it must be the index's own.
            stored = self.stored_identity()
            if stored is not None:
                check_compatible(stored, encoder.identity, self.dir)
            self._identity, self._encoder = encoder.identity, encoder
            if stored is None and not read_only:
                self.catalog.set_meta("model", encoder.identity.to_json())
        self._vectors: VectorStore | None = None
        self._contents: tuple[np.ndarray, np.ndarray] | None = None  # what _vectors holds

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        self.catalog.close()

    def release(self) -> None:
        """Let go of the catalog file until the next call needs it, so that a writer (or, for a
        writer, readers) can use it meanwhile; long-lived readers call this between requests."""
        self.catalog.release()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- model ------------------------------------------------------------------------------

    def stored_identity(self) -> ModelIdentity | None:
        text = self.catalog.get_meta("model")
        return ModelIdentity.from_json(text) if text else None

    def identity(self) -> ModelIdentity:
        """The model this index uses, checked against what it stored."""
        if self._identity is None:
            stored = self.stored_identity()
            ident = self.settings.model_identity(stored, self.dir)
            if stored is not None and ident.checkpoint != stored.checkpoint and not self.read_only:
                self.catalog.set_meta("model", ident.to_json())  # the same weights, moved
            self._identity = ident
        return self._identity

    @property
    def encoder(self) -> Encoder:
        """The loaded model (loaded on first use; stored in the index on first add); built in
        torch, it prepares this machine's towers first and runs from them (Encoder.load)."""
        return self._loaded(prepare=True)

    def _text_model(self) -> Encoder:
        """The model for the texts the text tower cannot take: loaded without preparing the
        towers first (the image tower is of no use to a text query, which prepares its own)."""
        return self._loaded(prepare=False)

    def _loaded(self, prepare: bool) -> Encoder:
        if self._encoder is None:
            from idx.indexer.model.encoder import Encoder

            ident = self.identity()
            # Loading may run in a decode worker: the catalog is written by `add`, not here.
            self._encoder = Encoder.load(ident, self.device, self.precision, prepare=prepare)
        return self._encoder

    @property
    def device_used(self) -> str | None:
        """Where the model ran for this index object (e.g. "cuda:0 (auto)"), None if it did not."""
        if self._encoder is not None:
            return self._encoder.device.describe()
        if self.texts.used == "text tower":
            return "cpu (text tower, ONNX Runtime)"
        return None

    # -- vectors ----------------------------------------------------------------------------

    @property
    def vectors(self) -> VectorStore:
        """The FAISS index, in step with the catalog (rebuilt from it when it was not)."""
        if self._vectors is None:
            store = VectorStore(self.dir)
            store.load(
                self.catalog.generation(), self.catalog.images.vectors, writable=not self.read_only
            )
            self._vectors = store
        return self._vectors

    def writer_active(self) -> bool:
        """Whether another process holds the index for writing now (a running `idx add`)."""
        return writer_pid(self.dir) is not None

    def refresh(self) -> bool:
        """Catch the loaded vectors up with a writer, a running `idx add` (`vectors/live.refresh`).
        Long-lived readers call this between requests; True when the vectors changed."""
        if self._vectors is None:
            return False
        images, gen = self.catalog.images, self.catalog.generation()
        self._vectors, self._contents, moved = live.refresh(
            self._vectors, gen, self._contents, images.content_keys, images.vectors
        )
        return moved

    def _sync_vectors(self, start: int, changed: Sequence[int], removed: Sequence[int]) -> None:
        """Bring the FAISS file from generation `start` to the catalog's after a write: the
        changes applied, or a rebuild (`vectors/sync.after_write`)."""
        images, gen = self.catalog.images, self.catalog.generation()
        self._vectors = sync.after_write(
            self._vectors, self.dir, start, gen, changed, removed, images.vectors, images.count
        )

    def rebuild_vectors(self, requested: str, progress: Progress | None = None) -> VectorStore:
        """Rebuild the FAISS file from the catalog as `requested` ("auto" or an index type)."""
        self._require_writable("reindex")
        images = self.catalog.images
        self._vectors = sync.rebuild(
            self.dir, self.catalog.generation(), images.vectors, requested, progress
        )
        return self._vectors

    # -- operations -------------------------------------------------------------------------

    def add(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        batch_size: int | None = None,
        workers: int | None = None,
        progress: Progress | None = None,
        on_skip: Callable[[str, str], None] | None = None,
        source: str = config.FILES_SOURCE,
        include_hidden: bool | None = None,
        exclude: Sequence[str] | None = None,
        command: str | None = None,
        engine: str | None = None,
        ray_address: str | None = None,
        settings: RunSettings | None = None,
    ) -> AddReport:
        """Ingest folders (or s3://bucket/prefix URLs) incrementally; see idx.indexer.ingest.pipeline for
        the rules.

        `source` marks the rows (images.source), e.g. 'inject:3' for injected test images.
        `include_hidden` and `exclude` (globs relative to each folder) replace the rules stored
        with the folders; None keeps them (default for a new folder: hidden files left out, no
        excludes). Files a new rule leaves out are removed like deleted ones. `command` is what
        `idx status` shows for the running job (default: the equivalent `idx add`). `engine`
        runs the reading and embedding: "local" (threads here, the default) or "ray" (Ray tasks
        and actors, on the cluster at `ray_address` / RAY_ADDRESS, else a local Ray instance).
        `settings` (RunSettings) are the run's settings (default: the Index's own), with
        `batch_size`, `workers`, `engine` and `ray_address` in front where given.
        """
        from idx.indexer.ingest.jobs import Job, resume_command
        from idx.indexer.ingest.pipeline import Ingest
        from idx.indexer.model.encoder import Encoder

        self._require_writable("add")
        folders = [os.path.expanduser(os.fspath(p)) for p in paths]
        if not folders:
            raise UsageError("add needs at least one folder")
        run = self.settings.for_run(settings).with_flags(
            batch_size=batch_size, workers=workers, engine=engine, ray_address=ray_address
        )
        resume = resume_command(self.dir, folders, run)
        try:
            with Job(self.dir, command or resume, resume, progress) as job:
                ident = self.identity()  # refuse a mismatched model before any work
                if self.stored_identity() is None:
                    self.catalog.set_meta("model", ident.to_json())  # even if nothing is new
                local = run.engine == "local"
                trusted = precisions.trusted_model(self.catalog, self.precision, ident.key())
                ingest = Ingest(
                    self.catalog,
                    # Ray's actors load the model where they run; here only its preprocessing
                    (lambda: self.encoder) if local else (lambda: Encoder.load(ident, "cpu")),
                    replace(run, identity=ident),
                    check_batch=None if trusted else self._check_precision,
                    progress=job,
                    on_skip=on_skip,
                    source=source,
                    exclude=[str(self.dir)],
                    include_hidden=include_hidden,
                    excludes=exclude,
                )
                report = self._run(ingest, folders)
                self._record(report, ingest)
        except BaseException:
            if self._new and self.catalog.images.count() == 0:
                self._discard()
            raise
        return report

    def _run(self, ingest: Ingest, paths: list[str]) -> AddReport:
        """Run `ingest` over `paths`; the FAISS file follows what it committed, even when it
        failed part way."""
        start_gen = self.catalog.generation()
        try:
            return ingest.run(paths)
        finally:
            self._sync_vectors(start_gen, ingest.changed_ids, ingest.removed_ids)

    def _record(self, report: AddReport, ingest: Ingest) -> None:
        """Store what the run learnt: its summary (`idx status`), the model as loading learnt it
        (embed_dim, image_size), the precision of its vectors; and prepare the ONNX towers, so
        that later processes start without torch."""
        summary = report.as_dict() | {"skipped_files": len(report.skipped_files)}
        self.catalog.set_meta("last_add", json.dumps(summary))
        loaded = ingest.engine.identity if ingest.engine is not None else None
        learnt = self._encoder.identity if self._encoder is not None else loaded
        if learnt is not None:  # what loading learnt (embed_dim, image_size)
            self.catalog.set_meta("model", learnt.to_json())
        if report.embedded and report.precision:
            precisions.note_precision(self.catalog, report.precision)
        if self._encoder is not None:
            self._encoder.prepare_towers()

    def _check_precision(self, embedding: Embedding) -> None:
        """Before an index stores its first vectors of a lower precision: their agreement with
        fp32 on these images of its own, measured where they were embedded (indexer.model.precision);
        refuses with the figure."""
        if embedding.precision != "fp32" and embedding.agreement is not None:
            precisions.judge(
                self.catalog, self.identity().key(), embedding.agreement, embedding.sample
            )

    def _discard(self) -> None:
        """Remove an index this object created and that holds no image (a first add that
        failed), so that the folder reads as no index at all."""
        self.close()
        for name in os.listdir(self.dir):
            if name in config.INDEX_FILES or name.startswith(config.CATALOG_FILE):
                target = self.dir / name
                shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        if self._new_dir and not any(self.dir.iterdir()):
            self.dir.rmdir()

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Delete images (and rows referring to them) from the catalog and the FAISS file."""
        self._require_writable("remove images")
        ids = [int(i) for i in ids]
        if not ids:
            return 0
        start_gen = self.catalog.generation()
        with self.catalog.transaction():
            self.catalog.images.delete(ids)
        self._sync_vectors(start_gen, [], ids)
        return len(ids)

    def embeddings(
        self, ids: Sequence[int] | np.ndarray | None = None, *, subset: str = "all"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, unit vectors float32 [n, d]) as stored, ordered by id; optionally only `ids`, or
        only the 'clean' subset (images added from files)."""
        return self.catalog.images.vectors(ids, subset=subset)

    def analysis_vectors(self, subset: str = "all") -> tuple[np.ndarray, np.ndarray]:
        """(ids, unit vectors) of the subset to analyse, ordered by id; EmptyIndexError or
        UsageError when there are none."""
        self.require_images("analyse")
        ids, vectors = self.catalog.images.vectors(subset=subset)
        if len(ids) == 0:
            raise UsageError(
                f"no {subset} images to analyse: the index holds only images added by other "
                f"commands (source other than '{config.FILES_SOURCE}'); add folders with "
                f"`{config.command(self.dir, 'add', 'FOLDER')}`"
            )
        return ids, vectors

    def describe_model(self) -> tuple[str | None, bool]:
        """(the stored model as `idx status` describes it, whether its weights are untrained)."""
        ident = self.stored_identity()
        return (ident.describe(), ident.untrained) if ident else (None, False)

    def require_images(self, what: str) -> int:
        n = self.catalog.images.count()
        if n == 0:
            raise EmptyIndexError(
                f"index {self.dir} has no images, so there is nothing to {what}; add some with "
                f"`{config.command(self.dir, 'add', 'FOLDER')}`"
            )
        return n

    def sql(self, query: str) -> tuple[list[str], list[tuple]]:
        """Run one SQL statement (read-only when the index was opened read-only)."""
        return self.catalog.query(query)

    def status(self) -> dict[str, Any]:
        """What `idx status` shows: counts, model, vectors in step, the running job, problems."""
        from idx.indexer.status import collect_status

        return collect_status(self.dir, self.catalog, self.stored_identity())

    def export(self, out: str | os.PathLike[str], fmt: str) -> list[Path]:
        """Write ids, paths and embeddings as stored (`fmt`: parquet or npy) to `out`."""
        from idx.indexer.export import check_format, export

        check_format(fmt)  # a wrong format is named before an empty index
        self.require_images("export")
        return export(self.catalog, self.stored_identity(), Path(out), fmt)

    def _require_writable(self, what: str) -> None:
        if self.read_only:
            raise UsageError(f"cannot {what}: index {self.dir} was opened read-only")
