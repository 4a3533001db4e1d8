// The idx web app: search by text or by a dropped image, filter, open an image and its
// neighbours, and look at the latest 2-D map. Talks only to this server's /api/ (see app.py);
// h(), fmt() and mapCategories() come from the report's charts.js, colourOf() from palette.js (the
// one palette, made by idx.analysis.palette), Scatter from the report's scatter.js; the label
// filter's checks and suggestions from labels.js.
"use strict";

const $ = (id) => document.getElementById(id);
const NEIGHBOURS_SHOWN = 10;
const EXAMPLES_SHOWN = 4;
// Example searches for an index whose labels and folders name nothing to search for.
const GENERIC_EXAMPLES = ["a red apple", "a dog on a beach", "a city street at night", "a handwritten note"];
const state = {map: null, scatter: null, position: new Map(), lastImages: null, query: null,
  categoryOf: new Map(), facets: null, lastSearch: null, files: 0};

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const error = new Error((body && body.error) || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function basename(path) { return path.slice(path.lastIndexOf("/") + 1); }

function filterParams() {
  const params = new URLSearchParams();
  const add = (name, value) => { value = value.trim(); if (value) params.set(name, value); };
  add("label", $("f-label").value);
  add("cluster", $("f-cluster").value);
  add("folder", $("f-folder").value);
  add("where", $("f-where").value);
  return params;
}

function showMessage(text, error = false) {
  const box = $("message");
  box.replaceChildren(...[text].flat());
  box.classList.toggle("error", error);
}

function card(hit) {
  const caption = [h("span", {class: "score", text: `${hit.rank}. ${hit.score.toFixed(3)}`}),
    h("span", {class: "name", text: basename(hit.path)})];
  if (hit.labels) caption.push(h("span", {class: "labels", text: hit.labels.join(", ") || "–"}));
  return h("figure", {class: "card", "data-id": hit.id, title: hit.path, onclick: () => openImage(hit.id)},
    h("img", {src: `/api/thumbs/${hit.id}?size=256`, loading: "lazy", alt: basename(hit.path)}),
    h("figcaption", {}, caption));
}

function showResults(hits, title, preview = null) {
  const heading = $("results-title");
  heading.replaceChildren(title);
  if (preview) heading.appendChild(h("img", {class: "query-preview", src: preview, alt: "query image"}));
  $("results").replaceChildren(...hits.map(card));
  showMessage(hits.length ? "" : "No image passes the filters.");
}

let searching = null;  // the AbortController of the latest search

// Run a search; a newer one cancels it, so that a slow answer cannot land over a newer one
// (a filter changed, then cleared, while the first request was still out). `key` names the
// search (query, filters, k): a filter box that is left after Enter searched does not repeat it.
async function run(task, key) {
  if (searching) searching.abort();
  const control = searching = new AbortController();
  state.lastSearch = key;
  $("hint").hidden = true;  // a search speaks for itself from now on
  const unknown = unknownLabel();
  if (unknown !== null) {  // no request: the page knows every label, and this is none of them
    $("results").replaceChildren();
    showMessage(labelProblem(unknown), true);
    return;
  }
  showMessage("Searching…");
  try { await task(control.signal); } catch (error) {
    if (!control.signal.aborted) showMessage(errorShown(error), true);
  }
}

// A search's parameters (its words, the filters, k) and its key: the same key, the same search.
function searchParams(query) {
  const params = filterParams();
  if (query.text !== undefined) params.set("text", query.text);
  params.set("k", $("k").value);
  return {params, key: query.text !== undefined ? `${params}` : `image ${state.files}&${params}`};
}

function searchText(text) {
  state.query = {text};
  const {params, key} = searchParams(state.query);
  return run(async (signal) => {
    const hits = await api(`/api/search?${params}`, {signal});
    if (!signal.aborted) showResults(hits, `Results for “${text}”`);
  }, key);
}

function searchImage(file) {
  if (!state.query || state.query.file !== file) state.files++;
  state.query = {file};
  const {params, key} = searchParams(state.query);
  const form = new FormData();
  form.append("image", file, file.name || "image");
  const preview = URL.createObjectURL(file);
  return run(async (signal) => {
    const hits = await api(`/api/search?${params}`, {method: "POST", body: form, signal});
    if (!signal.aborted) showResults(hits, `Results for the image ${file.name || ""}`, preview);
  }, key);
}

function repeatQuery() {
  if (!state.query) return;
  if (state.query.text !== undefined) searchText(state.query.text);
  else searchImage(state.query.file);
}

// What Search and Enter in any box do: search for the words in the search box, else again for
// the image searched last; with neither, say how to begin.
function searchNow() {
  const text = $("query").value.trim();
  if (text) return searchText(text);
  if (state.query && state.query.file) return searchImage(state.query.file);
  showMessage("Type what to find in the search box above, or drop an image: the filters narrow " +
    "its results.", true);
  $("query").focus();
}

// A filter changed (a choice picked, a box left): the last search again with it, unless that
// very search ran already (Enter in the box searched before the box was left).
function filtersChanged() {
  focusFromFilters();
  if (state.query && searchParams(state.query).key !== state.lastSearch) repeatQuery();
}

async function openImage(id) {
  document.querySelectorAll(".card.selected").forEach((el) => el.classList.remove("selected"));
  document.querySelectorAll(`.card[data-id="${id}"]`).forEach((el) => el.classList.add("selected"));
  const pane = $("details");
  pane.hidden = false;
  $("d-id").textContent = `#${id}`;
  $("d-img").src = `/api/thumbs/${id}?size=512`;
  $("d-link").href = `/api/images/${id}`;
  const params = filterParams();
  params.set("k", NEIGHBOURS_SHOWN);
  try {
    const [info, near] = await Promise.all([api(`/api/details/${id}`), api(`/api/neighbors/${id}?${params}`)]);
    const rows = [["path", info.path], ["size", fmtBytes(info.size)], ["pixels", `${info.width} × ${info.height}`],
      ["format", info.format], ["labels", info.labels.join(", ") || "–"],
      ["cluster", info.cluster === null ? "–" : `${info.cluster} (run ${info.cluster_run})`]];
    $("d-info").replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {text: k}), h("dd", {text: v})]));
    $("neighbors").replaceChildren(...near.map(card));
    if (!near.length) $("neighbors").replaceChildren(h("p", {text: "No neighbour passes the filters."}));
  } catch (error) {
    $("d-info").replaceChildren(h("p", {class: "error"}, errorShown(error)));
  }
  markOnMap(id);
}

