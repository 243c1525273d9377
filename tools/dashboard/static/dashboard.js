// quintet dashboard: Server-Sent Events from quintet-dashboard (/events), every
// message already verified there, drawn on <canvas> by hand (no library).
"use strict";

const HISTORY = 300;            // points kept per series
const DOWN_AFTER_MS = 2000;     // a replica silent this long is "down"
const DOWN_WEIGHTED = 3.0;      // used, but this many times the median distance away
const COLORS = ["#61afef", "#e5c07b", "#c678dd", "#98c379", "#e06c75", "#56b6c2", "#d19a66"];

class Chart {
  constructor(canvas, opts) {
    this.canvas = canvas;
    this.opts = opts || {};
    this.series = new Map();        // name -> {color, points: [[x, y]]}
    this.dirty = true;
  }
  add(name, x, y, color) {
    let s = this.series.get(name);
    if (!s) {
      s = {color: color || COLORS[this.series.size % COLORS.length], points: []};
      this.series.set(name, s);
      // stable legend order
      this.series = new Map([...this.series.entries()].sort((a, b) => a[0].localeCompare(b[0])));
    }
    s.points.push([x, y]);
    if (s.points.length > HISTORY) s.points.shift();
    this.dirty = true;
  }
  draw() {
    if (!this.dirty) return;
    this.dirty = false;
    const c = this.canvas, g = c.getContext("2d");
    const W = c.width, H = c.height, L = 58, R = 10, T = 22, B = 26;
    g.clearRect(0, 0, W, H);
    g.font = "12px DejaVu Sans, Arial, sans-serif";
    let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
    for (const s of this.series.values())
      for (const [x, y] of s.points) {
        if (!Number.isFinite(y)) continue;
        xmin = Math.min(xmin, x); xmax = Math.max(xmax, x);
        ymin = Math.min(ymin, y); ymax = Math.max(ymax, y);
      }
    if (!Number.isFinite(xmin)) {
      g.fillStyle = "#8892a0";
      g.fillText("waiting for data…", L + 10, T + 30);
      return;
    }
    if (this.opts.zero) { ymin = Math.min(ymin, 0); ymax = Math.max(ymax, 0); }
    if (ymax === ymin) { ymax += 0.5; ymin -= 0.5; }
    const pad = (ymax - ymin) * 0.08; ymax += pad; ymin -= this.opts.zero && ymin === 0 ? 0 : pad;
    if (xmax === xmin) xmax = xmin + 1;
    const px = x => L + (x - xmin) / (xmax - xmin) * (W - L - R);
    const py = y => T + (ymax - y) / (ymax - ymin) * (H - T - B);
    // grid and axis labels
    g.strokeStyle = "#2a3240"; g.fillStyle = "#8892a0"; g.lineWidth = 1;
    const ystep = (ymax - ymin) / 4;
    const decimals = Math.min(6, Math.max(0, 1 - Math.floor(Math.log10(ystep))));
    for (let i = 0; i <= 4; i++) {
      const y = ymin + ystep * i, yy = Math.round(py(y)) + 0.5;
      g.beginPath(); g.moveTo(L, yy); g.lineTo(W - R, yy); g.stroke();
      const a = Math.abs(y);
      g.textAlign = "right";
      g.fillText(a >= 1e5 ? y.toExponential(1) : y.toFixed(decimals), L - 6, yy + 4);
    }
    let previous = null;        // integer x axis (ticks, episodes): each label once
    for (let i = 0; i <= 5; i++) {
      const x = Math.round(xmin + (xmax - xmin) * i / 5);
      if (x === previous) continue;
      previous = x;
      g.textAlign = "center"; g.fillText(String(x), px(x), H - 8);
    }
    g.textAlign = "left";
    if (this.opts.xlabel) g.fillText(this.opts.xlabel, W - R - 60, H - 8 - 12);
    // the series: lines, breaking at missing values
    let lx = L + 4;
    for (const [name, s] of this.series) {
      g.strokeStyle = s.color; g.lineWidth = 1.6; g.beginPath();
      let pen = false;
      for (const [x, y] of s.points) {
        if (!Number.isFinite(y)) { pen = false; continue; }
        if (pen) g.lineTo(px(x), py(y)); else g.moveTo(px(x), py(y));
        pen = true;
      }
      g.stroke();
      if (this.opts.dots) {
        g.fillStyle = s.color;
        for (const [x, y] of s.points)
          if (Number.isFinite(y)) { g.beginPath(); g.arc(px(x), py(y), 2.5, 0, 7); g.fill(); }
      }
      // legend: colour swatch, name, last value
      const last = s.points.length ? s.points[s.points.length - 1][1] : NaN;
      const label = name + " " + (Number.isFinite(last) ? fmt(last) : "–");
      g.fillStyle = s.color; g.fillRect(lx, 6, 10, 10);
      g.fillStyle = "#d8dee9"; g.fillText(label, lx + 14, 15);
      lx += g.measureText(label).width + 30;
    }
  }
}

