"""The walk of one `add` run, compared with the catalog in one pass: the files that are unchanged
(never read), those to read, those still skipped for the same reason, and the rows whose file is
gone. This loop is the whole cost of re-adding an unchanged tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from idx.indexer.catalog import Catalog
from idx.indexer.catalog.operations import Row
from idx.indexer.files import scan, storage
from idx.progress import Progress, ProgressEvent

#: a progress event every this many files walked
REPORT_EVERY = 2000


@dataclass
class Walk:
    #: catalog rows under the walked folders, by path
    existing: dict[str, Row]
    #: files to read, in path order (new images get ids in it)
    todo: list[scan.FileEntry] = field(default_factory=list)
    #: rows whose file the walk did not find
    vanished: dict[str, Row] = field(default_factory=dict)
    #: files the walk itself skipped (not a file idx reads, unreadable folders)
    skips: list[scan.Skip] = field(default_factory=list)
    #: (path, reason) of files skipped before and unchanged since: not tried again
    still_skipped: list[tuple[str, str]] = field(default_factory=list)
    #: recorded skips of files no longer there (or now skipped by the walk itself)
    forgotten: list[str] = field(default_factory=list)
    unchanged: int = 0
    #: the roots under which the walk found nothing: no image file, nothing it skipped
    empty: list[str] = field(default_factory=list)


def walk(
    catalog: Catalog,
    roots: Sequence[str],
    rules: dict[str, scan.Rules],
    *,
    exclude: frozenset[str],
    source: str,
    max_pixels: int,
    progress: Progress,
) -> Walk:
    """Walk `roots` (stat only) against the catalog's rows of `source` under them; the catalog is
    let go while the tree is walked, so that readers get it meanwhile. A file skipped before under
    another IDX_MAX_PIXELS is tried again."""
    found = Walk(catalog.files.rows_under(roots, source))
    prev_skips = catalog.files.skips_under(roots)
    catalog.release()
    seen: set[str] = set()
    next_report = REPORT_EVERY
    for root in roots:
        candidates = 0
        for files, skips in storage.walk(root, exclude, rules[root]):
            found.skips += skips
            candidates += len(files) + len(skips)
            for item in files:
                path = item.path
                if path in seen:  # overlapping roots
                    continue
                seen.add(path)
                row = found.existing.get(path)
                if row is not None and item.same_as(row.bytes, row.mtime_ns, row.etag):
                    found.unchanged += 1
                    continue
                prev = prev_skips.get(path)
                if (
                    row is None
                    and prev is not None
                    and item.same_as(prev.bytes, prev.mtime_ns, prev.etag)
                    and (item.etag is not None or prev.ctime_ns == item.ctime_ns)
                    and prev.max_pixels in (None, max_pixels)
                ):
                    found.still_skipped.append((path, prev.reason))
                    continue
                found.todo.append(item)
            if len(seen) >= next_report:
                progress(ProgressEvent("scan", len(seen), 0))
                next_report = len(seen) + REPORT_EVERY
        if not candidates:
            found.empty.append(root)
    found.todo.sort()
    found.vanished = {p: found.existing[p] for p in found.existing.keys() - seen}
    walked_skips = {s.path for s in found.skips}
    found.forgotten = [p for p in prev_skips if p not in seen and p not in walked_skips]
    return found
