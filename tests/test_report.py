"""`idx report`: the data it gathers, the file it writes, and the page as a real browser shows it.

The fixture index goes through the real pipeline, as users run it: folder labels (plus a class
file with display names), a PCA map, k-means with its baselines, a k sweep, insights and a small
robustness run. Expected values are read back from what those commands returned and stored.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from idx import config
from idx.analysis import palette
from idx.analysis.report_html import counts as metric_counts
from idx.analysis.report_html import json_for_script, metric_rows
from idx.cli.main import cli
from idx.config import DEFAULT_MODEL, DEFAULT_PRETRAINED, command
from idx.indexer.index import Index
from idx.ops.insights import measure as insights
from idx.ops.labels import imports as labels
from idx.ops.leakage import leakage
from idx.ops.maps import clustering, projection, sweep
from idx.ops.maps.sweep import parse_k_range
from idx.ops.report.data import COMMANDS, split_common_prefix
from idx.ops.report.write import write_report
from idx.ops.robustness import measure as robustness
from idx.ops.robustness.inputs import parse_severities, resolve_perturbations

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
HOSTILE_NAME = "</script><img src=x onerror=alert(1)>"
PERTURBATIONS = ["gaussian_noise", "blur"]  # `blur` is the alias users type for gaussian_blur
SEVERITIES = [1, 5]
SWEEP_KS = [2, 3, 4, 5, 6]


def page_data(html_path: Path) -> dict:
    html = html_path.read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="idx-data">(.*?)</script>', html, re.S)
    assert block, "the data block is missing"
    return json.loads(block.group(1))


def display_name(label: str) -> str:
    """What the fixture's class file calls each folder label."""
    return HOSTILE_NAME if label == "sunsets" else label.replace("_", " ")


@pytest.fixture(scope="module")
def filled(tmp_path_factory, indexed, tiny_model):
    """A copy of the synthetic index run through every analysis command, and its report."""
    root = tmp_path_factory.mktemp("report")
    index_dir = root / "index"
    shutil.copytree(indexed, index_dir)
    facts: dict = {}
    with Index(index_dir, **tiny_model) as index:
        labels.import_folders(index)
        folders = [r[0] for r in index.sql("SELECT DISTINCT label_name FROM labels")[1]]
        # Display names from a class file; one is markup: the page must show it as text.
        classes_csv = root / "classes.csv"
        classes_csv.write_text(
            "".join(f'{name},"{display_name(name)}"\n' for name in folders), encoding="utf-8"
        )
        labels.import_classes(index, classes_csv)
        facts["projection"] = projection.project(index, "pca", plot=False)
        facts["cluster"] = clustering.cluster(index, 8, baseline=True, plot=False)
        facts["sweep"] = sweep.sweep(index, SWEEP_KS, plot=False)
        facts["insights"] = insights.insights(index, k_nn=5, plots=False)
        facts["robustness"] = robustness.measure(
            index, PERTURBATIONS, SEVERITIES, sample=16, k=5, plots=False
        )
        facts["ids"], facts["vectors"] = index.embeddings()
        paths = dict(index.sql("SELECT id, path FROM images")[1])
        facts["names"] = np.array([Path(paths[int(i)]).parent.name for i in facts["ids"]])
        stored = dict(index.sql("SELECT image_id, label_name FROM labels")[1])
        assert [stored[int(i)] for i in facts["ids"]] == facts["names"].tolist()
        by_id = dict(zip(facts["cluster"].ids.tolist(), facts["cluster"].labels.tolist()))
        facts["assign"] = np.array([by_id[int(i)] for i in facts["ids"]])
        facts["result"] = write_report(index, root / "report.html")
    facts["html"] = root / "report.html"
    facts["index_dir"] = index_dir
    return facts