function fmt(v) {
  if (!Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.01 || a >= 1e5)) return v.toExponential(1);
  return v.toFixed(a < 10 ? 3 : 1);
}

const main = document.getElementById("dashboard");
const charts = {
  reward: new Chart(document.getElementById("chart-reward"), {xlabel: "tick"}),
  proposals: new Chart(document.getElementById("chart-proposals"), {xlabel: "tick"}),
  distance: new Chart(document.getElementById("chart-distance"), {xlabel: "tick", zero: true}),
  eval: new Chart(document.getElementById("chart-eval"), {xlabel: "episodes", dots: true}),
  weights: new Chart(document.getElementById("chart-weights"), {xlabel: "tick", zero: true}),
};
const state = {
  rewards: 0, ticks: 0, evals: 0, proposals: 0, lastTick: -1, lastEpisodes: -1,
  env: null,                // EvalRecord.env
  episodes: 0,              // finished so far (EvalRecord.episodes)
  rewarders: new Map(),     // replica -> {distance, used, status, proposal, tick, seen}
  aggregators: new Map(),   // replica -> {tick, seen}
  stats: null, proposalTick: new Map(),
  scores: 0,                // score events (ScoreBatch.learning), at most 2/s per scorer
  scorers: new Map(),       // scorer replica -> {tick, learning, quantile, raters, seen}
  weightTick: -1, learningDirty: false,
};

// one colour per rewarder replica, the same in every chart
const replicaColor = r => ["#61afef", "#e5c07b", "#c678dd", "#98c379", "#e06c75", "#56b6c2"][(r - 1) % 6];

function rewarder(r) {
  let row = state.rewarders.get(r);
  if (!row) { row = {replica: r}; state.rewarders.set(r, row); }
  return row;
}

function onReward(m) {
  state.rewards++;
  state.aggregators.set(m.replica, {tick: m.tick, seen: Date.now()});
  if (m.tick < state.lastTick - 10000) state.lastTick = -1;     // a new deployment
  if (m.tick <= state.lastTick) return;    // the same tick from another aggregator replica
  state.lastTick = m.tick;
  state.ticks++;
  // mean over the instances running an episode (idle ones are ignored)
  if (m.mean_reward !== null) charts.reward.add("reward", m.tick, m.mean_reward, COLORS[0]);
  const used = m.replicas.filter(r => r.used).map(r => r.distance).sort((a, b) => a - b);
  const median = used.length ? used[Math.floor(used.length / 2)] : 0;
  for (const r of m.replicas) {
    const row = rewarder(r.replica);
    row.used = r.used; row.distance = r.distance; row.tick = m.tick; row.listed = Date.now();
    row.status = !r.used ? "excluded"
      : (median > 0 && r.distance > DOWN_WEIGHTED * median ? "down-weighted" : "used");
    // excluded replicas too: the one far from the median is the one to look at
    charts.distance.add("rewarder-" + r.replica, m.tick, r.distance, replicaColor(r.replica));
  }
  const episodes = m.episodes ? (m.episodes[0] === m.episodes[1] ? String(m.episodes[0])
                                  : m.episodes[0] + "–" + m.episodes[1]) : "–";
  document.getElementById("summary").textContent =
    "tick " + m.tick + " · " + m.active + "/" + m.batch +
    " instances running (episode " + episodes + "), " + m.done + " ending · " +
    state.episodes + " episodes finished · reward " +
    (m.mean_reward === null ? "–" : fmt(m.mean_reward));
}

function onProposal(m) {
  state.proposals++;
  const row = rewarder(m.replica);
  row.proposal = m.mean_reward; row.seen = Date.now();
  const last = state.proposalTick.get(m.replica);
  if (last !== undefined && m.tick <= last && m.tick > last - 10000) return;
  state.proposalTick.set(m.replica, m.tick);
  if (m.mean_reward !== null)
    charts.proposals.add("rewarder-" + m.replica, m.tick, m.mean_reward, replicaColor(m.replica));
}

