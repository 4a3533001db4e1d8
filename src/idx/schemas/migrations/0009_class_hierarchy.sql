-- A class hierarchy (Open Images' bbox_labels_600_hierarchy.json, `idx labels import
-- --hierarchy FILE`): a DAG of classes, so labels can be rolled up to their parent classes.
-- One hierarchy per index; importing another replaces it.
CREATE TABLE class_edges (
    parent   VARCHAR NOT NULL,
    child    VARCHAR NOT NULL,
    relation VARCHAR NOT NULL,   -- 'is_a' (Subcategory: a Cookie is a Snack) or 'part_of'
                                 -- (Part: a Bicycle wheel is part of a Bicycle, not a Bicycle)
    source   VARCHAR NOT NULL,   -- the file it came from
    PRIMARY KEY (parent, child, relation)
);

-- Every is-a ancestor of every class, the class itself included (distance 0): the shortest
-- is-a path from ancestor down to descendant. Part edges never enter it.
CREATE TABLE class_closure (
    ancestor   VARCHAR NOT NULL,
    descendant VARCHAR NOT NULL,
    distance   INTEGER NOT NULL,
    PRIMARY KEY (ancestor, descendant)
);

-- Each class's level: its shortest is-a distance from a root (a class with no is-a parent;
-- Open Images' "Entity" is level 0, Food level 1, Fruit level 2, Apple level 3).
CREATE VIEW class_levels AS
SELECT c.descendant AS label_name, min(c.distance) AS level
FROM class_closure c
WHERE c.ancestor IN (
    SELECT parent FROM class_edges WHERE relation = 'is_a'
    EXCEPT SELECT child FROM class_edges WHERE relation = 'is_a'
)
GROUP BY 1;

-- Labels roll up by a join: each label once for each is-a ancestor of its class, e.g.
--   SELECT c.ancestor, count(DISTINCT l.image_id) FROM labels l
--   JOIN class_closure c ON c.descendant = l.label_name WHERE l.confidence > 0 GROUP BY 1
