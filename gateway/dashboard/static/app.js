// Shoal's dashboard: one script for every page, routed by the path. It reads the gateway's
// JSON API (/api/...) and follows live views through Server-Sent Events. Text from the
// server only ever goes into the page as text (textContent), never as HTML.
"use strict";

const app = document.getElementById("app");
const live = [];  // EventSources and timers of this page, closed when it is left

// -- small helpers -----------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k === "style") e.style.cssText = v;  // CSSOM: allowed by the page's CSP, unlike markup
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const last = (name) => (name || "").split("/").pop();
const enc = encodeURIComponent;
const when = (ts) => (ts ? new Date(ts).toLocaleString() : "–");
const lower = (s) => (s || "").toLowerCase();

class ApiError extends Error {
  constructor(status, body) {
    super(body.error || `HTTP ${status}`);
    this.status = status;
    this.reason = body.reason || "";
  }
}

async function api(path) {
  const r = await fetch("/api/" + path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => ({}));
  if (r.status === 401) signIn();
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

function signIn() {
  location.assign("/login?next=" + enc(location.pathname + location.search));
}

// A live view: `handlers` maps event names to functions of the event's JSON data.
function follow(path, handlers, { once = false } = {}) {
  const source = new EventSource("/api/" + path);
  live.push(source);
  for (const [name, fn] of Object.entries(handlers)) {
    source.addEventListener(name, (ev) => fn(JSON.parse(ev.data)));
  }
  source.addEventListener("failed", (ev) => {
    source.close();
    const d = JSON.parse(ev.data);
    if (d.status === 401) signIn();
    (handlers.failed || showError)(d);
  });
  source.addEventListener("end", () => source.close());
  if (once) source.addEventListener("error", () => source.close());
  return source;
}

function every(ms, fn) {
  const t = setInterval(fn, ms);
  live.push({ close: () => clearInterval(t) });
}

function showError(e) {
  const text = e.error || e.message || String(e);
  app.replaceChildren(el("p", { class: "error", id: "page-error", text }));
}

function crumbs(...parts) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren(...parts.map(([text, href]) => (href ? el("a", { href, text }) : el("span", { text }))));
  document.title = ["Shoal", ...parts.map((p) => p[0])].join(" · ");
}

function badge(state) {
  return el("span", { class: `badge s-${lower(state)}`, text: lower(state) || "–" });
}

function progress(counts) {
  // Counts are int64: JSON carries them as strings.
  const c = Object.fromEntries(["active", "running", "completed", "succeeded", "failed"].map((k) => [k, Number((counts || {})[k] || 0)]));
  const total = c.active + c.running + c.completed;
  const pct = total ? Math.floor((100 * c.completed) / total) : 0;
  const width = (n) => `width:${total ? (100 * n) / total : 0}%`;
  const bar = el("div", { class: "progress", role: "progressbar", "aria-valuenow": pct, "aria-valuemin": 0, "aria-valuemax": 100 },
    el("div", { class: "done ok", style: width(c.succeeded) }),
    el("div", { class: "done bad", style: width(c.failed) }),
    el("div", { class: "done running", style: width(c.running) }));
  return el("div", { class: "progress-line" }, bar,
    el("span", { class: "pct", text: `${pct} %` }),
    el("span", { class: "muted", text: `${c.completed}/${total} done · ${c.running} running · ${c.failed} failed` }));
}

function table(head, rows, attrs = {}) {
  return el("table", attrs, el("thead", {}, el("tr", {}, head.map((h) => el("th", { text: h })))),
    el("tbody", {}, rows));
}

// -- pages -------------------------------------------------------------------------------

