"""The status page itself: one self-contained HTML document (style, markup, script) and the
headers that let only its own script and style run. Its data comes from ``ops.status``."""

from __future__ import annotations

import base64
import hashlib

# the page ----------------------------------------------------------------------------------
_STYLE = r"""
:root { --ink:#1b1f24; --muted:#4f5b66; --line:#d5dbe1; --card:#fff; --bg:#f3f5f7;
  --ok:#0b6b2e; --ok-bg:#e3f4e8; --warn:#7a4b00; --warn-bg:#fff1cc; --bad:#9b1c1c;
  --bad-bg:#fde2e2; --in:#1f5fbf; --out:#b4420f; }
* { box-sizing: border-box; }
body { margin:0; font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  color:var(--ink); background:var(--bg); }
header, main, footer { max-width:1200px; margin:0 auto; padding:0 16px; }
header { display:flex; flex-wrap:wrap; align-items:baseline; justify-content:space-between;
  gap:4px 16px; padding-top:16px; }
h1 { font-size:1.4rem; margin:0; }
h2 { font-size:.95rem; margin:0 0 6px; color:var(--muted); font-weight:600; }
.meta { margin:0; color:var(--muted); }
.badge { display:inline-block; padding:1px 8px; border-radius:999px; background:#e1e7ee;
  color:var(--ink); font-weight:600; }
.verdict { margin:12px 0; padding:12px 16px; border-radius:8px; border:1px solid var(--line);
  background:var(--card); font-size:1.1rem; }
.verdict[data-state="ok"] { background:var(--ok-bg); border-color:var(--ok); color:var(--ok); }
.verdict[data-state="warn"] { background:var(--warn-bg); border-color:var(--warn);
  color:var(--warn); }
.verdict[data-state="bad"] { background:var(--bad-bg); border-color:var(--bad); color:var(--bad); }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 16px;
  margin:12px 0; min-width:0; }
.grid { display:grid; gap:12px;
  grid-template-columns:repeat(auto-fit,minmax(min(100%,15rem),1fr)); }
.grid .card { margin:0; }
.big { font-size:1.9rem; font-weight:700; margin:0; font-variant-numeric:tabular-nums; }
.big.words { font-size:1.2rem; padding:.45rem 0; }
.sub { margin:2px 0 0; color:var(--muted); font-size:.9rem; }
.legend { display:flex; flex-wrap:wrap; gap:4px 16px; margin:0 0 6px; }
.key { display:inline-block; width:14px; height:4px; vertical-align:middle; margin-right:6px; }
.key.in { background:var(--in); } .key.out { background:var(--out); }
.legend b { font-variant-numeric:tabular-nums; }
#throughput { display:block; width:100%; height:220px; }
#throughput text { font-size:12px; fill:var(--muted); }
#throughput .grid-line { stroke:var(--line); stroke-width:1; }
#throughput .line-in { stroke:var(--in); stroke-width:2; fill:none; }
#throughput .line-out { stroke:var(--out); stroke-width:2; fill:none; stroke-dasharray:6 3; }
dl.pct { display:grid; grid-template-columns:repeat(3,1fr); gap:4px; margin:0; }
dl.pct div { min-width:0; } dl.pct dt { color:var(--muted); font-size:.85rem; }
dl.pct dd { margin:0; font-size:1.15rem; font-weight:700; font-variant-numeric:tabular-nums;
  white-space:nowrap; }
ul.kv { list-style:none; margin:6px 0 0; padding:0; font-size:.92rem; }
ul.kv li { display:flex; justify-content:space-between; gap:8px; border-top:1px solid var(--line);
  padding:2px 0; } ul.kv li span:first-child { overflow-wrap:anywhere; }
ul.kv li span:last-child { font-variant-numeric:tabular-nums; font-weight:600; }
.table-wrap { overflow-x:auto; }
table { border-collapse:collapse; width:100%; font-size:.95rem; }
th, td { text-align:left; padding:6px 8px; border-top:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; } .n { text-align:right; }
td.n { font-variant-numeric:tabular-nums; }
.state { display:inline-block; padding:0 8px; border-radius:999px; font-weight:600;
  white-space:nowrap; }
.state.normal { background:var(--ok-bg); color:var(--ok); }
.state.gap { background:var(--warn-bg); color:var(--warn); }
.state.not-reported { background:#e9edf1; color:var(--muted); }
.quiet { color:var(--warn); font-size:.9rem; overflow-wrap:anywhere; }
footer { color:var(--muted); font-size:.9rem; padding-bottom:24px; }
@media (max-width:480px) { h1 { font-size:1.2rem; } .big { font-size:1.6rem; }
  header, main, footer { padding:0 10px; } header { padding-top:12px; }
  .card { padding:10px 12px; } table { font-size:.85rem; } th, td { padding:5px 4px; } }
"""

