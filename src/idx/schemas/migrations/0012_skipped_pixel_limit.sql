-- A file skipped for having more pixels than IDX_MAX_PIXELS keeps the limit it was judged under,
-- so that `add` tries it again when the limit has changed (other skips of an unchanged file are
-- not retried). NULL for every other reason.
ALTER TABLE skipped ADD COLUMN max_pixels BIGINT;