async function overview() {
  crumbs(["Overview"]);
  const pools = el("section", {}, el("h2", { text: "Pools" }), el("p", { class: "muted", text: "Loading…" }));
  const jobs = el("section", {}, el("h2", { text: "Jobs" }), el("p", { class: "muted", text: "Loading…" }));
  app.replaceChildren(pools, jobs);
  const draw = async () => {
    const [p, j] = await Promise.all([api("pools"), api("jobs")]);
    pools.replaceChildren(el("h2", { text: "Pools" }), p.length
      ? table(["Pool", "State", "Nodes", "Slots per node", "Allocation"], p.map((x) => el("tr", {},
        el("td", {}, el("a", { href: `/pools/${enc(last(x.name))}`, text: last(x.name) })),
        el("td", {}, badge(x.state)),
        el("td", { text: `${x.current_nodes} / ${x.target_nodes}` }),
        el("td", { text: x.task_slots_per_node }),
        el("td", { text: lower(x.allocation_state) }))), { id: "pools" })
      : el("p", { class: "muted", text: "No pools yet: shoal pool create NAME --nodes N" }));
    jobs.replaceChildren(el("h2", { text: "Jobs" }), j.jobs.length
      ? table(["Job", "Pool", "State", "Progress"], j.jobs.map((x) => el("tr", { "data-job": last(x.name) },
        el("td", {}, el("a", { href: `/jobs/${enc(last(x.name))}`, text: last(x.name) })),
        el("td", {}, el("a", { href: `/pools/${enc(last(x.pool))}`, text: last(x.pool) })),
        el("td", {}, badge(x.state)),
        el("td", {}, progress(x.task_counts)))), { id: "jobs" })
      : el("p", { class: "muted", text: "No jobs yet: shoal job create NAME --pool POOL" }));
  };
  await draw();
  every(5000, () => draw().catch(() => {}));
}

async function poolPage(poolId) {
  crumbs(["Overview", "/"], [`pool ${poolId}`]);
  const { pool } = await api(`pools/${enc(poolId)}`);
  const legend = el("div", { class: "legend", id: "legend" });
  const map = el("div", { class: "node-map", id: "node-map" }, el("p", { class: "muted", text: "Waiting for nodes…" }));
  app.replaceChildren(
    el("h1", {}, `Pool ${poolId} `, badge(pool.state)),
    el("p", { class: "muted", text: `${pool.target_nodes} nodes wanted · ${pool.task_slots_per_node} task slots each · ${lower(pool.node_fill_type || "")}` }),
    legend, map);
  follow(`pools/${enc(poolId)}/events`, {
    nodes: (nodes) => {
      const counts = {};
      for (const n of nodes) counts[lower(n.state)] = (counts[lower(n.state)] || 0) + 1;
      legend.replaceChildren(...Object.entries(counts).sort().map(([s, n]) => el("span", {}, badge(s), ` ${n}`)));
      map.replaceChildren(...(nodes.length ? nodes.map(nodeTile) : [el("p", { class: "muted", text: "No nodes." })]));
    },
  });
}

function nodeTile(n) {
  const id = last(n.name);
  const total = n.total_task_slots || 0;
  const used = n.running_task_slots || 0;
  const off = n.scheduling_state === "DISABLED";
  return el("div", { class: `node s-${lower(n.state)}${off ? " off" : ""}`, "data-node": id, "data-state": lower(n.state),
    "data-running": n.running_tasks || 0, title: (n.errors || []).map((e) => `${e.code}: ${e.message}`).join("\n") || null },
  el("div", { class: "node-id", text: id }),
  el("div", {}, badge(n.state), off ? el("span", { class: "badge s-disabled", text: "scheduling off" }) : null),
  el("div", { class: "slots" }, ...Array.from({ length: total }, (_, i) => el("span", { class: i < used ? "slot used" : "slot" }))),
  el("div", { class: "muted running", text: `${n.running_tasks || 0} running · ${n.completed_tasks || 0} done` }));
}

const TASK_STATES = ["ACTIVE", "PREPARING", "RUNNING", "COMPLETED"];
const RESULTS = ["SUCCESS", "FAILURE"];

