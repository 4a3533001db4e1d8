// The report page: reads the JSON data block and builds each section. A section whose data
// does not exist yet says which idx command produces it.

const DATA = JSON.parse(document.getElementById("idx-data").textContent);
const THUMBS = DATA.thumbs || {};
const LABELS = (DATA.labels && DATA.labels.names) || [];
const APP = document.getElementById("app");
const TOOLTIP = document.getElementById("tooltip");
const state = {scatter: null};

const METRIC_HELP = {
  silhouette: "higher is better, -1..1: how much closer images are to their own cluster than to the next",
  davies_bouldin: "lower is better, >= 0: cluster spread relative to distance between clusters",
  calinski_harabasz: "higher is better: between-cluster over within-cluster dispersion",
  purity: "share of images in the majority label of their cluster",
  nmi: "normalised mutual information of clusters and labels, 0..1",
  ari: "adjusted Rand index of clusters vs labels; 0 = chance",
  knn_accuracy: "how often an image's nearest neighbours vote for its own label",
  zero_shot_accuracy: "the text encoder's \"a photo of a {label}\" guess matches the label",
  linear_probe_accuracy: "logistic regression on the embeddings, scored on held-out folds",
};

function thumb(id, caption, title) {
  const uri = THUMBS[String(id)];
  const pic = uri ? h("img", {src: uri, alt: caption || `image ${id}`})
    : h("div", {class: "noimg", text: `#${id}`});
  return h("figure", {title: title || caption || `image ${id}`}, pic,
    caption ? h("figcaption", {text: caption}) : null);
}

function basename(path) { return String(path || "").split(/[\\/]/).pop(); }

function section(id, title, intro) {
  const sec = h("section", {id}, h("h2", {text: title}), intro ? h("p", {class: "muted", text: intro}) : null);
  APP.appendChild(sec);
  return sec;
}

function missingNote(info) {
  return h("div", {class: "missing", "data-missing": "true"},
    h("span", {text: (info.what || "Not computed yet.") + " Produce it with: "}),
    h("code", {text: info.command}),
    info.then ? h("span", {text: " " + info.then}) : null);
}