def test_report_without_analysis_names_the_commands(indexed_copy, tmp_path):
    with Index(indexed_copy, read_only=True) as index:
        result = write_report(index, tmp_path / "bare.html")
    data = page_data(tmp_path / "bare.html")
    assert result.sections == {
        "summary": True,
        "map": False,
        "clusters": False,
        "insights": False,
        "robustness": False,
        "leakage": False,
    }
    assert data["summary"]["images"] == result.images == 48
    assert data["summary"]["untrained"] is True and result.untrained
    hint = {name: command(indexed_copy, *args) for name, args in COMMANDS.items()}
    assert data["commands"] == hint
    assert data["map"]["missing"]["command"] == hint["project"]
    assert data["clusters"]["missing"]["command"] == hint["cluster"]
    assert data["insights"]["missing"]["command"] == hint["labels"]
    assert data["robustness"]["missing"]["command"] == hint["robustness"]
    assert data["leakage"]["missing"]["command"] == hint["leakage"]
    assert result.bytes == (tmp_path / "bare.html").stat().st_size


@pytest.fixture
def labelled_only(indexed_copy, tiny_model, tmp_path):
    """The report of an index whose only analysis is folder labels."""
    with Index(indexed_copy, **tiny_model) as index:
        labels.import_folders(index)
        write_report(index, tmp_path / "labelled.html")
    return tmp_path / "labelled.html"


def test_a_missing_section_command_runs_as_pasted(indexed_copy, monkeypatch, tmp_path):
    """The report names the index with --index, absolute (the page is read later, from
    anywhere), so its commands run as pasted from another folder, whatever IDX_INDEX says then
    (here: a folder with no index)."""
    monkeypatch.chdir(indexed_copy.parent)
    with Index(indexed_copy, read_only=True) as index:
        write_report(index, tmp_path / "bare.html")
    hint = page_data(tmp_path / "bare.html")["insights"]["missing"]["command"]
    words = shlex.split(hint)
    assert words[:3] == ["idx", "--index", str(indexed_copy)], hint
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("IDX_INDEX", str(tmp_path / "no-index"))
    result = CliRunner().invoke(cli, words[1:])
    assert result.exit_code == 0, result.stderr
    with Index(indexed_copy, read_only=True) as index:
        assert index.sql("SELECT count(*) FROM labels")[1][0][0] == 48
    assert not (tmp_path / "no-index").exists()


def test_report_with_labels_only_names_the_next_commands(labelled_only, indexed_copy):
    data = page_data(labelled_only)
    section = data["insights"]
    assert "missing" not in section
    assert section["heatmap"]["missing"]["command"] == command(indexed_copy, *COMMANDS["cluster"])
    assert section["run_missing"]["command"] == command(indexed_copy, *COMMANDS["insights"])
    assert data["map"]["missing"]["command"] == command(indexed_copy, *COMMANDS["project"])
    assert data["summary"]["labels"] is not None


def resolve(command: str) -> tuple[click.Command, list[str]]:
    """The click command a printed `idx ...` line runs, and the arguments left for it."""
    words = shlex.split(command)
    assert words[0] == "idx", command
    cmd: click.Command = cli
    rest = words[1:]
    while isinstance(cmd, click.Group) and rest and rest[0] in cmd.commands:
        cmd, rest = cmd.commands[rest[0]], rest[1:]
    assert cmd is not cli, f"{command!r} names no idx command"
    return cmd, rest


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_missing_section_commands_parse_with_the_real_cli(name):
    """Every "produce it with" hint is a command line the CLI accepts as printed."""
    cmd, args = resolve(shlex.join(["idx", *COMMANDS[name]]))
    with cmd.make_context(cmd.name, list(args)) as ctx:  # raises UsageError on a bad option
        params = ctx.params
    if name == "robustness":
        resolve_perturbations(params["perturb"].split(","))
        parse_severities(params["severity"])
    if name == "sweep" and params["k_range"] is not None:  # none: the default range
        assert parse_k_range(params["k_range"])


