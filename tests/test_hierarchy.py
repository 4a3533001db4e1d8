"""Class hierarchies: the stored is-a closure equals one computed by hand (a small DAG with a
shared child and a Part edge; the real Open Images file for the 20 snack classes), and insights
at parent classes count each image once for each is-a ancestor of its labels."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from idx.cli.main import cli
from idx.errors import UsageError
from idx.indexer.index import Index
from idx.ops.insights import measure as insights_api
from idx.ops.labels import imports as labels_api
from idx.ops.labels.hierarchy import Rollup, import_hierarchy

HIERARCHY = Path(__file__).resolve().parents[2] / "shared" / "data" / "openimages-hierarchy"


def node(name: str, sub=(), part=()) -> dict:
    out: dict = {"LabelName": name}
    if sub:
        out["Subcategory"] = list(sub)
    if part:
        out["Part"] = list(part)
    return out


# The synthetic set's folders under three parents. checkerboards is both a Shape and a Pattern
# (written twice with its subtree, as the Open Images file writes a shared class); red_circles
# is a Part of sunsets (a sun in a sunset), which must not make a red circle a Scene.
TREE = node(
    "Entity",
    sub=[
        node(
            "Shapes",
            sub=[
                node("red_circles"),
                node("blue_squares"),
                node("yellow_triangles"),
                node("checkerboards", sub=[node("chess")]),
            ],
        ),
        node(
            "Patterns",
            sub=[
                node("green_stripes"),
                node("checkerboards", sub=[node("chess")]),
                node("foggy_noise"),
            ],
        ),
        node("Scenes", sub=[node("sunsets", part=[node("red_circles")]), node("starry_nights")]),
    ],
)
# Written out by hand: class -> {is-a ancestor (itself included): shortest distance}.
CLOSURE = {
    "Entity": {"Entity": 0},
    "Shapes": {"Shapes": 0, "Entity": 1},
    "Patterns": {"Patterns": 0, "Entity": 1},
    "Scenes": {"Scenes": 0, "Entity": 1},
    "red_circles": {"red_circles": 0, "Shapes": 1, "Entity": 2},
    "blue_squares": {"blue_squares": 0, "Shapes": 1, "Entity": 2},
    "yellow_triangles": {"yellow_triangles": 0, "Shapes": 1, "Entity": 2},
    "checkerboards": {"checkerboards": 0, "Shapes": 1, "Patterns": 1, "Entity": 2},
    "chess": {"chess": 0, "checkerboards": 1, "Shapes": 2, "Patterns": 2, "Entity": 3},
    "green_stripes": {"green_stripes": 0, "Patterns": 1, "Entity": 2},
    "foggy_noise": {"foggy_noise": 0, "Patterns": 1, "Entity": 2},
    "sunsets": {"sunsets": 0, "Scenes": 1, "Entity": 2},
    "starry_nights": {"starry_nights": 0, "Scenes": 1, "Entity": 2},
}


@pytest.fixture
def tree_file(tmp_path) -> Path:
    path = tmp_path / "hierarchy.json"
    path.write_text(json.dumps(TREE))
    return path


def test_closure_and_levels_equal_the_hand_computed_ones(tmp_path, tree_file, tiny_model):
    with Index(tmp_path / "index", **tiny_model) as index:
        report = import_hierarchy(index, tree_file)
        rows = index.sql("SELECT ancestor, descendant, distance FROM class_closure")[1]
        levels = dict(index.sql("SELECT label_name, level FROM class_levels")[1])
        edges = index.sql("SELECT parent, child, relation FROM class_edges ORDER BY 1, 2")[1]
    stored: dict[str, dict[str, int]] = {}
    for ancestor, descendant, distance in rows:
        stored.setdefault(descendant, {})[ancestor] = distance
    assert stored == CLOSURE
    assert levels == {name: max(up.values()) for name, up in CLOSURE.items()}
    assert ("sunsets", "red_circles", "part_of") in edges  # kept, apart from is-a
    assert report.classes == 13 and report.part_of_edges == 1
    assert report.is_a_edges == 13  # checkerboards > chess, written twice, stored once
    assert report.classes_with_several_parents == 1 and report.roots == 1


def test_a_hierarchy_with_a_byte_order_mark_is_read_and_a_latin_1_one_explained(
    tmp_path, tiny_model
):
    bom = tmp_path / "bom.json"
    bom.write_text(json.dumps(TREE), encoding="utf-8-sig")
    latin = tmp_path / "latin.json"
    latin.write_bytes(json.dumps(node("Entité"), ensure_ascii=False).encode("latin-1"))
    with Index(tmp_path / "index", **tiny_model) as index:
        assert import_hierarchy(index, bom).classes == 13
        with pytest.raises(UsageError, match=r"latin.json: line 1 \(byte 21 of it, 0xe9;.*iconv"):
            import_hierarchy(index, latin)


def test_insights_at_parent_classes_count_each_is_a_ancestor(indexed_copy, tree_file, tiny_model):
    with Index(indexed_copy, **tiny_model) as index:
        labels_api.import_folders(index)
        import_hierarchy(index, tree_file)
        result = insights_api.insights(
            index, k_nn=5, rollup=Rollup(level=1), plots=False, probe=False
        )
        named = insights_api.insights(
            index, k_nn=5, rollup=Rollup(names=["Scenes", "Patterns"]), plots=False, probe=False
        )
        ids, vectors = index.embeddings()
        folders = dict(index.sql("SELECT image_id, label_name FROM labels")[1])
    classes = {r[0]: r for r in result.classes}
    # by hand: 6 images per folder; checkerboards count for Shapes and Patterns, red circles
    # (a Part of sunsets) for Shapes only
    assert {c: r[2] for c, r in classes.items()} == {"Shapes": 24, "Patterns": 18, "Scenes": 12}
    assert result.metrics["n_images"] == 48 and result.metrics["n_multi_label"] == 6
    assert result.metrics["rollup"] == {"level": 1, "classes": None}
    # kNN accuracy, recomputed with a direct loop: neighbours vote for each parent they carry
    parents = {
        name: {a for a in up if CLOSURE[a].get("Entity") == 1} for name, up in CLOSURE.items()
    }
    truth = [parents[folders[int(i)]] for i in ids]
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    sizes = {"Shapes": 24, "Patterns": 18, "Scenes": 12}
    hits = 0
    for row, own in zip(sims, truth):
        votes: dict[str, int] = {}
        for j in np.argsort(-row, kind="stable")[:5]:
            for label in truth[j]:
                votes[label] = votes.get(label, 0) + 1
        best = max(votes.values())
        winner = sorted((c for c, v in votes.items() if v == best), key=lambda c: (-sizes[c], c))[0]
        hits += winner in own
    assert result.metrics["knn_accuracy"] == pytest.approx(hits / 48)
    # named parents: images under neither are left out, and said to be
    assert {r[0] for r in named.classes} == {"Scenes", "Patterns"}
    assert named.metrics["n_images"] == 12 + 18
    assert any("left out" in note for note in named.notes)


def test_cli_imports_the_hierarchy_and_explains_bad_files_and_bad_roll_ups(
    labelled_index, tree_file, tmp_path
):
    run = CliRunner().invoke
    done = run(
        cli, ["--index", str(labelled_index), "labels", "import", "--hierarchy", str(tree_file)]
    )
    assert done.exit_code == 0, done.output
    assert "13 classes, 13 is-a and 1 part-of edges" in done.stdout
    level = run(
        cli,
        [
            "--index",
            str(labelled_index),
            "insights",
            "--level",
            "1",
            "--no-plots",
            "--no-probe",
            "--json",
        ],
    )
    assert level.exit_code == 0, level.output
    assert {c["label_name"] for c in json.loads(level.stdout)["classes"]} == {
        "Shapes",
        "Patterns",
        "Scenes",
    }
    for args, message in (
        (["--level", "1", "--rollup", "Shapes"], "not both"),
        (["--level", "7"], "--level 7 holds no class; use 0 to 3"),
        (["--rollup", "Shapes,Planets"], "Planets is not a class of the hierarchy"),
    ):
        bad = run(cli, ["--index", str(labelled_index), "insights", "--no-plots", *args])
        assert bad.exit_code == 2 and message in bad.output, bad.output
    broken = tmp_path / "broken.json"
    for text, message in (
        ("[1, 2", "cannot read it as JSON"),
        (
            json.dumps({"LabelName": "a", "Subcategory": [{"Name": "b"}]}),
            "Subcategory entry 1 of a is not a node with a LabelName",
        ),
        (
            json.dumps(node("a", sub=[node("b", sub=[node("a")])])),
            "a is its own is-a ancestor (a > b > a)",
        ),
    ):
        broken.write_text(text)
        bad = run(
            cli, ["--index", str(labelled_index), "labels", "import", "--hierarchy", str(broken)]
        )
        assert bad.exit_code == 2 and str(broken) in bad.output and message in bad.output, (
            bad.output
        )


def test_insights_without_a_hierarchy_says_how_to_import_one(labelled_index):
    bad = CliRunner().invoke(cli, ["--index", str(labelled_index), "insights", "--level", "1"])
    assert bad.exit_code == 2 and f"idx --index {labelled_index} labels import --hierarchy" in (
        bad.output
    )


@pytest.fixture
def labelled_index(indexed_copy, tiny_model):
    with Index(indexed_copy, **tiny_model) as index:
        labels_api.import_folders(index)
    return indexed_copy


#: The 20 snack classes' is-a ancestors in Open Images' hierarchy, read off the file by hand.
SNACK_ANCESTORS = {
    "Apple": {"Fruit", "Food", "Entity"},
    "Banana": {"Fruit", "Food", "Entity"},
    "Cake": {"Dessert", "Food", "Entity"},
    "Candy": {"Dessert", "Food", "Entity"},
    "Carrot": {"Vegetable", "Food", "Entity"},
    "Cookie": {"Snack", "Dessert", "Baked goods", "Food", "Entity"},
    "Doughnut": {"Pastry", "Baked goods", "Food", "Entity"},
    "Grape": {"Fruit", "Food", "Entity"},
    "Hot dog": {"Fast food", "Food", "Entity"},
    "Ice cream": {"Dessert", "Food", "Entity"},
    "Juice": {"Drink", "Entity"},
    "Muffin": {"Dessert", "Baked goods", "Food", "Entity"},
    "Orange": {"Fruit", "Food", "Entity"},
    "Pineapple": {"Fruit", "Food", "Entity"},
    "Popcorn": {"Snack", "Food", "Entity"},
    "Pretzel": {"Snack", "Baked goods", "Food", "Entity"},
    "Salad": {"Vegetable", "Food", "Entity"},
    "Strawberry": {"Fruit", "Food", "Entity"},
    "Waffle": {"Food", "Entity"},
    "Watermelon": {"Fruit", "Food", "Entity"},
}


def test_real_open_images_hierarchy_rolls_the_snack_classes_up_as_written(
    shared_data, tmp_path, tiny_model
):
    if not HIERARCHY.is_dir():
        pytest.skip("../shared/data/openimages-hierarchy is not present")
    with open(shared_data / "class-descriptions-boxable.csv", newline="") as fh:
        code = {display: key for key, display in csv.reader(fh)}
    name = {key: display for display, key in code.items()} | {"/m/0bl9f": "Entity"}
    with Index(tmp_path / "index", **tiny_model) as index:
        report = import_hierarchy(index, HIERARCHY / "bbox_labels_600_hierarchy.json")
        found = index.catalog.hierarchy.ancestors([code[s] for s in SNACK_ANCESTORS])
        several = index.sql(
            "SELECT count(*) FROM (SELECT child FROM class_edges GROUP BY 1 "
            "HAVING count(DISTINCT parent) > 1)"
        )[1][0][0]
        level_two = {name[c] for c in index.catalog.hierarchy.at_level(2)}
    # the shape the data's README states: 602 classes, 647 is-a and 38 part-of distinct edges,
    # 83 classes with more than one distinct parent
    assert (report.classes, report.is_a_edges, report.part_of_edges) == (602, 647, 38)
    assert several == 83
    for snack, ancestors in SNACK_ANCESTORS.items():
        assert {name[a] for a in found[code[snack]]} == ancestors | {snack}, snack
        assert found[code[snack]][code[snack]] == 0
    assert {"Fruit", "Dessert", "Snack", "Baked goods", "Vegetable", "Juice"} <= level_two
    with pytest.raises(UsageError, match="is not a class of the hierarchy"):
        from idx.ops.labels.hierarchy import rollup_targets

        with Index(tmp_path / "index", **tiny_model) as index:
            rollup_targets(index.catalog, Rollup(names=["Spaceship"]))


def test_report_shows_parent_classes_by_their_display_names(labelled_index, tree_file, tiny_model):
    from idx.ops.report.write import report_data

    classes = tree_file.parent / "classes.csv"
    classes.write_text("Shapes,Geometric shapes\nPatterns,Textures\nScenes,Landscapes\n")
    with Index(labelled_index, **tiny_model) as index:
        labels_api.import_classes(index, classes)
        import_hierarchy(index, tree_file)
        insights_api.insights(index, k_nn=5, rollup=Rollup(level=1), plots=False, probe=False)
        data = report_data(index, max_thumbnails=0)
    shown = {r["label_name"] for r in data["insights"]["classes"]["rows"]}
    assert shown == {"Geometric shapes", "Textures", "Landscapes"}
