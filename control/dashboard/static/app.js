// Pier dashboard scripts: the live build log (server-sent events, polling
// as the fallback), the traffic charts (GET /v1/projects/{p}/metrics, inline
// SVG) and the runtime logs (GET /v1/projects/{p}/logs, followed live).
// Reads go through /ui/api/..., a read-only pass-through with the session
// cookie. A section whose endpoint the server lacks (404) says so.
"use strict";

const api = (path) => fetch("/ui/api" + path, { credentials: "same-origin", cache: "no-store" });
const finalStates = new Set(["ready", "failed", "canceled"]);
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
const svgNS = "http://www.w3.org/2000/svg";

function text(el, s) { el.textContent = s; }
function el(tag, cls, s) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (s !== undefined) e.textContent = s;
  return e;
}

// ---- Deployment page: the build log ----

// showDeployment brings the facts at the top of the page up to date.
function showDeployment(box, d) {
  const state = document.getElementById("state");
  if (d.state && d.state !== box.dataset.state) {
    box.dataset.state = d.state;
    text(state, d.state);
    state.className = "badge state-" + d.state;
  }
  if (d.error) text(document.getElementById("error"), d.error);
  const u = document.getElementById("url");
  if (d.url && !u.querySelector("a")) {
    const a = el("a", "", d.url); a.href = d.url; a.target = "_blank"; a.rel = "noopener";
    u.replaceChildren(a);
  }
  if (d.live !== undefined) {
    document.getElementById("live-badge").hidden = !d.live;
    document.getElementById("promote-form").hidden = d.live || d.state !== "ready";
  }
}

async function refreshDeployment(box) {
  try {
    const r = await api(`/v1/deployments/${box.dataset.id}`);
    if (r.ok) { const d = await r.json(); showDeployment(box, d); return d; }
  } catch (e) { /* the next look will do */ }
  return null;
}

function appendLog(log, chunk) {
  if (!chunk) return;
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.append(chunk);
  if (atBottom) log.scrollTop = log.scrollHeight;
}

// followLog follows the build log over server-sent events (the API's
// ?follow=1 stream: "log" events, then one "end" with the final state). If
// the stream cannot be had or breaks, it polls from the byte offset it got
// to.
function followLog(box) {
  const log = document.getElementById("log");
  const status = document.getElementById("log-status");
  if (!window.EventSource) { pollLog(box, 0); return; }
  box.dataset.transport = "sse";
  let offset = 0;
  let done = false;
  const es = new EventSource(`/ui/api/v1/deployments/${box.dataset.id}/logs?follow=1`);
  // The state badge moves (queued → building) while the log streams.
  const stateTimer = setInterval(() => refreshDeployment(box), 1500);
  es.addEventListener("log", (ev) => {
    const d = JSON.parse(ev.data);
    appendLog(log, d.text);
    const next = parseInt(ev.lastEventId || "0", 10);
    if (next > offset) offset = next;
  });
  es.addEventListener("end", async (ev) => {
    done = true;
    es.close();
    clearInterval(stateTimer);
    const end = JSON.parse(ev.data);
    showDeployment(box, { state: end.state, error: end.error });
    await refreshDeployment(box);
    text(status, "complete");
    // Promotion is part of the build, but look once more for the badge.
    setTimeout(() => refreshDeployment(box), 1000);
  });
  es.onerror = () => {
    if (done) return;
    // A refused stream or a broken one: poll from where the stream got to.
    es.close();
    clearInterval(stateTimer);
    box.dataset.transport = "poll";
    pollLog(box, offset);
  };
}

// pollLog polls the build log by offset until the deployment is final and
// the log is drained; it also keeps the state badge current.
async function pollLog(box, offset) {
  const id = box.dataset.id;
  const log = document.getElementById("log");
  const status = document.getElementById("log-status");
  box.dataset.transport = "poll";
  let lastPass = false;
  for (;;) {
    let drained = true;
    try {
      const r = await api(`/v1/deployments/${id}/logs?offset=${offset}`);
      if (r.ok) {
        const chunk = await r.text();
        const next = parseInt(r.headers.get("X-Log-Offset") || "0", 10);
        if (chunk.length > 0) { appendLog(log, chunk); drained = false; }
        if (next > offset) offset = next;
      } else if (r.status === 401) {
        text(status, "signed out"); return;
      }
      const d = await refreshDeployment(box);
      if (d && finalStates.has(d.state) && drained) {
        // The last lines are written just before the state turns final:
        // read once more before stopping.
        if (!lastPass) { lastPass = true; await sleep(800); continue; }
        text(status, "complete");
        if (d.state === "ready" && !d.live) setTimeout(() => refreshDeployment(box), 1000);
        return;
      }
      text(status, "following…");
    } catch (e) {
      text(status, "reconnecting…");
    }
    await sleep(400);
  }
}

// ---- Project page: optional sections ----

const titles = { metrics: "Traffic metrics", logs: "Runtime logs" };

