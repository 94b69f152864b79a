"""/status.html: a live page for a second screen, with no external assets (it works offline).

It polls /status (beside it) every second and draws requests/s per worker over the last minute
as inline SVG, the connection states, the queues, memory, and a table of workers in which a
reload shows as a new generation starting while the old one drains.
"""

STATUS_HTML = rb"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>prefork status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;background:#0f1419;color:#e6e6e6}
h1{font-size:1.3rem;margin:0 0 .2rem} .sub{color:#9aa5b1;margin-bottom:1rem}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin-bottom:1rem}
.card{background:#1b232c;border-radius:8px;padding:.6rem 1rem;min-width:7.5rem}
.card b{display:block;font-size:1.6rem;font-variant-numeric:tabular-nums}
.card span{color:#9aa5b1;font-size:.85rem}
.panel{background:#1b232c;border-radius:8px;padding:.8rem 1rem;margin-bottom:1rem}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{text-align:right;padding:.25rem .6rem;border-bottom:1px solid #2a3440}
th:first-child,td:first-child{text-align:left}
tr.old td{color:#9aa5b1} .warn{color:#ffb454} .bad{color:#f07178}
#legend span{margin-right:1rem;font-size:.85rem} svg text{fill:#9aa5b1;font-size:11px}
</style></head>
<body>
<h1>prefork <span id="version"></span></h1>
<div class="sub" id="summary">connecting to /status ...</div>
<div class="cards">
<div class="card"><b id="rate">-</b><span>requests/s</span></div>
<div class="card"><b id="active">-</b><span>active connections</span></div>
<div class="card"><b id="reading">-</b><span>reading</span></div>
<div class="card"><b id="writing">-</b><span>writing</span></div>
<div class="card"><b id="waiting">-</b><span>waiting (keep-alive)</span></div>
<div class="card"><b id="queued">-</b><span>queued requests</span></div>
<div class="card"><b id="rss">-</b><span>worker memory</span></div>
<div class="card"><b id="requests">-</b><span>requests in all</span></div>
</div>
<div class="panel"><div>requests/s per worker, last minute</div>
<svg id="chart" viewBox="0 0 800 220" width="100%" height="220" preserveAspectRatio="none"></svg>
<div id="legend"></div></div>
<div class="panel"><table><thead><tr><th>worker</th><th>pid</th><th>generation</th><th>state</th>
<th>age</th><th>heartbeat</th><th>req/s</th><th>requests</th><th>active</th><th>queued</th>
<th>busy threads</th><th>RSS</th><th>5xx</th></tr></thead><tbody id="workers"></tbody></table></div>
<script>
"use strict";
const COLORS = ["#59c2ff", "#aad94c", "#ffb454", "#f07178", "#d2a6ff", "#95e6cb", "#e6b673", "#f29668"];
const WINDOW = 60;
const history = new Map();  // pid -> [{t, rate}]
let last = null;
const $ = (id) => document.getElementById(id);
const mib = (b) => (b / 1048576).toFixed(1) + " MiB";
const age = (s) => s < 120 ? s.toFixed(0) + " s" : s < 7200 ? (s / 60).toFixed(0) + " min" : (s / 3600).toFixed(1) + " h";

function rates(doc) {
  const out = new Map();
  if (last) {
    const dt = doc.time - last.time;
    const before = new Map(last.workers.map((w) => [w.pid, w.requests]));
    for (const w of doc.workers) {
      if (before.has(w.pid) && dt > 0) out.set(w.pid, Math.max(0, (w.requests - before.get(w.pid)) / dt));
    }
  }
  return out;
}

// The smallest of 1, 2, 4, 5, 8 or 10 times a power of ten at or above x: an axis in round steps
// that leaves the lines most of the chart's height.
function ceiling(x) {
  const power = Math.pow(10, Math.floor(Math.log10(x)));
  for (const m of [1, 2, 4, 5, 8, 10]) if (m * power >= x) return m * power;
}
const short = (n) => n >= 1e6 ? (n / 1e6).toFixed(n % 1e6 ? 1 : 0) + "M" : n >= 1e3 ? (n / 1e3).toFixed(n % 1e3 ? 1 : 0) + "k" : String(n);

function draw(doc) {
  const svg = $("chart"), width = 800, height = 200, margin = 10;
  const now = doc.time;
  let top = 1;
  for (const points of history.values()) for (const p of points) top = Math.max(top, p.rate);
  top = ceiling(top * 1.05);
  const yOf = (rate) => margin + ((height - margin) * (top - rate)) / top;
  let parts = [];
  for (let i = 0; i <= 4; i++) {
    const y = yOf((top * i) / 4);
    parts.push(`<line x1="40" x2="${width}" y1="${y}" y2="${y}" stroke="#2a3440"/>` +
               `<text x="0" y="${y + 4}">${short(Math.round((top * i) / 4))}</text>`);
  }
  const legend = [];
  let index = 0;
  const slots = new Map(doc.workers.map((w) => [w.pid, w]));
  for (const [pid, points] of history) {
    const color = COLORS[index++ % COLORS.length];
    const path = points.map((p, i) => {
      const x = 40 + ((width - 40) * (WINDOW - (now - p.t))) / WINDOW;
      const y = yOf(p.rate);
      return (i ? "L" : "M") + x.toFixed(1) + "," + y.toFixed(1);
    }).join("");
    parts.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="2"/>`);
    const w = slots.get(pid);
    legend.push(`<span style="color:${color}">&#9632; worker ${w ? w.slot + " [gen " + w.generation + "]" : "(exited)"} pid ${pid}</span>`);
  }
  parts.push(`<text x="40" y="216">-60 s</text><text x="${width - 30}" y="216">now</text>`);
  svg.innerHTML = parts.join("");
  $("legend").innerHTML = legend.join("");
}

function render(doc) {
  const perWorker = rates(doc);
  for (const [pid, rate] of perWorker) {
    if (!history.has(pid)) history.set(pid, []);
    history.get(pid).push({t: doc.time, rate});
  }
  for (const [pid, points] of history) {
    while (points.length && doc.time - points[0].t > WINDOW) points.shift();
    if (!points.length) history.delete(pid);
  }
  let total = 0;
  for (const r of perWorker.values()) total += r;
  const sum = (key) => doc.workers.reduce((n, w) => n + w[key], 0);
  $("version").textContent = doc.version;
  const m = doc.master;
  const state = doc.draining ? '<span class="warn">draining</span>' : "serving";
  $("summary").innerHTML = `${state} &middot; master ${m.pid} &middot; generation ${m.generation} &middot; ` +
    `${doc.workers.length} worker processes &middot; up ${age(m.uptime)} &middot; ${m.reloads} reloads &middot; ` +
    `${m.respawns} respawns`;
  $("rate").textContent = last ? total.toFixed(0) : "-";
  for (const key of ["active", "reading", "writing", "waiting", "requests"]) $(key).textContent = doc[key];
  $("queued").textContent = sum("queued");
  $("rss").textContent = mib(sum("rss"));
  const newest = Math.max(...doc.workers.map((w) => w.generation));
  $("workers").innerHTML = doc.workers.map((w) => {
    const beat = w.heartbeat_age === null ? "-" : w.heartbeat_age.toFixed(1) + " s";
    const cls = w.generation < newest || w.state !== "serving" ? "old" : "";
    const rate = perWorker.has(w.pid) ? perWorker.get(w.pid).toFixed(0) : "-";
    const bad = w.responses["5xx"] ? ' class="bad"' : "";
    return `<tr class="${cls}"><td>worker ${w.slot}</td><td>${w.pid}</td><td>${w.generation}</td>` +
      `<td>${w.state}</td><td>${age(w.age)}</td><td>${beat}</td><td>${rate}</td><td>${w.requests}</td>` +
      `<td>${w.active}</td><td>${w.queued}</td><td>${w.busy_threads}</td><td>${mib(w.rss)}</td>` +
      `<td${bad}>${w.responses["5xx"]}</td></tr>`;
  }).join("");
  draw(doc);
  last = doc;
}

async function poll() {
  try {
    const response = await fetch("status", {cache: "no-store"});
    render(await response.json());
  } catch (error) {
    $("summary").innerHTML = '<span class="bad">cannot reach /status: ' + error + "</span>";
  }
  setTimeout(poll, 1000);
}
poll();
</script>
</body>
</html>
"""
