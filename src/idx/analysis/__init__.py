"""Analysis on numpy arrays and callables: projection, clustering, metrics, labels, robustness, plots.

Never imports duckdb, faiss, open_clip or idx.indexer: callers pass arrays in and store results.
"""
