"""Open Images subsets: `idx openimages fetch` picks images by class from Google's human-verified
labels, downloads them with their annotation files, and writes label files `idx labels import`
reads. One module per job: `sources` (where each file is), `transfer` (one file over HTTP or S3,
retried and written atomically), `classes` (names to label keys), `label_files` (streaming the
annotation CSVs), `selection` (the seeded sample), `annotations` and `images` (the downloads),
`fetch` (the command as a library call) and `indexing` (`--index`)."""
