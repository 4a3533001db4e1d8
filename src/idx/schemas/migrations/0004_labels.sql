-- Dataset labels (Open Images or any CSV / folder layout) and category-level insights.
-- Positives are rows with confidence > 0; confidence 0 is a verified ABSENT (Open Images).
CREATE TABLE classes (
    label_name   VARCHAR PRIMARY KEY,
    display_name VARCHAR
);

CREATE TABLE labels (
    image_id    BIGINT NOT NULL,
    label_name  VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    confidence  FLOAT NOT NULL,
    -- copy of classes.display_name (label_name when the class has none), for plain SQL
    display_name VARCHAR,
    imported_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (image_id, label_name, source)
);

CREATE SEQUENCE insight_runs_id_seq START 1;

CREATE TABLE insight_runs (
    id             INTEGER PRIMARY KEY DEFAULT nextval('insight_runs_id_seq'),
    cluster_run_id INTEGER,            -- NULL when no clustering run was available
    k_nn           INTEGER NOT NULL,
    model          VARCHAR,
    metrics        VARCHAR NOT NULL,   -- JSON: headline metrics and their random-label baselines
    created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE class_insights (
    run_id             INTEGER NOT NULL,
    label_name         VARCHAR NOT NULL,
    display_name       VARCHAR,
    size               INTEGER NOT NULL,
    main_cluster       INTEGER,
    main_cluster_share DOUBLE,
    cluster_entropy    DOUBLE,         -- bits, over the clusters the class's images fall into
    cohesion           DOUBLE,         -- mean cosine between two different images of the class
    nearest_class      VARCHAR,        -- other class with the most similar centroid
    separation_margin  DOUBLE,         -- cohesion minus mean cosine to the nearest class's images
    silhouette         DOUBLE,         -- mean cosine silhouette of its single-label images
    knn_accuracy       DOUBLE,
    zero_shot_accuracy DOUBLE,
    PRIMARY KEY (run_id, label_name)
);

CREATE TABLE confused_pairs (
    run_id              INTEGER NOT NULL,
    label_a             VARCHAR NOT NULL,
    label_b             VARCHAR NOT NULL,
    knn_confusions      INTEGER NOT NULL, -- images of one predicted as the other by kNN vote, both ways
    centroid_similarity DOUBLE,
    PRIMARY KEY (run_id, label_a, label_b)
);

CREATE TABLE suspect_labels (
    run_id          INTEGER NOT NULL,
    image_id        BIGINT NOT NULL,
    label_name      VARCHAR NOT NULL,  -- the image's label that its neighbours disagree with
    predicted_label VARCHAR NOT NULL,  -- the label most of its neighbours carry
    vote_share      DOUBLE NOT NULL,   -- share of the k neighbours carrying predicted_label
    own_vote_share  DOUBLE NOT NULL,   -- share of the k neighbours carrying label_name
    PRIMARY KEY (run_id, image_id, label_name)
);
