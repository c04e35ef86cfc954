// The explorer page: a sampled map of a feature table, a clicked segment's audio, roll and
// neighbours, and the model runs. All data comes from the app's /api; plotly.js from /plotly.min.js.
"use strict";

const COLOR_CSS = {Red: "#d62728", Orange: "#ff7f0e", Yellow: "#e8c800", Green: "#2ca02c", Blue: "#1f77b4",
                   Indigo: "#4b0082", Violet: "#9b30ff", White: "#f4f4f4", Black: "#111111"};
const OUTLINED = new Set(["White", "Black"]);
const PLOT_CONFIG = {displaylogo: false, responsive: true};
// What the page shows, readable by the browser test (and by a curious user's console).
const state = {tables: [], map: null, mapColors: [], selected: null, neighbors: [], audio: null, runs: [], run: null,
               compared: null, errors: []};
window.explorerState = state;

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "onclick") node.addEventListener("click", value);
    else if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
  if (isError) state.errors.push(text);
}

async function api(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const item of [].concat(value)) if (item !== "" && item !== null && item !== undefined) query.append(key, item);
  }
  const response = await fetch(path + (query.toString() ? "?" + query : ""));
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

function fmt(value, digits = 3) {
  return value === null || value === undefined ? "n/a" : (typeof value === "number" ? value.toFixed(digits) : value);
}

function swatch(color) {
  return el("span", {class: "swatch", style: `background:${COLOR_CSS[color] || "#ccc"}`, title: color});
}

function audioPlayer(segmentId, hasAudio) {
  if (!hasAudio) return el("span", {class: "hint"}, "no audio");
  return el("audio", {controls: "", preload: "none", src: `/api/audio/${encodeURIComponent(segmentId)}`});
}

// -- filters and the map ------------------------------------------------------------------------
function filters() {
  const checked = (id) => [...$(id).querySelectorAll("input:checked")].map((box) => box.value);
  const songs = $("songs").value.split(",").map((s) => s.trim()).filter(Boolean);
  return {table: $("table").value, color: checked("colors"), song: songs, require: checked("require")};
}

async function loadTables() {
  const data = await api("/api/tables");
  state.tables = data.tables;
  $("points").value = data.defaults.points;
  $("table").replaceChildren(...data.tables.map((t) => el("option", {value: t.table}, `${t.table} (${t.rows})`)));
  $("colors").replaceChildren(el("legend", {}, "colours"), ...data.colors.map((c) =>
    el("label", {}, el("input", {type: "checkbox", value: c}), swatch(c), c)));
  $("song-list").replaceChildren(...data.songs.map((s) => el("option", {value: s})));
  if (!data.tables.length) setStatus("no feature tables yet: run `chromatic encode` first", true);
}

async function loadMap() {
  const params = {...filters(), method: $("method").value, points: $("points").value};
  if (!params.table) return;
  setStatus(`drawing ${params.table} …`);
  try {
    const data = await api("/api/map", params);
    drawMap(data);
    setStatus(`${data.shown} of ${data.eligible} segments shown (${data.method})`);
  } catch (error) {
    setStatus(error.message, true);
  }
}

function hoverText(p) {
  const has = ["audio", "midi", "lyrics"].filter((m) => p[`has_${m}`]).join(", ") || "none";
  return [`<b>${p.segment_id}</b>`, `song ${p.song_id} · ${p.color}`, `${fmt(p.start_s, 1)}–${fmt(p.end_s, 1)} s`,
          `bpm ${fmt(p.bpm, 0)} · ${p.key || "key n/a"}`, `has: ${has}`].join("<br>");
}

function drawMap(data) {
  state.map = data;
  const byColor = new Map();
  for (const point of data.points) {
    if (!byColor.has(point.color)) byColor.set(point.color, []);
    byColor.get(point.color).push(point);
  }
  const order = Object.keys(COLOR_CSS).filter((c) => byColor.has(c)).concat([...byColor.keys()].filter((c) => !(c in COLOR_CSS)));
  const traces = order.map((color) => {
    const points = byColor.get(color);
    return {type: "scatter", mode: "markers", name: `${color} (${points.length})`,
            x: points.map((p) => p.x), y: points.map((p) => p.y), customdata: points.map((p) => p.segment_id),
            hovertext: points.map(hoverText), hoverinfo: "text",
            marker: {size: 8, color: COLOR_CSS[color] || "#999", opacity: 0.8,
                     line: {width: OUTLINED.has(color) ? 1 : 0, color: "#555"}}};
  });
  const variance = data.explained_variance;
  const axis = (i) => (variance ? `PC${i + 1} (${(100 * variance[i]).toFixed(1)}% var)` : `${data.method} ${i + 1}`);
  const layout = {title: {text: `${data.table}: ${data.shown} of ${data.eligible} segments`}, hovermode: "closest",
                  xaxis: {title: {text: axis(0)}}, yaxis: {title: {text: axis(1)}}, margin: {t: 40, r: 10},
                  legend: {itemclick: "toggle"}};
  Plotly.newPlot("map", traces, layout, PLOT_CONFIG).then((div) => {
    state.mapColors = order;
    div.on("plotly_click", (event) => selectSegment(event.points[0].customdata));
  });
}