function fmtSeconds(s) {
  if (s < 1) return s >= 0.01 ? `${Math.round(s * 1000)} ms` : `${(s * 1000).toPrecision(2)} ms`;
  if (s < 120) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

// A run's column (or a parameter inside a JSON column) for reading: numbers rounded, seconds
// as durations, lists and objects spelled out.
function fmtValue(key, v) {
  if (typeof v === "number") return /(^|_)seconds$|_s$/.test(key) ? fmtSeconds(v) : fmt(v);
  if (Array.isArray(v)) return v.map((x) => fmtValue(key, x)).join(", ");
  if (v && typeof v === "object") {
    return Object.entries(v).map(([k, x]) => `${k.replace(/_/g, " ")} ${fmtValue(k, x)}`).join(", ");
  }
  return String(v);
}

function runLine(run, name) {
  if (!run) return null;
  const bits = Object.entries(run).filter(([, v]) => v !== null && v !== "")
    .map(([k, v]) => `${k.replace(/_/g, " ")} ${fmtValue(k, v)}`);
  return h("p", {class: "muted run", text: `${name}: ${bits.join(" · ")}`});
}

// The counts and parameters a run stored with its metrics (images, classes...), in a line of
// their own under the run's: they are not scores, so not in the metrics table.
function countsLine(counts) {
  const bits = Object.entries(counts || {})
    .map(([k, v]) => `${k.replace(/^n_/, "").replace(/_/g, " ")} ${fmtValue(k, v)}`);
  return bits.length ? h("p", {class: "muted run counts", text: `counts: ${bits.join(" · ")}`}) : null;
}

// A table too wide for the page scrolls sideways inside its own box; headers wrap at spaces.
function wideTable(id, columns, rows, options) {
  const cols = columns.map((c) => ({...c, label: (c.label || c.key).replace(/_/g, " ")}));
  return h("div", {class: "wide", id}, sortableTable(cols, rows, options));
}

function metricsTable(rows) {
  return sortableTable([
    {key: "name", label: "metric"},
    {key: "value", label: "value", numeric: true},
    {key: "baselines", label: "baselines (same metric on random / shuffled data)",
      render: (b) => Object.keys(b || {}).length
        ? Object.entries(b).map(([k, v]) => `${k}: ${fmt(v)}`).join(" · ") : "–"},
    {key: "help", label: "how to read it"},
  ], rows.map((r) => ({...r, help: [METRIC_HELP[r.name], ...Object.entries(r.notes || {})
    .map(([k, v]) => `${k.replace(/_/g, " ")}: ${Array.isArray(v) ? v.map(fmt).join("–") : fmt(v)}`)]
    .filter(Boolean).join(" · ")})));
}

function renderHeader() {
  const sm = DATA.summary;
  APP.appendChild(h("header", {},
    h("h1", {text: DATA.title}),
    h("p", {class: "muted", text: `${DATA.index} · generated ${DATA.generated_at} by idx ${DATA.idx_version}`}),
    h("nav", {class: "toc"}, [["summary", "Summary"], ["map", "Map"], ["clusters", "Clusters"],
      ["insights", "Category insights"], ["robustness", "Robustness"]]
      .map(([id, label]) => h("a", {href: "#" + id, text: label})))));
  if (sm.untrained) {
    // An index keeps the model it was built with: trained weights need a new one (sm.reindex).
    APP.appendChild(h("div", {class: "banner untrained", role: "alert", id: "untrained-banner"},
      "UNTRAINED MODEL WEIGHTS: every embedding, cluster and score in this report comes from a " +
        "model with random weights. Nothing here says anything about CLIP. To measure CLIP, index " +
        "the same images into a new index with trained weights: ",
      h("code", {text: sm.reindex})));
  }
  if (sm.health !== "ok" && sm.problems && sm.problems.length) {
    APP.appendChild(h("div", {class: "banner", role: "status"}, "Index health: attention. ",
      sm.problems.join("; ")));
  }
}

function renderSummary() {
  const sm = DATA.summary;
  const sec = section("summary", "Summary");
  const model = sm.model;
  const v = sm.vectors || {};
  const card = (k, val, d) => h("div", {class: "card"}, h("div", {class: "k", text: k}),
    h("div", {class: "v", text: val}), d ? h("div", {class: "d", text: d}) : null);
  sec.appendChild(h("div", {class: "cards"},
    card("images", fmt(sm.images), `${fmtBytes(sm.bytes)} · ` +
      Object.entries(sm.formats || {}).map(([f, n]) => `${f} ${n}`).join(", ")),
    card("model", model ? model.name : "none yet", model ? `${model.description} · ${model.embed_dim}-d` : ""),
    card("weights", model ? (model.untrained ? "UNTRAINED (random)" : (model.pretrained || "checkpoint")) : "–",
      model && model.checkpoint ? basename(model.checkpoint) : ""),
    card("skipped files", fmt(sm.skipped), sm.skipped ? "see the table below" : "none"),
    card("vector index", `${v.type || "flat"} · ${fmt(v.count || 0)}`,
      (v.in_sync ? "in sync with the catalog" : "behind the catalog (rebuilt on next use)") +
      (v.recall_at_10 !== undefined && v.recall_at_10 !== null ? ` · recall@10 ${fmt(v.recall_at_10)}` : " · exact search")),
    card("index health", sm.health, (sm.problems || []).join("; ")),
    sm.neighbors ? card("kNN graph", `${fmt(sm.neighbors.edges)} edges`, `k = ${sm.neighbors.k}`) :
      card("kNN graph", "not built", DATA.commands.neighbors),
    sm.labels ? card("labels", `${fmt(sm.labels.classes)} classes`, `${fmt(sm.labels.labelled_images)} labelled images`) :
      card("labels", "none", DATA.commands.labels),
  ));
  if (sm.skipped_reasons && sm.skipped_reasons.length) {
    sec.appendChild(h("h3", {text: "Skipped files by reason"}));
    sec.appendChild(sortableTable([{key: "reason", label: "reason"}, {key: "count", label: "files", numeric: true},
      {key: "example", label: "example"}], sm.skipped_reasons, {initial: "count"}));
  }
}

function renderMap() {
  const sec = section("map", "2-D map",
    "Each point is an image, placed by the latest projection of its embedding. Hover for the image, " +
    "wheel to zoom, drag to pan, double-click to reset; click a legend entry to bring its group forward.");
  const mp = DATA.map;
  if (mp.missing) { sec.appendChild(missingNote(mp.missing)); return; }
  sec.appendChild(runLine(mp.run, "projection run"));
  const choices = [];
  if (mp.cluster) choices.push(["cluster", `cluster (run ${mp.cluster_run.id}, k = ${mp.cluster_run.k})`]);
  if (mp.label) choices.push(["label", "label (most specific label of the image)"]);
  choices.push(["none", "no colour"]);
  const select = h("select", {id: "colour-by", "aria-label": "colour by"},
    choices.map(([value, text]) => h("option", {value, text})));
  const n = mp.x.length;
  const shown = Object.keys(THUMBS).length;
  const note = DATA.thumbs_note && DATA.thumbs_note.capped
    ? `Thumbnails embedded for ${fmt(DATA.thumbs_note.embedded)} of ${fmt(n)} images (idx report --max-thumbnails N).`
    : `${fmt(n)} points.`;
  sec.appendChild(h("div", {class: "controls"}, h("label", {}, "colour by ", select),
    h("span", {class: "muted", text: note})));
  const canvas = h("canvas", {class: "scatter", id: "scatter", "data-points": String(n),
    role: "img", "aria-label": `2-D map of ${n} images`});
  sec.appendChild(h("div", {class: "map-wrap"}, canvas));
  const legend = h("div", {class: "legend", id: "legend"});
  sec.appendChild(legend);
  const scatter = new Scatter(canvas, mp.x, mp.y, (i, cx, cy) => hover(mp, i, cx, cy));
  state.scatter = scatter;
  const apply = () => {
    const by = select.value;
    const values = by === "cluster" ? mp.cluster : by === "label" ? mp.label : new Array(n).fill(0);
    const {cats, legend: groups} = mapCategories(values, by === "label" ? LABELS : null);
    scatter.setColours(by === "none" ? new Array(n).fill(0) : cats);
    const entries = by === "none" ? [] : groups.slice(0, 30).map(({cat, text, count}) => {
      const entry = h("span", {class: "entry", role: "button", tabindex: "0", "aria-pressed": "false",
        "data-category": cat, title: "click to bring this group forward; click again to show all"},
        h("span", {class: "sw", style: {background: colourOf(cat)}}), `${text} (${count})`);
      const toggle = () => {
        scatter.focus = scatter.focus === cat ? null : cat;
        entries.forEach((e) => e.setAttribute("aria-pressed", "false"));
        if (scatter.focus !== null) entry.setAttribute("aria-pressed", "true");
        scatter.draw();
      };
      entry.addEventListener("click", toggle);
      entry.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); toggle(); } });
      return entry;
    });
    legend.replaceChildren(...entries,
      groups.length > 30 ? h("span", {class: "muted", text: `+ ${groups.length - 30} more`}) : "");
  };
  select.addEventListener("change", apply);
  apply();
}

