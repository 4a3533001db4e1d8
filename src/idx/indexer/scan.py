"""Walk folders for image files: stat only, no reads except to sniff files with foreign names."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from idx import config

#: Folders that hold tool metadata, never a user's photos.
IGNORED_DIRS = frozenset({".git", ".hg", ".svn", "@eaDir", "__MACOSX", ".Trash", ".idx"})

_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def sniff(head: bytes) -> str | None:
    """The image format named by a file's first bytes, or None."""
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


@dataclass(frozen=True)
class FileEntry:
    path: str
    bytes: int
    mtime_ns: int
    ctime_ns: int


@dataclass(frozen=True)
class Skip:
    path: str
    reason: str
    bytes: int | None = None
    mtime_ns: int | None = None
    ctime_ns: int | None = None


def _is_candidate(path: str, name: str) -> bool:
    if os.path.splitext(name)[1].lower() in config.IMAGE_EXTENSIONS:
        return True
    # A file with another name is taken when its content is an image (e.g. an extension-less
    # download). Reading 16 bytes costs little next to a directory entry.
    try:
        with open(path, "rb") as fh:
            return sniff(fh.read(16)) is not None
    except OSError:
        return False


def walk(root: str, exclude: frozenset[str] = frozenset()) -> Iterator[FileEntry | Skip]:
    """Yield image candidates under root (recursively, following links without looping)."""
    seen_dirs: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as exc:
            yield Skip(folder, f"folder cannot be read ({exc.strerror})")
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            if os.path.islink(folder):
                yield Skip(folder, "symbolic link loop (folder already scanned); not followed")
            continue
        seen_dirs.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except PermissionError:
            yield Skip(
                folder,
                "permission denied on folder; make it readable (chmod +rx) and run add again",
            )
            continue
        except OSError as exc:
            yield Skip(folder, f"folder cannot be listed ({exc.strerror})")
            continue
        subdirs = []
        for entry in entries:
            path = entry.path
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if entry.name not in IGNORED_DIRS and os.path.abspath(path) not in exclude:
                    subdirs.append(path)
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                if entry.is_symlink():
                    yield Skip(path, "broken symbolic link; fix or remove the link")
                else:
                    yield Skip(path, "file vanished during the scan")
                continue
            except OSError as exc:
                yield Skip(path, f"cannot stat file ({exc.strerror})")
                continue
            if not entry.is_file():
                continue
            if not _is_candidate(path, entry.name):
                continue
            yield FileEntry(path, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        stack.extend(reversed(subdirs))
