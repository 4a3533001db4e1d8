"""Where image files live: local folders, or object storage (`s3://bucket/prefix`) through fsspec.

Every reader of image bytes goes through `read_bytes` (add's workers on any engine, search by
image, thumbnails, reports, the server), so an index whose images are on S3 works like a local
one. Object storage is reached with s3fs, which reads the standard AWS settings (AWS_PROFILE,
AWS_ACCESS_KEY_ID, AWS_REGION, AWS_ENDPOINT_URL for an S3-compatible server such as MinIO).

Objects have no mtime worth trusting for change detection: an object's change key is its size
and its ETag (catalog column images.etag); mtime_ns holds its LastModified time. Objects are taken
by name (an image extension): sniffing the content of the others would cost a request each.
"""

from __future__ import annotations

import os
import posixpath
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from idx.errors import UsageError
from idx.indexer.files import formats, scan

#: URL schemes read through fsspec, and the package each needs.
SCHEMES = {"s3": "s3fs"}
S3_EXTRA = "pip install 'idx-clip[s3]' (s3fs)"
#: Objects per listing chunk handed to the planner (it reports progress between chunks).
LIST_CHUNK = 1000
#: Files a survey of a folder without images counts at most (it says "at least" past it).
SURVEY_MAX = 100_000


def scheme(path: str | os.PathLike[str]) -> str | None:
    """'s3' for 's3://bucket/key', None for a local path."""
    text = os.fspath(path)
    head, sep, _ = text.partition("://")
    return head.lower() if sep and head.isalnum() else None


def is_remote(path: str | os.PathLike[str]) -> bool:
    return scheme(path) is not None