def test_report_data_matches_the_catalog(filled):
    data = page_data(filled["html"])
    ids = filled["ids"]
    mp = data["map"]
    assert mp["ids"] == ids.tolist()
    proj = filled["projection"]
    stored_xy = dict(zip(proj.ids.tolist(), proj.xy.tolist()))
    np.testing.assert_allclose(np.c_[mp["x"], mp["y"]], [stored_xy[int(i)] for i in ids], atol=1e-4)
    assert mp["run"]["id"] == proj.run_id and mp["run"]["method"] == "pca"
    assert mp["cluster"] == filled["assign"].tolist()
    names = data["labels"]["names"]
    assert [names[i] for i in mp["label"]] == [display_name(n) for n in filled["names"]]
    assert [Path(mp["prefix"] + p).parent.name for p in mp["paths"]] == filled["names"].tolist()

    clusters = data["clusters"]
    run = filled["cluster"]
    assert clusters["run"]["id"] == run.run_id
    assert [s["size"] for s in clusters["sheets"]] == [n for n in run.sizes if n]
    shown = {m["name"]: m for m in clusters["metrics"]}
    for metric in ("silhouette", "davies_bouldin", "calinski_harabasz"):
        assert shown[metric]["value"] == pytest.approx(run.metrics[metric])
        # Each baseline the run scored sits beside the metric it is a baseline for.
        assert shown[metric]["baselines"] == pytest.approx(
            {name: b[metric] for name, b in run.metrics["baselines"].items()}
        )
    rows = clusters["sweep"]["rows"]
    assert [r["k"] for r in rows] == filled["sweep"].ks == SWEEP_KS
    assert [r["silhouette"] for r in rows] == pytest.approx(filled["sweep"].curves["silhouette"])

    heat = data["insights"]["heatmap"]
    label_of = {display_name(n): n for n in filled["names"]}
    assert sorted(heat["rows"]) == sorted(label_of)
    for row, counts in zip(heat["rows"], heat["counts"]):
        members = filled["assign"][filled["names"] == label_of[row]]
        assert counts == np.bincount(members, minlength=len(heat["cols"])).tolist()

    stored = filled["insights"].as_dict()
    assert data["insights"]["run"]["id"] == stored["run_id"]
    page_classes = {r["label_name"]: r for r in data["insights"]["classes"]["rows"]}
    assert len(page_classes) == 8
    for row in stored["classes"]:  # label keys are shown by their display names
        shown_row = page_classes[display_name(row["label_name"])]
        assert shown_row["size"] == row["size"]
        assert shown_row["knn_accuracy"] == pytest.approx(row["knn_accuracy"])
    assert {s["image_id"] for s in data["insights"]["suspects"]} == {
        s["image_id"] for s in stored["suspect_labels"]
    }

    report = filled["robustness"]
    page_results = data["robustness"]["results"]["rows"]
    assert {r["perturbation"] for r in page_results} == {"clean", "gaussian_noise", "gaussian_blur"}
    measured = {(r["perturbation"], r["severity"]): r["cos_mean"] for r in report.results}
    shown = {(r["perturbation"], r["severity"]): r["cos_mean"] for r in page_results}
    assert shown == pytest.approx(measured)


def test_label_measures_reach_the_page(filled):
    """The linear probe (with its interval and baselines), the sweep against the labels and
    ImageNet-C's per-corruption summary are on the page as stored."""
    data = page_data(filled["html"])
    insights_run = filled["insights"]
    probes = {r["features"]: r for r in data["insights"]["probes"]["rows"]}
    assert set(probes) == {"clip", "random_vectors", "colour_histogram"}
    assert probes["clip"]["accuracy"] == pytest.approx(
        insights_run.metrics["linear_probe_accuracy"]
    )
    shown = {m["name"]: m for m in data["insights"]["metrics"]}
    probe = shown["linear_probe_accuracy"]
    assert probe["notes"]["95% CI"] == pytest.approx(insights_run.metrics["linear_probe"]["ci95"])
    assert probe["baselines"]["colour_histogram"] == pytest.approx(
        probes["colour_histogram"]["accuracy"]
    )
    rows = data["clusters"]["sweep"]["rows"]
    assert [r["nmi"] for r in rows] == pytest.approx(filled["sweep"].curves["nmi"])
    assert data["clusters"]["sweep"]["run"]["best_k_by"] == filled["sweep"].best_by
    by = {r["perturbation"]: r for r in data["robustness"]["by_corruption"]}
    mine = [r for r in filled["robustness"].results if r["perturbation"] == "gaussian_noise"]
    assert by["gaussian_noise"]["cos_mean"] == pytest.approx(np.mean([r["cos_mean"] for r in mine]))


