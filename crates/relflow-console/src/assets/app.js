// relflow's web page: a few views over the JSON API, no framework, no build.
// Every value from the server is put in the page with textContent or as an
// attribute value, never parsed as HTML: messages and logs are untrusted.
"use strict";

const STATUSES = ["running", "succeeded", "failed", "timed_out", "cancelled", "error", "abandoned",
  "awaiting_approval", "approved", "denied"];
const COLORS = { succeeded: "#1a7f37", failed: "#cf222e", timed_out: "#9a6700", running: "#0969da",
  cancelled: "#8c959f", error: "#a40e26", abandoned: "#57606a", awaiting_approval: "#8250df",
  approved: "#1a7f37", denied: "#57606a" };
const SVG = "http://www.w3.org/2000/svg";

let refreshTimer = null;
let liveLog = null; // AbortController of the log stream being read

// ---- helpers ---------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// A colour square for legends. Set through the CSSOM: the page's CSP forbids
// style="" attributes.
function swatch(color) {
  const i = el("i");
  i.style.background = color;
  return i;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

function token() { return document.getElementById("token").value.trim(); }

function headers() {
  const t = token();
  return t ? { Authorization: "Bearer " + t } : {};
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = Object.assign({}, headers(), opts.headers || {});
  const response = await fetch(path, opts);
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
  if (!response.ok) {
    const why = body && body.error ? body.error : response.status + " " + response.statusText;
    throw new Error(why);
  }
  // An action that worked makes an earlier action's error stale.
  if (opts.method && opts.method !== "GET") document.getElementById("error").hidden = true;
  return body;
}

function showError(e) {
  const box = document.getElementById("error");
  box.textContent = String(e && e.message ? e.message : e);
  box.hidden = false;
  setTimeout(() => { box.hidden = true; }, 8000);
}

function statusBadge(status) {
  return el("span", { class: "status s-" + String(status).replace(/[^a-z_]/g, "") }, status);
}

// Local time with its zone, so a time is never ambiguous.
function when(t) { return t ? new Date(t).toLocaleString(undefined, { timeZoneName: "short" }) : ""; }

function secs(n) { return n < 120 ? `${Math.round(n)}s` : `${Math.floor(n / 60)}m ${Math.round(n % 60)}s`; }

// "running for 42s, 4m 18s left before its timeout" for a running run.
function elapsed(run) {
  if (run.status !== "running") return "";
  const s = (Date.now() - new Date(run.started_at)) / 1000;
  const left = run.timeout_secs === null ? "" : `, ${secs(Math.max(0, run.timeout_secs - s))} left before its timeout`;
  return `running for ${secs(s)}${left}`;
}

const DONE = {
  rerun: "Re-run queued: a worker runs it as a new run; it shows up in the history below.",
  cancel: "Cancel requested: the worker holding the run stops it within seconds.",
  approve: "Approved: a worker runs the rule as a new run; it shows up in the history below.",
  deny: "Denied: the rule does not run for this message.",
};

// Re-run (any run), Cancel (a running one), Approve and Deny (one awaiting
// approval; the token must be one of the rule's approvers); all need the token.
function runActions(run) {
  const act = async (button, what) => {
    button.disabled = true;
    try {
      const body = what === "deny" ? JSON.stringify({ reason: document.getElementById("deny-reason").value }) : undefined;
      const r = await api(`/api/runs/${encodeURIComponent(run.id)}/${what}`, { method: "POST", body });
      document.getElementById("run-action-result").textContent = DONE[what];
      if (what !== "cancel") setTimeout(() => route(true), 1500);
      return r;
    } catch (e) { button.disabled = false; showError(e); }
  };
  const button = (what, label) => el("button", { id: what, onclick: ev => act(ev.target, what) }, label);
  const waiting = run.status === "awaiting_approval";
  return el("p", { id: "run-actions" },
    button("rerun", "Re-run"), " ",
    run.status === "running" ? button("cancel", "Cancel") : null,
    waiting ? [button("approve", "Approve"), " ", button("deny", "Deny"), " ",
      el("input", { id: "deny-reason", placeholder: "reason (optional)", "aria-label": "reason for denying" }),
      run.approval_expires_at ? el("span", { class: "muted" }, ` expires ${when(run.approval_expires_at)}`) : null] : null,
    " ", el("span", { class: "muted", id: "run-action-result" }));
}

// Everything that happened to the run's message, oldest first.
async function historyTable(messageId) {
  const { history } = await api(`/api/messages/${encodeURIComponent(messageId)}/history`);
  return el("table", { id: "history" },
    el("thead", {}, el("tr", {}, ["when", "what", "attempt", "rule", "run", "detail", "by"].map(h => el("th", {}, h)))),
    el("tbody", {}, history.map(h => el("tr", { "data-kind": h.kind },
      el("td", {}, when(h.at)), el("td", {}, h.status ? statusBadge(h.status) : h.kind), el("td", {}, h.attempt ?? ""),
      el("td", {}, h.rule || ""),
      el("td", {}, h.run_id ? el("a", { href: "#/runs/" + encodeURIComponent(h.run_id), class: "mono" }, h.run_id.slice(0, 8)) : ""),
      el("td", { class: "reason" }, h.detail), el("td", { class: "mono" }, h.by || "")))));
}

function took(run) {
  if (!run.finished_at) return "";
  return ((new Date(run.finished_at) - new Date(run.started_at)) / 1000).toFixed(1) + "s";
}

// A link to another run of a chain: "run 3f2a1b2c  rule  status".
function runLink(r) {
  return el("span", { class: "run-link" }, el("a", { href: "#/runs/" + encodeURIComponent(r.id), class: "mono" },
    "run " + r.id.slice(0, 8)), " ", r.rule, " ", statusBadge(r.status));
}

function setMain(...children) {
  const main = document.getElementById("main");
  main.replaceChildren(...children);
}

function navActive(id) {
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.id === id);
}

