// The leakage panel: the latest `idx duplicates --across A B` run (GET /api/leakage), how many
// images of each set have a near-duplicate in the other, and the closest pairs side by side (a
// click opens the image). h() and fmt() come from the report's charts.js; api(), basename() and
// openImage() from app.js.
"use strict";

function leakagePicture(side, id, path) {
  return h("figure", {class: "card", "data-id": id, title: path, onclick: () => openImage(id)},
    h("img", {src: `/api/thumbs/${id}?size=128`, loading: "lazy", alt: basename(path)}),
    h("figcaption", {}, h("span", {class: "name", text: `${side} · ${basename(path)}`})));
}

async function loadLeakage() {
  const note = document.getElementById("leakage-note");
  let run;
  try { run = await api("/api/leakage"); } catch (error) { note.textContent = error.message; return; }
  if (run.missing) { note.textContent = `${run.missing.what} Make one with: ${run.missing.command}`; return; }
  const pct = (share) => share === null ? "–" : `${(100 * share).toFixed(1)}%`;
  note.textContent = `Run ${run.run_id}: ${fmt(run.b_with_copy)} of ${fmt(run.images_b)} images of B ` +
    `(${run.side_b}, ${pct(run.share_b)}) have a near-duplicate in A (${run.side_a}); ` +
    `${fmt(run.a_with_copy)} of ${fmt(run.images_a)} of A (${pct(run.share_a)}) have one in B. ` +
    `${fmt(run.pair_count)} pairs, linked by ${run.linked_by}.`;
  document.getElementById("leakage-pairs").replaceChildren(...run.pairs.map((p) => h("div", {},
    h("h3", {text: `similarity ${fmt(p.similarity)} · ${p.distance === null ? "no hash" : `${p.distance} bits`}`}),
    h("div", {class: "grid small"}, leakagePicture("B", p.b_id, p.b_path), leakagePicture("A", p.a_id, p.a_path)))));
}

loadLeakage();