// -- filters and status --------------------------------------------------------------------

async function loadFacets() {
  const facets = state.facets = await api("/api/facets");
  $("labels-list").replaceChildren(...facets.labels.map((l) => h("option", {value: l.name, text: `${l.images} images`})));
  const noLabels = !facets.labels.length && facets.labels_complete;
  $("f-label").disabled = noLabels;
  $("f-label").placeholder = noLabels ? "no labels yet" : "any (type to pick)";
  showExamples(facets);
  $("folders-list").replaceChildren(...facets.folders.map((f) => h("option", {value: f.folder, text: `${f.images} images`})));
  const select = $("f-cluster");
  const chosen = select.value;
  const sizes = facets.clusters ? facets.clusters.sizes : [];
  select.replaceChildren(h("option", {value: "", text: "any"}),
    ...sizes.map(([c, n]) => h("option", {value: String(c), text: `${c} (${n})`})));
  select.value = chosen;
}

// Example searches for the hint: the most frequent labels, else the folders' names (when they
// sort the images: two or more), else some that any collection of photos may answer.
function showExamples(facets) {
  const words = (name) => name.replace(/[_-]+/g, " ").trim();  // red_circles: "red circles"
  const named = (names) => [...new Set(names.map(words).filter((n) => /[a-z]{3}/i.test(n)))];
  let examples = named(facets.labels.map((l) => l.name));
  if (!examples.length) {
    const folders = named(facets.folders.map((f) => basename(f.folder)));
    examples = folders.length >= 2 ? folders : GENERIC_EXAMPLES;
  }
  examples = examples.slice(0, EXAMPLES_SHOWN);
  $("examples").replaceChildren(...examples.map((text) => h("button", {type: "button", class: "chip",
    onclick: () => { $("query").value = text; searchText(text); }}, text)));
  $("examples-line").hidden = false;
}

function showBanner(status) {
  const banner = $("banner");
  banner.hidden = !(status.model && status.model.untrained);
  if (banner.hidden || banner.childElementCount) return;
  banner.append(h("strong", {text: "Untrained model. "}),
    `This index was built with ${status.model.name}, whose weights are random: the scores, ` +
    "neighbours, clusters and the map below show noise, not what the images look like. " +
    "An index built with a trained CLIP model gives meaningful results.");
}

async function loadStatus() {
  const status = await api("/api/status");
  const model = status.model ? status.model.description : "no model yet";
  const job = status.job && status.job.status === "running" ? " · an idx add is running" : "";
  $("status").textContent = `${fmt(status.images)} images · ${model}${job}`;
  showBanner(status);
  if (!status.images && $("results").childElementCount === 0) {
    $("hint").replaceChildren(h("p", {text: "This index holds no images yet. Add a folder of " +
      "images to it (on the command line: idx add FOLDER), then reload this page."}));
  }
  if (state.lastImages !== null && state.lastImages !== status.images) loadFacets().catch(() => {});
  state.lastImages = status.images;
}

// -- the map -------------------------------------------------------------------------------

