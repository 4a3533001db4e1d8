"""Which operation stores each file an engine prepared, decided against the catalog and the walk.

Content the index already has a vector for keeps it: the same file again is a Touch, changed
content an Update that reuses the vector, a file whose row vanished elsewhere a Move (it keeps its
id). New content is an Add, or an Update of the row at its path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from idx.indexer.catalog.files import Files, KnownContent
from idx.indexer.catalog.operations import Add, Move, Operation, Row, SkipFile, Touch, Update
from idx.indexer.files import scan, storage
from idx.indexer.files.reader import Prepared


def root_of(roots: Sequence[str], path: str) -> str:
    """The walked folder `path` is under (the deepest), else its own folder."""
    best = ""
    for r in roots:
        if path.startswith(r.rstrip(os.sep) + os.sep) and len(r) > len(best):
            best = r
    return best or os.path.dirname(path)


class Planner:
    """The plan of one run. `existing` and `vanished` are the walk's (vanished rows a move
    reclaims leave it; an indexed file that no longer reads as an image joins it); `known` is the
    catalog's content (sha256 -> (id, path, width, height, format)), to which new content is added
    as it is planned. `wait` is called before the catalog is asked (the commit thread's meanwhile).
    """

    def __init__(
        self,
        files: Files,
        source: str,
        roots: Sequence[str],
        existing: dict[str, Row],
        vanished: dict[str, Row],
        known: dict[str, KnownContent],
        wait: Callable[[], None],
    ):
        self.files, self.source, self.roots, self.wait = files, source, roots, wait
        self.existing, self.vanished, self.known = existing, vanished, known
        self.vanished_by_sha: dict[str, list[Row]] = {}
        for row in self.vanished.values():
            self.vanished_by_sha.setdefault(row.sha256, []).append(row)
        self.moved_ids: set[int] = set()  # rows already given a new path in this run

    def skipped(self, skip: scan.Skip) -> Operation:
        """A file the engine could not read as an image; its row, if it had one, goes."""
        gone = self.existing.get(skip.path)
        if gone is not None:
            self.vanished[gone.path] = gone
        return SkipFile(skip, root_of(self.roots, skip.path))

    def known_content(self, p: Prepared) -> Operation:
        """A file whose content the index already has a vector for: no embedding needed."""
        _same_shape(p, self.known[p.sha256])
        old = self.existing.get(p.entry.path)
        if old is not None:
            return Touch(p, old) if old.sha256 == p.sha256 else Update(p, old, reused=True)
        moved_from = self.vanished_by_sha.get(p.sha256)
        if moved_from:
            return self._move(p, moved_from.pop())
        # Moved in from a folder that is not being walked now: its old file is gone.
        self.wait()  # the catalog is the commit thread's while it commits
        for row in self.files.rows_with_content(p.sha256, self.source):
            if row.id not in self.moved_ids and not storage.exists(row.path):
                return self._move(p, row)
        return self._store(p, reused=True)

    def new_content(self, p: Prepared) -> Operation:
        """New content, embedded in this run; a copy of it later in the run reuses its vector."""
        self.known.setdefault(p.sha256, KnownContent(0, p.entry.path, p.width, p.height, p.format))
        return self._store(p, reused=False)

    def copy_in_batch(self, p: Prepared) -> Operation:
        """A copy of content embedded in the same batch: it reuses that vector."""
        _same_shape(p, self.known[p.sha256])
        return self._store(p, reused=True)

    def _move(self, p: Prepared, row: Row) -> Operation:
        self.vanished.pop(row.path, None)
        self.moved_ids.add(row.id)
        return Move(p, row, root_of(self.roots, p.entry.path))

    def _store(self, p: Prepared, reused: bool) -> Operation:
        existing = self.existing.get(p.entry.path)
        if existing is not None:
            return Update(p, existing, reused=reused)
        return Add(p, root_of(self.roots, p.entry.path), self.source, reused=reused)


def _same_shape(p: Prepared, known: KnownContent) -> None:
    """A file not decoded (its content was known) takes the shape recorded for that content."""
    p.width, p.height, p.format = known.width, known.height, known.format