// -- one segment: metadata, audio, roll, neighbours ------------------------------------------------
async function selectSegment(segmentId) {
  state.selected = segmentId;
  state.audio = null;
  const detail = $("detail");
  detail.replaceChildren(el("h2", {}, segmentId));
  try {
    const meta = await api(`/api/segments/${encodeURIComponent(segmentId)}`);
    detail.append(el("p", {}, swatch(meta.color), `${meta.color} · song ${meta.song_id} · ` +
                     `${fmt(meta.start_s, 1)}–${fmt(meta.end_s, 1)} s · bpm ${fmt(meta.bpm, 0)} · ${meta.key || ""}`));
    detail.append(mainPlayer(segmentId, meta), el("div", {id: "roll"}), el("h3", {}, "nearest neighbours"),
                  el("ol", {id: "neighbors"}));
    await Promise.all([drawRoll(segmentId, meta), listNeighbors(segmentId)]);
  } catch (error) {
    setStatus(error.message, true);
  }
}

function mainPlayer(segmentId, meta) {
  const player = audioPlayer(segmentId, meta.has_audio);
  if (player.tagName !== "AUDIO") return el("p", {}, `no audio (${meta.audio_status || "the source had none"})`);
  player.id = "player";
  player.preload = "auto";
  player.addEventListener("loadedmetadata", () => {
    state.audio = {segment: segmentId, duration: player.duration, readyState: player.readyState};
  });
  player.addEventListener("error", () => setStatus(`audio of ${segmentId} did not load`, true));
  return el("p", {}, player);
}

async function drawRoll(segmentId, meta) {
  if (!meta.has_midi) {
    $("roll").replaceChildren(el("p", {class: "hint"}, `no MIDI (${meta.midi_status || "the source had none"})`));
    return;
  }
  const roll = await api(`/api/roll/${encodeURIComponent(segmentId)}`);
  Plotly.newPlot("roll", [{type: "heatmap", z: roll.z, x: roll.seconds, y: roll.pitches, colorscale: "Greys",
                           reversescale: true, showscale: false, hovertemplate: "%{x} s, pitch %{y}<extra></extra>"}],
                 {title: {text: "piano roll"}, xaxis: {title: {text: "seconds"}}, yaxis: {title: {text: "MIDI pitch"}},
                  margin: {t: 30, r: 10, b: 40}}, PLOT_CONFIG);
}

async function listNeighbors(segmentId) {
  const data = await api("/api/neighbors", {...filters(), segment: segmentId});
  state.neighbors = data.neighbors;
  $("neighbors").replaceChildren(...data.neighbors.map((n) => el("li", {"data-segment": n.segment_id},
    swatch(n.color), el("span", {class: "link", onclick: () => selectSegment(n.segment_id)}, n.segment_id),
    ` d=${fmt(n.distance)} `, audioPlayer(n.segment_id, n.has_audio))));
  if (!data.neighbors.length) $("neighbors").append(el("li", {class: "hint"}, "no neighbours pass the filters"));
}

// -- runs ---------------------------------------------------------------------------------------------
function inputsText(inputs) {
  return Object.entries(inputs || {}).map(([name, spec]) => `${name}=${spec}`).join(" ");
}

async function loadRuns() {
  try {
    state.runs = await api("/api/runs");
  } catch (error) {
    setStatus(error.message, true);
    return;
  }
  const rows = state.runs.map((r) => el("tr", {},
    el("td", {}, el("input", {type: "checkbox", value: r.run_id})),
    el("td", {}, el("span", {class: "link", onclick: () => showRun(r.run_id)}, r.run_id)),
    el("td", {}, inputsText(r.inputs)), el("td", {}, r.fusion || ""),
    el("td", {}, el("span", {class: "link", title: "runs with this training config, side by side",
                             onclick: () => compareGroup(r.group)}, r.group)),
    el("td", {}, fmt(r.metrics.mode_acc)), el("td", {}, fmt(r.metrics.color_acc)),
    el("td", {}, fmt(r.metrics.color_macro_f1)), el("td", {}, r.metrics.n ?? "")));
  const head = el("tr", {}, ...["", "run", "inputs", "fusion", "config", "mode", "colour", "colour F1", "n"].map((h) => el("th", {}, h)));
  $("runs").replaceChildren(state.runs.length ? el("table", {}, head, ...rows)
                                              : el("p", {class: "hint"}, "no runs yet: `chromatic train` or `compare`"));
}