function onEval(m) {
  state.evals++;
  state.env = m.env;
  document.getElementById("env").textContent = m.env;
  // one record per tick on which episodes ended; EvalRecord.episodes counts
  // every episode finished so far (a new deployment starts again from 0)
  if (m.episodes <= state.lastEpisodes && m.episodes > state.lastEpisodes - 10000) return;
  state.lastEpisodes = m.episodes;
  state.episodes = m.episodes;
  // mean over the episodes that ended on this tick
  charts.eval.add("performance", m.episodes, m.mean_performance, COLORS[3]);
  charts.eval.add("observed return", m.episodes, m.mean_observed_return, COLORS[1]);
}

// What Charlie learned, per scorer replica: the message as published
// (ScoreBatch.learning), the latest one of each replica
function onScore(m) {
  state.scores++;
  const previous = state.scorers.get(m.replica);
  if (previous && m.tick < previous.tick && m.tick > previous.tick - 10000) return;   // older
  state.scorers.set(m.replica, {tick: m.tick, learning: m.learning, quantile: m.quantile,
                                raters: m.raters, seen: Date.now()});
  state.learningDirty = true;
  // the chart follows the lowest-numbered scorer replica
  const first = Math.min(...state.scorers.keys());
  if (m.replica !== first) return;
  if (m.tick < state.weightTick - 10000) state.weightTick = -1;      // a new deployment
  if (m.tick <= state.weightTick) return;
  state.weightTick = m.tick;
  m.learning.features.forEach((f, i) => charts.weights.add(f, m.tick, m.learning.weights[i]));
  document.getElementById("weights-source").textContent =
    "learned weight per feature, by tick, of scorer-" + first;
}

const fmtWeight = v => (v === null || v === undefined) ? "–" : Number(v).toPrecision(4);
const fmtRight = v => (v === null || v === undefined) ? "–" : String(Number(Number(v).toPrecision(3)));

function ranges(ids) {           // [1, 2, 3, 7] -> "1–3 7"
  const out = [];
  for (let i = 0; i < ids.length; i++) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j] + 1) j++;
    out.push(j > i ? ids[i] + "–" + ids[j] : String(ids[i]));
    i = j;
  }
  return out.join(" ") || "none";
}

function cell(tag, text, attrs) {
  const td = document.createElement(tag);
  td.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "className" || k === "title") td[k] = v; else td.dataset[k] = v;
  }
  return td;
}

