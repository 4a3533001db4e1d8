-- Perceptual hashes and leakage between two sets of images (`idx duplicates`, issue 23).
--
-- phash: the content's 64-bit perceptual hash (indexer/files/phash.py: imagehash's pHash, its
-- first bit the highest), taken by `idx add` from the decode that feeds the model. Kept with the
-- content's vector: equal bytes give equal hashes. NULL for content embedded before this
-- migration until the next `idx add` of its folder fills it in (or when it could not be taken).
ALTER TABLE embeddings ADD COLUMN phash UBIGINT;

-- `idx duplicates --across A B`: one row per run, the near-duplicate pairs it found (one image
-- under A, the other under B) and how many images of each side have a copy on the other.
CREATE SEQUENCE leakage_runs_id_seq START 1;
CREATE TABLE leakage_runs (
    id            INTEGER PRIMARY KEY DEFAULT nextval('leakage_runs_id_seq'),
    side_a        VARCHAR NOT NULL,   -- the first set as given: a folder, label:NAME or where:SQL
    side_b        VARCHAR NOT NULL,   -- the second set, likewise
    images_a      INTEGER NOT NULL,   -- images in A (an image in both sets counts in each)
    images_b      INTEGER NOT NULL,
    a_with_copy   INTEGER NOT NULL,   -- images of A with a near-duplicate in B
    b_with_copy   INTEGER NOT NULL,   -- images of B with a near-duplicate in A
    in_both       INTEGER NOT NULL,   -- images in both sets (never paired with themselves)
    without_hash  INTEGER NOT NULL,   -- images of A or B without a perceptual hash
    linked_by     VARCHAR NOT NULL,   -- both | clip | hash: what makes a pair near-duplicates
    threshold     DOUBLE,             -- CLIP cosine at or above which (clip, both)
    max_distance  INTEGER,            -- Hamming distance at or below which (hash, both)
    model         VARCHAR,            -- the index's model, as `idx status` describes it
    seconds       DOUBLE,
    created_at    TIMESTAMP NOT NULL DEFAULT current_timestamp
);
-- Named image_id and neighbor_id so that removing an image removes its pairs (Images.delete).
CREATE TABLE leakage_pairs (
    run_id      INTEGER NOT NULL,
    image_id    BIGINT NOT NULL,      -- the image under B
    neighbor_id BIGINT NOT NULL,      -- its near-duplicate under A
    similarity  FLOAT NOT NULL,       -- CLIP cosine similarity of the two
    distance    INTEGER               -- Hamming distance of their hashes (of 64); NULL without one
);
