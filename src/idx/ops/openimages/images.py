"""The images of a fetch, downloaded in parallel into `DEST/<split>/<ImageID>.jpg`: those already
there are kept (an image lands under its name only when whole), those the server lacks are listed
as missing, those that keep failing as failed; neither stops the others."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from idx.errors import IdxError
from idx.ops.openimages import sources
from idx.ops.openimages.transfer import Client, Missing, TransferError
from idx.progress import Progress, ProgressEvent

#: The most bytes one image may have (Open Images' largest originals are a few tens of MB).
MAX_BYTES = 64_000_000
JPEG_START = b"\xff\xd8\xff"
PHASE = "images"
#: Failures in a row, with no image fetched in between, after which the server counts as down.
GIVE_UP_AFTER = 20

OnSkip = Callable[[str, str], None]


@dataclass
class ImageResult:
    fetched: int = 0  # downloaded now
    present: int = 0  # already there from an earlier run
    bytes: int = 0  # downloaded now
    seconds: float = 0.0
    missing: list[str] = field(default_factory=list)  # ImageIDs the server does not have
    failed: list[dict[str, str]] = field(default_factory=list)  # {"image_id", "reason"}


def on_disk(folder: Path) -> set[str]:
    """The ImageIDs of the images in `folder` (`<ImageID>.jpg`)."""
    if not folder.is_dir():
        return set()
    return {p.stem for p in folder.glob("*.jpg") if sources.is_image_id(p.stem)}


def fetch_images(
    client: Client,
    image_ids: Sequence[str],
    folder: Path,
    split: str,
    *,
    workers: int,
    progress: Progress | None = None,
    on_skip: OnSkip | None = None,
) -> ImageResult:
    """Download the images of `image_ids` not yet in `folder`, `workers` at a time."""
    base = sources.images_base()
    result = ImageResult()
    there = on_disk(folder)
    todo = [i for i in image_ids if i not in there]
    result.present = len(image_ids) - len(todo)
    total = len(image_ids)

    def one(image_id: str) -> int:
        url = sources.image_url(base, split, image_id)
        return client.download(url, folder / f"{image_id}.jpg", max_bytes=MAX_BYTES, check=_jpeg)

    def done(image_id: str, future: Future[int]) -> None:
        url = sources.image_url(base, split, image_id)
        try:
            result.bytes += future.result()
            result.fetched += 1
            return
        except Missing as exc:
            result.missing.append(image_id)
            reason = str(exc)
        except TransferError as exc:
            result.failed.append({"image_id": image_id, "reason": str(exc)})
            reason = str(exc)
            if len(result.failed) >= GIVE_UP_AFTER and not result.fetched:
                raise IdxError(
                    f"the first {GIVE_UP_AFTER} images asked for from {base} all failed (the "
                    f"last: {reason}); check the network and IDX_OPENIMAGES_IMAGES, then run "
                    "the same command again to resume"
                ) from None
        except OSError as exc:
            raise IdxError(
                f"cannot write {folder / image_id}.jpg: {exc}; check the folder and free space"
            ) from None
        if on_skip is not None:
            on_skip(url, reason)

    start = time.perf_counter()
    if progress is not None:
        progress(ProgressEvent(PHASE, result.present, total))
    for image_id, future in _bounded(one, todo, workers):
        done(image_id, future)
        if progress is not None:
            finished = result.fetched + len(result.missing) + len(result.failed)
            progress(ProgressEvent(PHASE, result.present + finished, total))
    result.seconds = time.perf_counter() - start
    return result


def _bounded(
    work: Callable[[str], int], items: Iterable[str], workers: int
) -> Iterable[tuple[str, Future[int]]]:
    """(item, its finished future) as they finish, with at most 2 x `workers` submitted at once,
    so a list of a million images does not become a million futures."""
    pending: dict[Future[int], str] = {}
    items = iter(items)
    with ThreadPoolExecutor(workers, thread_name_prefix="idx-openimages") as pool:
        try:
            while True:
                for item in items:
                    pending[pool.submit(work, item)] = item
                    if len(pending) >= 2 * workers:
                        break
                if not pending:
                    return
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield pending.pop(future), future
        finally:
            for future in pending:
                future.cancel()


def _jpeg(first: bytes) -> str | None:
    if first.startswith(JPEG_START):
        return None
    return "not a JPEG (the server answered with something else under the image's name)"
