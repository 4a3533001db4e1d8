"""The per-file work of `add`: read, hash and (for new content only) decode, preprocess and take
the picture's perceptual hash (files.phash) from the one decode.

Engine-agnostic: `prepare` runs wherever an engine puts it (a thread of this process for the
local engine, a Ray task on any node for the Ray engine). It never raises for a bad file: what
cannot be used becomes a `scan.Skip` with its reason, so one corrupt file cannot fail a job.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

from idx import config
from idx.errors import DecodeError, TooManyPixelsError
from idx.indexer.files import decode, phash, scan, storage

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A file read and hashed. `tensor` is set while its content waits to be embedded, `vector`
    once it has been (engines.embedding.embed_rows); `phash` (files.phash) once it is decoded, and
    travels with the rest of it (not in a decode process's ring of crops)."""

    entry: scan.FileEntry
    sha256: str
    width: int = 0
    height: int = 0
    format: str = ""
    phash: int | None = None
    tensor: Any = None
    vector: Any = None
    embedding: Any = None  # engines.embedding.Embedding: how `vector` was made


@dataclass(frozen=True)
class Preprocessing:
    """What turns a decoded picture into the model's input, without the model: picklable, so a
    worker on another machine can run it."""

    image_size: int
    transform: Any

    @classmethod
    def of(cls, encoder: Any) -> Preprocessing:
        return cls(encoder.image_size, encoder.preprocess)

    @classmethod
    def crops(cls, encoder: Any) -> Preprocessing | None:
        """Preprocessing that stops before normalising: uint8 (H, W, 3) crops, a quarter of the
        bytes to send from a decode process and to a GPU, which normalises them
        (Encoder.encode_images). None when the model's preprocessing is not reproduced."""
        steps = encoder.pixel_steps()
        return None if steps is None else cls(encoder.image_size, steps.crop_u8)


def prepare(
    entry: scan.FileEntry,
    known: Container[str],
    preprocessing: Callable[[], Preprocessing],
) -> Prepared | scan.Skip:
    """Read and hash one file; decode and preprocess it unless its content is in `known`.
    `preprocessing` is called only for new content (a run of moves never loads the model)."""

    def skip(reason: str, max_pixels: int | None = None) -> scan.Skip:
        return scan.Skip(
            entry.path, reason, entry.bytes, entry.mtime_ns, entry.ctime_ns, entry.etag, max_pixels
        )

    try:
        data = storage.read_bytes(entry.path)
    except FileNotFoundError:
        return scan.Skip(entry.path, "file vanished before it could be read")
    except PermissionError:
        return skip("permission denied; make the file readable (chmod +r) and run add again")
    except OSError as exc:
        return skip(f"cannot read file ({exc.strerror or exc})")
    prepared = Prepared(entry, hashlib.sha256(data).hexdigest())
    if prepared.sha256 in known:
        return prepared
    steps = preprocessing()  # a model that cannot load fails the run, not each file
    try:
        decoded = decode.decode(data, steps.image_size)
        prepared.tensor = steps.transform(decoded.image)
    except TooManyPixelsError as exc:
        return skip(str(exc), config.max_pixels())
    except DecodeError as exc:
        return skip(str(exc))
    except Exception as exc:  # noqa: BLE001 - a file no decoder anticipated: a skip, not a crash
        log.warning("unexpected error preparing %s", entry.path, exc_info=True)
        return skip(f"cannot prepare image ({type(exc).__name__}: {exc})")
    prepared.width, prepared.height = decoded.width, decoded.height
    prepared.format = decoded.format
    prepared.phash = phash.phash(decoded.image)
    return prepared


def perceptual_hash(path: str, sha256: str, min_side: int | None) -> int | None:
    """The perceptual hash of the file at `path` decoded as `prepare` decodes it (at least
    `min_side` pixels a side), if it still holds the content `sha256`; None when it does not,
    or cannot be read or decoded (logged): that content keeps no hash, and is tried again."""
    try:
        data = storage.read_bytes(path)
    except OSError as exc:
        log.info("no perceptual hash for %s: cannot read it (%s)", path, exc)
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        log.info("no perceptual hash for %s: it changed since it was indexed", path)
        return None
    try:
        decoded = decode.decode(data, min_side)
    except Exception as exc:  # noqa: BLE001 - DecodeError, or one no decoder anticipated
        log.info("no perceptual hash for %s: %s", path, exc)
        return None
    return phash.phash(decoded.image)
