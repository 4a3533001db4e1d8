-- Label imports, each one undoable: every import is recorded (name = its source name, by default
-- the file's name) with the rows it wrote. `labels` and `classes` hold, for each key, the row of
-- the latest import that wrote it, so removing an import restores exactly what was there before.
CREATE TABLE label_imports (
    id         INTEGER PRIMARY KEY,
    name       VARCHAR NOT NULL UNIQUE,   -- what `idx labels remove --source NAME` names
    kind       VARCHAR NOT NULL,          -- classes | labels | boxes | csv | folders | earlier
    file       VARCHAR,
    counts     VARCHAR NOT NULL,          -- JSON: the import's report (rows, imported, new, ...)
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE label_rows (
    import_id  INTEGER NOT NULL,
    image_id   BIGINT NOT NULL,
    label_name VARCHAR NOT NULL,
    source     VARCHAR NOT NULL,
    confidence FLOAT NOT NULL,
    PRIMARY KEY (import_id, image_id, label_name, source)
);

CREATE TABLE class_rows (
    import_id    INTEGER NOT NULL,
    label_name   VARCHAR NOT NULL,
    display_name VARCHAR,
    PRIMARY KEY (import_id, label_name)
);

-- What an index held before imports were recorded becomes one import, 'earlier-imports'.
INSERT INTO label_imports (id, name, kind, counts)
SELECT 0, 'earlier-imports', 'earlier', '{}'
WHERE EXISTS (SELECT 1 FROM labels) OR EXISTS (SELECT 1 FROM classes);
INSERT INTO label_rows SELECT 0, image_id, label_name, source, confidence FROM labels;
INSERT INTO class_rows SELECT 0, label_name, display_name FROM classes;
