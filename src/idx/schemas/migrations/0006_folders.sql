-- The folders given to `idx add` and their rules: whether hidden files and folders (names
-- starting with '.') are taken, and the --exclude globs (JSON list, matched against the path
-- relative to the folder). The next `add` of the same folder applies them unless told otherwise.
CREATE TABLE folders (
    path           VARCHAR PRIMARY KEY,
    include_hidden BOOLEAN NOT NULL DEFAULT false,
    excludes       VARCHAR NOT NULL DEFAULT '[]',
    updated_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
);
