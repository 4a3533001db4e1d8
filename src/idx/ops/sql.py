"""People's SQL over the catalog (`idx sql`, `/api/sql`), with functions that know the index's
vectors: text_embedding('a red apple'), image_embedding(id) and the image_vectors view (see
idx.indexer.catalog.user_sql).

>>> with Index(read_only=True) as index:
...     result = run_sql(index, "SELECT path, array_cosine_similarity(v.vector, "
...         "text_embedding('a red apple')) AS score FROM image_info JOIN image_vectors v "
...         "USING (id) ORDER BY score DESC LIMIT 5")
>>> result.columns, len(result.rows)
(['path', 'score'], 5)
"""

from __future__ import annotations

import numpy as np

from idx.errors import IdxError
from idx.indexer.catalog.user_sql import Result, timeout_message
from idx.indexer.index import Index
from idx.indexer.model.identity import ModelIdentity

__all__ = ["Result", "enable_vector_sql", "run_sql", "timeout_message"]


def enable_vector_sql(index: Index) -> None:
    """Make the vector functions exist on the index's connections. The text tower or the model
    loads on the first text_embedding call, not before."""
    ident = index.stored_identity()
    if ident is None or not ident.embed_dim:
        return  # nothing indexed yet: no model and no vectors to compare with
    try:
        identity: ModelIdentity | IdxError = index.identity()
    except IdxError as exc:  # e.g. IDX_MODEL names another model: only text_embedding fails
        identity = exc

    def text_fn(text: str) -> np.ndarray:
        # Runs inside a DuckDB query: it must not use the catalog's connection. With the
        # identity resolved above, encoding texts (tower or model) needs none.
        if isinstance(identity, IdxError):
            raise identity
        return index.texts.encode([text])[0]

    index.catalog.user_sql.register_vector_functions(text_fn, int(ident.embed_dim))


def run_sql(
    index: Index,
    query: str,
    *,
    max_rows: int | None = None,
    timeout: float | None = None,
    max_bytes: int | None = None,
) -> Result:
    """One read-only statement (see idx.indexer.catalog.user_sql for what is allowed): its
    columns, at most `max_rows` rows and about `max_bytes`, and which cap cut them, if any.
    Errors, refused statements and a time-out are UsageError with the reason."""
    if not index.catalog.user_sql.has_vector_functions:
        enable_vector_sql(index)
    return index.catalog.user_sql.rows(
        query, max_rows=max_rows, timeout=timeout, max_bytes=max_bytes
    )
