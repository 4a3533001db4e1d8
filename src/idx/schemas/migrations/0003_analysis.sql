-- Analysis runs: 2-D maps, K-means clusterings (with their centres) and k sweeps. Runs are kept;
-- the highest id is the latest. Rows reference images by image_id, so deleting an image deletes
-- its rows here too (Catalog.delete_images).
CREATE SEQUENCE projection_runs_id_seq START 1;
CREATE TABLE projection_runs (
    id         INTEGER PRIMARY KEY DEFAULT nextval('projection_runs_id_seq'),
    method     VARCHAR NOT NULL,          -- tsne | pca | umap
    params     VARCHAR NOT NULL,          -- JSON: the parameters actually used
    seed       INTEGER NOT NULL,
    model      VARCHAR,                   -- the index's model, as described by idx status
    n_images   INTEGER NOT NULL,
    subset     VARCHAR NOT NULL DEFAULT 'all',
    seconds    DOUBLE,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE projections (
    run_id   INTEGER NOT NULL,
    image_id BIGINT NOT NULL,
    x        DOUBLE NOT NULL,
    y        DOUBLE NOT NULL,
    PRIMARY KEY (run_id, image_id)
);

CREATE SEQUENCE cluster_runs_id_seq START 1;
CREATE TABLE cluster_runs (
    id                INTEGER PRIMARY KEY DEFAULT nextval('cluster_runs_id_seq'),
    k                 INTEGER NOT NULL,
    method            VARCHAR NOT NULL,   -- kmeans
    space             VARCHAR NOT NULL,   -- embedding | tsne | pca | umap: what was clustered
    seed              INTEGER NOT NULL,
    model             VARCHAR,
    metrics           VARCHAR NOT NULL,   -- JSON: silhouette (+ exact, sample size, ci95),
                                          -- davies_bouldin, calinski_harabasz, map metrics,
                                          -- sizes, inertia, baselines
    n_images          INTEGER NOT NULL,
    projection_run_id INTEGER,            -- the map clustered when space is 2-D, else NULL
    subset            VARCHAR NOT NULL DEFAULT 'all',  -- all | clean (source = 'files' only)
    n_iter            INTEGER,
    seconds           DOUBLE,
    created_at        TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE clusters (
    run_id   INTEGER NOT NULL,
    image_id BIGINT NOT NULL,
    cluster  INTEGER NOT NULL,            -- 0 is the largest cluster
    distance DOUBLE NOT NULL,             -- Euclidean distance to its centre, in the run's space
    PRIMARY KEY (run_id, image_id)
);
-- Centres in the run's space (d floats for embedding, 2 for a map): a new vector belongs to the
-- cluster of the nearest centre (Euclidean).
CREATE TABLE cluster_centers (
    run_id  INTEGER NOT NULL,
    cluster INTEGER NOT NULL,
    size    INTEGER NOT NULL,
    vector  FLOAT[] NOT NULL,
    PRIMARY KEY (run_id, cluster)
);

CREATE SEQUENCE sweep_runs_id_seq START 1;
CREATE TABLE sweep_runs (
    id         INTEGER PRIMARY KEY DEFAULT nextval('sweep_runs_id_seq'),
    space      VARCHAR NOT NULL,
    seed       INTEGER NOT NULL,
    model      VARCHAR,
    n_images   INTEGER NOT NULL,
    best_k     INTEGER,                   -- highest silhouette
    projection_run_id INTEGER,
    subset     VARCHAR NOT NULL DEFAULT 'all',
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE sweep_results (
    run_id            INTEGER NOT NULL,
    k                 INTEGER NOT NULL,
    silhouette        DOUBLE,
    davies_bouldin    DOUBLE,
    calinski_harabasz DOUBLE,
    inertia           DOUBLE,
    PRIMARY KEY (run_id, k)
);
