"""Walk folders for image files: stat only, no reads except to sniff files with foreign names.

Hidden files and folders (names starting with '.') are left out unless the folder's rules take
them; --exclude patterns leave out paths as a .gitignore file's lines would, relative to the
folder given (`thumbnails/` or `**/thumbnails` at any depth, `/raw` at its top only).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from stat import S_ISREG
from typing import TYPE_CHECKING, NamedTuple

from idx.indexer.files import formats

if TYPE_CHECKING:  # imported by the walk that needs it, not by every reader of the catalog
    import pathspec

#: Folders that hold tool metadata, never a user's photos.
IGNORED_DIRS = frozenset({".git", ".hg", ".svn", "@eaDir", "__MACOSX", ".Trash", ".idx"})


class FileEntry(NamedTuple):
    """A candidate file and its stat (a tuple: one is made per file on every walk). `etag` is set
    for an object on object storage (indexer.files.storage), whose change key is size + ETag."""

    path: str
    bytes: int
    mtime_ns: int
    ctime_ns: int
    etag: str | None = None

    def same_as(self, bytes_: int | None, mtime_ns: int | None, etag: str | None) -> bool:
        """Whether a stored (size, mtime, ETag) says the file is unchanged since it was read."""
        if self.etag is not None:
            return bytes_ == self.bytes and etag == self.etag
        return bytes_ == self.bytes and mtime_ns == self.mtime_ns


@dataclass(frozen=True)
class Skip:
    path: str
    reason: str
    bytes: int | None = None
    mtime_ns: int | None = None
    ctime_ns: int | None = None
    etag: str | None = None
    max_pixels: int | None = None  # the limit a file with too many pixels was judged under


@dataclass(frozen=True)
class Rules:
    """What a walk of one folder leaves out, stored with the folder (catalog table folders)."""

    include_hidden: bool = False
    excludes: tuple[str, ...] = ()

    def excluded(self, relative: str, name: str, is_dir: bool) -> bool:
        """Whether the --exclude patterns leave out the path (relative to the folder given,
        '/'-separated), matched as git matches .gitignore lines (pathspec's GitIgnoreSpec, so
        that the patterns people know from git mean here what they mean there); hidden names
        are checked apart, in the walk's loop."""
        return self._spec.match_file(relative + "/" if is_dir else relative)

    @functools.cached_property
    def _spec(self) -> pathspec.GitIgnoreSpec:
        return exclude_spec(self.excludes)

    def describe(self) -> str:
        hidden = "hidden files taken" if self.include_hidden else "hidden files left out"
        return hidden + "".join(f"; --exclude {p}" for p in self.excludes)


def exclude_spec(patterns: tuple[str, ...] | list[str]) -> pathspec.GitIgnoreSpec:
    """The --exclude patterns as one .gitignore-style matcher; UsageError for one git would not
    read, naming it."""
    import pathspec

    from idx.errors import UsageError

    for pattern in patterns:
        try:
            pathspec.GitIgnoreSpec.from_lines([pattern])
        except (ValueError, TypeError) as exc:
            raise UsageError(
                f"--exclude {pattern!r} is not a pattern as .gitignore writes them ({exc}); e.g. "
                "'thumbnails/' or '**/thumbnails' (a folder at any depth), '*.tmp.jpg', '/raw'"
            ) from None
    return pathspec.GitIgnoreSpec.from_lines(list(patterns))


def _has_image_content(path: str) -> bool:
    # A file with another name is taken when its content is an image (e.g. an extension-less
    # download). Reading 16 bytes costs little next to a directory entry.
    try:
        with open(path, "rb") as fh:
            return formats.sniff(fh.read(16)) is not None
    except OSError:
        return False


def walk(
    root: str, exclude: frozenset[str] = frozenset(), rules: Rules = Rules()
) -> Iterator[tuple[list[FileEntry], list[Skip]]]:
    """Yield, folder by folder, the image candidates under root and what had to be skipped
    (recursively, following links without looping). `exclude` holds absolute folders never
    walked (the index's own); `rules` what the user left out.

    Files come in directory order; callers sort what they need sorted. This loop runs once per
    file on every `add`, so it does no more than the stat a bare directory walk needs.
    """
    image_exts = formats.image_extensions()
    base = len(root.rstrip(os.sep)) + 1
    skip_hidden, excludes = not rules.include_hidden, bool(rules.excludes)
    seen_dirs: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        entries = _entries(folder, seen_dirs)
        if isinstance(entries, Skip):
            yield [], [entries]
            continue
        if entries is None:  # walked already, reached again by another path
            continue
        files: list[FileEntry] = []
        skips: list[Skip] = []
        subdirs = []
        for entry in entries:
            name = entry.name
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if (skip_hidden and name[0] == ".") or (
                excludes and rules.excluded(_relative(entry.path, base), name, is_dir)
            ):
                continue
            if is_dir:
                if name not in IGNORED_DIRS and os.path.abspath(entry.path) not in exclude:
                    subdirs.append(entry.path)
                continue
            dot = name.rfind(".")
            by_name = dot > 0 and name[dot:].lower() in image_exts
            try:
                st = entry.stat()
            except FileNotFoundError:
                if entry.is_symlink():
                    skips.append(Skip(entry.path, "broken symbolic link; fix or remove the link"))
                else:
                    skips.append(Skip(entry.path, "file vanished during the scan"))
                continue
            except OSError as exc:
                skips.append(Skip(entry.path, f"cannot stat file ({exc.strerror})"))
                continue
            if not S_ISREG(st.st_mode) or not (by_name or _has_image_content(entry.path)):
                continue
            files.append(FileEntry(entry.path, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        yield files, skips
        subdirs.sort(reverse=True)
        stack.extend(subdirs)


def _entries(folder: str, seen_dirs: set[tuple[int, int]]) -> list[os.DirEntry[str]] | Skip | None:
    """The folder's entries, its (device, inode) added to `seen_dirs`; a Skip when it cannot be
    read or listed, or is a link back to a folder already walked; None when it was walked
    already (reached again by another path)."""
    try:
        st = os.stat(folder)
    except OSError as exc:
        return Skip(folder, f"folder cannot be read ({exc.strerror})")
    key = (st.st_dev, st.st_ino)
    if key in seen_dirs:
        if os.path.islink(folder):
            return Skip(folder, "symbolic link loop (folder already scanned); not followed")
        return None
    seen_dirs.add(key)
    try:
        return list(os.scandir(folder))
    except PermissionError:
        reason = "permission denied on folder; make it readable (chmod +rx) and run add again"
        return Skip(folder, reason)
    except OSError as exc:
        return Skip(folder, f"folder cannot be listed ({exc.strerror})")


def _relative(path: str, base: int) -> str:
    rel = path[base:]
    return rel if os.sep == "/" else rel.replace(os.sep, "/")