function hover(mp, i, cx, cy) {
  if (i < 0) { TOOLTIP.hidden = true; return; }
  const id = mp.ids[i];
  const uri = THUMBS[String(id)];
  const labels = (mp.labels ? mp.labels[i] : []).map((l) => LABELS[l]);
  TOOLTIP.replaceChildren(
    uri ? h("img", {src: uri, alt: `image ${id}`}) : h("div", {class: "muted", text: "no thumbnail embedded"}),
    h("div", {class: "path", text: mp.prefix + mp.paths[i]}),
    h("div", {text: `id ${id}` + (mp.cluster ? ` · cluster ${mp.cluster[i]}` : "")}),
    labels.length ? h("div", {text: "labels: " + labels.join(", ")}) : null);
  TOOLTIP.hidden = false;
  const x = Math.min(cx + 16, window.innerWidth - 340), y = Math.min(cy + 16, window.innerHeight - 200);
  TOOLTIP.style.left = `${Math.max(0, x)}px`;
  TOOLTIP.style.top = `${Math.max(0, y)}px`;
}

function renderClusters() {
  const sec = section("clusters", "Clusters");
  const cl = DATA.clusters;
  if (cl.missing) { sec.appendChild(missingNote(cl.missing)); return; }
  sec.appendChild(runLine(cl.run, "cluster run"));
  const clusterCounts = countsLine(cl.counts);
  if (clusterCounts) sec.appendChild(clusterCounts);
  sec.appendChild(h("h3", {text: "Metrics beside their baselines"}));
  sec.appendChild(metricsTable(cl.metrics));
  sec.appendChild(h("h3", {text: "Choice of k"}));
  if (cl.sweep.missing) sec.appendChild(missingNote(cl.sweep.missing));
  else {
    const rows = cl.sweep.rows;
    const ks = rows.map((r) => r.k);
    const keys = Object.keys(rows[0] || {}).filter((k) => k !== "k" && rows.some((r) => typeof r[k] === "number"));
    const best = rows.reduce((a, r) => (r.silhouette ?? -Infinity) > (a.silhouette ?? -Infinity) ? r : a, rows[0]);
    const by = cl.sweep.run.best_k_by || {};
    const byLabels = ["nmi", "ari", "purity"].filter((m) => by[m] !== undefined)
      .map((m) => `${m.toUpperCase()} ${by[m]}`).join(", ");
    sec.appendChild(h("p", {class: "muted", id: "sweep-best", text: (best && best.silhouette !== undefined
      ? `Best k by silhouette: ${best.k} (dashed line).` : "Metrics per k.") +
      (byLabels ? ` Against the labels, best k by ${byLabels} (purity grows with k).` : "")}));
    sec.appendChild(h("div", {class: "charts", id: "sweep-charts"}, keys.map((key) => lineChart({
      title: key, xLabel: "k", series: [{name: key, xs: ks, ys: rows.map((r) => r[key]), colour: LINE_COLOUR}],
      mark: best ? best.k : null}))));
  }
  sec.appendChild(h("h3", {text: "Contact sheets: the images nearest each cluster's centre"}));
  for (const sh of cl.sheets) {
    const tops = sh.top_labels.map(([name, count]) => `${name} (${count})`).join(", ");
    sec.appendChild(h("div", {class: "cluster-sheet", "data-cluster": sh.cluster},
      h("span", {class: "sw", style: {background: colourOf(sh.cluster)}}),
      h("strong", {text: `Cluster ${sh.cluster}`}),
      h("span", {class: "muted", text: ` · ${fmt(sh.size)} images` + (tops ? ` · top labels: ${tops}` : "")}),
      h("div", {class: "sheet"}, sh.images.map((im) => thumb(im.id, basename(im.path), im.path)))));
  }
}

