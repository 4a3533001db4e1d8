"""The web app of `idx serve` in Debian's Chromium (Playwright): type a query and see results,
open a result's neighbours, drop an image, filter by label, click a point of the map; a first
page that says what to do, an untrained model that shows, a label typo answered with the labels
there are, Enter in any box; no console error, and no request leaves loopback."""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from idx.analysis import palette
from tests.serving import Server, prepare_index


@pytest.fixture(scope="module")
def server(tmp_path_factory, indexed, tiny_model):
    index_dir = prepare_index(indexed, tmp_path_factory.mktemp("web") / "index", tiny_model)
    running = Server(index_dir).start()
    yield running
    assert running.stop() == 0, running.stderr()


@pytest.fixture
def page(chromium, server):
    """The app loaded, with console errors, page errors and requests off loopback recorded
    (those are also refused)."""
    context = chromium.new_context(viewport={"width": 1300, "height": 900})
    problems: list[str] = []

    def guard(route):
        if urlparse(route.request.url).hostname not in ("127.0.0.1", None):
            problems.append(f"request off loopback: {route.request.url}")
            route.abort()
        else:
            route.continue_()

    context.route("**/*", guard)
    page = context.new_page()
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: problems.append(f"exception: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(server.base + "/")
    until(page, "document.querySelector('#status').textContent.includes('images')")
    yield page
    context.close()
    assert problems == []


def until(page, expression: str, timeout: float = 30.0) -> None:
    """Wait until a JavaScript expression is true. (Playwright's wait_for_function evaluates
    strings with eval, which the page's Content-Security-Policy rightly refuses.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        time.sleep(0.05)


def _result_ids(page, where: str = "#results") -> list[int]:
    return [
        int(x)
        for x in page.eval_on_selector_all(f"{where} .card", "els => els.map(e => e.dataset.id)")
    ]


def _thumbs_loaded(page, where: str) -> None:
    until(
        page,
        f"[...document.querySelectorAll('{where} .card img')].every(i => i.complete && i.naturalWidth > 0)",
    )


def test_type_a_query_then_open_a_result_and_its_neighbours(page, server):
    assert "48 images" in page.text_content("#status")
    page.fill("#query", "red circles")
    page.press("#query", "Enter")
    page.wait_for_selector("#results .card")
    ids = _result_ids(page)
    assert len(ids) == 20 and len(set(ids)) == 20  # k defaults to 20 in the page
    _, api = server.json("/api/search?text=red+circles&k=20")
    assert ids == [h["id"] for h in api]
    _thumbs_loaded(page, "#results")
    assert "Results for “red circles”" in page.text_content("#results-title")

    page.click(f'#results .card[data-id="{ids[2]}"]')
    page.wait_for_selector("#neighbors .card")
    near = _result_ids(page, "#neighbors")
    _, api = server.json(f"/api/neighbors/{ids[2]}?k=10")
    assert near == [h["id"] for h in api] and ids[2] not in near
    _thumbs_loaded(page, "#neighbors")
    info = page.text_content("#d-info")
    _, details = server.json(f"/api/details/{ids[2]}")
    assert details["path"] in info and details["labels"][0] in info

    page.click(f'#neighbors .card[data-id="{near[0]}"]')  # walk on through a neighbour
    until(page, f"document.querySelector('#d-id').textContent === '#{near[0]}'")


def test_drop_an_image_to_search_by_it(page, server):
    _, details = server.json("/api/details/7")
    data = base64.b64encode(Path(details["path"]).read_bytes()).decode()
    page.evaluate(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const file = new File([bytes], name, {type: "image/jpeg"});
            const drop = new DataTransfer();
            drop.items.add(file);
            for (const type of ["dragenter", "dragover", "drop"]) {
                document.body.dispatchEvent(new DragEvent(type, {dataTransfer: drop, bubbles: true}));
            }
        }""",
        [data, Path(details["path"]).name],
    )
    page.wait_for_selector("#results .card")
    assert _result_ids(page)[0] == 7
    assert page.text_content("#results .card .score").startswith("1. 1.000")
    assert page.is_hidden("#drop-overlay") and page.is_visible(".query-preview")


def test_filter_by_label_then_clear(page):
    page.fill("#query", "a bright sunset")
    page.press("#query", "Enter")
    page.wait_for_selector("#results .card")
    page.fill("#f-label", "checkerboards")
    page.dispatch_event("#f-label", "change")
    until(
        page,
        "[...document.querySelectorAll('#results .card .labels')].length === 6 && "
        "[...document.querySelectorAll('#results .card .labels')].every(e => e.textContent === 'checkerboards')",
    )
    page.select_option("#f-cluster", index=1)  # with a cluster too: both must hold
    page.wait_for_load_state("networkidle")
    labels = page.eval_on_selector_all(
        "#results .card .labels", "els => els.map(e => e.textContent)"
    )
    assert set(labels) <= {"checkerboards"}
    page.click("#f-clear")
    until(page, "document.querySelectorAll('#results .card').length === 20")