async function jobPage(jobId) {
  crumbs(["Overview", "/"], [`job ${jobId}`]);
  const head = el("div", { id: "job-head" });
  const bar = el("div", { id: "job-progress" });
  const params = new URLSearchParams(location.search);
  const f = (name) => params.get(name) || "";
  const select = (name, values) => el("select", { name, id: `filter-${name}` },
    el("option", { value: "", text: `any ${name}` }), values.map((v) => el("option", { value: v, text: lower(v), selected: f(name) === v })));
  const form = el("form", { class: "filters", id: "filters" },
    select("state", TASK_STATES), select("result", RESULTS),
    el("input", { name: "node", id: "filter-node", placeholder: "node", value: f("node"), size: 16 }),
    el("input", { name: "exit_code", id: "filter-exit_code", placeholder: "exit code", value: f("exit_code"), size: 8, inputmode: "numeric" }),
    el("button", { type: "submit", id: "apply", text: "Filter" }));
  const list = el("div", { id: "task-list" });
  const pager = el("div", { class: "pager" });
  app.replaceChildren(head, bar, el("h2", { text: "Tasks" }), form, list, pager);

  let tokens = [""];  // page tokens of the pages seen, for going back
  let page = 0;
  let loading = null;
  const query = () => {
    const q = new URLSearchParams();
    for (const k of ["state", "result", "node", "exit_code"]) if (f(k)) q.set(k, f(k));
    return q;
  };
  const loadTasks = async () => {
    const q = query();
    q.set("page_token", tokens[page]);
    try {
      const r = await api(`jobs/${enc(jobId)}/tasks?${q}`);
      tokens[page + 1] = r.next_page_token;
      list.replaceChildren(r.tasks.length ? taskTable(jobId, r.tasks)
        : el("p", { class: "muted", id: "no-tasks", text: "No tasks match." }));
      pager.replaceChildren(
        el("button", { id: "prev", disabled: page === 0, onclick: () => { page -= 1; loadTasks(); }, text: "‹ previous" }),
        el("span", { class: "muted", text: ` page ${page + 1} ` }),
        el("button", { id: "next", disabled: !r.next_page_token, onclick: () => { page += 1; loadTasks(); }, text: "next ›" }));
    } catch (e) {
      list.replaceChildren(el("p", { class: "error", id: "tasks-error", text: e.message }));
    }
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    for (const [k, v] of new FormData(form)) { if (v) params.set(k, v.trim()); else params.delete(k); }
    history.replaceState(null, "", `${location.pathname}${params.toString() ? "?" + params : ""}`);
    tokens = [""];
    page = 0;
    loadTasks();
  });
  // The list follows the job: read again (at most every 2 s) when its counts move.
  const refresh = () => {
    if (!loading) loading = setTimeout(() => { loading = null; loadTasks(); }, 2000);
  };
  live.push({ close: () => clearTimeout(loading) });
  let counts = null;
  follow(`jobs/${enc(jobId)}/events`, {
    job: (job) => {
      head.replaceChildren(el("h1", {}, `Job ${jobId} `, badge(job.state)),
        el("p", { class: "muted" }, "pool ", el("a", { href: `/pools/${enc(last(job.pool))}`, text: last(job.pool) }),
          ` · priority ${job.priority || 0} · created ${when(job.create_time)}`,
          job.terminate_reason ? ` · ${job.terminate_reason}` : ""));
      bar.replaceChildren(progress(job.task_counts));
      const now = JSON.stringify(job.task_counts);
      if (counts !== null && now !== counts) refresh();
      counts = now;
    },
  });
  await loadTasks();
}

function taskTable(jobId, tasks) {
  return table(["Task", "State", "Result", "Exit", "Node", "Retries", "Requeues", "Command"], tasks.map((t) => {
    const x = t.execution_info || {};
    const id = last(t.name);
    return el("tr", { "data-task": id },
      el("td", {}, el("a", { href: `/jobs/${enc(jobId)}/tasks/${enc(id)}`, text: id })),
      el("td", {}, badge(t.state)),
      el("td", {}, x.result && x.result !== "RESULT_UNSPECIFIED" ? badge(x.result) : "–"),
      el("td", { text: x.exit_code ?? "–" }),
      el("td", { text: last(x.node) || "–" }),
      el("td", { text: x.retry_count || 0 }),
      el("td", { text: x.requeue_count || 0 }),
      el("td", { class: "cmd", text: t.command_line }));
  }), { id: "tasks" });
}