function unavailable(section, body) {
  const p = el("p", "unavailable", `${titles[section.dataset.kind]} are not available on this server yet.`);
  body.replaceChildren(p);
  section.dataset.state = "unavailable";
}

// get fetches a section's JSON; null when the section is unavailable or
// failed (the section says which).
async function get(section, path) {
  const body = section.querySelector(".body");
  try {
    const r = await api(path);
    if (r.status === 404 || r.status === 405 || r.status === 501) { unavailable(section, body); return null; }
    if (!r.ok) {
      let msg = `Could not load (${r.status}).`;
      try { const e = await r.json(); if (e.error?.message) msg = `Could not load: ${e.error.message}`; } catch (e) { /* not JSON */ }
      text(body, msg); section.dataset.state = "error"; return null;
    }
    return await r.json();
  } catch (e) {
    text(body, "Could not load."); section.dataset.state = "error"; return null;
  }
}

// ---- Traffic charts ----

const fmt = (v, unit) => {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (unit === "%") return `${(v * 100).toFixed(v === 1 || v === 0 ? 0 : 1)} %`;
  if (unit === "ms") return v >= 100 ? `${v.toFixed(0)} ms` : v >= 1 ? `${v.toFixed(1)} ms` : `${v.toFixed(2)} ms`;
  return String(v);
};

// chart draws series (each {name, values: [number|null], cls}) as lines on
// a shared scale in an SVG of its own.
function chart(key, title, figure, series, unit, fixedMax) {
  const W = 300, H = 90, pad = 4;
  const c = el("div", "chart");
  c.dataset.series = key;
  const h = el("h3", "", title + " ");
  const b = el("b", "figure", figure);
  h.append(b);
  c.append(h);
  const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
  const top = Math.max(0, ...all);
  const max = fixedMax ?? (top || 1);
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  for (const s of series) {
    const n = s.values.length;
    let d = "";
    let pen = false;
    const has = (i) => i >= 0 && i < n && s.values[i] !== null && s.values[i] !== undefined;
    s.values.forEach((v, i) => {
      if (!has(i)) { pen = false; return; }
      const x = n <= 1 ? W / 2 : pad + (i / (n - 1)) * (W - 2 * pad);
      const y = H - pad - (v / max) * (H - 2 * pad);
      d += `${pen ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)} `;
      // A point without neighbours is drawn as a dot.
      if (!pen && !has(i + 1)) d += "l0.01,0 ";
      pen = true;
    });
    const path = document.createElementNS(svgNS, "path");
    path.setAttribute("d", d.trim() || "M0,0");
    path.setAttribute("class", "line " + (s.cls || ""));
    const tip = document.createElementNS(svgNS, "title");
    tip.textContent = s.name;
    path.append(tip);
    svg.append(path);
  }
  c.append(svg);
  const foot = el("div", "axis");
  foot.append(el("span", "", `max ${fmt(fixedMax ?? top, unit)}`));
  if (series.length > 1) {
    for (const s of series) foot.append(el("span", "key " + (s.cls || ""), s.name));
  }
  c.append(foot);
  return c;
}

function renderMetrics(section, data) {
  const body = section.querySelector(".body");
  const pts = data.points || [];
  const t = data.total || {};
  const charts = el("div", "charts");
  charts.append(chart("requests", "Requests", String(t.requests ?? 0),
    [{ name: "requests", values: pts.map((p) => p.requests) }], ""));
  const lat = t.latency_ms;
  charts.append(chart("latency", "Latency", lat ? `p50 ${fmt(lat.p50, "ms")} · p95 ${fmt(lat.p95, "ms")} · p99 ${fmt(lat.p99, "ms")}` : "–",
    ["p50", "p95", "p99"].map((q) => ({ name: q, cls: q, values: pts.map((p) => (p.latency_ms ? p.latency_ms[q] : null)) })), "ms"));
  const n4xx = Object.entries(t.status || {}).reduce((n, [k, v]) => n + (k.startsWith("4") ? v : 0), 0);
  const errs = chart("errors", "Errors", `${t.errors ?? 0} × 5xx · ${n4xx} × 4xx`,
    [{ name: "5xx", cls: "bad", values: pts.map((p) => p.errors) },
     { name: "4xx", cls: "warn", values: pts.map((p) => Object.entries(p.status || {}).reduce((n, [k, v]) => n + (k.startsWith("4") ? v : 0), 0)) }], "");
  const codes = Object.entries(t.status || {}).sort(([a], [b]) => a.localeCompare(b));
  const byStatus = el("ul", "statuses");
  for (const [code, n] of codes) {
    const li = el("li", "status-" + code[0] + "xx", `${code}: ${n}`);
    li.dataset.code = code;
    byStatus.append(li);
  }
  if (codes.length === 0) byStatus.append(el("li", "muted", "no requests"));
  errs.append(byStatus);
  charts.append(errs);
  charts.append(chart("cache", "Cache hit rate", t.cache_hit_rate === undefined ? "–" : fmt(t.cache_hit_rate, "%"),
    [{ name: "hit rate", values: pts.map((p) => p.cache_hit_rate ?? null) }], "%", 1));
  const note = el("p", "muted small", `${pts.length} steps of ${data.step_s}s; ${t.static ?? 0} static responses, ` +
    `${t.cold_starts ?? 0} cold and ${t.warm_starts ?? 0} warm isolate starts.`);
  body.replaceChildren(charts, note);
  body.classList.remove("muted");
  section.dataset.state = "loaded";
  section.dataset.requests = String(t.requests ?? 0);
}