function renderInsights() {
  const sec = section("insights", "Category insights",
    "How the labels you imported line up with CLIP's embedding space.");
  const ins = DATA.insights;
  if (ins.missing) { sec.appendChild(missingNote(ins.missing)); return; }
  sec.appendChild(h("h3", {text: "Labels × clusters"}));
  if (ins.heatmap.missing) sec.appendChild(missingNote(ins.heatmap.missing));
  else {
    const hm = ins.heatmap;
    const shares = hm.counts.map((row) => { const t = row.reduce((a, b) => a + b, 0); return row.map((c) => t ? c / t : 0); });
    sec.appendChild(h("p", {class: "muted", text: `Share of each label's images in each cluster of run ${hm.run_id}` +
      (hm.truncated ? ` (the ${hm.rows.length} largest of ${hm.total_labels} labels)` : "") + "."}));
    sec.appendChild(heatmapTable({rows: hm.rows, cols: hm.cols.map(String), values: shares, lo: 0, hi: 1,
      title: "label by cluster", cellText: (i, j) => hm.counts[i][j] ? String(hm.counts[i][j]) : ""}));
  }
  if (ins.run_missing) { sec.appendChild(missingNote(ins.run_missing)); return; }
  sec.appendChild(runLine(ins.run, "insight run"));
  const insightCounts = countsLine(ins.counts);
  if (insightCounts) sec.appendChild(insightCounts);
  sec.appendChild(h("h3", {text: "Whole-set metrics beside their baselines"}));
  sec.appendChild(metricsTable(ins.metrics));
  if (ins.probes && ins.probes.rows.length) {
    sec.appendChild(h("h3", {text: "Linear probe beside its baselines"}));
    sec.appendChild(h("p", {class: "muted", text: "Logistic regression on each set of features, " +
      "stratified k-fold cross-validation: every image predicted by a model trained without it; " +
      "the interval is Wilson's 95% over the images."}));
    sec.appendChild(wideTable("probe-table", [
      {key: "features"}, {key: "accuracy", numeric: true},
      {key: "ci", label: "95% CI", render: (v, r) => `${fmt(r.ci_low)}–${fmt(r.ci_high)}`},
      {key: "folds", numeric: true}, {key: "fold_sd", label: "sd over folds", numeric: true},
      {key: "knn_accuracy", label: "kNN accuracy (same features)", numeric: true},
      {key: "n_images", label: "images", numeric: true}], ins.probes.rows));
  }
  sec.appendChild(h("h3", {text: "Per class (click a header to sort)"}));
  const cols = ins.classes.columns.map((c) => ({key: c.name, numeric: c.numeric}));
  sec.appendChild(wideTable("class-table", cols, ins.classes.rows, {initial: "size"}));
  sec.appendChild(h("h3", {text: "Most confused pairs"}));
  if (!ins.pairs.length) sec.appendChild(h("p", {class: "muted", text: "No confused pairs stored."}));
  for (const p of ins.pairs) {
    sec.appendChild(h("div", {class: "pair"},
      h("strong", {text: `${p.label_a} ↔ ${p.label_b}`}),
      h("span", {class: "muted", text: Object.entries(p.stats).map(([k, v]) => ` · ${k} ${fmt(v)}`).join("")}),
      h("div", {class: "sheet"}, p.examples_a.map((im) => thumb(im.id, p.label_a, im.path)),
        p.examples_b.map((im) => thumb(im.id, p.label_b, im.path)))));
  }
  sec.appendChild(h("h3", {text: "Likely mislabelled or ambiguous images"}));
  if (!ins.suspects.length) sec.appendChild(h("p", {class: "muted", text: "None stored."}));
  sec.appendChild(h("div", {class: "sheet captioned", id: "suspects"}, ins.suspects.map((sp) =>
    thumb(sp.image_id, `${sp.label} → ${sp.predicted}`,
      `${sp.path}\nlabelled ${sp.label}, neighbours say ${sp.predicted} (${fmt(sp.vote_share)})`))));
}