def test_counts_and_parameters_sit_with_the_run_not_among_the_metrics(filled):
    """A run's counts (images, classes...) and parameters (k of the kNN vote, the clustering it
    compared with) are not scores: none is a row of a metrics table; the counts the run's row
    does not already show come in `counts`."""
    data = page_data(filled["html"])
    insights_section = data["insights"]
    for section in (insights_section, data["clusters"]):
        names = {m["name"] for m in section["metrics"]}
        assert names and not {n for n in names if n.startswith("n_") or n.endswith("_id")}
        assert not names & {"k", "k_nn"}
    stored = filled["insights"].metrics
    assert insights_section["counts"] == {
        k: stored[k]
        for k in ("n_images", "n_classes", "n_multi_label", "n_single_label", "n_clustered")
    }
    run = insights_section["run"]  # already in the run's own line
    assert run["k_nn"] == 5 and run["cluster_run_id"] == filled["cluster"].run_id
    assert "k_nn" not in insights_section["counts"]


def test_untrained_banner_suggests_a_new_index_that_takes_trained_weights(filled):
    """An existing index refuses another model: the banner's command names a new index beside
    this one, this index's folders and the default trained weights, as the CLI accepts it."""
    words = shlex.split(page_data(filled["html"])["summary"]["reindex"])
    assert words[:2] == ["idx", "--index"]
    new = Path(words[2])
    assert new.parent == filled["index_dir"].parent and not new.exists()
    cmd, args = resolve(shlex.join(["idx", *words[3:]]))
    assert cmd.name == "add"
    with cmd.make_context(cmd.name, list(args)) as ctx:
        params = ctx.params
    with Index(filled["index_dir"], read_only=True) as index:
        folders = list(index.status()["folders"])
    assert [str(p) for p in params["paths"]] == folders
    assert (params["model"], params["pretrained"]) == (DEFAULT_MODEL, DEFAULT_PRETRAINED)


def test_confused_pairs_show_the_images_most_like_the_other_class(filled):
    """Each pair shows, for each side, the images that look most like the other side (by kNN
    vote, then by cosine to the other class's centroid): not the same pictures for every pair."""
    data = page_data(filled["html"])
    vectors = dict(zip(filled["ids"].tolist(), filled["vectors"]))
    names = filled["names"]
    of_label = {display_name(n): filled["ids"][names == n].tolist() for n in set(names)}
    voted = {s["image_id"] for s in data["insights"]["suspects"]}
    for pair in data["insights"]["pairs"]:
        for side, other in (("a", "b"), ("b", "a")):
            label, target = pair[f"label_{side}"], pair[f"label_{other}"]
            centroid = np.mean([vectors[i] for i in of_label[target]], axis=0)
            centroid /= np.linalg.norm(centroid)
            by_likeness = sorted(of_label[label], key=lambda i: (-(vectors[i] @ centroid), i))
            shown = [im["id"] for im in pair[f"examples_{side}"]]
            unvoted = [i for i in shown if i not in voted]
            assert unvoted == [i for i in by_likeness if i not in voted][: len(unvoted)]


def test_contact_sheets_show_the_images_nearest_each_centre(filled):
    data = page_data(filled["html"])
    run = filled["cluster"]
    nearest: dict[int, list[int]] = {}
    for i in np.lexsort((run.ids, run.distances)):
        nearest.setdefault(int(run.labels[i]), []).append(int(run.ids[i]))
    for sheet in data["clusters"]["sheets"]:
        assert [im["id"] for im in sheet["images"]] == nearest[sheet["cluster"]][:12]


def test_thumbnails_are_small_jpegs_and_respect_the_cap(filled, tmp_path):
    data = page_data(filled["html"])
    assert len(data["thumbs"]) == 48
    thumb = Image.open(io.BytesIO(_decode(data["thumbs"][str(filled["ids"][0])])))
    assert thumb.format == "JPEG" and max(thumb.size) <= 96
    with Index(filled["html"].parent / "index", read_only=True) as index:
        capped = write_report(index, tmp_path / "capped.html", max_thumbnails=5)
    small = page_data(tmp_path / "capped.html")
    first_sheet = [im["id"] for im in small["clusters"]["sheets"][0]["images"]]
    assert capped.thumbnails == len(small["thumbs"]) == 5
    # Pictures the page shows by itself come before hover samples.
    assert set(small["thumbs"]) == {str(i) for i in first_sheet[:5]}
    assert small["thumbs_note"]["capped"] is True
    assert capped.bytes < filled["result"].bytes


