-- Images on object storage (s3://bucket/prefix): an object's change key is its size and ETag,
-- as a file's is its size and mtime (mtime_ns holds the object's LastModified time). NULL for
-- local files.
ALTER TABLE images ADD COLUMN etag VARCHAR;
ALTER TABLE skipped ADD COLUMN etag VARCHAR;
