-- Core catalog: images, their embeddings (keyed by content hash), skipped files, settings.
CREATE TABLE meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

CREATE SEQUENCE images_id_seq START 1;

CREATE TABLE embeddings (
    sha256      VARCHAR PRIMARY KEY,
    vector      FLOAT[] NOT NULL,
    embedded_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE images (
    id         BIGINT PRIMARY KEY DEFAULT nextval('images_id_seq'),
    path       VARCHAR NOT NULL UNIQUE,
    root       VARCHAR NOT NULL,
    sha256     VARCHAR NOT NULL,
    bytes      BIGINT NOT NULL,
    mtime_ns   BIGINT NOT NULL,
    width      INTEGER NOT NULL,
    height     INTEGER NOT NULL,
    format     VARCHAR NOT NULL,
    source     VARCHAR NOT NULL DEFAULT 'files',
    added_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
    updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE skipped (
    path       VARCHAR PRIMARY KEY,
    root       VARCHAR NOT NULL,
    reason     VARCHAR NOT NULL,
    bytes      BIGINT,
    mtime_ns   BIGINT,
    ctime_ns   BIGINT,
    skipped_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