// ---- charts ----------------------------------------------------------------

function runsPerHourChart(hours) {
  const width = 480, height = 120, now = Date.now();
  const start = Math.floor(now / 3600000) * 3600000 - 23 * 3600000;
  const buckets = Array.from({ length: 24 }, () => ({}));
  for (const h of hours) {
    const i = Math.round((new Date(h.hour).getTime() - start) / 3600000);
    if (i >= 0 && i < 24) buckets[i][h.status] = (buckets[i][h.status] || 0) + h.count;
  }
  const max = Math.max(1, ...buckets.map(b => Object.values(b).reduce((a, n) => a + n, 0)));
  const chart = svg("svg", { width, height: height + 16, role: "img", "aria-label": "runs per hour by status" });
  const bw = width / 24;
  buckets.forEach((b, i) => {
    let y = height;
    for (const s of STATUSES) {
      const n = b[s] || 0;
      if (!n) continue;
      const h = (n / max) * (height - 4);
      y -= h;
      const rect = svg("rect", { x: i * bw + 1, y, width: bw - 2, height: h, fill: COLORS[s] });
      const title = svg("title");
      title.textContent = `${new Date(start + i * 3600000).getHours()}:00 ${s}: ${n}`;
      rect.append(title);
      chart.append(rect);
    }
  });
  const label = svg("text", { x: 0, y: height + 13, "font-size": 10, fill: "#6b6b70" });
  label.textContent = `last 24 h (max ${max}/h)`;
  chart.append(label);
  const legend = el("div", { class: "legend" },
    STATUSES.filter(s => buckets.some(b => b[s])).map(s => el("span", {}, swatch(COLORS[s]), s)));
  return el("div", { class: "chart", id: "chart-runs" }, el("h3", {}, "Runs per hour"), chart, legend);
}