async function loadMap() {
  const data = await api("/api/map");
  if (data.missing) {
    $("map").hidden = true;
    $("map-note").textContent = `${data.missing.what} Make one with: ${data.missing.command}`;
    return;
  }
  state.map = data;
  data.ids.forEach((id, i) => state.position.set(id, i));
  const canvas = $("map");
  state.scatter = new Scatter(canvas, data.x, data.y, showTooltip);
  let down = null;
  canvas.addEventListener("mousedown", (ev) => { down = [ev.clientX, ev.clientY]; });
  canvas.addEventListener("click", (ev) => {
    const moved = down && Math.hypot(ev.clientX - down[0], ev.clientY - down[1]) > 4;
    const i = state.scatter.hovered;
    if (!moved && i >= 0) openImage(data.ids[i]);
  });
  $("map-note").textContent = `${fmt(data.ids.length)} images, ${data.run.method} map (run ${data.run.id}); ` +
    "wheel to zoom, drag to pan, double-click to reset, click a point to open it";
  colourMap();
}

function categories() {
  const by = $("colour-by").value;
  if (by === "label" && state.map.label) return {values: state.map.label, names: state.map.label_names};
  if (state.map.cluster) return {values: state.map.cluster, names: null};
  return {values: state.map.ids.map(() => -1), names: null};
}

function colourMap() {
  if (!state.scatter) return;
  const {values, names} = categories();
  const found = mapCategories(values, names);
  state.categoryOf = found.of;
  state.scatter.setColours(found.cats);
  $("legend").replaceChildren(...found.legend.slice(0, 24).map(({cat, text, count}) => h("span", {
    "data-value": cat,
    onclick: () => { state.scatter.focus = state.scatter.focus === cat ? null : cat; state.scatter.draw(); dimLegend(); },
  }, h("span", {class: "sw", style: {background: colourOf(cat)}}), `${text} (${count})`)));
  focusFromFilters();
}

function dimLegend() {
  const focus = state.scatter.focus;
  document.querySelectorAll("#legend > span").forEach((el) => {
    el.classList.toggle("dim", focus !== null && Number(el.dataset.value) !== focus);
  });
}

// A cluster or label filter also focuses the map on it when the map is coloured that way.
function focusFromFilters() {
  if (!state.scatter) return;
  const by = $("colour-by").value;
  let focus = null;
  if (by === "cluster" && $("f-cluster").value !== "") focus = Number($("f-cluster").value);
  const label = $("f-label").value.trim().toLowerCase();
  if (by === "label" && label && state.map.label_names) {
    const at = state.map.label_names.findIndex((n) => n.toLowerCase() === label);
    if (at >= 0 && state.categoryOf.has(at)) focus = state.categoryOf.get(at);
  }
  state.scatter.focus = focus;
  state.scatter.draw();
  dimLegend();
}

function markOnMap(id) {
  if (!state.scatter || !state.position.has(id)) return;
  state.scatter.hovered = state.position.get(id);
  state.scatter.draw();
}

function showTooltip(i, x, y) {
  const tip = $("tooltip");
  if (i < 0) { tip.hidden = true; return; }
  const map = state.map;
  const parts = [`#${map.ids[i]}`];
  if (map.cluster) parts.push(`cluster ${map.cluster[i]}`);
  if (map.label && map.label[i] >= 0) parts.push(map.label_names[map.label[i]]);
  tip.textContent = parts.join(" · ");
  tip.style.left = `${x + 12}px`;
  tip.style.top = `${y + 12}px`;
  tip.hidden = false;
}

// -- wiring --------------------------------------------------------------------------------

function isImage(file) { return file && (!file.type || file.type.startsWith("image/")); }

function wire() {
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    searchNow();
  });
  $("file").addEventListener("change", () => { if ($("file").files[0]) searchImage($("file").files[0]); });
  for (const id of ["f-label", "f-cluster", "f-folder", "f-where"]) {
    $(id).addEventListener("change", filtersChanged);
  }
  for (const id of ["f-label", "f-folder", "f-where"]) {
    $(id).addEventListener("keydown", (ev) => {
      if (ev.key !== "Enter" || ev.isComposing) return;
      ev.preventDefault();
      focusFromFilters();
      searchNow();
    });
  }
  $("f-clear").addEventListener("click", () => {
    for (const id of ["f-label", "f-cluster", "f-folder", "f-where"]) $(id).value = "";
    focusFromFilters();
    repeatQuery();
  });
  $("k").addEventListener("change", repeatQuery);
  $("colour-by").addEventListener("change", colourMap);
  $("d-close").addEventListener("click", () => { $("details").hidden = true; });
  const overlay = $("drop-overlay");
  let depth = 0;
  document.addEventListener("dragenter", (ev) => { ev.preventDefault(); depth++; overlay.hidden = false; });
  document.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) overlay.hidden = true; });
  document.addEventListener("dragover", (ev) => ev.preventDefault());
  document.addEventListener("drop", (ev) => {
    ev.preventDefault();
    depth = 0;
    overlay.hidden = true;
    const file = ev.dataTransfer && ev.dataTransfer.files[0];
    if (isImage(file)) searchImage(file);
    else showMessage("Drop an image file (JPEG, PNG, WebP, …) to search by it.", true);
  });
}

wire();
loadStatus().catch((error) => { $("status").textContent = error.message; });
loadFacets().catch(() => {});
loadMap().catch((error) => { $("map-note").textContent = error.message; });
setInterval(() => loadStatus().catch(() => {}), 5000);
