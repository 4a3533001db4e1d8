"""`add`: incremental ingestion of folders into the catalog.

Stages: walk (stat only) -> plan (compare with the catalog) -> read+hash+decode (threads, in
order, bounded look-ahead) -> embed in batches -> commit each batch in one transaction.

Rules: an unchanged file (size, mtime) is not read; a file whose content hash is already known
keeps that vector (a moved file keeps its id, a copy gets a new id without a new embedding);
changed content is re-embedded under the same id; catalog rows under a walked folder whose file
is gone are removed at the end.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from idx.errors import UsageError
from idx.indexer import scan
from idx.indexer.catalog import Catalog
from idx.indexer.reader import Prepared, Reader
from idx.progress import Progress, ProgressEvent

log = logging.getLogger(__name__)


@dataclass
class AddReport:
    added: int = 0
    unchanged: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    skipped: int = 0
    embedded: int = 0
    reused: int = 0
    seconds: float = 0.0
    roots: list[str] = field(default_factory=list)
    skipped_files: list[tuple[str, str]] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "unchanged": self.unchanged,
            "updated": self.updated,
            "moved": self.moved,
            "removed": self.removed,
            "skipped": self.skipped,
            "embedded": self.embedded,
            "reused": self.reused,
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.images_per_s, 2),
            "roots": self.roots,
            "skipped_files": [{"path": p, "reason": r} for p, r in self.skipped_files],
        }


class _Row(NamedTuple):
    """A catalog row as the run needs it (a tuple: `add` reads thousands per run)."""

    id: int
    path: str
    sha256: str
    bytes: int
    mtime_ns: int


def _row(raw: tuple | None) -> _Row | None:
    return None if raw is None else _Row._make(raw)


class Ingest:
    """One `add` run. Needs the catalog; gets the encoder lazily (only if something is new)."""

    def __init__(
        self,
        catalog: Catalog,
        encoder_factory: Callable[[], Any],
        *,
        batch_size: int,
        workers: int | None = None,
        progress: Progress | None = None,
        on_skip: Callable[[str, str], None] | None = None,
        source: str = "files",
        exclude: Iterable[str] = (),
    ):
        self.catalog = catalog
        self.encoder_factory = encoder_factory
        self.reader: Reader | None = None
        self.batch_size = max(1, batch_size)
        self.workers = workers or min(4, (os.cpu_count() or 2) + 1)
        self.progress = progress or (lambda event: None)
        self.on_skip = on_skip or (lambda path, reason: None)
        self.source = source
        self.exclude = frozenset(os.path.abspath(p) for p in exclude)
        self.report = AddReport()
        self.changed_ids: list[int] = []  # ids whose vector is new or different
        self.removed_ids: list[int] = []
        self._moved_ids: set[int] = set()  # rows already given a new path in this run

    # -- plan -------------------------------------------------------------------------------

    def run(self, paths: Iterable[str | os.PathLike[str]]) -> AddReport:
        start = time.perf_counter()
        roots = []
        for p in paths:
            root = os.path.abspath(os.fspath(p))
            if not os.path.isdir(root):
                what = (
                    "is a file; give the folder that holds it"
                    if os.path.exists(root)
                    else "does not exist"
                )
                raise UsageError(f"cannot add {os.fspath(p)}: {what}")
            roots.append(root)
        self.report.roots = roots
        existing = self._rows_under(roots)
        prev_skips = self._skips_under(roots)
        seen: set[str] = set()
        walk_skips: list[scan.Skip] = []
        todo: list[scan.FileEntry] = []
        still_skipped: list[tuple[str, str]] = []
        next_report = 2000
        # One pass over the walk: this loop is the whole cost of re-adding an unchanged tree.
        for root in roots:
            for files, skips in scan.walk(root, self.exclude):
                walk_skips += skips
                for item in files:
                    path = item.path
                    if path in seen:  # overlapping roots
                        continue
                    seen.add(path)
                    row = existing.get(path)
                    if row is not None and row[3] == item.bytes and row[4] == item.mtime_ns:
                        self.report.unchanged += 1
                        continue
                    prev = prev_skips.get(path)
                    if row is None and prev is not None and prev[1:] == item[1:]:
                        still_skipped.append((path, prev[0]))
                        continue
                    todo.append(item)
                if len(seen) >= next_report:
                    self.progress(ProgressEvent("scan", len(seen), 0))
                    next_report = len(seen) + 2000
        todo.sort()  # new images get ids in path order
        vanished = {p: _Row._make(existing[p]) for p in existing.keys() - seen}
        for skip in walk_skips:
            self._skip(skip.path, skip.reason)
        for path, reason in still_skipped:
            self._skip(path, reason)
        with self.catalog.transaction():
            self._record_skips(walk_skips, roots)
            walked_skips = {s.path for s in walk_skips}
            stale = [p for p in prev_skips if p not in seen and p not in walked_skips]
            self._forget_skips(stale)
        self._ingest(todo, vanished, existing)
        self._sweep(vanished)
        self.report.seconds = time.perf_counter() - start
        self.progress(ProgressEvent("done", len(todo), len(todo)))
        return self.report

    def _rows_under(self, roots: list[str]) -> dict[str, tuple]:
        """path -> raw (id, path, sha256, bytes, mtime_ns) of the catalog rows under `roots`."""
        rows: dict[str, tuple] = {}
        for root in roots:
            prefix = root.rstrip(os.sep) + os.sep
            result = self.catalog.con.execute(
                "SELECT id, path, sha256, bytes, mtime_ns FROM images "
                "WHERE starts_with(path, ?) AND source = ?",
                [prefix, self.source],
            ).fetchall()
            rows.update((r[1], r) for r in result)
        return rows

    def _skips_under(self, roots: list[str]) -> dict[str, tuple]:
        out: dict[str, tuple] = {}
        for root in roots:
            prefix = root.rstrip(os.sep) + os.sep
            for r in self.catalog.con.execute(
                "SELECT path, reason, bytes, mtime_ns, ctime_ns FROM skipped WHERE starts_with(path, ?)",
                [prefix],
            ).fetchall():
                out[r[0]] = tuple(r[1:])
        return out

    # -- skip bookkeeping -------------------------------------------------------------------

    def _skip(self, path: str, reason: str) -> None:
        self.report.skipped += 1
        self.report.skipped_files.append((path, reason))
        self.on_skip(path, reason)

    def _record_skips(self, skips: Iterable[scan.Skip], roots: list[str]) -> None:
        for s in skips:
            root = next((r for r in roots if s.path.startswith(r)), roots[0] if roots else "")
            self.catalog.con.execute(
                "INSERT OR REPLACE INTO skipped (path, root, reason, bytes, mtime_ns, ctime_ns) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [s.path, root, s.reason, s.bytes, s.mtime_ns, s.ctime_ns],
            )

    def _forget_skips(self, paths: Iterable[str]) -> None:
        for p in paths:
            self.catalog.con.execute("DELETE FROM skipped WHERE path = ?", [p])

    # -- read, hash, decode -----------------------------------------------------------------

    # -- ingest -----------------------------------------------------------------------------

    def _ingest(
        self,
        todo: list[scan.FileEntry],
        vanished: dict[str, _Row],
        existing_paths: dict[str, tuple],
    ) -> None:
        if not todo:
            return
        known_rows = self._rows_by_sha()
        # Workers skip decoding only content the catalog had before this run.
        self.reader = Reader(
            self.encoder_factory,
            frozenset(known_rows),
            workers=self.workers,
            lookahead=2 * self.batch_size,
        )
        vanished_by_sha: dict[str, list[_Row]] = {}
        for row in vanished.values():
            vanished_by_sha.setdefault(row.sha256, []).append(row)
        batch: list[Prepared] = []
        waiting: list[Prepared] = []  # files whose content equals something in `batch`
        ops: list[tuple[str, Prepared | None, Any]] = []
        done = 0
        total = len(todo)
        self.progress(ProgressEvent("embed", 0, total))
        for result in self.reader.stream(todo):
            done += 1
            if isinstance(result, scan.Skip):
                self._skip(result.path, result.reason)
                ops.append(("skip", None, result))
                gone = _row(existing_paths.get(result.path))
                if gone is not None:  # an indexed file that is no longer a readable image
                    vanished[gone.path] = gone
            elif result.sha256 in known_rows:
                ops.append(
                    self._plan_known(
                        result,
                        _row(existing_paths.get(result.entry.path)),
                        known_rows,
                        vanished_by_sha,
                        vanished,
                    )
                )
            elif any(p.sha256 == result.sha256 for p in batch):
                waiting.append(result)
            else:
                batch.append(result)
            if len(batch) >= self.batch_size or len(ops) >= 4 * self.batch_size:
                self._commit(batch, waiting, ops, existing_paths, known_rows)
                batch, waiting, ops = [], [], []
            self.progress(ProgressEvent("embed", done, total))
        self._commit(batch, waiting, ops, existing_paths, known_rows)

    def _rows_by_sha(self) -> dict[str, tuple[int, str, int, int, str]]:
        out: dict[str, tuple[int, str, int, int, str]] = {}
        for sha, id_, path, w, h, fmt in self.catalog.con.execute(
            "SELECT sha256, id, path, width, height, format FROM images ORDER BY id"
        ).fetchall():
            out.setdefault(sha, (id_, path, w, h, fmt))
        return out

    def _plan_known(
        self, p: Prepared, old: _Row | None, known_rows, vanished_by_sha, vanished
    ) -> tuple[str, Prepared, Any]:
        """A file whose content the index already has a vector for: no embedding needed."""
        _, src_path, w, h, fmt = known_rows[p.sha256]
        p.width, p.height, p.format = w, h, fmt
        if old is not None:
            return ("touch" if old.sha256 == p.sha256 else "update", p, old)
        moved_from = vanished_by_sha.get(p.sha256)
        if moved_from:
            row = moved_from.pop()
            vanished.pop(row.path, None)
            self._moved_ids.add(row.id)
            return ("move", p, row)
        # Moved in from a folder that is not being walked now: its old file is gone.
        src = self.catalog.con.execute(
            "SELECT id, path, sha256, bytes, mtime_ns FROM images WHERE sha256 = ? AND source = ?",
            [p.sha256, self.source],
        ).fetchall()
        for r in src:
            if r[0] not in self._moved_ids and not os.path.exists(r[1]):
                vanished.pop(r[1], None)
                self._moved_ids.add(r[0])
                return ("move", p, _Row._make(r))
        return ("copy", p, None)

    def _commit(self, batch, waiting, ops, existing_paths, known_rows) -> None:
        if not batch and not waiting and not ops:
            return
        vectors = None
        if batch:
            import torch

            vectors = self.reader.get_encoder().encode_images(
                torch.stack([p.tensor for p in batch])
            )
            for p in batch:
                p.tensor = None
        with self.catalog.transaction():
            if batch:
                self.catalog.images.insert_embeddings([p.sha256 for p in batch], vectors)
                self.report.embedded += len(batch)
                for p in batch:
                    known_rows.setdefault(p.sha256, (0, p.entry.path, p.width, p.height, p.format))
                    self._write_new_content(p, _row(existing_paths.get(p.entry.path)))
            for p in waiting:
                src = known_rows[p.sha256]
                p.width, p.height, p.format = src[2], src[3], src[4]
                self._write_new_content(p, _row(existing_paths.get(p.entry.path)), reused=True)
            for op, p, row in ops:
                self._apply(op, p, row)
            self.catalog.bump_generation()

    def _write_new_content(self, p: Prepared, old: _Row | None, reused: bool = False) -> None:
        e = p.entry
        if old is not None:
            self.catalog.con.execute(
                "UPDATE images SET sha256 = ?, bytes = ?, mtime_ns = ?, width = ?, height = ?, "
                "format = ?, updated_at = current_timestamp WHERE id = ?",
                [p.sha256, e.bytes, e.mtime_ns, p.width, p.height, p.format, old.id],
            )
            self.report.updated += 1
            self.changed_ids.append(old.id)
        else:
            new_id = self.catalog.con.execute(
                "INSERT INTO images (path, root, sha256, bytes, mtime_ns, width, height, format, source) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [
                    e.path,
                    self._root_of(e.path),
                    p.sha256,
                    e.bytes,
                    e.mtime_ns,
                    p.width,
                    p.height,
                    p.format,
                    self.source,
                ],
            ).fetchall()[0][0]
            self.report.added += 1
            self.changed_ids.append(new_id)
        if reused:
            self.report.reused += 1
        self.catalog.con.execute("DELETE FROM skipped WHERE path = ?", [e.path])

    def _apply(self, op: str, p: Prepared | None, row: Any) -> None:
        if op == "skip":
            s: scan.Skip = row
            self.catalog.con.execute(
                "INSERT OR REPLACE INTO skipped (path, root, reason, bytes, mtime_ns, ctime_ns) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [s.path, self._root_of(s.path), s.reason, s.bytes, s.mtime_ns, s.ctime_ns],
            )
            return
        assert p is not None
        e = p.entry
        if op == "touch":
            self.catalog.con.execute(
                "UPDATE images SET bytes = ?, mtime_ns = ? WHERE id = ?",
                [e.bytes, e.mtime_ns, row.id],
            )
            self.report.unchanged += 1
        elif op == "update":
            self._write_new_content(p, row, reused=True)
        elif op == "move":
            self.catalog.con.execute(
                "UPDATE images SET path = ?, root = ?, bytes = ?, mtime_ns = ?, "
                "updated_at = current_timestamp WHERE id = ?",
                [e.path, self._root_of(e.path), e.bytes, e.mtime_ns, row.id],
            )
            self.report.moved += 1
        elif op == "copy":
            self._write_new_content(p, None, reused=True)
        self.catalog.con.execute("DELETE FROM skipped WHERE path = ?", [e.path])

    def _root_of(self, path: str) -> str:
        best = ""
        for r in self.report.roots:
            if path.startswith(r.rstrip(os.sep) + os.sep) and len(r) > len(best):
                best = r
        return best or os.path.dirname(path)

    # -- sweep ------------------------------------------------------------------------------

    def _sweep(self, vanished: dict[str, _Row]) -> None:
        """Remove rows whose file is gone, and vectors no image uses any more."""
        if not vanished and not self.report.updated:
            return
        ids = [r.id for r in vanished.values()]
        with self.catalog.transaction():
            if ids:
                self.catalog.images.delete(ids)
            else:  # content changed in place: the old vectors are unused now
                self.catalog.images.delete_unused_embeddings()
        self.report.removed += len(ids)
        self.removed_ids.extend(ids)