function queueChart(queue) {
  const width = 320, height = 120;
  const points = queue.history.concat([Object.assign({ at: new Date().toISOString() }, queue.depth)]);
  const pending = p => p.ready + p.in_flight + p.delayed;
  const max = Math.max(1, ...points.map(p => Math.max(pending(p), p.dead)));
  const chart = svg("svg", { width, height: height + 16, role: "img", "aria-label": "queue depth" });
  const line = (value, color) => {
    const coords = points.map((p, i) => {
      const x = points.length === 1 ? width : (i / (points.length - 1)) * width;
      return `${x.toFixed(1)},${(height - (value(p) / max) * (height - 4)).toFixed(1)}`;
    });
    chart.append(svg("polyline", { points: coords.join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
  };
  line(pending, COLORS.running);
  line(p => p.dead, COLORS.failed);
  const d = queue.depth;
  const label = svg("text", { x: 0, y: height + 13, "font-size": 10, fill: "#6b6b70" });
  label.textContent = `now: ${d.ready} ready, ${d.in_flight} in flight, ${d.delayed} delayed, ${d.dead} dead`;
  chart.append(label);
  const legend = el("div", { class: "legend" },
    el("span", {}, swatch(COLORS.running), "pending"),
    el("span", {}, swatch(COLORS.failed), "dead"));
  return el("div", { class: "chart", id: "chart-queue" }, el("h3", {}, "Queue depth"), chart, legend);
}

// ---- views -----------------------------------------------------------------

function filtersFromHash(query) {
  const p = new URLSearchParams(query);
  return { search: p.get("search") || "", topic: p.get("topic") || "", message_id: p.get("message_id") || "",
    rule: p.get("rule") || "", status: p.get("status") || "", since: p.get("since") || "",
    offset: Number(p.get("offset") || 0) };
}

async function runsView(query) {
  navActive("nav-runs");
  const f = filtersFromHash(query);
  const limit = 25;
  const params = new URLSearchParams();
  for (const k of ["search", "topic", "message_id", "rule", "status", "since"]) if (f[k]) params.set(k, f[k]);
  params.set("limit", limit);
  params.set("offset", f.offset);
  const [page, hours, queue, rules] = await Promise.all([
    api("/api/runs?" + params), api("/api/stats/runs-per-hour?since=24h"), api("/api/queue"), api("/api/rules"),
  ]);

  const input = (name, placeholder, type = "text") =>
    el("input", { name, placeholder, type, value: f[name], "aria-label": placeholder });
  const select = (name, options) => {
    const s = el("select", { name }, el("option", { value: "" }, "any " + name),
      options.map(o => el("option", { value: o, selected: o === f[name] }, o)));
    return s;
  };
  const form = el("form", { class: "filters", id: "filters", onsubmit: ev => {
      ev.preventDefault();
      const data = new URLSearchParams(new FormData(ev.target));
      for (const [k, v] of [...data]) if (!v) data.delete(k);
      location.hash = "#/runs?" + data;
    } },
    input("search", "search: compose id, NVR, alias…", "search"), input("topic", "topic or pattern (a.*.b, a.#)"),
    input("message_id", "message id"), select("rule", rules.rules.map(r => r.name)), select("status", STATUSES),
    select("since", ["1h", "6h", "24h", "7d", "30d"]), el("button", { type: "submit" }, "Filter"));

  const rows = page.runs.map(r => el("tr", { class: "click", "data-run-id": r.id, "data-rule": r.rule,
      "data-status": r.status, onclick: () => { location.hash = "#/runs/" + encodeURIComponent(r.id); } },
    el("td", { class: "mono" }, el("a", { href: "#/runs/" + encodeURIComponent(r.id) }, r.id.slice(0, 8))),
    el("td", { class: "status-cell" }, statusBadge(r.status)),
    el("td", {}, r.rule), el("td", { class: "subject", title: r.topic }, r.subject),
    el("td", { class: "mono" }, el("a", { href: "#/runs?message_id=" + encodeURIComponent(r.message_id),
      title: "runs of this message", onclick: ev => ev.stopPropagation() }, r.message_id.slice(0, 12))),
    el("td", {}, r.attempt),
    el("td", {}, when(r.started_at)), el("td", {}, took(r))));
  const table = el("table", { id: "runs" },
    el("thead", {}, el("tr", {}, ["run", "status", "rule", "subject", "message", "attempt", "started", "took"].map(h => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 8, class: "muted" }, "no runs"))));

  const go = offset => { const p = new URLSearchParams(query); p.set("offset", offset); location.hash = "#/runs?" + p; };
  const pager = el("div", { class: "pager" },
    el("button", { disabled: f.offset === 0, onclick: () => go(Math.max(0, f.offset - limit)) }, "← newer"),
    el("span", { id: "page-info" }, `${page.total ? f.offset + 1 : 0}–${f.offset + page.runs.length} of ${page.total}`),
    el("button", { disabled: f.offset + limit >= page.total, onclick: () => go(f.offset + limit) }, "older →"));

  setMain(el("div", { class: "charts" }, runsPerHourChart(hours.hours), queueChart(queue)),
    el("h2", {}, "Runs"), form, table, pager);
  refreshTimer = setTimeout(() => route(true), 3000);
}

async function readLogStream(runId, pre, onEnd) {
  // fetch (not EventSource) so the token header can be sent when reads are protected.
  liveLog = new AbortController();
  const response = await fetch(`/api/runs/${encodeURIComponent(runId)}/log/stream`,
    { headers: headers(), signal: liveLog.signal });
  if (!response.ok) throw new Error("log stream: " + response.status);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).replace(/^ /, "");
      }
      if (event === "log") {
        pre.append(document.createTextNode(JSON.parse(data).text));
        pre.scrollTop = pre.scrollHeight;
      } else if (event === "end") {
        onEnd(JSON.parse(data).status);
        return;
      }
    }
  }
}