def _decode(uri: str) -> bytes:
    import base64

    assert uri.startswith("data:image/jpeg;base64,")
    return base64.b64decode(uri.split(",", 1)[1])


def test_cli_report_json(indexed_copy, tmp_path):
    out = tmp_path / "sub" / "r.html"
    result = CliRunner().invoke(
        cli, ["--index", str(indexed_copy), "report", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["path"] == str(out.resolve())
    assert info["bytes"] == out.stat().st_size
    assert info["sections"]["summary"] is True and info["sections"]["map"] is False
    assert "UNTRAINED" in result.stderr


def test_cli_report_bad_arguments(indexed_copy, tmp_path):
    runner = CliRunner()
    folder = runner.invoke(cli, ["--index", str(indexed_copy), "report", "--out", str(tmp_path)])
    assert folder.exit_code == 2
    negative = runner.invoke(
        cli, ["--index", str(indexed_copy), "report", "--max-thumbnails", "-1"]
    )
    assert negative.exit_code == 2
    nothing = runner.invoke(
        cli, ["--index", str(tmp_path / "none"), "report", "--out", str(tmp_path / "x.html")]
    )
    hint = config.command(tmp_path / "none", "add", "FOLDER")  # names this index
    assert nothing.exit_code == 1 and f"create one with `{hint}`" in nothing.stderr
    Index(tmp_path / "empty").close()
    empty = runner.invoke(
        cli, ["--index", str(tmp_path / "empty"), "report", "--out", str(tmp_path / "x.html")]
    )
    assert empty.exit_code == 1 and "no images" in empty.stderr
    assert not (tmp_path / "x.html").exists()


def test_metric_rows_pair_metrics_with_baselines_in_any_layout():
    rows = metric_rows(
        {
            "silhouette": {"value": 0.4, "ci95": [0.38, 0.42]},
            "silhouette_baseline": 0.01,
            "nmi": 0.7,
            "purity": 0.9,
            "baselines": {
                "nmi": 0.02,
                "purity": {"random": 0.2, "majority": {"value": 0.3}},
                "pixels": {"nmi": 0.05, "silhouette": 0.1, "dim": 192, "note": "8x8 thumbnails"},
                "failed": {"error": "one cluster"},
            },
            "note": "text is not a metric",
            "n_images": 48,
        }
    )
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"silhouette", "nmi", "purity"}  # n_images is a count, not a metric
    assert by_name["silhouette"]["value"] == 0.4
    assert by_name["silhouette"]["baselines"] == {"baseline": 0.01, "pixels": 0.1}
    assert by_name["silhouette"]["notes"] == {"ci95": [0.38, 0.42]}
    assert by_name["nmi"]["baselines"] == {"baseline": 0.02, "pixels": 0.05}
    assert by_name["purity"]["baselines"] == {"random": 0.2, "majority": 0.3}
    assert metric_rows(None) == []
    assert metric_counts(
        {"n_images": 48, "k_nn": 10, "cluster_run_id": 2, "nmi": 0.7, "n_x": "a"}
    ) == {
        "n_images": 48,
        "k_nn": 10,
        "cluster_run_id": 2,
    }


def test_map_paths_share_one_prefix():
    assert split_common_prefix(["/data/a/x.jpg", "/data/a/y/z.jpg"]) == (
        "/data/a/",
        ["x.jpg", "y/z.jpg"],
    )
    assert split_common_prefix(["/a/x.jpg", "/b/y.jpg"]) == ("/", ["a/x.jpg", "b/y.jpg"])
    assert split_common_prefix(["/only/one.jpg"]) == ("/only/", ["one.jpg"])
    assert split_common_prefix([]) == ("", [])


def test_json_for_script_cannot_close_the_script_block():
    data = {"path": "/x/</script><!--", "nan": float("nan"), "line": "a\u2028b"}
    text = json_for_script(data)
    assert "</" not in text and "<!--" not in text and "\u2028" not in text
    assert json.loads(text) == {"path": "/x/</script><!--", "nan": None, "line": "a\u2028b"}


# -- in a real browser ------------------------------------------------------------------------


def open_page(chromium, html: Path):
    """The page after load, with every console error, page error and network request recorded."""
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: problems.append(f"exception: {e}"))
    page.on(
        "request",
        lambda r: (
            problems.append(f"request: {r.url}")
            if not r.url.startswith(("file:", "data:"))
            else None
        ),
    )
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(html.as_uri())
    page.wait_for_function("document.body.dataset.ready === 'true'")
    return page, problems


