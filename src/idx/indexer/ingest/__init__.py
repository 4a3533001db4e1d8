"""Ingest: the `add` pipeline, from folders to rows in the catalog.

One run (`pipeline`), with its settings as one value (`settings`), step by step: walk the folders
against the catalog (`walk`), read and embed the new content with an engine (`engines`: threads
and processes here, or Ray), plan each file's typed operation (`planner`), commit batch by batch
(`batches`) in the background (`committer`), and say what the run did (`report`); show the running
job to other processes (`jobs`). The only area that may use all the others.
"""