async function runView(id) {
  navActive("nav-runs");
  const run = await api("/api/runs/" + encodeURIComponent(id));
  const c = run.counts;
  const details = el("dl", { class: "kv", id: "run-details" },
    el("dt", {}, "status"), el("dd", { id: "run-status" }, statusBadge(run.status), run.exit_code !== null ? ` exit ${run.exit_code}` : ""),
    el("dt", {}, "rule"), el("dd", {}, run.rule),
    el("dt", {}, "playbook"), el("dd", { class: "mono" }, run.playbook),
    el("dt", {}, "subject"), el("dd", {}, run.subject),
    el("dt", {}, "message"), el("dd", { class: "mono" }, `${run.message_id} (${run.topic})`),
    el("dt", {}, "attempt"), el("dd", {}, run.attempt),
    run.rerun_of ? [el("dt", {}, "re-run of"), el("dd", { id: "run-rerun-of" },
      el("a", { href: "#/runs/" + encodeURIComponent(run.rerun_of), class: "mono" }, "run " + run.rerun_of.slice(0, 8)))] : [],
    el("dt", {}, "worker"), el("dd", {}, run.worker),
    run.triggered_by ? [el("dt", {}, "triggered by"), el("dd", { id: "run-triggered-by" }, runLink(run.triggered_by))] : [],
    (run.triggered || []).length ? [el("dt", {}, "triggered"),
      el("dd", { id: "run-triggered" }, run.triggered.map(r => el("div", {}, runLink(r))))] : [],
    el("dt", {}, "started"), el("dd", {}, when(run.started_at)),
    el("dt", {}, "finished"), el("dd", { id: "run-finished" }, when(run.finished_at) || elapsed(run)),
    el("dt", {}, "tasks"), el("dd", {}, `ok=${c.ok} changed=${c.changed} failed=${c.failed} skipped=${c.skipped} unreachable=${c.unreachable}`),
    run.error ? [el("dt", {}, "error"), el("dd", { id: "run-error" }, run.error)] : []);
  const tasks = el("table", { id: "tasks" },
    el("thead", {}, el("tr", {}, ["status", "host", "task", "took", "message"].map(h => el("th", {}, h)))),
    el("tbody", {}, (run.tasks || []).map(t => el("tr", {},
      el("td", {}, statusBadge(t.status)), el("td", {}, t.host), el("td", {}, t.task),
      el("td", { class: "took" }, t.duration_ms === undefined ? "" : t.duration_ms < 120000 ? `${(t.duration_ms / 1000).toFixed(1)}s` : secs(t.duration_ms / 1000)),
      el("td", { class: "mono" }, t.msg || "")))));
  const pre = el("pre", { class: "log", id: "log" });
  const message = el("pre", { class: "mono", id: "message" }, JSON.stringify(run.message, null, 2));
  const history = await historyTable(run.message_id).catch(e => el("p", { class: "muted" }, "No history: " + e.message));
  setMain(el("h2", {}, "Run ", el("span", { class: "mono" }, run.id)), details, runActions(run),
    el("h2", {}, "Message history"), history,
    el("h2", {}, "Tasks"), tasks, el("h2", {}, "Log ", el("span", { class: "muted", id: "log-state" }, run.status === "running" ? "(live)" : "")),
    pre, el("h2", {}, "Message"), message);
  readLogStream(run.id, pre, async () => {
    // The stored log also has stderr; show it, and the final task results.
    if (run.status === "running" && location.hash.startsWith("#/runs/")) route(true);
  }).catch(e => { if (e.name !== "AbortError") showError(e); });
}

