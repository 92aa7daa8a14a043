// Pier dashboard: the build log follower and the optional sections
// (domains, traffic charts, runtime logs) that fill in when the server has
// their endpoints. Reads go through /ui/api/..., with the session cookie.
"use strict";

const api = (path) => fetch("/ui/api" + path, { credentials: "same-origin", cache: "no-store" });
const finalStates = new Set(["ready", "failed", "canceled"]);

function text(el, s) { el.textContent = s; }

// followLog polls the build log by offset until the deployment is final
// and the log is drained; it also keeps the state badge current.
async function followLog(box) {
  const id = box.dataset.id;
  const log = document.getElementById("log");
  const state = document.getElementById("state");
  const status = document.getElementById("log-status");
  let offset = 0;
  let lastPass = false;
  for (;;) {
    let drained = true;
    try {
      const r = await api(`/v1/deployments/${id}/logs?offset=${offset}`);
      if (r.ok) {
        const chunk = await r.text();
        const next = parseInt(r.headers.get("X-Log-Offset") || "0", 10);
        if (chunk.length > 0) {
          const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
          log.append(chunk);
          if (atBottom) log.scrollTop = log.scrollHeight;
          drained = false;
        }
        if (next > offset) offset = next;
      } else if (r.status === 401) {
        text(status, "signed out"); return;
      }
      const d = await (await api(`/v1/deployments/${id}`)).json();
      if (d.state !== box.dataset.state) {
        box.dataset.state = d.state;
        text(state, d.state);
        state.className = "badge state-" + d.state;
        if (d.error) text(document.getElementById("error"), d.error);
        if (d.url) {
          const u = document.getElementById("url");
          u.replaceChildren();
          const a = document.createElement("a"); a.href = d.url; a.target = "_blank"; a.rel = "noopener"; text(a, d.url);
          u.append(a);
        }
      }
      document.getElementById("live-badge").hidden = !d.live;
      document.getElementById("promote-form").hidden = d.live || d.state !== "ready";
      if (finalStates.has(d.state) && drained) {
        // The last lines (the cutover) are written just after the state
        // turns final: read once more before stopping.
        if (!lastPass) { lastPass = true; await new Promise((res) => setTimeout(res, 800)); continue; }
        text(status, "complete");
        // A deployment goes live just after it is ready: look once more.
        if (d.state === "ready" && !d.live) setTimeout(() => refreshLive(id), 1000);
        return;
      }
    } catch (e) {
      text(status, "reconnecting…");
    }
    await new Promise((res) => setTimeout(res, 400));
  }
}

async function refreshLive(id) {
  try {
    const d = await (await api(`/v1/deployments/${id}`)).json();
    document.getElementById("live-badge").hidden = !d.live;
    document.getElementById("promote-form").hidden = d.live || d.state !== "ready";
  } catch (e) {}
}

function unavailable(body, what) {
  body.replaceChildren();
  const p = document.createElement("p");
  p.className = "unavailable";
  text(p, `${what} are not available on this server yet.`);
  body.append(p);
}

// Renderers of the optional sections; the endpoints come with later work,
// so each accepts a few plausible shapes and shows the raw answer otherwise.
const renderers = {
  domains(body, data) {
    const list = Array.isArray(data) ? data : data.domains || [];
    if (list.length === 0) { text(body, "No custom domains."); return; }
    const t = document.createElement("table");
    t.innerHTML = "<thead><tr><th>Domain</th><th>Verification</th><th>TLS</th></tr></thead>";
    const tb = document.createElement("tbody");
    for (const d of list) {
      const tr = document.createElement("tr");
      for (const v of [d.name || d.domain || d.host, d.verification || d.status || (d.verified ? "verified" : "pending"), d.tls || d.certificate || ""]) {
        const td = document.createElement("td"); text(td, typeof v === "object" ? JSON.stringify(v) : String(v ?? "")); tr.append(td);
      }
      tb.append(tr);
    }
    t.append(tb); body.replaceChildren(t);
  },
  metrics(body, data) {
    const charts = document.createElement("div");
    charts.className = "charts";
    const series = data.series || data;
    const wanted = ["requests", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "errors", "cache_hit_rate"];
    const keys = wanted.filter((k) => Array.isArray(series[k])).concat(Object.keys(series).filter((k) => Array.isArray(series[k]) && !wanted.includes(k)));
    if (keys.length === 0) { text(body, "No traffic yet."); return; }
    for (const k of keys) {
      const vals = series[k].map((p) => (typeof p === "number" ? p : p.v ?? p.value ?? 0));
      const max = Math.max(1e-9, ...vals);
      const pts = vals.map((v, i) => `${(i / Math.max(1, vals.length - 1)) * 100},${68 - (v / max) * 64}`).join(" ");
      const c = document.createElement("div"); c.className = "chart";
      const h = document.createElement("h3"); text(h, `${k.replaceAll("_", " ")} (last ${vals.at(-1) ?? 0})`);
      c.append(h);
      c.insertAdjacentHTML("beforeend", `<svg viewBox="0 0 100 70" preserveAspectRatio="none"><polyline points="${pts}"/></svg>`);
      charts.append(c);
    }
    body.replaceChildren(charts);
  },
  logs(body, data) {
    const pre = document.createElement("pre"); pre.className = "log";
    text(pre, typeof data === "string" ? data : (data.logs || data.lines || []).map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n"));
    body.replaceChildren(pre);
  },
};

const titles = { domains: "Custom domains", metrics: "Traffic metrics", logs: "Runtime logs" };

async function loadOptional(section) {
  const body = section.querySelector(".body");
  const kind = section.dataset.kind;
  try {
    const r = await api(section.dataset.endpoint);
    if (r.status === 404 || r.status === 405 || r.status === 501) { unavailable(body, titles[kind]); section.dataset.state = "unavailable"; return; }
    if (!r.ok) { text(body, `Could not load (${r.status}).`); section.dataset.state = "error"; return; }
    const type = r.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await r.json() : await r.text();
    renderers[kind](body, data);
    section.dataset.state = "loaded";
  } catch (e) {
    text(body, "Could not load."); section.dataset.state = "error";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("deployment");
  if (box) followLog(box);
  document.querySelectorAll("section.optional").forEach(loadOptional);
});
