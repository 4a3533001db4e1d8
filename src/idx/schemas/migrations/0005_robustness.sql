-- Noise robustness (idx robustness): one row per measurement run, its metrics per perturbation
-- and severity (severity 0 = the clean baseline), per label, and the injected test images.
CREATE SEQUENCE robustness_runs_id_seq START 1;

CREATE TABLE robustness_runs (
    id             INTEGER PRIMARY KEY DEFAULT nextval('robustness_runs_id_seq'),
    perturbations  VARCHAR NOT NULL,   -- JSON list of names
    severities     VARCHAR NOT NULL,   -- JSON list of 1..5
    sample_size    INTEGER NOT NULL,
    seed           INTEGER NOT NULL,
    k              INTEGER NOT NULL,
    cluster_run_id INTEGER,            -- cluster_runs.id whose centres were used, else NULL
    model          VARCHAR NOT NULL,
    depth          INTEGER,            -- search depth of self_rank (ranks are capped at depth+1)
    seconds        DOUBLE,
    created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE robustness_results (
    run_id               INTEGER NOT NULL,
    perturbation         VARCHAR NOT NULL,  -- 'clean' for the severity-0 baseline
    severity             INTEGER NOT NULL,
    n                    INTEGER NOT NULL,
    cos_mean             DOUBLE,
    cos_p05              DOUBLE,
    cos_p50              DOUBLE,
    cos_p95              DOUBLE,
    topk_overlap         DOUBLE,
    self_rank_mean       DOUBLE,
    self_found_at_1      DOUBLE,
    cluster_change_share DOUBLE,
    knn_accuracy         DOUBLE,
    zero_shot_accuracy   DOUBLE,
    PRIMARY KEY (run_id, perturbation, severity)
);

CREATE TABLE robustness_classes (
    run_id       INTEGER NOT NULL,
    label_name   VARCHAR NOT NULL,
    perturbation VARCHAR NOT NULL,
    severity     INTEGER NOT NULL,
    n            INTEGER NOT NULL,
    cos_mean     DOUBLE,
    knn_accuracy DOUBLE,
    PRIMARY KEY (run_id, label_name, perturbation, severity)
);

CREATE SEQUENCE injections_id_seq START 1;

CREATE TABLE injections (
    id         INTEGER PRIMARY KEY DEFAULT nextval('injections_id_seq'),
    kind       VARCHAR NOT NULL,
    severity   INTEGER,             -- NULL for pure_noise and blank
    fraction   DOUBLE NOT NULL,
    seed       INTEGER NOT NULL,
    source     VARCHAR NOT NULL,    -- images.source of the injected rows: 'inject:<id>'
    n_images   INTEGER NOT NULL,
    folder     VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