def filesystem(path: str) -> Any:
    """The fsspec filesystem of a URL (cached by fsspec: one client per process and settings)."""
    name = scheme(path)
    if name not in SCHEMES:
        raise UsageError(
            f"{path}: {name}:// is not supported; give a local folder or an s3://bucket/prefix"
        )
    try:
        import fsspec

        return fsspec.filesystem(name)
    except ImportError:
        raise UsageError(f"reading {name}:// needs {SCHEMES[name]}: {S3_EXTRA}") from None


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The whole file or object. Raises FileNotFoundError, PermissionError or OSError."""
    if not is_remote(path):
        with open(path, "rb") as fh:
            return fh.read()
    text = os.fspath(path)
    try:
        return filesystem(text).cat_file(text)
    except OSError:  # FileNotFoundError, PermissionError ... as for a local file
        raise
    except Exception as exc:  # noqa: BLE001 - botocore/aiohttp errors become read errors
        raise OSError(0, f"{type(exc).__name__}: {exc}") from exc


def exists(path: str | os.PathLike[str]) -> bool:
    if not is_remote(path):
        return os.path.exists(path)
    text = os.fspath(path)
    try:
        return bool(filesystem(text).exists(text))
    except UsageError:
        raise
    except Exception:  # noqa: BLE001 - unreachable storage: treat as not there
        return False


def version(path: str | os.PathLike[str]) -> tuple[Any, ...]:
    """What changes when the file or object does: (mtime_ns, size) of a file, (ETag, size) of
    an object. Raises FileNotFoundError when it is not there."""
    if not is_remote(path):
        st = os.stat(path)
        return (st.st_mtime_ns, st.st_size)
    text = os.fspath(path)
    try:
        info = filesystem(text).info(text)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - unreachable storage: as good as not there
        raise FileNotFoundError(text) from exc
    return (info.get("ETag") or info.get("etag"), info.get("size"))


def folder(path: str | os.PathLike[str]) -> str:
    """The folder or prefix to add, normalised (absolute path; URL without a trailing '/');
    UsageError when it is not there."""
    text = os.fspath(path)
    if not is_remote(text):
        root = os.path.abspath(text)
        if not os.path.isdir(root):
            what = (
                "is a file; give the folder that holds it"
                if os.path.exists(root)
                else "does not exist"
            )
            raise UsageError(f"cannot add {text}: {what}")
        return root
    root = text.rstrip("/")
    fs = filesystem(root)
    fs.invalidate_cache()
    try:
        found = fs.isdir(root)
        is_object = not found and fs.isfile(root)
    except PermissionError as exc:
        raise UsageError(f"cannot add {text}: access denied ({exc}); {_CREDENTIALS}") from None
    except Exception as exc:  # noqa: BLE001 - no credentials, unreachable endpoint ...
        raise UsageError(
            f"cannot add {text}: {type(exc).__name__}: {exc}; {_CREDENTIALS}"
        ) from None
    if is_object:
        raise UsageError(f"cannot add {text}: is an object; give the prefix that holds it")
    if not found:
        raise UsageError(
            f"cannot add {text}: no bucket or objects there; check the bucket and prefix "
            "(`aws s3 ls` lists them)"
        )
    return root


_CREDENTIALS = (
    "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and AWS_ENDPOINT_URL for a "
    "server other than AWS"
)


def walk(
    root: str, exclude: frozenset[str], rules: scan.Rules
) -> Iterator[tuple[list[scan.FileEntry], list[scan.Skip]]]:
    """scan.walk for a local folder; for a URL, the image objects under the prefix in chunks,
    with the same rules (hidden names, --exclude globs, ignored folders)."""
    if not is_remote(root):
        yield from scan.walk(root, exclude, rules)
        return
    fs = filesystem(root)
    fs.invalidate_cache()  # a re-add must see what changed since the last listing
    base = root.split("://", 1)[1].rstrip("/")
    prefix = root.split("://", 1)[0] + "://"
    try:
        listing = fs.find(base, detail=True)
    except Exception as exc:  # noqa: BLE001 - the listing itself failed: one skip row
        yield [], [scan.Skip(root, f"cannot list objects ({type(exc).__name__}: {exc})")]
        return
    image_exts = formats.image_extensions()
    chunk: list[scan.FileEntry] = []
    for key in sorted(listing):
        if not key.startswith(base + "/"):
            continue
        relative = key[len(base) + 1 :]
        if not relative or relative.endswith("/") or _left_out(relative, rules):
            continue
        name = posixpath.basename(relative)
        dot = name.rfind(".")
        if dot <= 0 or name[dot:].lower() not in image_exts:
            continue
        info = listing[key]
        modified = info.get("LastModified")
        mtime_ns = int(modified.timestamp() * 1e9) if modified is not None else 0
        etag = str(info.get("ETag") or "").strip('"') or None
        chunk.append(scan.FileEntry(prefix + key, int(info["size"]), mtime_ns, mtime_ns, etag))
        if len(chunk) >= LIST_CHUNK:
            yield chunk, []
            chunk = []
    yield chunk, []


@dataclass(frozen=True)
class Survey:
    """What a folder holds in which the walk found no image, for `add` to say why it added
    nothing: the files its rules take (by extension, most common first; "" for none) and the
    names they leave out (hidden, or matched by --exclude). Counts stop at SURVEY_MAX."""

    files: int = 0
    extensions: dict[str, int] = field(default_factory=dict)
    left_out: int = 0

    @property
    def cut(self) -> bool:
        return self.files + self.left_out >= SURVEY_MAX


def survey(root: str, rules: scan.Rules, exclude: frozenset[str] = frozenset()) -> Survey:
    """What lies under `root` (a folder or prefix the walk found no image in), as `Survey`
    counts it; run only then, so the walk itself stays one stat a file."""
    if is_remote(root):
        base = root.split("://", 1)[1].rstrip("/")
        try:
            keys = [k[len(base) + 1 :] for k in filesystem(root).find(base) if k != base]
        except Exception:  # noqa: BLE001 - the walk named a listing that failed already
            return Survey()
        return _count(((k, k.split("/")) for k in keys), rules)
    return _count(_local_files(root, exclude), rules)


def _local_files(root: str, exclude: frozenset[str]) -> Iterator[tuple[str, list[str]]]:
    """(relative path, its parts) of the files under `root`, links to folders not followed."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = [
            d for d in dirs if d not in scan.IGNORED_DIRS and os.path.join(folder, d) not in exclude
        ]
        prefix = os.path.relpath(folder, root).replace(os.sep, "/")
        for name in files:
            relative = name if prefix == "." else f"{prefix}/{name}"
            yield relative, relative.split("/")


def _count(files: Iterable[tuple[str, list[str]]], rules: scan.Rules) -> Survey:
    taken, left_out = Counter[str](), 0
    for relative, parts in files:
        if taken.total() + left_out >= SURVEY_MAX:
            break
        if _left_out(relative, rules):
            left_out += 1
            continue
        name = parts[-1]
        dot = name.rfind(".")
        taken[name[dot:].lower() if dot > 0 else ""] += 1
    return Survey(taken.total(), dict(taken.most_common()), left_out)


def _left_out(relative: str, rules: scan.Rules) -> bool:
    parts = relative.split("/")
    for depth, part in enumerate(parts):
        is_dir = depth < len(parts) - 1
        if not part or (not rules.include_hidden and part.startswith(".")):
            return True
        if is_dir and part in scan.IGNORED_DIRS:
            return True
        if rules.excludes and rules.excluded("/".join(parts[: depth + 1]), part, is_dir):
            return True
    return False
