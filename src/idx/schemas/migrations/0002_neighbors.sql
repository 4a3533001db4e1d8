-- The k-nearest-neighbour graph written by `idx neighbors --all` (replaced on each run; the run's
-- k, index type and time are recorded in meta under 'neighbors_run').
-- rank 1 is the nearest other image; score is the cosine similarity.
CREATE TABLE neighbors (
    image_id    BIGINT NOT NULL,
    neighbor_id BIGINT NOT NULL,
    rank        INTEGER NOT NULL,
    score       FLOAT NOT NULL
);