def test_a_slow_answer_does_not_land_over_a_newer_one(page):
    page.fill("#query", "a bright sunset")
    page.press("#query", "Enter")
    until(page, "document.querySelectorAll('#results .card').length === 20")
    held = []  # the label-filtered search is held back (its real answer comes when released)
    page.route(re.compile(r".*/api/search\?.*label=checkerboards.*"), lambda r: held.append(r))
    page.fill("#f-label", "checkerboards")
    page.dispatch_event("#f-label", "change")
    deadline = time.monotonic() + 30
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(20)
    assert held, "the filtered search was never sent"
    page.click("#f-clear")  # a newer search, answered at once
    until(page, "document.querySelectorAll('#results .card').length === 20")
    try:
        held[0].continue_()  # the old answer now: the page cancelled that request already
    except Exception:  # noqa: BLE001 - Playwright refuses to continue a cancelled request
        pass
    page.wait_for_timeout(500)
    assert len(page.query_selector_all("#results .card")) == 20
    assert page.text_content("#message") == ""


def test_the_map_draws_every_point_and_opens_one(page, server):
    until(page, "document.querySelector('#map').dataset.drawn === '48'")
    assert "pca map" in page.text_content("#map-note")
    assert len(page.query_selector_all("#legend > span")) == 4  # the 4 clusters
    page.select_option("#colour-by", "label")
    until(page, "document.querySelectorAll('#legend > span').length === 8")
    # the screen position of the first point, from the scatter itself
    x, y = page.evaluate(
        "() => { const r = document.querySelector('#map').getBoundingClientRect();"
        " const [px, py] = state.scatter.toScreen(0); return [r.left + px, r.top + py]; }"
    )
    page.mouse.move(x, y)
    page.wait_for_selector("#tooltip:not([hidden])")
    page.mouse.click(x, y)
    first = page.evaluate("state.map.ids[0]")
    until(page, f"document.querySelector('#d-id').textContent === '#{first}'")
    page.wait_for_selector("#neighbors .card")


def test_the_map_colours_with_the_python_palette(page):
    until(page, "document.querySelector('#map').dataset.drawn === '48'")
    # colourOf() of palette.js, read back through a canvas as #rrggbb, past the list too
    shown = page.evaluate(
        "() => { const c = document.createElement('canvas').getContext('2d');"
        " return Array.from({length: 42}, (_, i) => { c.fillStyle = colourOf(i - 2);"
        " return c.fillStyle; }); }"
    )
    for i, colour in enumerate(shown, start=-2):
        want = palette.colour(i)
        assert all(
            abs(int(colour[k : k + 2], 16) - int(want[k : k + 2], 16)) <= 1 for k in (1, 3, 5)
        ), (i, colour, want)
    # the legend's clusters, by number, each in its palette colour
    legend = page.eval_on_selector_all(
        "#legend > span",
        "els => els.map(e => [Number(e.dataset.value),"
        " getComputedStyle(e.querySelector('.sw')).backgroundColor])",
    )
    assert [v for v, _ in legend] == sorted(v for v, _ in legend)
    for value, css in legend:
        assert "#{:02x}{:02x}{:02x}".format(*map(int, re.findall(r"\d+", css))) == palette.colour(
            value
        )


def test_the_page_says_what_is_missing_without_a_map(chromium, indexed, tmp_path):
    index_dir = tmp_path / "plain"
    shutil.copytree(indexed, index_dir)
    plain = Server(index_dir).start()
    try:
        page = chromium.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(plain.base + "/")
        note = "document.querySelector('#map-note').textContent"
        until(page, f"{note}.includes('Make one with: idx --index ')")
        assert page.evaluate(note).endswith(" project --method tsne")  # pasted, it runs there
        page.fill("#query", "stripes")
        page.press("#query", "Enter")
        page.wait_for_selector("#results .card")
        assert page.eval_on_selector_all("#results .card .labels", "els => els.length") == 0
        # no labels: nothing to type into the label box, nor a request the server would refuse
        assert page.is_disabled("#f-label")
        assert page.get_attribute("#f-label", "placeholder") == "no labels yet"
        page.close()
        assert errors == []
    finally:
        assert plain.stop() == 0


