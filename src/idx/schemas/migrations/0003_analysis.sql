-- Analysis runs: 2-D maps, K-means clusterings (with their centres) and k sweeps. Runs are kept;
-- the highest id is the latest. Rows reference images by image_id, so deleting an image deletes
-- its rows here too (Catalog.delete_images). Columns beyond the shared contract come last and may
-- be NULL, so that other features (and their tests) can write runs with the contract's columns.
CREATE SEQUENCE projection_runs_id_seq START 1;
CREATE TABLE projection_runs (
    id         INTEGER PRIMARY KEY DEFAULT nextval('projection_runs_id_seq'),
    method     VARCHAR,                   -- tsne | pca | umap
    params     VARCHAR,                   -- JSON: the parameters actually used
    seed       INTEGER,
    model      VARCHAR,                   -- the index's model, as `idx status` describes it
    n_images   INTEGER,
    created_at TIMESTAMP DEFAULT current_timestamp,
    subset     VARCHAR DEFAULT 'all',     -- all | clean (source = 'files' only)
    seconds    DOUBLE
);
CREATE TABLE projections (
    run_id   INTEGER,
    image_id BIGINT,
    x        DOUBLE,
    y        DOUBLE
);

CREATE SEQUENCE cluster_runs_id_seq START 1;
CREATE TABLE cluster_runs (
    id                INTEGER PRIMARY KEY DEFAULT nextval('cluster_runs_id_seq'),
    k                 INTEGER,
    method            VARCHAR,            -- kmeans
    space             VARCHAR,            -- embedding | tsne | pca | umap: what was clustered
    seed              INTEGER,
    model             VARCHAR,
    metrics           VARCHAR,            -- JSON: silhouette (cosine, embedding space) with
                                          -- silhouette_exact/_sample_size/_ci95, davies_bouldin,
                                          -- calinski_harabasz, inertia, sizes, map (2-D space),
                                          -- baselines (--baseline)
    n_images          INTEGER,
    projection_run_id INTEGER,            -- the map clustered when space is 2-D, else NULL
    subset            VARCHAR DEFAULT 'all',  -- all | clean (source = 'files' only)
    created_at        TIMESTAMP DEFAULT current_timestamp,
    n_iter            INTEGER,
    seconds           DOUBLE
);
CREATE TABLE clusters (
    run_id   INTEGER,
    image_id BIGINT,
    cluster  INTEGER,                     -- 0 is the largest cluster
    distance DOUBLE                       -- Euclidean distance to its centre, in the run's space
);
-- Centres in the run's space (d floats for embedding, 2 for a map): a new vector belongs to the
-- cluster of the nearest centre (Euclidean).
CREATE TABLE cluster_centers (
    run_id  INTEGER,
    cluster INTEGER,
    vector  FLOAT[]
);

CREATE SEQUENCE sweep_runs_id_seq START 1;
CREATE TABLE sweep_runs (
    id                INTEGER PRIMARY KEY DEFAULT nextval('sweep_runs_id_seq'),
    space             VARCHAR,
    seed              INTEGER,
    model             VARCHAR,
    created_at        TIMESTAMP DEFAULT current_timestamp,
    n_images          INTEGER,
    best_k            INTEGER,            -- highest silhouette
    projection_run_id INTEGER,
    subset            VARCHAR DEFAULT 'all',
    inertia           VARCHAR             -- JSON {k: K-means inertia}, for an elbow plot
);
CREATE TABLE sweep_results (
    run_id            INTEGER,
    k                 INTEGER,
    silhouette        DOUBLE,
    davies_bouldin    DOUBLE,
    calinski_harabasz DOUBLE
);
