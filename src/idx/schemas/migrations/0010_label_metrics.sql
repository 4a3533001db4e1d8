-- Measures that use the labels an index has.
--
-- The linear probe of an insight run (logistic regression, stratified k-fold cross-validation):
-- one row per feature set: the CLIP embeddings ('clip') and the baselines ('random_vectors',
-- 'colour_histogram'), with the accuracy of the out-of-fold predictions and its Wilson 95 % CI.
CREATE TABLE linear_probes (
    run_id          INTEGER NOT NULL,  -- insight_runs.id
    features        VARCHAR NOT NULL,  -- clip | random_vectors | colour_histogram
    n_images        INTEGER NOT NULL,
    folds           INTEGER NOT NULL,
    c               DOUBLE NOT NULL,   -- inverse L2 regularisation, on standardised features
    accuracy        DOUBLE NOT NULL,   -- share of images whose out-of-fold prediction is one of its labels
    ci_low          DOUBLE NOT NULL,
    ci_high         DOUBLE NOT NULL,
    fold_accuracies DOUBLE[] NOT NULL,
    fold_sd         DOUBLE,
    knn_accuracy    DOUBLE,            -- leave-one-out kNN on the same features (baselines only;
                                       -- the CLIP figure is insight_runs.metrics.knn_accuracy)
    PRIMARY KEY (run_id, features)
);

ALTER TABLE class_insights ADD COLUMN linear_probe_accuracy DOUBLE;

-- A k sweep against the labels (images with one positive label): NMI, ARI and purity per k, and
-- the best k by each beside the best by silhouette (JSON {metric: k}; NULL columns: no labels).
ALTER TABLE sweep_results ADD COLUMN nmi DOUBLE;
ALTER TABLE sweep_results ADD COLUMN ari DOUBLE;
ALTER TABLE sweep_results ADD COLUMN purity DOUBLE;
ALTER TABLE sweep_runs ADD COLUMN best_k_by VARCHAR;