def _searches(page) -> list[str]:
    """The /api/search requests the page makes from now on (their URLs, as they are sent)."""
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/api/search" in r.url else None)
    return sent


def test_the_page_opens_with_what_to_do_and_example_searches(page, server):
    """Issue 24: the page opened on an empty left pane with no hint."""
    assert page.is_visible("#hint") and "drop an image" in page.text_content("#hint")
    until(page, "document.querySelectorAll('#examples button').length === 4")
    _, facets = server.json("/api/facets")
    names = {f["name"].replace("_", " ") for f in facets["labels"]}
    examples = page.eval_on_selector_all("#examples button", "els => els.map(e => e.textContent)")
    assert set(examples) <= names, examples
    page.click("#examples button >> nth=1")
    until(page, "document.querySelectorAll('#results .card').length === 20")
    assert page.input_value("#query") == examples[1] and page.is_hidden("#hint")
    assert f"Results for “{examples[1]}”" in page.text_content("#results-title")
    # the label box offers every label as you type (a datalist fed by /api/facets)
    options = page.eval_on_selector_all("#labels-list option", "els => els.map(e => e.value)")
    assert sorted(options) == sorted(f["name"] for f in facets["labels"])


def test_an_untrained_model_is_a_banner_not_a_grey_line(chromium, page, server):
    """Issue 24: the untrained warning was a grey status line."""
    until(page, "!document.querySelector('#banner').hidden")
    banner = page.text_content("#banner")
    assert "Untrained model" in banner and "random" in banner and "noise" in banner
    colour = page.eval_on_selector("#banner", "e => getComputedStyle(e).backgroundColor")
    assert colour not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)")
    # a trained model: no banner
    _, status = server.json("/api/status")
    trained = json.dumps(status | {"model": status["model"] | {"untrained": False}})
    context = chromium.new_context()
    context.route(
        "**/api/status", lambda r: r.fulfill(body=trained, content_type="application/json")
    )
    other = context.new_page()
    other.goto(server.base + "/")
    until(other, "document.querySelector('#status').textContent.includes('images')")
    assert other.is_hidden("#banner")
    context.close()


def test_enter_in_a_filter_box_searches(page):
    """Issue 24: Enter in a filter box did not search."""
    sent = _searches(page)
    page.fill("#f-folder", "/nowhere")
    page.press("#f-folder", "Enter")  # no query yet: the page says how to begin
    until(page, "document.querySelector('#message').textContent.includes('Type what to find')")
    assert sent == []
    page.fill("#f-folder", "")
    page.fill("#query", "red circles")  # typed, not sent
    page.fill("#f-where", "format = 'PNG'")
    page.press("#f-where", "Enter")
    until(page, "document.querySelectorAll('#results .card').length > 0")
    assert "Results for “red circles”" in page.text_content("#results-title")
    paths = page.eval_on_selector_all("#results .card", "els => els.map(e => e.title)")
    assert paths and all(p.endswith(".png") for p in paths), paths
    page.click("#results-title")  # leaving the box after Enter does not search again
    page.wait_for_load_state("networkidle")
    assert len(sent) == 1 and "where=format" in sent[0], sent
    page.fill("#f-where", "")
    page.press("#f-where", "Enter")
    until(page, "document.querySelectorAll('#results .card').length === 20")
    assert len(sent) == 2


def test_a_label_no_image_has_offers_the_labels_there_are(page):
    """Issue 24: a label error told a browser user to run `idx labels list`."""
    page.fill("#query", "red circles")
    page.press("#query", "Enter")
    until(page, "document.querySelectorAll('#results .card').length === 20")
    sent = _searches(page)
    page.fill("#f-label", "checkerbord")
    page.press("#f-label", "Enter")
    page.wait_for_selector("#message.error button")
    message = page.text_content("#message")
    assert "No image has the label “checkerbord”. Did you mean:" in message
    assert "idx" not in message and page.query_selector_all("#results .card") == []
    buttons = page.eval_on_selector_all("#message button", "els => els.map(e => e.textContent)")
    assert buttons == ["checkerboards"] and sent == []  # the page knew: nothing was asked
    page.click("#message button")
    until(
        page,
        "[...document.querySelectorAll('#results .card .labels')].length === 6 && "
        "[...document.querySelectorAll('#results .card .labels')].every(e => e.textContent === 'checkerboards')",
    )
    assert page.input_value("#f-label") == "checkerboards" and page.text_content("#message") == ""
    page.fill("#f-label", "zzzz")  # nothing close: the most frequent labels
    page.press("#f-label", "Enter")
    until(page, "document.querySelectorAll('#message button').length === 5")
    assert "Pick one of its 8 labels" in page.text_content("#message")
