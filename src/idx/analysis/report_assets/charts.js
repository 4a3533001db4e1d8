// Small hand-written building blocks: DOM elements, number formats, colours, SVG line charts,
// heatmap tables and sortable tables. No library: the page must open offline from one file.

const SVG_NS = "http://www.w3.org/2000/svg";

// h("div", {class: "x", text: "y", onclick: f}, child, ...): user strings only ever go through
// textContent, never innerHTML, so paths or labels holding markup stay text.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") el.textContent = String(value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.appendChild(typeof child === "string" || typeof child === "number"
      ? document.createTextNode(String(child)) : child);
  }
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "text") el.textContent = String(value);
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) if (child) el.appendChild(child);
  return el;
}

function fmt(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  if (value === 0) return "0";  // also -0, e.g. the entropy of a class held by one cluster
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  const a = Math.abs(value);
  if (a >= 1000) return value.toLocaleString("en-US", {maximumFractionDigits: 1});
  if (a >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

function fmtBytes(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(2) + " GB";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + " MB";
  if (n >= 1e3) return (n / 1e3).toFixed(0) + " kB";
  return n + " B";
}

// PALETTE, colourOf(i), the greys and TOP_CLASSES come from idx.analysis.palette (palette.js, made
// by palette.script()): every PNG, the report and the web app colour with that one list.

// Map categories for colouring `values` (a number per point, -1 = none). Clusters keep their
// number: cluster i is colourOf(i) everywhere. Classes (`names` given) are ranked by how many
// points carry them, ties by name; the i-th largest gets category i (colourOf(i)) for the
// TOP_CLASSES largest, and the rest OTHER_CATEGORY, as the PNG maps do. Returns {cats: category
// per point, legend: [{cat, text, count}] (clusters by number, classes largest first), greys
// last, of: value -> category}.
function mapCategories(values, names) {
  const counts = new Map();
  for (const v of values) if (v >= 0) counts.set(v, (counts.get(v) || 0) + 1);
  const none = values.filter((v) => v < 0).length;
  const byName = (a, b) => b[1] - a[1] || (names ? String(names[a[0]]).localeCompare(String(names[b[0]])) : 0) || a[0] - b[0];
  const ranked = [...counts.entries()].sort(byName);
  const of = new Map();
  const legend = [];
  if (!names) {  // by cluster number, as the PNG's legend
    for (const [v, n] of ranked.sort((a, b) => a[0] - b[0])) {
      of.set(v, v);
      legend.push({cat: v, text: `cluster ${v}`, count: n});
    }
  } else {
    let other = 0;
    ranked.forEach(([v, n], rank) => {
      of.set(v, rank < TOP_CLASSES ? rank : OTHER_CATEGORY);
      if (rank < TOP_CLASSES) legend.push({cat: rank, text: String(names[v]), count: n});
      else other += n;
    });
    const rest = ranked.length - TOP_CLASSES;
    if (rest > 0) legend.push({cat: OTHER_CATEGORY, text: `other: ${rest} classes`, count: other});
  }
  if (none && counts.size) legend.push({cat: -1, text: names ? "unlabelled" : "none", count: none});
  const cats = values.map((v) => (v >= 0 ? of.get(v) : -1));
  return {cats, legend, of};
}

// Round tick values; `integer` (k, severity) never gets fractional ticks. `label` prints a tick
// with just enough decimals to tell neighbours apart.
function niceTicks(lo, hi, count, integer = false) {
  if (!(hi > lo)) { const d = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1; lo -= d; hi += d; }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) || raw;
  if (integer) step = Math.max(1, Math.round(step));
  const ticks = [];
  for (let i = Math.ceil(lo / step); i * step <= hi + step * 1e-9; i++) ticks.push(i * step);
  const decimals = Math.max(0, Math.min(8, -Math.floor(Math.log10(step) + 1e-9)));
  const label = (t) => Math.abs(t) >= 1000 ? fmt(t) : (Math.abs(t) < step * 1e-9 ? 0 : t).toFixed(decimals);
  return {lo: Math.min(lo, ticks[0]), hi: Math.max(hi, ticks[ticks.length - 1]), ticks, label};
}

// series: [{name, xs, ys}], drawn as lines with point markers; `mark` highlights one x.
function lineChart({title, series, xLabel, yLabel, width = 380, height = 230, mark = null}) {
  const pad = {l: 52, r: 12, t: 24, b: 38};
  const xsAll = series.flatMap((se) => se.xs);
  const ysAll = series.flatMap((se) => se.ys).filter((v) => v !== null && Number.isFinite(v));
  const fig = h("figure", {class: "chart-fig", style: {margin: "0"}});
  if (!xsAll.length || !ysAll.length) return fig;
  const xt = niceTicks(Math.min(...xsAll), Math.max(...xsAll), 6, xsAll.every(Number.isInteger));
  const yt = niceTicks(Math.min(...ysAll), Math.max(...ysAll), 5);
  const X = (v) => pad.l + (v - xt.lo) / (xt.hi - xt.lo) * (width - pad.l - pad.r);
  const Y = (v) => height - pad.b - (v - yt.lo) / (yt.hi - yt.lo) * (height - pad.t - pad.b);
  const svg = s("svg", {class: "chart", width, height, viewBox: `0 0 ${width} ${height}`,
    role: "img", "aria-label": title});
  svg.appendChild(s("text", {x: pad.l, y: 14, "font-weight": 600, text: title}));
  for (const t of yt.ticks) {
    svg.appendChild(s("line", {class: "grid", x1: pad.l, x2: width - pad.r, y1: Y(t), y2: Y(t)}));
    svg.appendChild(s("text", {x: pad.l - 6, y: Y(t) + 4, "text-anchor": "end", text: yt.label(t)}));
  }
  for (const t of xt.ticks) {
    svg.appendChild(s("text", {x: X(t), y: height - pad.b + 14, "text-anchor": "middle", text: xt.label(t)}));
  }
  const axis = s("g", {class: "axis"},
    s("line", {x1: pad.l, x2: width - pad.r, y1: height - pad.b, y2: height - pad.b}),
    s("line", {x1: pad.l, x2: pad.l, y1: pad.t, y2: height - pad.b}));
  svg.appendChild(axis);
  if (xLabel) svg.appendChild(s("text", {x: (pad.l + width - pad.r) / 2, y: height - 6, "text-anchor": "middle", text: xLabel}));
  if (yLabel) svg.appendChild(s("text", {x: 12, y: (pad.t + height - pad.b) / 2, "text-anchor": "middle",
    transform: `rotate(-90 12 ${(pad.t + height - pad.b) / 2})`, text: yLabel}));
  if (mark !== null && Number.isFinite(mark)) {
    svg.appendChild(s("line", {x1: X(mark), x2: X(mark), y1: pad.t, y2: height - pad.b,
      stroke: "#e15759", "stroke-dasharray": "4 3"}));
  }
  series.forEach((se, si) => {
    const colour = se.colour || colourOf(si);
    const pts = se.xs.map((x, i) => [x, se.ys[i]]).filter((p) => p[1] !== null && Number.isFinite(p[1]));
    if (!pts.length) return;
    svg.appendChild(s("polyline", {fill: "none", stroke: colour, "stroke-width": 2,
      points: pts.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ")}));
    for (const [x, y] of pts) {
      svg.appendChild(s("circle", {cx: X(x), cy: Y(y), r: 3, fill: colour},
        s("title", {text: `${se.name}: ${fmt(x)} → ${fmt(y)}`})));
    }
  });
  fig.appendChild(svg);
  if (series.length > 1) {
    fig.appendChild(h("div", {class: "legend"}, series.map((se, si) =>
      h("span", {}, h("span", {class: "sw", style: {background: se.colour || colourOf(si)}}), se.name))));
  }
  return fig;
}

// A table of coloured cells; values scaled to [lo, hi] (or their own range) for the colour.
function heatmapTable({rows, cols, values, cellText, title, lo = null, hi = null, reverse = false}) {
  const flat = values.flat().filter((v) => v !== null && Number.isFinite(v));
  const vmin = lo !== null ? lo : Math.min(...flat);
  const vmax = hi !== null ? hi : Math.max(...flat);
  const shade = (v) => {
    if (v === null || !Number.isFinite(v)) return "#f1f3f5";
    let t = vmax > vmin ? (v - vmin) / (vmax - vmin) : 0.5;
    t = Math.max(0, Math.min(1, reverse ? 1 - t : t));
    return `rgb(${Math.round(247 - t * 200)}, ${Math.round(251 - t * 150)}, ${Math.round(255 - t * 75)})`;
  };
  const table = h("table", {class: "heatmap", "aria-label": title || "heatmap"},
    h("thead", {}, h("tr", {}, h("th", {}), cols.map((c) => h("th", {class: "num", text: c})))),
    h("tbody", {}, rows.map((r, i) => h("tr", {}, h("th", {class: "row", title: r, text: r}),
      values[i].map((v, j) => {
        const t = vmax > vmin && v !== null ? (v - vmin) / (vmax - vmin) : 0;
        return h("td", {style: {background: shade(v), color: (reverse ? 1 - t : t) > 0.65 ? "#fff" : "#1d2329"},
          title: `${r} × ${cols[j]}: ${cellText ? cellText(i, j) : fmt(v)}`,
          text: cellText ? cellText(i, j) : fmt(v)});
      })))));
  return h("div", {class: "scroll"}, table);
}

// columns: [{key, label, numeric, render}]; clicking a header sorts by it (again: reverses).
function sortableTable(columns, rows, {initial = null, descending = true} = {}) {
  const tbody = h("tbody");
  const heads = columns.map((c) => h("th", {class: c.numeric ? "num" : "", scope: "col", text: c.label || c.key,
    title: c.help || null}));
  const table = h("table", {class: "sortable"}, h("thead", {}, h("tr", {}, heads)), tbody);
  let current = {key: null, desc: false};
  const fill = () => {
    tbody.replaceChildren(...rows.map((row) => h("tr", {}, columns.map((c) => {
      const v = row[c.key];
      const cell = h("td", {class: c.numeric ? "num" : ""});
      if (c.render) cell.append(c.render(v, row)); else cell.textContent = c.numeric ? fmt(v) : (v ?? "–");
      return cell;
    }))));
  };
  const sortBy = (key, desc) => {
    const col = columns.find((c) => c.key === key);
    rows.sort((a, b) => {
      const x = a[key], y = b[key];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      const cmp = col && col.numeric ? x - y : String(x).localeCompare(String(y));
      return desc ? -cmp : cmp;
    });
    current = {key, desc};
    heads.forEach((th, i) => th.setAttribute("aria-sort",
      columns[i].key === key ? (desc ? "descending" : "ascending") : "none"));
    fill();
  };
  heads.forEach((th, i) => th.addEventListener("click", () => {
    const key = columns[i].key;
    sortBy(key, current.key === key ? !current.desc : Boolean(columns[i].numeric));
  }));
  if (initial) sortBy(initial, descending); else fill();
  return h("div", {class: "scroll"}, table);
}