_SCRIPT = r"""
"use strict";
const POLL_MS = 2000, WINDOW_S = 300;
const points = [], lagHistory = [];
let prev = null, lastOk = 0, lastData = null;
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const whole = new Intl.NumberFormat("en-GB", {maximumFractionDigits: 0});
const one = new Intl.NumberFormat("en-GB", {maximumFractionDigits: 1});
const DASH = "\u2014";

function count(v) { return v == null ? DASH : whole.format(v); }
function perSecond(v) { return v == null ? DASH : (v < 10 ? one : whole).format(v) + "/s"; }
function duration(v, max) {
  if (v == null) return DASH;
  const over = max != null && v >= max ? "\u2265 " : "";
  if (v < 0.001) return "< 1 ms";
  if (v < 1) return over + (v < 0.01 ? one : whole).format(v * 1000) + " ms";
  return over + (v < 10 ? one : whole).format(v) + " s";
}
function setText(id, text) { $(id).textContent = text; }
function fillList(id, rows, empty) {
  const ul = $(id);
  ul.replaceChildren();
  for (const [name, value] of rows) {
    const li = document.createElement("li");
    const a = document.createElement("span"), b = document.createElement("span");
    a.textContent = name; b.textContent = count(value);
    li.append(a, b); ul.append(li);
  }
  if (!rows.length) {
    const li = document.createElement("li");
    li.textContent = empty; ul.append(li);
  }
}
function sum(obj) { return Object.values(obj).reduce((a, b) => a + b, 0); }
function pairs(obj) { return Object.entries(obj).sort((a, b) => b[1] - a[1]); }

function record(data) {
  const t = data.server_time;
  const tin = data.totals.events_received, tout = data.totals.signals_applied;
  if (prev && t > prev.t) {
    if (tin >= prev.tin && tout >= prev.tout) {
      const dt = t - prev.t;
      points.push({t, inRate: (tin - prev.tin) / dt, outRate: (tout - prev.tout) / dt});
    } else {
      points.length = 0;  // the process restarted: its counters began again at zero
    }
  }
  prev = {t, tin, tout};
  if (data.lag.total != null) lagHistory.push({t, lag: data.lag.total});
  while (points.length && points[0].t < t - WINDOW_S) points.shift();
  while (lagHistory.length && lagHistory[0].t < t - WINDOW_S) lagHistory.shift();
}

function niceMax(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text != null) node.textContent = text;
  return node;
}
function drawChart() {
  const svg = $("throughput");
  const w = Math.max(280, Math.round(svg.getBoundingClientRect().width) || 600), h = 220;
  const left = 56, right = 10, top = 10, bottom = 24;
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.replaceChildren();
  const latest = points.length ? points[points.length - 1] : null;
  svg.dataset.points = String(points.length);
  svg.dataset.latestEventsPerSecond = latest ? latest.inRate.toFixed(1) : "";
  svg.dataset.latestSignalsPerSecond = latest ? latest.outRate.toFixed(1) : "";
  setText("rate-in", latest ? perSecond(latest.inRate) : DASH);
  setText("rate-out", latest ? perSecond(latest.outRate) : DASH);
  const max = niceMax(Math.max(1, ...points.map((p) => Math.max(p.inRate, p.outRate))));
  // The time axis grows with the history kept, from 30 s up to 5 minutes.
  const end = latest ? latest.t : 0;
  const span = latest ? Math.min(WINDOW_S, Math.max(30, end - points[0].t)) : WINDOW_S;
  const x = (t) => left + ((t - (end - span)) / span) * (w - left - right);
  const y = (v) => top + (1 - v / max) * (h - top - bottom);
  for (const f of [0, 0.5, 1]) {
    const at = y(max * f);
    svg.append(el("line", {class: "grid-line", x1: left, x2: w - right, y1: at, y2: at}));
    svg.append(el("text", {x: left - 6, y: at + 4, "text-anchor": "end"}, whole.format(max * f)));
  }
  const ago = span >= 120 ? `${Math.round(span / 60)} min ago` : `${Math.round(span)} s ago`;
  svg.append(el("text", {x: left, y: h - 6}, ago));
  svg.append(el("text", {x: w - right, y: h - 6, "text-anchor": "end"}, "now"));
  if (points.length < 1) {
    svg.append(el("text", {x: (left + w) / 2, y: h / 2, "text-anchor": "middle"},
      "Waiting for a second reading\u2026"));
    return;
  }
  const line = (key) => points.map((p) => `${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
  svg.append(el("polyline", {class: "line-in", points: line("inRate")}));
  svg.append(el("polyline", {class: "line-out", points: line("outRate")}));
}

function averageRates(seconds) {
  const recent = points.filter((p) => p.t >= points[points.length - 1].t - seconds);
  const avg = (k) => recent.reduce((a, p) => a + p[k], 0) / recent.length;
  return {inRate: avg("inRate"), outRate: avg("outRate")};
}
function verdict(data) {
  const box = $("verdict");
  let state = "ok", title = "Keeping up", detail;
  const lag = data.lag.total;
  if (lag != null) {
    const t = data.server_time;
    const before = lagHistory.find((p) => p.t >= t - 60);
    const margin = before ? Math.max(100, before.lag * 0.1) : 0;
    const growing = before && t - before.t >= 30 && lag > before.lag + margin;
    detail = `${count(lag)} messages waiting to be read`;
    if (growing) {
      state = "warn"; title = "Falling behind";
      detail += `, up from ${count(before.lag)} ${Math.round(t - before.t)} s ago`;
    }
  } else if (points.length >= 3) {
    const r = averageRates(30);
    detail = `applying ${perSecond(r.outRate)} of ${perSecond(r.inRate)} received`;
    detail += " (lag not reported)";
    if (r.inRate - r.outRate > Math.max(5, r.inRate * 0.1)) {
      state = "warn"; title = "Falling behind";
    }
  } else {
    state = "waiting"; title = "Measuring"; detail = "rates need a few readings";
  }
  box.dataset.state = state;
  setText("verdict-title", title);
  setText("verdict-detail", detail ? "\u2014 " + detail : "");
}

function latencyTile(prefix, l) {
  for (const p of ["p50", "p95", "p99"]) setText(`${prefix}-${p}`, duration(l[p], l.max_bucket));
  const measured = l.count ? `${count(l.count)} batches measured` : "no batches measured yet";
  setText(`${prefix}-count`, measured);
}
function dayName(seconds) {
  return new Date((seconds - 1) * 1000).toLocaleDateString("en-GB",
    {weekday: "short", day: "numeric", month: "short", timeZone: "Europe/London"});
}
function sourceRows(sources) {
  const body = $("sources-body");
  body.replaceChildren();
  const words = {"normal": "Normal", "gap": "Gap", "not reported": "Not reported"};
  for (const s of sources) {
    const tr = document.createElement("tr");
    const cells = [s.source, null, count(s.events_received), count(s.gaps_total)];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      if (i === 1) {
        const badge = document.createElement("span");
        badge.className = "state " + s.status.replace(" ", "-");
        badge.textContent = words[s.status] || s.status;
        td.append(badge);
        if (s.quiet_locations.length) {
          const quiet = document.createElement("div");
          quiet.className = "quiet";
          quiet.textContent = s.quiet_locations.join(", ");
          td.append(quiet);
        }
      } else {
        td.textContent = text;
        if (i === 2 || i === 3) td.className = "n";
      }
      tr.append(td);
    });
    tr.dataset.status = s.status;
    body.append(tr);
  }
  if (!sources.length) {
    const tr = document.createElement("tr"), td = document.createElement("td");
    td.colSpan = 4; td.textContent = "No feed reported by this process.";
    tr.append(td); body.append(tr);
  }
}

function render(data) {
  setText("role", data.role);
  document.title = `Engagement stream status (${data.role})`;
  drawChart();
  verdict(data);
  const lag = data.lag;
  setText("lag-total", lag.reported ? count(lag.total) : "not reported");
  $("lag-total").classList.toggle("words", !lag.reported);
  const noLag = lag.reported ? "no topics" : "this process does not report lag";
  fillList("lag-topics", pairs(lag.by_topic), noLag);
  latencyTile("state", data.latency.publish_to_state);
  latencyTile("nudge", data.latency.publish_to_nudge);
  setText("dead-total", count(data.totals.dead_lettered));
  fillList("dead-reasons", pairs(data.dead_lettered), "none");
  setText("duplicates", count(data.totals.duplicates));
  setText("late", count(data.totals.late_events));
  setText("nudges-total", count(data.totals.nudges));
  fillList("nudges-list", data.nudges.map((n) => [`${n.rule} (${n.tier})`, n.count]), "none yet");
  setText("interventions-total", count(data.totals.interventions));
  fillList("interventions-list", pairs(data.interventions), "none yet");
  setText("closed-day", data.closed_day ? dayName(data.closed_day) : "none yet");
  sourceRows(data.sources);
}

function tick() {
  const u = $("updated");
  if (!lastOk) return;
  const age = Math.floor((Date.now() - lastOk) / 1000);
  u.dataset.ageSeconds = String(age);
  u.textContent = `updated ${age} s ago`;
  if (age > 3 * POLL_MS / 1000) {
    $("verdict").dataset.state = "bad";
    setText("verdict-title", "No answer");
    setText("verdict-detail", `\u2014 the process has not answered for ${age} s`);
  }
}
async function poll() {
  try {
    const response = await fetch("status.json", {cache: "no-store"});
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const data = await response.json();
    lastOk = Date.now(); lastData = data;
    record(data);
    render(data);
  } catch (err) {
    setText("fetch-error", `Last update failed: ${err.message}`);
    tick();
    return;
  }
  setText("fetch-error", "");
  tick();
}
window.addEventListener("resize", () => { if (lastData) drawChart(); });
poll();
setInterval(poll, POLL_MS);
setInterval(tick, 1000);
"""