function renderLearning() {
  if (!state.learningDirty) return;
  state.learningDirty = false;
  const now = Date.now();
  const scorers = [...state.scorers].sort((a, b) => a[0] - b[0]);
  // the learned-weights table: a column per scorer replica
  const head = document.querySelector("#weights thead tr");
  head.textContent = "";
  head.appendChild(cell("th", "learned"));
  for (const [r] of scorers) head.appendChild(cell("th", "scorer-" + r));
  const features = [];
  for (const [, s] of scorers)
    for (const f of s.learning.features) if (!features.includes(f)) features.push(f);
  const rows = [
    ["tick", "tick", s => [s.tick, {value: s.tick}]],
    ...features.map(f => ["weight " + f, null, s => {
      const i = s.learning.features.indexOf(f);
      const v = i >= 0 ? s.learning.weights[i] : null;
      return [fmtWeight(v), {feature: f, value: JSON.stringify(v)}];
    }]),
    ["comparisons learned / asked / budget", "comparisons", s => [
      s.learning.comparisons + " / " + s.learning.asked + " / " + s.learning.budget,
      {value: JSON.stringify([s.learning.comparisons, s.learning.asked, s.learning.budget])}]],
    ["asked per tick (at most)", "per_tick", s => [s.learning.per_tick, {value: s.learning.per_tick}]],
    ["quantile q", "quantile", s => [fmtRight(s.quantile), {value: JSON.stringify(s.quantile)}]],
    ["raters with a voting right", "voting", s => [
      (s.raters - s.learning.excluded.length) + " of " + s.raters,
      {value: s.raters - s.learning.excluded.length}]],
    ["excluded raters", "excluded", s => [ranges(s.learning.excluded),
      {value: JSON.stringify(s.learning.excluded),
       className: s.learning.excluded.length ? "excluded" : ""}]],
    ["learn time, last tick (µs)", "learn", s => [
      s.learning.learn_seconds === null ? "–" : (1e6 * s.learning.learn_seconds).toFixed(1), {}]],
    ["status", "status", s => [now - s.seen > DOWN_AFTER_MS ? "down" : "up", {}]],
  ];
  const body = document.querySelector("#weights tbody");
  body.textContent = "";
  for (const [label, row, fn] of rows) {
    const tr = document.createElement("tr");
    tr.appendChild(cell("th", label));
    for (const [r, s] of scorers) {
      const [text, attrs] = fn(s);
      const a = Object.assign({replica: r}, attrs);
      if (row) a.row = row;
      const td = cell("td", text, a);
      if (!row || row !== "excluded") td.className = (td.className ? td.className + " " : "") + "num";
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  // the voting rights: a row per scorer replica, a column per rater
  const raters = Math.max(0, ...scorers.map(([, s]) => s.learning.voting_rights.length));
  const rhead = document.querySelector("#raters thead tr");
  rhead.textContent = "";
  rhead.appendChild(cell("th", "scorer"));
  for (let id = 1; id <= raters; id++) rhead.appendChild(cell("th", id));
  const rbody = document.querySelector("#raters tbody");
  rbody.textContent = "";
  for (const [r, s] of scorers) {
    const tr = document.createElement("tr");
    tr.appendChild(cell("th", "scorer-" + r));
    s.learning.voting_rights.forEach((v, i) => {
      const id = i + 1, excluded = s.learning.excluded.includes(id);
      tr.appendChild(cell("td", fmtRight(v), {
        replica: r, rater: id, value: JSON.stringify(v),
        className: excluded ? "excluded" : "voting",
        title: "rater " + id + ": " + s.learning.rater_comparisons[i] + " judgments learned from" +
               (excluded ? ", excluded" : "")}));
    });
    rbody.appendChild(tr);
  }
}

function renderTable() {
  const now = Date.now(), rows = [];
  for (const [r, a] of [...state.aggregators].sort((x, y) => x[0] - y[0]))
    rows.push(["aggregator", r, a.tick, "–", "–", now - a.seen > DOWN_AFTER_MS ? "down" : "up"]);
  for (const [r, w] of [...state.rewarders].sort((x, y) => x[0] - y[0])) {
    const seen = Math.max(w.seen || 0, w.listed || 0);
    const status = now - seen > DOWN_AFTER_MS ? "down" : (w.status || "up");
    rows.push(["rewarder", r, w.tick === undefined ? "–" : w.tick,
               w.proposal === undefined ? "–" : fmt(w.proposal),
               w.distance !== undefined ? fmt(w.distance) : "–", status]);
  }
  const body = document.querySelector("#replicas tbody");
  body.textContent = "";
  for (const row of rows) {
    const tr = document.createElement("tr");
    row.forEach((v, i) => {
      const td = document.createElement("td");
      td.textContent = String(v);
      if (i >= 2 && i <= 4) td.className = "num";
      if (i === 5) td.className = "st-" + v;
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
  const s = state.stats;
  if (s) {
    const parts = Object.entries(s.rejected).map(([k, v]) => k + " " + v);
    if (s.gaps) parts.push("gap " + s.gaps);
    const relay = Object.entries(s.relay_dropped || {}).map(([k, v]) => k + " " + v);
    document.getElementById("drops").textContent =
      "verified " + s.verified + " · rejected here: " + (parts.join(", ") || "none") +
      (relay.length ? " · relay: " + relay.join(", ") : "") +
      " · browser drops " + s.browser_dropped;
  }
}

function publishCounters() {
  const d = main.dataset;
  d.rewards = state.rewards; d.ticks = state.ticks; d.evals = state.evals;
  d.proposals = state.proposals; d.replicas = state.rewarders.size;
  d.aggregators = state.aggregators.size;
  d.env = state.env || ""; d.episodes = state.episodes;
  d.scores = state.scores; d.scorers = state.scorers.size;
  if (state.stats) {
    d.verified = state.stats.verified;
    d.rejected = Object.values(state.stats.rejected).reduce((a, b) => a + b, 0);
  }
}

function handler(fn) {
  return ev => {
    try { fn(JSON.parse(ev.data)); } catch (e) { console.error(e); }
    publishCounters();
  };
}

const source = new EventSource("/events");
const conn = document.getElementById("conn");
source.onopen = () => {
  main.dataset.connected = "true"; conn.textContent = "live"; conn.className = "badge up";
};
source.onerror = () => {
  main.dataset.connected = "false"; conn.textContent = "reconnecting"; conn.className = "badge down";
};
source.addEventListener("reward", handler(onReward));
source.addEventListener("proposal", handler(onProposal));
source.addEventListener("eval", handler(onEval));
source.addEventListener("score", handler(onScore));
source.addEventListener("stats", handler(m => { state.stats = m; }));

let frames = 0;
setInterval(() => {
  for (const c of Object.values(charts)) c.draw();
  renderTable();
  if (++frames % 4 === 0) state.learningDirty = true;      // the status column, once a second
  renderLearning();
}, 250);
for (const c of Object.values(charts)) c.draw();
