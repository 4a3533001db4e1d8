"""The image_info view (migration 0008, one row per image): which images a filter keeps, one
image's details, and the values people filter by (labels, clusters, folders)."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, NamedTuple

import duckdb
import numpy as np

from idx import config
from idx.errors import NotFoundError, UsageError
from idx.indexer.catalog.user_sql import UserSQL, one_statement, time_limit, user_error

if TYPE_CHECKING:
    from idx.indexer.catalog.db import Database

_LATEST_CLUSTER_RUN = "(SELECT max(id) FROM cluster_runs)"


class LabelCount(NamedTuple):
    name: str  # the display name
    key: str  # the label_name
    images: int  # indexed images with it as a positive label


class ClusterSize(NamedTuple):
    cluster: int
    images: int


class FolderCount(NamedTuple):
    folder: str
    images: int  # directly in it, not below


class ImageInfo:
    def __init__(self, db: Database, user_sql: UserSQL):
        self.db, self.user_sql = db, user_sql

    def matching_ids(
        self,
        *,
        where: str | None = None,
        label: str | None = None,
        cluster: int | None = None,
        folder: str | None = None,
        timeout: float | None = None,
    ) -> np.ndarray:
        """Sorted ids of the images that pass every condition given: `where` (an SQL condition
        over image_info), `label` (a positive label, by display name or key, any case),
        `cluster` (in the latest clustering run), `folder` (the file lies in it or below).

        UsageError for SQL that fails (with DuckDB's reason) or runs past `timeout` seconds;
        NotFoundError for a label or cluster the index does not hold.
        """
        parts: list[str] = []
        params: list[Any] = []
        if label is not None:
            self._check_label(label)
            parts.append(
                "id IN (SELECT image_id FROM labels WHERE confidence > 0 AND (lower(label_name) "
                "= lower(?) OR lower(coalesce(display_name, label_name)) = lower(?)))"
            )
            params += [label, label]
        if cluster is not None:
            parts.append("id IN (SELECT image_id FROM clusters WHERE run_id = ? AND cluster = ?)")
            params += [self._check_cluster(cluster), int(cluster)]
        if folder is not None:
            parts.append("starts_with(path, ?)")
            params.append(folder.rstrip("/") + "/")
        source = "images"
        if where is not None:
            if not where.strip():
                raise UsageError('where is empty; give an SQL condition such as "size > 100000"')
            source = "image_info"
            parts.append(f"({where}\n)")
        if not parts:
            raise UsageError("no filter given: use where, label, cluster or folder")
        sql = f"SELECT id FROM {source} WHERE {' AND '.join(parts)} ORDER BY id"
        if where is None:
            table = self.db.arrow(sql, params)
        else:  # people's SQL: on a connection of its own, under the time limit
            one_statement(self.db.con, sql, f"where {where!r}")
            try:
                with self.user_sql.cursor() as cur, time_limit(cur, timeout, f"where {where!r}"):
                    table = cur.sql(sql, params=params or None).to_arrow_table()
            except duckdb.Error as exc:
                raise user_error(exc, f"bad where {where!r}") from None
        return table.column(0).to_numpy().astype(np.int64, copy=False)

    def _check_label(self, label: str) -> None:
        found = self.db.value(
            "SELECT 1 FROM labels WHERE confidence > 0 AND (lower(label_name) = lower(?) OR "
            "lower(coalesce(display_name, label_name)) = lower(?)) LIMIT 1",
            [label, label],
        )
        if found:
            return
        names = [
            r[0]
            for r in self.db.rows(
                "SELECT DISTINCT coalesce(display_name, label_name) FROM labels WHERE confidence > 0"
            )
        ]
        if not names:
            raise NotFoundError(
                f"no image has label {label!r}: the index has no labels yet; import some with "
                f"`{config.command(self.db.index_dir, 'labels', 'import')}`"
            )
        close = difflib.get_close_matches(label, names, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        raise NotFoundError(
            f"no image has label {label!r}; {hint}list the labels with "
            f"`{config.command(self.db.index_dir, 'labels', 'list')}`"
        )

    def _check_cluster(self, cluster: int) -> int:
        run = self.db.rows(f"SELECT id, k FROM cluster_runs WHERE id = {_LATEST_CLUSTER_RUN}")
        if not run:
            make = config.command(self.db.index_dir, "cluster", "--k", "8")
            raise NotFoundError(f"the index has no clustering yet; run `{make}` first")
        run_id, k = run[0]
        if k is not None and not 0 <= int(cluster) < int(k):
            raise UsageError(
                f"cluster {cluster} does not exist: the latest clustering (run {run_id}) has "
                f"clusters 0 to {int(k) - 1}"
            )
        return int(run_id)

    def details(self, image_id: int) -> dict[str, Any] | None:
        """image_info's row for one image as a dict, None when the index does not hold it."""
        columns, rows = self.db.query("SELECT * FROM image_info WHERE id = ?", [int(image_id)])
        return dict(zip(columns, rows[0])) if rows else None

    def label_counts(self, limit: int = 2000) -> list[LabelCount]:
        """The most frequent positive labels of indexed images, most images first."""
        rows = self.db.rows(
            "SELECT coalesce(max(display_name), label_name), label_name, count(DISTINCT image_id) "
            "FROM labels WHERE confidence > 0 AND image_id IN (SELECT id FROM images) "
            "GROUP BY label_name ORDER BY 3 DESC, 1 LIMIT ?",
            [limit],
        )
        return [LabelCount(str(d), str(key), int(n)) for d, key, n in rows]

    def cluster_sizes(self) -> dict[str, Any] | None:
        """The latest clustering run: {run, k, sizes: [ClusterSize]}, None when none."""
        run = self.db.rows(f"SELECT id, k FROM cluster_runs WHERE id = {_LATEST_CLUSTER_RUN}")
        if not run:
            return None
        rows = self.db.rows(
            "SELECT cluster, count(*) FROM clusters WHERE run_id = ? GROUP BY 1 ORDER BY 1",
            [run[0][0]],
        )
        sizes = [ClusterSize(int(c), int(n)) for c, n in rows]
        return {"run": int(run[0][0]), "k": run[0][1], "sizes": sizes}

    def folder_counts(self, limit: int = 500) -> list[FolderCount]:
        """The folders holding the most images, most images first."""
        rows = self.db.rows(
            "SELECT parse_dirpath(path) AS folder, count(*) FROM images GROUP BY 1 "
            "ORDER BY 2 DESC, 1 LIMIT ?",
            [limit],
        )
        return [FolderCount(str(f), int(n)) for f, n in rows]

    def labels_fingerprint(self) -> tuple[int, int]:
        """Changes when any label row does (an import, a removal): for caches of label views."""
        count, total = self.db.rows(
            "SELECT count(*), coalesce(sum(hash(image_id, label_name, source, confidence)), 0) "
            "FROM labels"
        )[0]
        return int(count), int(total)
