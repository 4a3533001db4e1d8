"""The files behind the images: what an `add` run compares its walk with, and how it writes.

Rows under folders, content hashes already embedded, skipped files and their reasons; `apply`
writes a batch of planned operations (indexer.catalog.operations) in a few bulk statements. Call the
writers inside a transaction.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from idx.indexer.catalog.operations import Add, Move, Operation, Row, SkipFile, Touch, Update
from idx.indexer.files.scan import Rules, Skip

if TYPE_CHECKING:
    from idx.indexer.catalog.db import Database

_ROW = "SELECT id, path, sha256, bytes, mtime_ns, etag FROM images"


class KnownContent(NamedTuple):
    """Content the index has a vector for, as the first image holding it was read: a file with
    this content is not decoded again (a tuple: `add` reads one per indexed image)."""

    id: int  # 0 for content first seen in the running batch, not stored yet
    path: str
    width: int
    height: int
    format: str


class HashlessContent(NamedTuple):
    """Stored content without a perceptual hash, and a file that holds it."""

    sha256: str
    path: str


class Files:
    def __init__(self, db: Database):
        self.db = db

    def rows_under(self, roots: Sequence[str], source: str) -> dict[str, Row]:
        """path -> row of the `source` images under `roots`."""
        rows: dict[str, Row] = {}
        for root in roots:
            found = self.db.rows(
                f"{_ROW} WHERE starts_with(path, ?) AND source = ?", [_prefix(root), source]
            )
            rows.update((r[1], Row._make(r)) for r in found)
        return rows

    def rows_with_content(self, sha256: str, source: str) -> list[Row]:
        return [
            Row._make(r)
            for r in self.db.rows(f"{_ROW} WHERE sha256 = ? AND source = ?", [sha256, source])
        ]

    def known_content(self) -> dict[str, KnownContent]:
        """sha256 -> the first image holding it."""
        out: dict[str, KnownContent] = {}
        for sha, *rest in self.db.rows(
            "SELECT sha256, id, path, width, height, format FROM images ORDER BY id"
        ):
            out.setdefault(sha, KnownContent._make(rest))
        return out

    def unhashed_under(self, roots: Sequence[str], source: str) -> list[HashlessContent]:
        """Content of the `source` images under `roots` that has no perceptual hash yet (embedded
        before migration 0013), one image per content, in path order."""
        found: dict[str, HashlessContent] = {}
        for root in roots:
            for sha, path in self.db.rows(
                "SELECT i.sha256, min(i.path) FROM images i JOIN embeddings e USING (sha256) "
                "WHERE e.phash IS NULL AND starts_with(i.path, ?) AND i.source = ? "
                "GROUP BY i.sha256",
                [_prefix(root), source],
            ):
                found.setdefault(sha, HashlessContent(sha, path))
        return sorted(found.values(), key=lambda c: c.path)

    def skips_under(self, roots: Sequence[str]) -> dict[str, Skip]:
        """path -> the skip recorded for it, of the files skipped under `roots` (as `apply` was
        given it: reason, and the stat the file had then)."""
        out: dict[str, Skip] = {}
        for root in roots:
            for r in self.db.rows(
                "SELECT path, reason, bytes, mtime_ns, ctime_ns, etag, max_pixels FROM skipped "
                "WHERE starts_with(path, ?)",
                [_prefix(root)],
            ):
                out[r[0]] = Skip(*r)
        return out

    def forget_skips(self, paths: Iterable[str]) -> None:
        paths = list(paths)
        if paths:
            unskip = {"path": paths}
            with self.db.with_table("_idx_unskip", unskip) as view:
                self.db.rows(f"DELETE FROM skipped WHERE path IN (SELECT path FROM {view})")

    def rules(self, root: str) -> Rules | None:
        """The rules stored with a folder given to `add`, None for a folder never given."""
        found = self.db.rows("SELECT include_hidden, excludes FROM folders WHERE path = ?", [root])
        if not found:
            return None
        return Rules(bool(found[0][0]), tuple(json.loads(found[0][1])))

    def set_rules(self, root: str, rules: Rules) -> None:
        self.db.rows(
            "INSERT INTO folders (path, include_hidden, excludes) VALUES (?, ?, ?) ON CONFLICT "
            "DO UPDATE SET include_hidden = excluded.include_hidden, excludes = "
            "excluded.excludes, updated_at = now()",
            [root, rules.include_hidden, json.dumps(list(rules.excludes))],
        )

    def folders(self) -> dict[str, Rules]:
        """Every folder given to `add`, with its rules."""
        rows = self.db.rows("SELECT path, include_hidden, excludes FROM folders ORDER BY path")
        return {path: Rules(bool(h), tuple(json.loads(e))) for path, h, e in rows}

    def apply(self, ops: Sequence[Operation]) -> list[int]:
        """Write planned operations, a few statements for the lot whatever their number (one per
        kind; DuckDB spends about a millisecond a statement); the ids of the images they created
        or gave new content, in the order of `ops`."""
        of = _by_kind(ops)
        if of[SkipFile]:
            # one row a path, the last word kept (overlapping folders can skip a file twice)
            skips = list({op.skip.path: (op.skip, op.root) for op in of[SkipFile]}.values())
            self.db.insert_rows(
                "skipped",
                _columns(
                    ("path", "root", "reason", "bytes", "mtime_ns", "ctime_ns", "etag",
                     "max_pixels"),
                    [(s.path, root, s.reason, s.bytes, s.mtime_ns, s.ctime_ns, s.etag,
                      s.max_pixels) for s, root in skips],
                ),
                on_conflict="ON CONFLICT (path) DO UPDATE SET root = excluded.root, reason = "
                "excluded.reason, bytes = excluded.bytes, mtime_ns = excluded.mtime_ns, "
                "ctime_ns = excluded.ctime_ns, etag = excluded.etag, "
                "max_pixels = excluded.max_pixels",
            )  # fmt: skip
        stat = ("bytes", "mtime_ns", "etag")
        if of[Touch]:
            self.db.update_rows(
                "images",
                "id",
                _columns(("id", *stat), [(op.row.id, *_stat(op)) for op in of[Touch]]),
            )
        if of[Move]:
            rows = [(op.row.id, op.file.entry.path, op.root, *_stat(op)) for op in of[Move]]
            self.db.update_rows(
                "images", "id", _columns(("id", "path", "root", *stat), rows),
                also="updated_at = current_timestamp",
            )  # fmt: skip
        if of[Update]:
            rows = [(op.row.id, op.file.sha256, *_stat(op), *_shape(op)) for op in of[Update]]
            self.db.update_rows(
                "images", "id", _columns(("id", "sha256", *stat, *_SHAPE), rows),
                also="updated_at = current_timestamp",
            )  # fmt: skip
        added: dict[str, int] = {}
        if of[Add]:
            rows = [
                (op.file.entry.path, op.root, op.file.sha256, *_stat(op), *_shape(op), op.source)
                for op in of[Add]
            ]
            names = ("path", "root", "sha256", *stat, *_SHAPE, "source")
            added = dict(self.db.insert_rows("images", _columns(names, rows), returning="path, id"))
        self.forget_skips(op.file.entry.path for op in ops if not isinstance(op, SkipFile))
        return [
            added[op.file.entry.path] if isinstance(op, Add) else op.row.id
            for op in ops
            if isinstance(op, Add | Update)
        ]


def _prefix(root: str) -> str:
    sep = "/" if "://" in root else os.sep  # object storage keys are '/'-separated
    return root.rstrip(sep) + sep


_SHAPE = ("width", "height", "format")


def _stat(op: Touch | Move | Update | Add) -> tuple:
    e = op.file.entry
    return e.bytes, e.mtime_ns, e.etag


def _shape(op: Update | Add) -> tuple:
    return op.file.width, op.file.height, op.file.format


def _by_kind(ops: Sequence[Operation]) -> dict[type, list]:
    out: dict[type, list] = {kind: [] for kind in (Add, Update, Touch, Move, SkipFile)}
    for op in ops:
        out[type(op)].append(op)
    return out


def _columns(names: Sequence[str], rows: Sequence[tuple]) -> dict[str, list]:
    """Rows as named columns (the bulk writers' input)."""
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}