async function loadMetrics(section) {
  const range = document.getElementById("metrics-range");
  const load = async () => {
    const data = await get(section, `${section.dataset.endpoint}?since=${encodeURIComponent(range?.value || "1h")}`);
    if (data) renderMetrics(section, data);
  };
  await load();
  if (section.dataset.state === "unavailable") return;
  range?.addEventListener("change", load);
  setInterval(() => { if (!document.hidden) load(); }, 5000);
}

// ---- Runtime logs ----

const maxLines = 500;

function logLine(r) {
  const row = el("div", `rt-line level-${r.level} kind-${r.kind}`);
  row.dataset.id = String(r.id);
  const time = new Date(r.time);
  row.append(el("span", "rt-time", Number.isNaN(time.getTime()) ? r.time : time.toLocaleTimeString()));
  row.append(el("span", "rt-level", r.level));
  if (r.kind === "access") {
    const ms = r.duration_us !== undefined ? ` ${(r.duration_us / 1000).toFixed(2)} ms` : "";
    row.append(el("span", "rt-msg", `${r.method} ${r.host}${r.path} ${r.status}${ms}${r.start ? " (" + r.start + ")" : ""}`));
  } else {
    row.append(el("span", "rt-msg", r.message));
  }
  row.title = `${r.edge} · ${r.deployment_id}${r.request_id ? " · request " + r.request_id : ""}`;
  return row;
}

function runtimeLogs(section) {
  const body = section.querySelector(".body");
  const status = document.getElementById("rt-status");
  const form = document.getElementById("rt-filter");
  let es = null;
  let timer = null;
  let gen = 0;
  const query = (extra) => {
    const q = new URLSearchParams({ limit: "200" });
    const level = document.getElementById("rt-level").value;
    const s = document.getElementById("rt-q").value.trim();
    if (level) q.set("level", level);
    if (s) q.set("q", s);
    for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
    return `${section.dataset.endpoint}?${q}`;
  };
  const stop = () => { if (es) { es.close(); es = null; } if (timer) { clearTimeout(timer); timer = null; } };
  const start = async () => {
    stop();
    const my = ++gen;
    const data = await get(section, query());
    if (my !== gen || data === null) return;
    const box = el("div", "log rt");
    box.id = "rt-lines";
    let last = 0;
    const add = (records) => {
      if (records.length === 0) return;
      const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
      box.querySelector(".empty")?.remove();
      for (const r of records) { if (r.id > last) { box.append(logLine(r)); last = r.id; } }
      while (box.childElementCount > maxLines) box.firstElementChild.remove();
      if (atBottom) box.scrollTop = box.scrollHeight;
      section.dataset.lines = String(box.childElementCount);
    };
    box.append(el("div", "empty", "No records match yet."));
    body.replaceChildren(box);
    body.classList.remove("muted");
    section.dataset.state = "loaded";
    add(data.logs || []);
    if (!document.getElementById("rt-follow").checked) { text(status, "not following"); return; }
    const poll = async () => {
      if (my !== gen) return;
      try {
        const r = await api(query(last ? { after: String(last) } : {}));
        if (my !== gen) return;
        if (r.ok) add((await r.json()).logs || []);
      } catch (e) { /* try again */ }
      timer = setTimeout(poll, 2000);
    };
    if (!window.EventSource) { text(status, "following (polling)"); section.dataset.transport = "poll"; poll(); return; }
    es = new EventSource(query(last ? { follow: "1", after: String(last) } : { follow: "1" }).replace(/^/, "/ui/api"));
    section.dataset.transport = "sse";
    text(status, "following live");
    es.addEventListener("log", (ev) => add([JSON.parse(ev.data)]));
    es.onerror = () => {
      if (my !== gen) return;
      es.close(); es = null;
      section.dataset.transport = "poll";
      text(status, "following (polling)");
      poll();
    };
  };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); start(); });
  document.getElementById("rt-follow").addEventListener("change", start);
  document.getElementById("rt-level").addEventListener("change", start);
  start();
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("deployment");
  if (box) followLog(box);
  const metrics = document.getElementById("metrics");
  if (metrics) loadMetrics(metrics);
  const logs = document.getElementById("runtime-logs");
  if (logs) runtimeLogs(logs);
});
