"""The storage and model side of idx, as areas; `index.py` (`Index`) is the front door.

`files` reads image files, `model` turns images and texts into vectors, `vectors` keeps the FAISS
side, `catalog` is the DuckDB source of truth (and applies add's typed operations), `ingest` is the
add pipeline that uses them all. `ingest` may import model, vectors, files and catalog; none of
those imports `ingest` or the front door (`index.py`, `export.py`, `status.py`).
"""
