// The leakage section (idx duplicates --across A B): how many images of each set have a
// near-duplicate in the other, and the closest pairs side by side. Loaded after report.js, it
// adds its own section and table-of-contents entry.

function renderLeakage() {
  const sec = section("leakage", "Leakage between two sets",
    "Near-duplicates with one image in each set (resized, re-encoded, brightened or lightly " +
    "cropped copies): each inflates kNN and probe figures measured across the two.");
  const lk = DATA.leakage;
  if (!lk || lk.missing) { sec.appendChild(missingNote(lk ? lk.missing : {command: "idx duplicates --across A B"})); return; }
  sec.appendChild(runLine(lk.run, "leakage run"));
  const pct = (share) => share === null || share === undefined ? "–" : `${(100 * share).toFixed(1)}%`;
  const card = (k, v, d) => h("div", {class: "card"}, h("div", {class: "k", text: k}),
    h("div", {class: "v", text: v}), h("div", {class: "d", text: d}));
  const linked = lk.linked_by === "hash" ? `hash within ${lk.max_distance} bits`
    : lk.linked_by === "clip" ? `CLIP similarity ≥ ${lk.threshold}`
    : `CLIP similarity ≥ ${lk.threshold} and hash within ${lk.max_distance} of 64 bits`;
  sec.appendChild(h("div", {class: "cards", id: "leakage-cards"},
    card("images of B with a copy in A", `${fmt(lk.b_with_copy)} of ${fmt(lk.images_b)}`, `${pct(lk.share_b)} · B = ${lk.side_b}`),
    card("images of A with a copy in B", `${fmt(lk.a_with_copy)} of ${fmt(lk.images_a)}`, `${pct(lk.share_a)} · A = ${lk.side_a}`),
    card("pairs", fmt(lk.pair_count), `linked by ${linked}`),
    lk.without_hash ? card("without a hash", fmt(lk.without_hash), "never linked by the hash: idx add FOLDER takes it") : null));
  if (!lk.pairs.length) { sec.appendChild(h("p", {class: "muted", text: "No near-duplicate pairs: the sets do not leak into each other."})); return; }
  sec.appendChild(h("h3", {text: `The ${lk.pairs.length} closest pairs (B left, A right)`}));
  const picture = (uri, id, path) => h("figure", {title: path},
    uri ? h("img", {src: uri, alt: `image ${id}`}) : h("div", {class: "noimg", text: `#${id}`}),
    h("figcaption", {text: basename(path)}));
  sec.appendChild(h("div", {class: "sheet captioned", id: "leakage-pairs"}, lk.pairs.map((p) =>
    h("div", {class: "pair", "data-b": p.b_id, "data-a": p.a_id},
      h("div", {class: "muted", text: `similarity ${fmt(p.similarity)} · ${p.distance === null ? "no hash" : `${p.distance} bits`}`}),
      h("div", {class: "sheet"}, picture(p.b_uri, p.b_id, p.b_path), picture(p.a_uri, p.a_id, p.a_path))))));
}

guarded("leakage", renderLeakage);
document.querySelector("nav.toc")?.appendChild(h("a", {href: "#leakage", text: "Leakage"}));
