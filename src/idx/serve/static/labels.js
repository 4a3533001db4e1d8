// The web app's label filter: whether the Label box names a label the index has, and what the
// page says when it does not (the labels close to it, each a button that picks it) instead of
// the server's words, which name a command of the command line. Uses $, state, h(), fmt(),
// focusFromFilters() and searchNow() of app.js, which loads after it.
"use strict";

function isKnownLabel(text) {
  const wanted = text.toLowerCase();
  return state.facets.labels.some((l) => l.name.toLowerCase() === wanted || l.key.toLowerCase() === wanted);
}

// The label box's value when no image has that label, as far as the facets tell (they hold every
// label unless there are thousands: then the server decides); else null.
function unknownLabel() {
  const text = $("f-label").value.trim();
  if (!text || !state.facets || !state.facets.labels_complete || isKnownLabel(text)) return null;
  return text;
}

function editDistance(a, b) {
  let row = Array.from({length: b.length + 1}, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length];
}

// Up to five label names close to `text`: those holding it (or held by it) first, then those a
// few typing slips away (as difflib's cutoff of 0.6 on the server).
function closeLabels(text) {
  const wanted = text.toLowerCase();
  const scored = state.facets.labels.map(({name}) => {
    const have = name.toLowerCase();
    const near = 1 - editDistance(wanted, have) / Math.max(wanted.length, have.length);
    return {name, score: have.includes(wanted) || wanted.includes(have) ? 2 + near : near};
  });
  return scored.filter((x) => x.score >= 0.6).sort((x, y) => y.score - x.score).slice(0, 5).map((x) => x.name);
}

// What the page says of a label no image has: the labels close to it, each a button that picks
// it; with none close, the most frequent ones (the Label box lists them all as you type).
function labelProblem(text) {
  const labels = state.facets ? state.facets.labels : [];
  const pick = (name) => h("button", {type: "button", class: "chip", onclick: () => {
    $("f-label").value = name;
    focusFromFilters();
    searchNow();
  }}, name);
  const said = `No image has the label “${text}”.`;
  if (!labels.length) return [`${said} This index has no labels.`];
  const close = closeLabels(text);
  if (close.length) return [`${said} Did you mean:`, ...close.map(pick)];
  return [`${said} Pick one of its ${fmt(labels.length)} labels in the Label box; the most frequent:`,
    ...labels.slice(0, 5).map((l) => pick(l.name))];
}

// An error as the page shows it: a label the server found no image with as labelProblem says
// it (the server's own words name a command of the command line).
function errorShown(error) {
  const label = $("f-label").value.trim();
  if (error.status === 404 && label && state.facets && !isKnownLabel(label)) return labelProblem(label);
  return error.message;
}