async function deadLettersView() {
  navActive("nav-dead");
  const { dead_letters: dead } = await api("/api/dead-letters");
  const replay = async (id, button) => {
    button.disabled = true;
    try {
      await api(`/api/dead-letters/${id}/replay`, { method: "POST" });
      location.hash = "#/runs";
    } catch (e) { button.disabled = false; showError(e); }
  };
  const rows = dead.map(d => el("tr", { "data-dead-id": d.id },
    el("td", {}, d.id), el("td", { class: "mono" }, d.topic === null ? "<undecodable>" : d.topic),
    el("td", {}, d.attempt), el("td", {}, when(d.dead_at)), el("td", { class: "reason" }, d.reason),
    el("td", {}, el("button", { class: "replay", onclick: ev => replay(d.id, ev.target) }, "Replay"))));
  const purge = el("button", { id: "purge", disabled: !dead.length, onclick: async () => {
    if (!confirm("Delete every dead letter for good?")) return;
    try { await api("/api/dead-letters", { method: "DELETE" }); route(); } catch (e) { showError(e); }
  } }, "Purge all");
  setMain(el("h2", {}, "Dead letters"),
    el("p", { class: "muted" }, "Replay puts a message back on the queue as a fresh first attempt (needs the token)."),
    el("table", { id: "dead-letters" },
      el("thead", {}, el("tr", {}, ["id", "topic", "attempt", "dead since", "reason", ""].map(h => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 6, class: "muted" }, "no dead letters")))),
    el("p", {}, purge));
  refreshTimer = setTimeout(() => route(true), 5000);
}

async function rulesView() {
  navActive("nav-rules");
  const { rules } = await api("/api/rules");
  setMain(el("h2", {}, "Rules"), el("table", { id: "rules" },
    el("thead", {}, el("tr", {}, ["name", "topic", "when", "playbook", "retries", "runs", "by status"].map(h => el("th", {}, h)))),
    el("tbody", {}, rules.map(r => el("tr", {},
      el("td", {}, el("a", { href: "#/runs?rule=" + encodeURIComponent(r.name) }, r.name)),
      el("td", { class: "mono" }, r.topic), el("td", { class: "mono" }, r.when || ""), el("td", { class: "mono" }, r.playbook),
      el("td", {}, r.retries), el("td", {}, r.runs),
      el("td", {}, Object.entries(r.runs_by_status).filter(([, n]) => n).map(([s, n]) => [statusBadge(s), ` ${n} `])))))));
}

// Open coalesce windows and joins (GET /api/batches).
async function batchesView() {
  navActive("nav-batches");
  const { batches } = await api("/api/batches");
  const counts = o => Object.entries(o).map(([part, n]) => `${n} ${part || "messages"}`).join(", ");
  const rows = batches.map(b => el("tr", {},
    el("td", {}, b.kind), el("td", {}, b.rule), el("td", { class: "mono" }, b.key),
    el("td", {}, counts(b.arrived)), el("td", {}, counts(b.missing)), el("td", {}, when(b.closes_at))));
  setMain(el("h2", {}, "Open windows and joins"), el("table", { id: "batches" },
    el("thead", {}, el("tr", {}, ["kind", "rule", "key", "arrived", "missing", "closes"].map(h => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 6, class: "muted" }, "none open")))));
  refreshTimer = setTimeout(() => route(true), 5000);
}

