"""The files behind the images: what an `add` run compares its walk with, and how it writes.

Rows under folders, content hashes already embedded, skipped files and their reasons; `apply`
writes one planned operation (indexer.operations). Call the writers inside a transaction.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from idx.indexer.operations import Add, Move, Operation, Row, SkipFile, Touch, Update
from idx.indexer.scan import Rules

if TYPE_CHECKING:
    from idx.indexer.catalog.db import Database

_ROW = "SELECT id, path, sha256, bytes, mtime_ns, etag FROM images"


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

    def known_content(self) -> dict[str, tuple[int, str, int, int, str]]:
        """sha256 -> (id, path, width, height, format) of the first image holding it."""
        out: dict[str, tuple[int, str, int, int, str]] = {}
        for sha, *rest in self.db.rows(
            "SELECT sha256, id, path, width, height, format FROM images ORDER BY id"
        ):
            out.setdefault(sha, tuple(rest))  # type: ignore[arg-type]
        return out

    def skips_under(self, roots: Sequence[str]) -> dict[str, tuple]:
        """path -> (reason, bytes, mtime_ns, ctime_ns, etag) of the files skipped under `roots`."""
        out: dict[str, tuple] = {}
        for root in roots:
            for r in self.db.rows(
                "SELECT path, reason, bytes, mtime_ns, ctime_ns, etag FROM skipped "
                "WHERE starts_with(path, ?)",
                [_prefix(root)],
            ):
                out[r[0]] = tuple(r[1:])
        return out

    def forget_skips(self, paths: Iterable[str]) -> None:
        for path in paths:
            self.db.rows("DELETE FROM skipped WHERE path = ?", [path])

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

    def apply(self, op: Operation) -> int | None:
        """Write one operation; the image id it created or changed the content of, else None."""
        if isinstance(op, SkipFile):
            s = op.skip
            self.db.rows(
                "INSERT OR REPLACE INTO skipped (path, root, reason, bytes, mtime_ns, ctime_ns, "
                "etag) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [s.path, op.root, s.reason, s.bytes, s.mtime_ns, s.ctime_ns, s.etag],
            )
            return None
        p, e = op.file, op.file.entry
        changed: int | None = None
        if isinstance(op, Touch):
            self.db.rows(
                "UPDATE images SET bytes = ?, mtime_ns = ?, etag = ? WHERE id = ?",
                [e.bytes, e.mtime_ns, e.etag, op.row.id],
            )
        elif isinstance(op, Move):
            self.db.rows(
                "UPDATE images SET path = ?, root = ?, bytes = ?, mtime_ns = ?, etag = ?, "
                "updated_at = current_timestamp WHERE id = ?",
                [e.path, op.root, e.bytes, e.mtime_ns, e.etag, op.row.id],
            )
        elif isinstance(op, Update):
            self.db.rows(
                "UPDATE images SET sha256 = ?, bytes = ?, mtime_ns = ?, etag = ?, width = ?, "
                "height = ?, format = ?, updated_at = current_timestamp WHERE id = ?",
                [p.sha256, e.bytes, e.mtime_ns, e.etag, p.width, p.height, p.format, op.row.id],
            )
            changed = op.row.id
        elif isinstance(op, Add):
            changed = int(
                self.db.value(
                    "INSERT INTO images (path, root, sha256, bytes, mtime_ns, etag, width, "
                    "height, format, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    [
                        e.path,
                        op.root,
                        p.sha256,
                        e.bytes,
                        e.mtime_ns,
                        e.etag,
                        p.width,
                        p.height,
                        p.format,
                        op.source,
                    ],
                )
            )
        self.db.rows("DELETE FROM skipped WHERE path = ?", [e.path])
        return changed


def _prefix(root: str) -> str:
    sep = "/" if "://" in root else os.sep  # object storage keys are '/'-separated
    return root.rstrip(sep) + sep