function renderRobustness() {
  const sec = section("robustness", "Robustness",
    "What corrupting images does to their embeddings, neighbours, clusters and labels.");
  const rb = DATA.robustness;
  if (rb.missing) { sec.appendChild(missingNote(rb.missing)); return; }
  sec.appendChild(runLine(rb.run, "robustness run"));
  const rows = rb.results.rows;
  // The run's order gives each perturbation its colour, as in curves.png; clean is severity 0.
  const found = new Set(rows.filter((r) => r.perturbation !== "clean").map((r) => r.perturbation));
  const order = (rb.run.perturbations || []).filter((p) => found.has(p));
  const perts = [...order, ...[...found].filter((p) => !order.includes(p))];
  const clean = rows.find((r) => r.perturbation === "clean");
  const metricKeys = rb.results.columns.filter((c) => c.numeric && !["severity", "n"].includes(c.name))
    .map((c) => c.name).filter((k) => rows.some((r) => r[k] !== null && r[k] !== undefined));
  sec.appendChild(h("h3", {text: "Metrics against severity, one line per perturbation"}));
  sec.appendChild(h("div", {class: "charts", id: "robustness-charts"}, metricKeys.map((key) => lineChart({
    title: key, xLabel: "severity", series: perts.map((p, i) => {
      const mine = rows.filter((r) => r.perturbation === p).sort((a, b) => a.severity - b.severity);
      if (clean) mine.unshift(clean);
      return {name: p, xs: mine.map((r) => r.severity), ys: mine.map((r) => r[key]), colour: colourOf(i)};
    })}))));
  if (rb.by_corruption && rb.by_corruption.length) {
    sec.appendChild(h("h3", {text: "Per perturbation: mean over the severities, drop from clean"}));
    const keys = ["knn_accuracy", "zero_shot_accuracy", "cos_mean", "topk_overlap", "self_found_at_1"]
      .filter((k) => rb.by_corruption.some((r) => r[k] !== null && r[k] !== undefined));
    sec.appendChild(wideTable("corruption-table", [{key: "perturbation"},
      {key: "severities", label: "levels", numeric: true},
      ...keys.flatMap((k) => [{key: k, numeric: true}, {key: `${k}_drop`, label: `${k} drop`, numeric: true}])],
      rb.by_corruption));
  }
  sec.appendChild(h("h3", {text: "Classes × perturbations"}));
  const cr = rb.classes.rows;
  if (!cr.length) sec.appendChild(missingNote({what: "No per-class results (they need labels).",
    command: DATA.commands.labels, then: "then run the robustness command again."}));
  else {
    const keys = rb.classes.columns.filter((c) => c.numeric && !["severity", "n"].includes(c.name)).map((c) => c.name);
    // clean is measured once, at severity 0: its column shows that baseline at every severity
    const sevs = [...new Set(cr.map((r) => r.severity))].filter((v) => v !== 0).sort((a, b) => a - b);
    if (!sevs.length) sevs.push(0);
    const mSel = h("select", {"aria-label": "class metric"}, keys.map((k) => h("option", {value: k, text: k})));
    const sSel = h("select", {"aria-label": "severity"}, sevs.map((v) => h("option", {value: v, text: `severity ${v}`})));
    sSel.value = String(sevs[sevs.length - 1]);
    const holder = h("div");
    const draw = () => {
      const key = mSel.value, sev = Number(sSel.value);
      const labels = [...new Set(cr.map((r) => r.label_name))].sort();
      const found = new Set(cr.map((r) => r.perturbation));
      const ps = [...(found.has("clean") ? ["clean"] : []), ...[...found].filter((p) => p !== "clean").sort()];
      const values = labels.map((l) => ps.map((p) => {
        const at = p === "clean" ? 0 : sev;
        const r = cr.find((x) => x.label_name === l && x.perturbation === p && x.severity === at);
        return r && typeof r[key] === "number" ? r[key] : null;
      }));
      holder.replaceChildren(heatmapTable({rows: labels, cols: ps, values, title: "class by perturbation"}));
    };
    mSel.addEventListener("change", draw); sSel.addEventListener("change", draw);
    sec.appendChild(h("div", {class: "controls"}, mSel, sSel, h("span", {class: "muted", text: "darker = higher; clean: the images unperturbed"})));
    sec.appendChild(holder);
    draw();
  }
  sec.appendChild(h("h3", {text: "Example images per severity"}));
  if (!rb.examples || !rb.examples.length) {
    sec.appendChild(h("p", {class: "muted", text: "No example images could be drawn for this run (see idx -v report for why)."}));
  } else {
    for (const ex of rb.examples) {
      sec.appendChild(h("div", {}, h("strong", {text: ex.perturbation}),
        h("div", {class: "sheet"}, ex.images.map((im) => h("figure", {},
          h("img", {src: im.uri, alt: `${ex.perturbation} severity ${im.severity}`}),
          h("figcaption", {text: im.severity === 0 ? "clean" : `severity ${im.severity}`}))))));
    }
  }
}

function guarded(name, fn) {
  // One broken section must not take the page down with it; the error still reaches the console.
  try { fn(); } catch (err) {
    APP.appendChild(h("div", {class: "banner", text: `The ${name} section could not be drawn: ${err}`}));
    console.error(err);
  }
}

renderHeader();
guarded("summary", renderSummary);
guarded("map", renderMap);
guarded("clusters", renderClusters);
guarded("insights", renderInsights);
guarded("robustness", renderRobustness);

window.idxReport = {
  ready: true,
  pointCount: () => (state.scatter ? state.scatter.drawn : 0),
  // Milliseconds for one full redraw of the map (bench/report.py measures it at 50k points).
  drawMs: () => {
    if (!state.scatter) return null;
    const t0 = performance.now();
    state.scatter.draw();
    return performance.now() - t0;
  },
  screenOf: (id) => {
    const sc = state.scatter;
    const i = sc ? DATA.map.ids.indexOf(id) : -1;
    if (i < 0) return null;
    const rect = sc.canvas.getBoundingClientRect();
    const [x, y] = sc.toScreen(i);
    return {x: rect.left + x, y: rect.top + y};
  },
};
document.body.dataset.ready = "true";