_BODY = """
<header>
  <h1>Engagement stream status</h1>
  <p class="meta"><span id="role" class="badge">&hellip;</span>
    <span id="updated" data-age-seconds="">waiting for the first update</span>
    <span id="fetch-error"></span></p>
</header>
<main>
  <section id="verdict" class="verdict" data-state="waiting" aria-live="polite">
    <strong id="verdict-title">Waiting for data</strong> <span id="verdict-detail"></span>
  </section>
  <section class="card" id="tile-throughput">
    <h2>Throughput per second (up to the last 5 minutes)</h2>
    <p class="legend"><span><span class="key in"></span>events in <b id="rate-in">&mdash;</b></span>
      <span><span class="key out"></span>signals applied <b id="rate-out">&mdash;</b></span></p>
    <svg id="throughput" role="img" aria-label="Events in and signals applied per second"
      data-latest-events-per-second="" data-latest-signals-per-second=""
      data-points="0"></svg>
  </section>
  <div class="grid">
    <section class="card" id="tile-lag"><h2>Lag (messages waiting)</h2>
      <p class="big" id="lag-total">&mdash;</p><ul class="kv" id="lag-topics"></ul></section>
    <section class="card" id="tile-latency-state"><h2>Publish &rarr; state applied</h2>
      <dl class="pct"><div><dt>p50</dt><dd id="state-p50">&mdash;</dd></div>
        <div><dt>p95</dt><dd id="state-p95">&mdash;</dd></div>
        <div><dt>p99</dt><dd id="state-p99">&mdash;</dd></div></dl>
      <p class="sub" id="state-count"></p></section>
    <section class="card" id="tile-latency-nudge"><h2>Publish &rarr; nudge</h2>
      <dl class="pct"><div><dt>p50</dt><dd id="nudge-p50">&mdash;</dd></div>
        <div><dt>p95</dt><dd id="nudge-p95">&mdash;</dd></div>
        <div><dt>p99</dt><dd id="nudge-p99">&mdash;</dd></div></dl>
      <p class="sub" id="nudge-count"></p></section>
    <section class="card" id="tile-dead-letters"><h2>Dead letters</h2>
      <p class="big" id="dead-total">&mdash;</p><ul class="kv" id="dead-reasons"></ul></section>
    <section class="card" id="tile-duplicates"><h2>Duplicates and late events</h2>
      <ul class="kv"><li><span>duplicates dropped</span><span id="duplicates">&mdash;</span></li>
        <li><span>late events set aside</span><span id="late">&mdash;</span></li>
        <li><span>last closed day</span><span id="closed-day">&mdash;</span></li></ul>
    </section>
    <section class="card" id="tile-nudges"><h2>Nudges</h2>
      <p class="big" id="nudges-total">&mdash;</p><ul class="kv" id="nudges-list"></ul></section>
    <section class="card" id="tile-interventions"><h2>Interventions</h2>
      <p class="big" id="interventions-total">&mdash;</p>
      <ul class="kv" id="interventions-list"></ul></section>
  </div>
  <section class="card" id="tile-sources"><h2>Source health</h2>
    <div class="table-wrap"><table id="sources">
      <thead><tr><th>Feed</th><th>Status (quiet now)</th><th class="n">Events</th>
        <th class="n">Gaps found</th></tr></thead>
      <tbody id="sources-body"></tbody></table></div></section>
</main>
<footer>Counts only: this page never shows an individual student or member of staff.
  Numbers come from <a href="status.json">status.json</a>, read every 2 seconds.</footer>
"""


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


PAGE = (
    '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    '<link rel="icon" href="data:,">\n<title>Engagement stream status</title>\n'
    f"<style>{_STYLE}</style>\n</head>\n<body>{_BODY}<script>{_SCRIPT}</script>\n</body>\n</html>\n"
)
"""The status page: self-contained, no external resource, no build step."""

# Only this page's own script and style may run; it may fetch only from its own origin.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; script-src '{_sha256(_SCRIPT)}'; style-src '{_sha256(_STYLE)}'; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
JSON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
