"""Storage and model side of idx: scan, decode, encode, catalog (DuckDB), vectors (FAISS)."""
