"""Files: find image files and turn them into bytes and pixels.

Walk and stat folders or object storage (`scan`, `storage`: local paths or s3://bucket/prefix),
know which formats are images (`formats`), read and hash one file and, for new content, decode and
preprocess it (`reader`, `decode`). A bad file becomes a `scan.Skip` with its reason, never an
error. Knows nothing of models, vectors, the catalog or the add pipeline.
"""