def test_page_in_chromium_map_hover_zoom_and_tables(chromium, filled):
    page, problems = open_page(chromium, filled["html"])
    n = len(filled["ids"])
    assert page.evaluate("window.idxReport.pointCount()") == n
    banner = page.locator("#untrained-banner")
    assert banner.is_visible()
    assert page_data(filled["html"])["summary"]["reindex"] in banner.inner_text()

    # Hover a real point: the tooltip shows that image's thumbnail and path.
    target = int(filled["ids"][5])
    page.locator("#scatter").scroll_into_view_if_needed()
    spot = page.evaluate(f"window.idxReport.screenOf({target})")
    page.mouse.move(spot["x"], spot["y"])
    tooltip = page.locator("#tooltip")
    assert tooltip.is_visible()
    mp = page_data(filled["html"])["map"]
    assert mp["prefix"] + mp["paths"][5] in tooltip.inner_text()
    img = tooltip.locator("img")
    assert img.is_visible()
    assert img.evaluate("el => el.complete && el.naturalWidth > 0")
    assert page.evaluate("window.idxReport.pointCount()") == n
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-hover.png"))

    # Colour by label: the legend lists label names, markup in a name stays text.
    page.select_option("#colour-by", "label")
    legend = page.locator("#legend").inner_text()
    assert "red circles" in legend and HOSTILE_NAME in legend

    # A legend click brings one group forward (the others stay, greyed); a second click undoes it.
    entry = page.locator("#legend .entry").first
    entry.click()
    assert entry.get_attribute("aria-pressed") == "true"
    assert page.evaluate("window.idxReport.pointCount()") == n
    entry.click()
    assert page.locator("#legend .entry[aria-pressed=true]").count() == 0

    # Zooming in around the centre leaves fewer points in view; double-click resets.
    page.locator("#scatter").scroll_into_view_if_needed()
    box = page.locator("#scatter").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(5):
        page.mouse.wheel(0, -600)
    assert page.evaluate("window.idxReport.pointCount()") < n
    page.locator("#scatter").dblclick()
    assert page.evaluate("window.idxReport.pointCount()") == n

    # The per-class table sorts by the clicked header.
    header = page.locator("#class-table th", has_text="knn accuracy")
    header.click()
    column = page.locator("#class-table th").all_inner_texts().index("knn accuracy")
    cells = page.locator(f"#class-table tbody tr td:nth-child({column + 1})").all_inner_texts()
    values = [float(c) for c in cells]
    assert values == sorted(values, reverse=True)
    header.click()
    cells = page.locator(f"#class-table tbody tr td:nth-child({column + 1})").all_inner_texts()
    assert [float(c) for c in cells] == sorted(values)

    # silhouette, Davies-Bouldin, Calinski-Harabasz; NMI, ARI, purity against the labels
    assert page.locator("#sweep-charts svg").count() == 6
    assert "Against the labels, best k by NMI" in page.locator("#sweep-best").inner_text()
    assert page.locator("#probe-table tbody tr").count() == 3
    assert page.locator("#robustness-charts svg").count() >= 4
    assert page.locator(".cluster-sheet").count() == len(set(filled["assign"].tolist()))
    assert page.locator(".cluster-sheet img").count() == sum(
        min(12, c) for c in np.bincount(filled["assign"])
    )
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert problems == []
    page.close()