// Every worker seen in the last day, alive first (GET /api/workers): the
// heartbeats every worker writes into the run store, from any host.
async function workersView() {
  navActive("nav-workers");
  const fleet = await api("/api/workers");
  const beat = w => w.stopped_at ? "stopped " + when(w.stopped_at) : `${w.beat_age_secs}s ago`;
  const running = w => w.runs.length ? w.runs.map(r => el("div", {},
    el("a", { href: "#/runs/" + encodeURIComponent(r.id), class: "mono" }, r.id.slice(0, 8)), ` ${r.rule}: `,
    el("span", { class: "subject" }, r.subject), el("span", { class: "muted" }, ` (${elapsed({ status: "running", started_at: r.started_at, timeout_secs: null })})`)))
    : el("span", { class: "muted" }, "idle");
  const rows = fleet.workers.map(w => el("tr", { "data-worker-id": w.id, "data-state": w.state },
    el("td", {}, el("span", { class: "status s-" + w.state }, w.state)), el("td", { class: "mono" }, w.host),
    el("td", {}, w.pid), el("td", {}, beat(w)), el("td", {}, `${w.running} of ${w.concurrency}`),
    el("td", {}, `${w.held} of ${w.prefetch}`), el("td", {}, w.version), el("td", { class: "worker-runs" }, running(w))));
  setMain(el("h2", {}, "Workers"),
    el("p", { class: "muted", id: "fleet-summary" }, `${fleet.alive} alive · ${fleet.in_flight} deliveries in flight · `
      + `${fleet.running} playbooks running. Each worker writes a heartbeat every 5 s; one silent for 20 s is lost.`),
    el("table", { id: "workers" },
      el("thead", {}, el("tr", {}, ["state", "host", "pid", "heartbeat", "playbooks", "deliveries", "version", "running now"].map(h => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 8, class: "muted" }, "no worker has beaten in the last day")))));
  refreshTimer = setTimeout(() => route(true), 3000);
}

// Who changed what, when and from where; newest at the top.
async function auditView() {
  navActive("nav-audit");
  const { entries } = await api("/api/audit?limit=500");
  const rows = entries.slice().reverse().map(e => el("tr", { "data-seq": e.seq },
    el("td", {}, when(e.at)), el("td", {}, e.who), el("td", {}, e.role), el("td", {}, e.action),
    el("td", { class: "mono" }, e.target), el("td", { class: "mono" }, e.peer),
    el("td", { class: e.outcome === "ok" ? "" : "reason" }, e.outcome)));
  setMain(el("h2", {}, "Audit"),
    el("p", { class: "muted" }, "Every publish, replay, purge, approval and denial, refused or not (`relflow audit export`)."),
    el("table", { id: "audit" },
      el("thead", {}, el("tr", {}, ["when", "who", "role", "action", "target", "from", "outcome"].map(h => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 7, class: "muted" }, "nothing audited yet")))));
  refreshTimer = setTimeout(() => route(true), 5000);
}

// ---- routing ---------------------------------------------------------------

async function route(isRefresh) {
  clearTimeout(refreshTimer);
  const hash = location.hash || "#/runs";
  const [path, query] = hash.slice(1).split("?");
  if (!isRefresh || !path.startsWith("/runs/")) {
    if (liveLog) liveLog.abort();
    liveLog = null;
  }
  // Do not redraw under a user typing in the filters.
  if (isRefresh && document.activeElement && document.activeElement.closest && document.activeElement.closest("#filters")) {
    refreshTimer = setTimeout(() => route(true), 3000);
    return;
  }
  try {
    if (path === "/runs" || path === "/" || path === "") await runsView(query || "");
    else if (path.startsWith("/runs/")) await runView(decodeURIComponent(path.slice(6)));
    else if (path === "/dead-letters") await deadLettersView();
    else if (path === "/rules") await rulesView();
    else if (path === "/batches") await batchesView();
    else if (path === "/audit") await auditView();
    else if (path === "/workers") await workersView();
    else setMain(el("p", {}, "No such page. ", el("a", { href: "#/runs" }, "Runs")));
  } catch (e) {
    showError(e);
    if (!isRefresh) setMain(el("p", { class: "muted" }, "Could not load this page: " + e.message));
  }
}

async function showInfo() {
  try {
    const i = await api("/api/info");
    document.getElementById("info").textContent =
      `v${i.version} · queue ${i.queue} · worker ${i.worker ? "on" : "off"} · ingest ${i.ingest ? "on" : "off"}`;
  } catch (_) { /* protected reads without a token: the views say so */ }
}

document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("token");
  input.value = sessionStorage.getItem("relflow-token") || "";
  input.addEventListener("change", () => { sessionStorage.setItem("relflow-token", token()); route(); showInfo(); });
  window.addEventListener("hashchange", () => route());
  showInfo();
  route();
});