function metricsTable(metrics) {
  const blocks = [["overall", metrics.overall], ...Object.entries(metrics.subsets || {}).map(([k, v]) => [`subset ${k}`, v]),
                  ...Object.entries(metrics.per_color || {}).map(([k, v]) => [`colour ${k}`, v])];
  const keys = ["n", "temporal_acc", "spatial_acc", "ontological_acc", "mode_acc", "color_acc", "color_macro_f1"];
  return el("table", {}, el("tr", {}, el("th", {}, "rows"), ...keys.map((k) => el("th", {}, k))),
            ...blocks.map(([label, block]) => el("tr", {}, el("td", {}, label),
                                                ...keys.map((k) => el("td", {}, k === "n" ? block[k] : fmt(block[k]))))));
}

async function showRun(runId) {
  const target = $("run-view");
  target.replaceChildren(el("p", {}, `loading ${runId} …`));
  try {
    const run = await api(`/api/runs/${encodeURIComponent(runId)}`);
    state.run = run;
    const figures = el("div", {class: "figures"}, ...Object.keys(run.figures).map((name) => el("div", {id: `fig-${name}`})));
    const wrong = el("table", {}, el("tr", {}, ...["segment", "true", "predicted", "confidence", "listen"].map((h) => el("th", {}, h))),
      ...run.wrong.map((w) => el("tr", {}, el("td", {}, w.segment_id), el("td", {}, swatch(w.color), w.color),
                                 el("td", {}, swatch(w.predicted), w.predicted), el("td", {}, fmt(w.confidence)),
                                 el("td", {}, audioPlayer(w.segment_id, w.has_audio)))));
    target.replaceChildren(el("h2", {}, runId), el("p", {}, `inputs: ${inputsText(run.inputs)} · best epoch ${run.best_epoch}`),
                           metricsTable(run.metrics), figures,
                           el("h3", {}, `validation rows with the wrong colour (${run.wrong.length} of ${run.wrong_total})`), wrong);
    for (const [name, figure] of Object.entries(run.figures)) Plotly.newPlot(`fig-${name}`, figure.data, figure.layout, PLOT_CONFIG);
  } catch (error) {
    target.replaceChildren(el("p", {class: "error"}, error.message));
  }
}

// Runs trained with one config (the rows of one `compare`) share a group: tick them all and compare.
function compareGroup(group) {
  const members = new Set(state.runs.filter((r) => r.group === group).map((r) => r.run_id));
  for (const box of $("runs").querySelectorAll("input[type=checkbox]")) box.checked = members.has(box.value);
  compareRuns();
}

async function compareRuns() {
  const ids = [...$("runs").querySelectorAll("input:checked")].map((box) => box.value);
  try {
    const runs = await api("/api/compare", {run: ids});
    state.compared = runs;
    const keys = ["n", "mode_acc", "color_acc", "color_macro_f1"];
    const subsets = [...new Set(runs.flatMap((r) => Object.keys(r.subsets)))];
    const rows = [["inputs", (r) => inputsText(r.inputs)],
                  ...keys.map((k) => [k, (r) => (k === "n" ? r.overall[k] : fmt(r.overall[k]))]),
                  ...subsets.map((s) => [`${s} colour`, (r) => fmt((r.subsets[s] || {}).color_acc)])];
    $("run-view").replaceChildren(el("h2", {}, "side by side"), el("table", {},
      el("tr", {}, el("th", {}, ""), ...runs.map((r) => el("th", {}, r.run_id))),
      ...rows.map(([label, cell]) => el("tr", {}, el("td", {}, label), ...runs.map((r) => el("td", {}, cell(r)))))),
      el("div", {class: "figures"}, ...runs.map((r, i) => el("div", {id: `compare-fig-${i}`}))));
    runs.forEach((r, i) => Plotly.newPlot(`compare-fig-${i}`, r.figure.data, r.figure.layout, PLOT_CONFIG));
  } catch (error) {
    setStatus(error.message, true);
  }
}

// -- wiring ------------------------------------------------------------------------------------------
function showTab(name) {
  for (const tab of ["map", "runs"]) {
    $(`view-${tab}`).hidden = tab !== name;
    $(`tab-${tab}`).classList.toggle("active", tab === name);
  }
  if (name === "runs") loadRuns();
}

async function init() {
  $("tab-map").addEventListener("click", () => showTab("map"));
  $("tab-runs").addEventListener("click", () => showTab("runs"));
  $("compare-runs").addEventListener("click", compareRuns);
  $("map-controls").addEventListener("submit", (event) => { event.preventDefault(); loadMap(); });
  $("table").addEventListener("change", loadMap);
  try {
    await loadTables();
    await loadMap();
  } catch (error) {
    setStatus(error.message, true);
  }
}

init();