def test_robustness_heatmap_fills_the_clean_column_at_every_severity(chromium, filled):
    """clean is measured once (severity 0): its column shows that baseline whichever severity
    is picked, and every perturbation's column is filled at the severities measured."""
    page, problems = open_page(chromium, filled["html"])
    table = "table[aria-label='class by perturbation']"
    severity = page.locator("select[aria-label='severity']")
    options = severity.locator("option").all_inner_texts()
    assert options == [f"severity {s}" for s in SEVERITIES]
    for option in options:
        severity.select_option(label=option)
        heads = page.locator(f"{table} thead th").all_inner_texts()[1:]
        assert heads[0] == "clean" and len(heads) == 1 + len(PERTURBATIONS)
        for row in page.locator(f"{table} tbody tr").all():
            cells = row.locator("td").all_inner_texts()
            assert len(cells) == len(heads) and "–" not in cells, (option, cells)
    assert problems == []
    page.close()


def swatches(page, entries: str) -> list[tuple[int, str, str]]:
    """(category, legend text, swatch colour as #rrggbb) of each legend entry."""
    found = page.eval_on_selector_all(
        entries,
        "els => els.map(e => [Number(e.dataset.category), e.textContent,"
        " getComputedStyle(e.querySelector('.sw')).backgroundColor])",
    )
    return [(cat, text, rgb_hex(colour)) for cat, text, colour in found]


def rgb_hex(css: str) -> str:
    return "#{:02x}{:02x}{:02x}".format(*map(int, re.findall(r"\d+", css)[:3]))


def test_page_colours_clusters_and_classes_with_the_python_palette(chromium, filled):
    page, problems = open_page(chromium, filled["html"])
    # cluster i is palette.colour(i): on the map's legend and beside its contact sheet
    clusters = swatches(page, "#legend .entry")
    assert [c for c, _, _ in clusters] == sorted(set(filled["assign"].tolist()))
    assert all(colour == palette.colour(c) for c, _, colour in clusters)
    for c, _, colour in clusters:
        sheet = page.locator(f".cluster-sheet[data-cluster='{c}'] > .sw")
        assert rgb_hex(sheet.evaluate("e => getComputedStyle(e).backgroundColor")) == colour
    # classes: largest first, the i-th largest palette.colour(i), none grey
    page.select_option("#colour-by", "label")
    classes = swatches(page, "#legend .entry")
    counts = [int(re.search(r"\((\d+)\)$", text).group(1)) for _, text, _ in classes]
    assert counts == sorted(counts, reverse=True)
    assert [c for c, _, _ in classes] == list(range(len(classes)))
    assert [colour for _, _, colour in classes] == list(palette.COLOURS[: len(classes)])
    assert problems == []
    page.close()


def test_page_fits_its_width_reads_its_numbers_and_shows_whole_captions(chromium, filled):
    page, problems = open_page(chromium, filled["html"])
    page.set_viewport_size({"width": 1400, "height": 900})
    # nothing wider than the page: wide tables scroll inside their own box
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    main = page.evaluate("document.querySelector('main').getBoundingClientRect().right")
    for table in ("#class-table", "#probe-table", "#corruption-table"):
        assert (
            page.evaluate(f"document.querySelector('{table}').getBoundingClientRect().right")
            <= main
        )
    # run lines: rounded numbers and durations, parameters spelled out, no raw JSON
    lines = page.locator("p.run").all_inner_texts()
    assert lines and not any(re.search(r"\d\.\d{5,}|[{}\"]|\[[\d\"]", line) for line in lines), (
        lines
    )
    # each likely-mislabelled caption is shown whole, predicted label included
    captions = page.locator("#suspects figcaption")
    assert captions.count() > 0
    for i in range(captions.count()):
        caption = captions.nth(i)
        assert "→" in caption.inner_text()
        assert caption.evaluate("el => el.scrollWidth <= el.clientWidth")
    assert problems == []
    page.close()


def test_page_in_chromium_without_analysis(chromium, indexed_copy, tmp_path):
    with Index(indexed_copy, read_only=True) as index:
        write_report(index, tmp_path / "bare.html")
    page, problems = open_page(chromium, tmp_path / "bare.html")
    notes = page.locator("[data-missing]").all_inner_texts()
    for name in ("project", "cluster", "labels", "robustness", "leakage"):
        assert any(command(indexed_copy, *COMMANDS[name]) in t for t in notes), name
    assert page.locator("#untrained-banner").is_visible()
    assert page.evaluate("window.idxReport.pointCount()") == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-empty.png"), full_page=True)
    assert problems == []
    page.close()


