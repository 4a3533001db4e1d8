-- One row per image with what people filter by: `idx search --where`, `/api/search?where=` and
-- plain SQL. A view, so it is always current (labels imported, a new clustering run).
--   folder       the folder holding the file (its path without the file name)
--   name         the file name
--   size         bytes of the file
--   labels       display names of its positive labels (confidence > 0), sorted; [] when none
--   label_names  the same labels' keys (e.g. Open Images /m/09qck), sorted
--   cluster      its cluster in the latest clustering run (`idx cluster`), NULL when none
--   cluster_run  that run's id
CREATE VIEW image_info AS
SELECT
    i.id,
    i.path,
    parse_dirpath(i.path) AS folder,
    parse_filename(i.path) AS name,
    i.root,
    i.bytes AS size,
    i.width,
    i.height,
    i.format,
    i.source,
    i.added_at,
    coalesce(l.labels, []::VARCHAR[]) AS labels,
    coalesce(l.label_names, []::VARCHAR[]) AS label_names,
    c.cluster,
    c.run_id AS cluster_run
FROM images i
LEFT JOIN (
    SELECT image_id,
           list_sort(list(DISTINCT coalesce(display_name, label_name))) AS labels,
           list_sort(list(DISTINCT label_name)) AS label_names
    FROM labels
    WHERE confidence > 0
    GROUP BY image_id
) l ON l.image_id = i.id
LEFT JOIN clusters c
    ON c.image_id = i.id AND c.run_id = (SELECT max(id) FROM cluster_runs);
