"""Vectors: the FAISS side of an index, derived from the catalog and rebuilt from it.

The FAISS file and its types (`store`: flat, HNSW, IVF-PQ; `ivfpq`, `shards` and `exact_rows` for
the big ones), the file brought to the catalog's generation after a write or rebuilt (`sync`), the
copy a long-lived reader holds and catches up (`live`), FAISS k-means for analysis (`kmeans`), and
near pairs (`pairs`). Takes arrays, the catalog's generation and callables over its vectors in and
gives arrays out: never imports the catalog, the model, the add pipeline or the front door.
"""