def test_leakage_between_two_sets_shows_its_counts_and_pairs_as_pictures(
    chromium, indexed_copy, synthetic_set, tmp_path
):
    """Issue 23: the latest `idx duplicates --across A B`, with its closest pairs side by side."""
    a, b = synthetic_set / "sunsets", synthetic_set / "starry_nights"
    with Index(indexed_copy) as index:
        found = leakage(index, str(a), str(b), by="hash", max_distance=64)
        write_report(index, tmp_path / "leak.html")
    section = page_data(tmp_path / "leak.html")["leakage"]
    assert (section["run_id"], section["b_with_copy"], section["images_b"]) == (1, 6, 6)
    assert section["pair_count"] == found.pair_count == 36 and section["share_a"] == 1.0
    shown = section["pairs"]
    assert [p["b_id"] for p in shown] == [p.b_id for p in found.pairs[: len(shown)]]
    assert len(shown) == 8 and all(p["b_uri"] and p["a_uri"] for p in shown)
    page, problems = open_page(chromium, tmp_path / "leak.html")
    cards = page.locator("#leakage-cards").inner_text()
    assert "6 of 6" in cards and "100.0%" in cards
    assert page.locator("#leakage-pairs img").count() == 16
    assert page.locator("nav.toc a[href='#leakage']").count() == 1
    assert problems == []
    page.close()


def test_page_in_chromium_with_labels_only(chromium, labelled_only, indexed_copy):
    page, problems = open_page(chromium, labelled_only)
    notes = page.locator("[data-missing]").all_inner_texts()
    assert any(command(indexed_copy, *COMMANDS["insights"]) in t for t in notes)
    assert any(command(indexed_copy, *COMMANDS["cluster"]) in t for t in notes)
    cards = page.locator("#summary .cards").inner_text()
    assert command(indexed_copy, *COMMANDS["neighbors"]) in cards
    assert page.evaluate("window.idxReport.pointCount()") == 0
    assert problems == []
    page.close()


def test_robustness_examples_use_the_perturbation_registry(filled):
    data = page_data(filled["html"])
    shown = {
        e["perturbation"]: [im["severity"] for im in e["images"]]
        for e in data["robustness"]["examples"]
    }
    # One clean image, then each severity the run measured, under the registry's canonical name.
    measured = [0, *SEVERITIES]
    assert shown == {name: measured for name in resolve_perturbations(PERTURBATIONS)}
    assert all(
        im["uri"].startswith("data:image/")
        for e in data["robustness"]["examples"]
        for im in e["images"]
    )


def test_trained_weights_get_no_untrained_warning(indexed_copy, tmp_path):
    with Index(indexed_copy) as index:
        model = json.loads(index.catalog.get_meta("model"))
        assert model["untrained"] is True
        index.catalog.set_meta("model", json.dumps(model | {"untrained": False}))
        result = write_report(index, tmp_path / "trained.html")
    assert result.untrained is False
    summary = page_data(tmp_path / "trained.html")["summary"]
    assert summary["untrained"] is False and summary["reindex"] is None


def test_demo_ends_with_the_report_and_it_opens_cleanly(chromium, tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        cli, ["demo", "--out", str(out), "--tiny", "--per-category", "3", "-q"]
    )
    assert result.exit_code == 0, result.output
    report = out / "report.html"
    assert f"report: {report.resolve()}" in result.stdout
    page, problems = open_page(chromium, report)
    with Index(out / "index", read_only=True) as index:
        images = index.sql("SELECT count(*) FROM images")[1][0][0]
        projected = index.sql(
            "SELECT count(*) FROM projections WHERE run_id = (SELECT max(id) FROM projection_runs)"
        )[1][0][0]
    # The demo's map step projects every image it generated, and the page plots them all.
    assert projected == images > 0
    assert page.evaluate("window.idxReport.pointCount()") == images
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-demo.png"), full_page=True)
    assert problems == []
    page.close()
