"""Engines run `add`'s work: the per-file work (reader.prepare: read, hash, decode, preprocess)
and the per-batch embedding (`embedding.embed_rows`), both engine-agnostic functions.

`local` runs them in threads of this process; `ray` as Ray tasks (decoding, on CPUs) and an actor
pool (embedding, the model loaded once per actor, on GPUs where the cluster has them). Either way
`stream` yields one result per file, in the order given: a scan.Skip, or a reader.Prepared whose
`vector` is set when its content was new. The driver (indexer.ingest.pipeline) plans before and commits
after, one transaction per batch, whatever the engine: an engine's retries may deliver work twice,
the catalog's keys (path, content hash) store it once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from idx.errors import UsageError
from idx.indexer.files import scan
from idx.indexer.files.reader import Prepared

if TYPE_CHECKING:
    from idx.indexer.ingest.settings import RunSettings

NAMES = ("local", "ray")


class Engine(Protocol):
    name: str
    #: the model identity as loading learnt it (embedding width, image size); None until loaded
    identity: Any
    #: seconds this process spent in the model (0 where workers elsewhere run it)
    seconds_embedding: float
    #: seconds spent starting: loading the model here, starting workers or Ray
    seconds_starting: float

    def stream(
        self, todo: list[scan.FileEntry], known: frozenset[str]
    ) -> Iterator[Prepared | scan.Skip]: ...


def require(name: str) -> None:
    """UsageError now, before any work, for an unknown engine or one whose extra is missing."""
    if name not in NAMES:
        raise UsageError(f"--engine {name!r} is unknown; use {' or '.join(NAMES)}")
    if name == "ray":
        from idx.indexer.ingest.engines.ray import import_ray

        import_ray()


def create(encoder_factory: Callable[[], Any], settings: RunSettings, *, check: bool) -> Engine:
    """The engine `settings` name, with the settings sized for the device
    (`RunSettings.for_kind`); `encoder_factory` loads the model in this process (the local engine
    embeds with it; the Ray engine only takes its preprocessing). `check`: measure the first
    batch against fp32 (the int8 check)."""
    require(settings.engine)
    batch_size, workers, processes = settings.sizes()
    if settings.engine == "ray":
        from idx.indexer.ingest.engines.ray import RayEngine

        return RayEngine(
            encoder_factory,
            identity=settings.identity,
            device=settings.device,
            precision=settings.precision,
            batch_size=batch_size,
            check=check,
            address=settings.ray_address,
        )
    from idx.indexer.ingest.engines.local import LocalEngine

    return LocalEngine(
        encoder_factory,
        batch_size=batch_size,
        workers=workers,
        check=check,
        processes=processes,
    )
