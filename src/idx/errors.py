"""One-line exception classes. The CLI turns them into a message and an exit code, the HTTP API
into `{"error": message}` and an HTTP status."""

from __future__ import annotations


class IdxError(Exception):
    """A failed operation (exit code 1; over HTTP, 500: it failed here). The message names the
    value, the reason and the fix."""

    exit_code = 1
    http_status = 500


class UsageError(IdxError):
    """A bad argument or value given by the user (exit code 2)."""

    exit_code = 2
    http_status = 400


class IndexBusyError(IdxError):
    """Another idx process holds the index for writing."""

    http_status = 503


class ModelMismatchError(IdxError):
    """The index was built with another model than the one asked for."""


class ModelLoadError(IdxError):
    """The model or its weights could not be loaded."""


class NotFoundError(IdxError):
    """An image id, path or run that the index does not hold."""

    http_status = 404


class InUseError(IdxError):
    """Something that other stored things were made from (a run that later runs name)."""

    http_status = 409


class ChangedFileError(IdxError):
    """An indexed file that changed since it was indexed (run add on its folder again)."""

    http_status = 409


class EmptyIndexError(IdxError):
    """The operation needs images and the index has none."""

    http_status = 409


class DecodeError(IdxError):
    """A file could not be decoded as an image."""

    http_status = 400


class TooManyPixelsError(DecodeError):
    """An image above the pixel limit (IDX_MAX_PIXELS), a guard against decompression bombs."""


class PrecisionError(IdxError):
    """A lower precision (int8) disagrees with fp32 on the index's own images."""
