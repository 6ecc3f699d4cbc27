// The pointsman dashboard: polls the admin API with the bearer token kept in
// localStorage and draws a live requests/s and errors/s chart on a canvas.
// Plain JavaScript, no build step.
"use strict";

const POLL_MS = 1000;
const HISTORY = 60;
const KEY = "pointsman.token";
const history = [];
let previous = null;

const $ = (id) => document.getElementById(id);

function token() { return localStorage.getItem(KEY) || ""; }

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: "Bearer " + token() } });
  if (response.status === 401) { throw new Error("unauthorized"); }
  if (!response.ok) { return null; }
  return response.json();
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  if (text instanceof Node) { td.appendChild(text); } else { td.textContent = text; }
  if (cls) { td.className = cls; }
  row.appendChild(td);
}

function pill(text, cls) {
  const span = document.createElement("span");
  span.className = "pill " + cls;
  span.textContent = text;
  return span;
}

function fill(id, rows, columns, empty) {
  const body = $(id).querySelector("tbody");
  body.replaceChildren();
  if (!rows.length) {
    const tr = document.createElement("tr");
    cell(tr, empty, "empty");
    tr.firstChild.colSpan = columns;
    body.appendChild(tr);
    return;
  }
  for (const values of rows) {
    const tr = document.createElement("tr");
    for (const [text, cls] of values) { cell(tr, text, cls); }
    body.appendChild(tr);
  }
}

const sum = (object) => Object.values(object || {}).reduce((a, b) => a + b, 0);
const fmt = (n) => (n >= 100 ? Math.round(n).toString() : n.toFixed(1));

function rates(stats) {
  const out = { rps: 0, eps: 0, per: {} };
  if (previous) {
    const dt = Math.max(0.001, stats.time - previous.time);
    out.rps = Math.max(0, (sum(stats.requests) - sum(previous.requests)) / dt);
    out.eps = Math.max(0, (sum(stats.errors) - sum(previous.errors)) / dt);
    for (const name of Object.keys(stats.requests)) {
      out.per[name] = Math.max(0, ((stats.requests[name] || 0) - (previous.requests[name] || 0)) / dt);
    }
  }
  previous = stats;
  return out;
}

function drawChart() {
  const canvas = $("chart");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = width * ratio; canvas.height = height * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const pad = { left: 48, right: 12, top: 12, bottom: 20 };
  const top = Math.max(1, ...history.map((p) => p.rps)) * 1.15;
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#6b7385";
  g.strokeStyle = "#e3e6ec";
  for (let i = 0; i <= 4; i++) {
    const y = pad.top + (height - pad.top - pad.bottom) * (i / 4);
    g.beginPath(); g.moveTo(pad.left, y); g.lineTo(width - pad.right, y); g.stroke();
    g.fillText(fmt(top * (1 - i / 4)), 6, y + 4);
  }
  g.fillText("now", width - pad.right - 20, height - 4);
  g.fillText(`-${HISTORY}s`, pad.left, height - 4);
  const x = (i) => pad.left + (width - pad.left - pad.right) * (i + HISTORY - history.length) / (HISTORY - 1);
  const y = (v) => height - pad.bottom - (height - pad.top - pad.bottom) * (v / top);
  for (const [key, colour] of [["rps", "#2457c5"], ["eps", "#c62f2f"]]) {
    g.strokeStyle = colour; g.lineWidth = 2; g.beginPath();
    history.forEach((p, i) => (i ? g.lineTo(x(i), y(p[key])) : g.moveTo(x(i), y(p[key]))));
    g.stroke();
  }
}

async function refresh() {
  const stats = await api("/stats");
  const rate = rates(stats);
  history.push({ rps: rate.rps, eps: rate.eps });
  while (history.length > HISTORY) { history.shift(); }
  const total = sum(stats.requests), errors = sum(stats.errors);
  $("rps").textContent = fmt(rate.rps);
  $("errpct").textContent = total ? (100 * errors / total).toFixed(2) + "%" : "0%";
  $("errpct").className = "value " + (errors ? "bad" : "ok");
  $("active").textContent = sum(stats.active);
  $("workers").textContent = stats.workers;
  $("routecount").textContent = stats.routes;
  fill("listeners", Object.entries(stats.listeners).map(([name, addresses]) => [
    [name], [addresses.join(", ")], [String(stats.active[name] || 0), "num"],
    [fmt(rate.per[name] || 0), "num"], [String(stats.errors[name] || 0), "num"],
    [String(stats.requests[name] || 0), "num"],
  ]), 6, "no listeners");
  drawChart();
}

async function refreshSlow() {
  const [status, upstreams, routes] = await Promise.all([api("/status"), api("/upstreams"), api("/routes")]);
  $("summary").textContent = `v${status.version} · pid ${status.pid} · generation ${status.generation} · ${status.reloads} reloads · up ${Math.round(status.uptime)}s`;
  const upstreamRows = [];
  for (const [name, endpoints] of Object.entries(upstreams || {})) {
    for (const e of endpoints) {
      const health = e.draining ? pill("draining", "warn") : e.healthy ? pill("healthy", "ok") : pill("down", "bad");
      upstreamRows.push([[name], [e.address], [health], [String(e.active), "num"], [String(e.total), "num"], [String(e.fails), "num"]]);
    }
  }
  fill("upstreams", upstreamRows, 6, "no upstreams");
  const routeRows = [];
  for (const [uri, endpoints] of Object.entries(routes || {}).sort()) {
    for (const e of endpoints) {
      routeRows.push([[uri], [e.address], [pill(e.source, e.source === "nats" ? "warn" : "ok")], [e.app || ""],
                      [e.expires_in == null ? "–" : e.expires_in.toFixed(0) + "s", "num"],
                      [e.draining ? pill("draining", "warn") : pill("serving", "ok")]]);
    }
  }
  fill("routes", routeRows, 6, "no routes");
  fill("workerlist", status.workers.map((w) => [
    [String(w.pid)], [String(w.slot)], [String(w.generation)],
    [w.retiring ? pill("draining", "warn") : w.ready ? pill("serving", "ok") : pill("starting", "warn")],
    [Math.round(w.uptime) + "s", "num"], [String(sum(w.active)), "num"],
  ]), 6, "no workers");
  for (const [id, path] of [["gateway", "/workers/gateway"], ["provision", "/workers/provision"]]) {
    const body = await api(path).catch(() => null);
    $(id + "-section").hidden = !body;
    if (body) { $(id).textContent = JSON.stringify(body, null, 2); }
  }
}

function showLogin(message) {
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("token").focus();
}

async function start() {
  try {
    await refreshSlow();
    await refresh();
  } catch (error) {
    showLogin(token() ? "That token was refused." : "");
    return;
  }
  $("login").hidden = true;
  $("app").hidden = false;
  drawChart();
  setInterval(() => refresh().catch(() => {}), POLL_MS);
  setInterval(() => refreshSlow().catch(() => {}), 2 * POLL_MS);
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem(KEY, $("token").value.trim());
  start();
});
$("forget").addEventListener("click", () => { localStorage.removeItem(KEY); location.reload(); });
start();