async function taskPage(jobId, taskId) {
  crumbs(["Overview", "/"], [`job ${jobId}`, `/jobs/${enc(jobId)}`], [`task ${taskId}`]);
  const head = el("div", { id: "task-head" });
  const why = el("section", { id: "why" });
  const attempts = el("section", { id: "attempts" });
  const logView = el("pre", { id: "log", class: "log" });
  const logState = el("p", { class: "muted", id: "log-state" });
  const tabs = el("div", { class: "tabs" });
  app.replaceChildren(head, why, attempts, el("h2", { text: "Log" }), tabs, logState, logView);

  let source = null;
  const openLog = (file) => {
    if (source) source.close();
    logView.textContent = "";
    logState.textContent = `${file}: following…`;
    tabs.replaceChildren(...["stdout.txt", "stderr.txt"].map((name) =>
      el("button", { class: name === file ? "tab on" : "tab", id: `tab-${name.split(".")[0]}`, text: name, onclick: () => openLog(name) })));
    source = follow(`jobs/${enc(jobId)}/tasks/${enc(taskId)}/log?file=${file}&tail=500`, {
      log: (text) => {
        const atEnd = logView.scrollTop + logView.clientHeight >= logView.scrollHeight - 4;
        logView.append(text);
        if (atEnd) logView.scrollTop = logView.scrollHeight;
      },
      end: () => { logState.textContent = `${file}: the attempt has ended`; draw(); },
      failed: (d) => { logState.textContent = `${file}: ${d.error}`; },
    }, { once: true });
  };

  const draw = async () => {
    const [t, w] = await Promise.all([api(`jobs/${enc(jobId)}/tasks/${enc(taskId)}`), api(`jobs/${enc(jobId)}/tasks/${enc(taskId)}/why`)]);
    const x = t.execution_info || {};
    const f = x.failure_info || {};
    head.replaceChildren(el("h1", {}, `Task ${taskId} `, badge(t.state),
      x.result && x.result !== "RESULT_UNSPECIFIED" ? badge(x.result) : ""),
    el("dl", { class: "facts" },
      ...[["command line", t.command_line], ["exit code", x.exit_code ?? "–"],
        ["node", last(x.node) || "–"], ["retries", x.retry_count || 0], ["requeues", x.requeue_count || 0],
        ["started", when(x.start_time)], ["ended", when(x.end_time)],
        ["failure", f.code ? `${f.code}: ${f.message}` : "–"], ["state reason", t.state_reason || "–"]]
        .flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])));
    why.replaceChildren(el("h2", { text: "Why" }), el("p", { id: "why-summary", text: w.summary || lower(w.state) }),
      el("p", { class: "muted", text: (w.reasons || []).join(", ") }),
      el("ul", { id: "why-details" }, (w.details || []).filter((d) => d !== w.summary).map((d) => el("li", { text: d }))));
    const rows = [...(x.previous_attempts || [])];
    if (x.attempt_id) rows.push({ attempt_id: x.attempt_id, node: x.node, start_time: x.start_time, end_time: x.end_time, exit_code: x.exit_code, failure_info: x.failure_info, current: true });
    attempts.replaceChildren(el("h2", { text: "Attempts" }), rows.length
      ? table(["#", "Attempt", "Node", "Started", "Ended", "Exit", "Failure"], rows.map((a, i) => el("tr", { class: a.current ? "current" : null },
        el("td", { text: i + 1 }), el("td", { class: "mono", text: a.attempt_id }), el("td", { text: last(a.node) || "–" }),
        el("td", { text: when(a.start_time) }), el("td", { text: when(a.end_time) }), el("td", { text: a.exit_code ?? "–" }),
        el("td", { text: a.failure_info && a.failure_info.code ? `${a.failure_info.code}: ${a.failure_info.message}` : "–" }))), { id: "attempt-table" })
      : el("p", { class: "muted", text: "Not run yet." }));
    return t;
  };
  const t = await draw();
  if (t.state !== "COMPLETED") every(3000, () => draw().catch(() => {}));
  openLog("stdout.txt");
}

// -- routing -----------------------------------------------------------------------------

const ROUTES = [
  [/^\/$/, overview],
  [/^\/pools\/([^/]+)$/, poolPage],
  [/^\/jobs\/([^/]+)$/, jobPage],
  [/^\/jobs\/([^/]+)\/tasks\/([^/]+)$/, taskPage],
];

async function main() {
  api("whoami").then((w) => { document.getElementById("account").textContent = `account ${w.account}`; }).catch(() => {});
  for (const [re, page] of ROUTES) {
    const m = location.pathname.match(re);
    if (m) {
      try {
        await page(...m.slice(1).map(decodeURIComponent));
      } catch (e) {
        showError(e);
      }
      return;
    }
  }
  showError({ error: "No such page." });
}

window.addEventListener("pagehide", () => live.forEach((x) => x.close()));
main();
