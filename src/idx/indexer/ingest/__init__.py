"""Ingest: the `add` pipeline, from folders to rows in the catalog.

Plan a run (the walk against the catalog -> typed operations, `pipeline`), read and embed the new
content with an engine (`engines`: threads and processes here, or Ray), commit batch by batch in
the background (`committer`), and show the running job to other processes (`jobs`). The only area
that may use all the others.
"""
