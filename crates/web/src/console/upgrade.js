"use strict";
// Logged in to the console, the page acts with the login session: the browser sends its cookie
// and each change carries the session's CSRF token (the page's csrf-token meta tag). Without a
// login it takes an API token. The token and the selected cluster may come in the URL:
// sessionStorage is per origin, so that is how they follow the operator to the mate manager
// after a manager failover.
const csrf = (document.querySelector('meta[name="csrf-token"]') || { content: "" }).content;
const params = new URLSearchParams(location.search);
let token = params.get("token") || sessionStorage.getItem("tollgate-token") || "";
let selected = params.get("cluster") || sessionStorage.getItem("tollgate-cluster") || "";
const arrivedFrom = params.get("from");
const loadedAt = Date.now();
if (params.has("token") || params.has("cluster") || params.has("from")) {
  history.replaceState(null, "", location.pathname); // keep the token out of the history
}
if (token) sessionStorage.setItem("tollgate-token", token);
if (selected) sessionStorage.setItem("tollgate-cluster", selected);

let last = null;           // the last status
let logEntries = [];       // the whole upgrade log
let logGroups = [];        // the same, grouped per cluster and action (newest first)
const openGroups = new Set(); // groups the operator opened or closed ("id" / "-id")
let pendingBundle = null;  // a bundle chosen in the selector but not applied yet
let acting = false;        // an action request is on its way
let leaving = false;       // going to the mate manager
let rendered = "";         // what the grid shows (to rebuild it only when it changes)

function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    // Styles through the CSSOM: the Content-Security-Policy refuses style attributes.
    if (k === "class") e.className = v; else if (k === "style") e.style.cssText = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

class Unauthorised extends Error {}

async function api(method, path, body) {
  let r;
  try {
    r = await fetch(path, {
      method, cache: "no-store",
      headers: token ? { "Authorization": "Bearer " + token, "Content-Type": "application/json" }
                     : { "X-CSRF-Token": csrf, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new Error(`the manager at ${location.host} does not answer`);
  }
  const data = await r.json().catch(() => ({}));
  if (r.status === 401) { showLogin(); throw new Unauthorised(data.error || "unauthorised"); }
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

function say(text, error = false) {
  const m = document.getElementById("message");
  m.textContent = text; m.className = error ? "error" : "";
}

function notice(...parts) {
  const n = document.getElementById("notice");
  n.hidden = !parts.length;
  n.replaceChildren(...parts.map(p => p instanceof Node ? p : document.createTextNode(p)));
}

function connection(ok, why) {
  const c = document.getElementById("conn");
  c.textContent = ok ? "" : "no answer: " + why; c.className = ok ? "" : "down"; c.title = ok ? "" : why;
}

function showLogin() { document.getElementById("login").hidden = false; document.getElementById("app").hidden = true; }

function sev(s) { return s ? h("span", { class: "sev-" + s }, s) : ""; }

function time(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  const p = n => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// The top-level log entry of each action names its first step; the grid names the action.
const ACTION_OF_FIRST_STEP = {
  "Preflight Check": "Initiate upgrade", "Backing out server upgrade": "Initiate backout",
  "Failover to new version": "Failover to new version", "Failover to old version": "Failover to old version",
  "Reapply configuration": "Reapply configuration",
};

// The last action that acted on each server ("s:host") or on each cluster ("c:name").
function lastActions() {
  const out = new Map();
  for (const e of logEntries) {
    const name = ACTION_OF_FIRST_STEP[e.action_name];
    if (e.parent_id || !name) continue;
    const key = e.scope === "Server" ? "s:" + e.hostname : "c:" + e.cluster;
    if (!out.has(key) || out.get(key).entry.id < e.id) out.set(key, { name, entry: e });
  }
  return out;
}

// The "Upgrade Operation" cell: the running action's step n/N, percent and elapsed time, the
// failure, or how the last action on the server ended.
function operationCell(op, done) {
  if (op && op.failed) return h("td", { class: "operation failed", "data-state": "failed" }, op.text);
  if (op && op.text && op.step) {
    const bar = h("span", { class: "progress", title: op.percent + "%" }, h("span", { style: "width:" + op.percent + "%" }));
    const mins = Math.floor(op.elapsed_secs / 60), secs = String(op.elapsed_secs % 60).padStart(2, "0");
    return h("td", { class: "operation", "data-state": "running", "data-step": op.step, "data-step-index": op.step_index,
      "data-steps": op.steps, "data-percent": op.percent, title: op.label },
      `${op.label}: ${op.step} (${op.step_index}/${op.steps}) `, bar, ` ${op.percent}% ${mins}:${secs}`);
  }
  if (done) {
    const e = done.entry;
    const text = e.result === "Success" ? `${done.name} Completed Successfully at ${time(e.end)}.`
      : e.result === "Failure" ? `${done.name} Failed at ${time(e.end)}.` : "";
    return h("td", { class: "operation" + (e.result === "Success" ? " completed" : ""), "data-state": text ? "done" : "" }, text);
  }
  return h("td", { class: "operation", "data-state": "" });
}

function select(name) {
  selected = name;
  sessionStorage.setItem("tollgate-cluster", selected);
  rendered = "";
  render();
}

function renderGrid(s) {
  const done = lastActions();
  const key = JSON.stringify([selected, s.clusters, [...done.entries()]]);
  if (key === rendered) return;
  rendered = key;
  const body = document.querySelector("#grid tbody");
  body.replaceChildren();
  for (const c of s.clusters) {
    const n = c.servers.length;
    const row = h("tr", { class: "cluster" + (c.name === selected ? " selected" : ""), "data-cluster": c.name,
      "data-status": c.status, tabindex: "0", title: "Select this cluster" },
      h("td", { class: "name" }, `${c.name} (${n} Server${n === 1 ? "" : "s"}) `,
        h("span", { class: "app" }, `${c.application}${c.designation ? ", " + c.designation : ""} · `),
        h("span", { class: "status status-" + c.status }, c.status)),
      h("td", { class: "alarm" }, sev(c.alarm_severity)), h("td", { class: "up-to-date" }, c.up_to_date),
      h("td", {}, ""), h("td", {}, ""), h("td", {}, ""),
      h("td", { class: "operation", "data-state": c.running ? "running" : "" }, c.running ? c.running.text : ""));
    row.addEventListener("click", () => select(c.name));
    row.addEventListener("keydown", e => { if (e.key === "Enter" || e.key === " ") select(c.name); });
    body.append(row);
    for (const sv of c.servers) {
      const mine = done.get("s:" + sv.hostname), theirs = done.get("c:" + c.name);
      const lastDone = !mine ? theirs : !theirs ? mine : mine.entry.id > theirs.entry.id ? mine : theirs;
      body.append(h("tr", { class: "server", "data-server": sv.hostname, "data-cluster": c.name,
        "data-running": sv.operation && sv.operation.step ? "1" : null },
        h("td", { class: "name" }, sv.hostname), h("td", { class: "alarm" }, sev(sv.alarm_severity)),
        h("td", { class: "up-to-date" }, sv.up_to_date),
        h("td", { class: "role", title: sv.reachable ? null : "the agent does not answer" }, sv.role),
        h("td", { class: "prev" }, sv.prev_release || ""), h("td", { class: "running" }, sv.running_release),
        operationCell(sv.operation, lastDone)));
    }
  }
}

function renderButtons(s) {
  const c = s.clusters.find(c => c.name === selected);
  const standby = s.manager.ha !== "Active";
  const up = document.getElementById("upgrade-button"), back = document.getElementById("backout-button");
  document.getElementById("selected-cluster").textContent = c ? `Cluster ${c.name}:` : "Select a cluster row.";
  const advice = [];
  for (const [button, a, fallback] of [[up, c && c.upgrade, "Start Upgrade"], [back, c && c.backout, "Start Rollback"]]) {
    const p = a && a.preferred;
    let state, title;
    if (!c || !a) { state = "none"; title = "Select a cluster row first."; }
    else if (standby) { state = "standby"; title = `${s.manager.hostname} is the standby manager: act on the active one.`; }
    else if (c.running) { state = "waiting"; title = (a.waiting && a.waiting.reason) || `${c.running.label} is in progress: wait for it to finish`; }
    else if (p) { state = "ready"; title = p.description; }
    else if (a.done) { state = "done"; title = `${c.name} is done in this direction.`; }
    else { state = "waiting"; title = (a.waiting && a.waiting.reason) || "No action to take now."; }
    button.textContent = (a && a.button || fallback) + (p ? ": " + p.label : state === "done" ? " (done)" : "");
    button.title = title;
    button.dataset.state = state;
    button.dataset.next = p ? p.label : "";
    button.disabled = state !== "ready" || acting;
    if (state === "waiting" && button === up) advice.push(title);
  }
  document.getElementById("advice").textContent = advice.join(" ");
  // The Advanced menu: the other legal actions; rebuilt only when they change (it may be open).
  const adv = document.getElementById("advanced");
  const others = [];
  for (const p of c ? [...(c.upgrade.others || []), ...(c.backout.others || [])] : []) {
    const value = JSON.stringify(p.action);
    if (!others.some(o => o.value === value)) others.push({ value, label: p.label, title: p.description });
  }
  const key = JSON.stringify(others);
  if (adv.dataset.options !== key) {
    adv.replaceChildren(h("option", { value: "" }, "Advanced…"), ...others.map(o => h("option", { value: o.value, title: o.title }, o.label)));
    adv.dataset.options = key;
  }
  adv.disabled = !others.length || standby || !!(c && c.running) || acting;
}

function renderBundles(s) {
  document.getElementById("procedure").textContent = s.procedure ? `Current bundle: ${s.procedure.label}` : "No bundle selected";
  const sel = document.getElementById("bundle");
  const releases = [...new Set((s.bundles || []).map(b => b.release))];
  const want = s.procedure ? s.procedure.release : "";
  if (sel.dataset.releases !== releases.join(",")) {
    sel.replaceChildren(h("option", { value: "" }, "(none)"), ...releases.map(r => h("option", { value: r }, "tollgate-" + r)));
    sel.dataset.releases = releases.join(",");
  }
  if (pendingBundle === want) pendingBundle = null;
  if (pendingBundle === null) sel.value = want;
  sel.dataset.current = want;
  document.getElementById("select-bundle").disabled = s.manager.ha !== "Active";
}

// One row of the log (the seed's 11 columns); `group` marks an action's own row.
function logRow(e, group) {
  return h("tr", { "data-id": e.id, "data-cluster": e.cluster, "data-result": e.result, class: group ? "action-row" : "step-row" },
    h("td", {}, e.id), h("td", {}, e.parent_id || ""), h("td", { class: "action" }, e.action_name),
    h("td", { title: e.start }, time(e.start)), h("td", { title: e.end }, time(e.end)),
    h("td", { class: "duration", title: e.duration ? e.duration + " (H:MM:SS)" : "" }, e.duration_ms == null ? "" : shortDuration(e.duration_ms)),
    h("td", {}, e.scope), h("td", {}, e.hostname), h("td", { class: "result result-" + e.result.replace(/ /g, "") }, e.result),
    h("td", {}, e.mode), h("td", { class: "description" }, e.description));
}

// As tollgate_api::log_groups::short_duration.
function shortDuration(ms) {
  if (ms < 10000) return (ms / 1000).toFixed(2) + " s";
  if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
  const s = Math.floor(ms / 1000);
  if (ms < 3600000) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

// The log of the selected cluster (or all): one table body per action, its own row first with
// the action's whole duration and a button that shows or hides its steps. The newest action
// and any running or failed one are open unless the operator closed them.
function renderLog() {
  document.getElementById("log-scope").textContent = selected ? "(" + selected + ")" : "(all clusters)";
  const groups = logGroups.filter(g => !selected || g.cluster === selected);
  const key = JSON.stringify([selected, groups, [...openGroups]]);
  const table = document.getElementById("log");
  if (table.dataset.key === key) return;
  table.dataset.key = key;
  const bodies = groups.map((g, i) => {
    const id = String(g.action.id);
    const open = openGroups.has(id) || (!openGroups.has("-" + id) && (i === 0 || g.result !== "Success"));
    const head = logRow(g.action, true);
    const toggle = h("button", { type: "button", class: "toggle secondary", "aria-expanded": String(open),
      title: (open ? "Hide" : "Show") + ` the ${g.steps.length} steps`, onclick: () => {
        openGroups.delete(open ? id : "-" + id); openGroups.add(open ? "-" + id : id); renderLog();
      } }, open ? "−" : "+");
    head.cells[0].prepend(toggle, " ");
    head.cells[5].textContent = g.duration;
    head.cells[5].title = "the action and its " + g.steps.length + " steps";
    head.cells[8].textContent = g.result; head.cells[8].className = "result result-" + g.result.replace(/ /g, "");
    const steps = g.steps.map(e => { const r = logRow(e, false); r.hidden = !open; return r; });
    return h("tbody", { "data-group": id, "data-cluster": g.cluster, "data-steps": g.steps.length }, head, ...steps);
  });
  table.querySelectorAll("tbody").forEach(b => b.remove());
  table.append(...bodies);
  document.getElementById("log-empty").hidden = bodies.length > 0;
}

function renderAlarms(s) {
  const alarms = document.getElementById("alarms");
  const items = [
    ...s.alarms.map(a => h("li", { "data-alarm": a.def.id, "data-scope": a.scope },
      sev(a.def.severity), ` ${a.def.id} ${a.def.name} — ${a.scope}${a.detail ? ": " + a.detail : ""}`)),
    ...(s.server_alarms || []).map(a => h("li", { "data-alarm": a.alarm.id, "data-server": a.server },
      sev(a.alarm.severity), ` ${a.alarm.id} ${a.alarm.name} — reported by ${a.server}${a.alarm.detail ? ": " + a.alarm.detail : ""}`)),
  ];
  alarms.replaceChildren(...items);
  if (!items.length) alarms.append(h("li", { class: "muted" }, "none"));
}

function render() {
  const s = last;
  if (!s) return;
  const m = s.manager;
  document.getElementById("ha").textContent = `${m.hostname}: ${m.ha} · release ${m.release}`;
  document.getElementById("ha").dataset.ha = m.ha;
  renderBundles(s);
  renderGrid(s);
  renderButtons(s);
  renderLog();
  renderAlarms(s);
}

// Whether `url` answers at all (another origin: the answer itself cannot be read).
async function answers(url) {
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), 2000);
  try {
    await fetch(new URL("/healthz", url), { mode: "no-cors", cache: "no-store", signal: stop.signal });
    return true;
  } catch (e) {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

// The standby manager of a pair does not act: send the browser to the active one, its mate.
// The standby knows its mate is the active one when it has just copied the mate's state
// ("synchronised"); two standbys (both starting) or a lost mate keep the browser here.
async function followActive(s) {
  const m = s.manager;
  if (m.ha !== "Standby" || !m.mate) {
    if (!arrivedFrom || Date.now() - loadedAt > 15000) notice();
    return;
  }
  if (leaving) return;
  const to = new URL("/upgrade", m.mate);
  const link = h("a", { href: to.href }, to.origin);
  const ha = await fetch("/api/v1/manager/ha", { cache: "no-store" }).then(r => r.json()).catch(() => ({}));
  if (!ha.synchronised) {
    notice(`${m.hostname} is the standby manager and has not copied the state of an active mate yet: waiting. Its mate: `,
      link, ".");
    return;
  }
  if (!(await answers(m.mate))) {
    notice(`${m.hostname} is the standby manager; the active one, `, link, ", does not answer this browser.");
    return;
  }
  leaving = true;
  if (token) to.searchParams.set("token", token);
  if (selected) to.searchParams.set("cluster", selected);
  to.searchParams.set("from", m.hostname);
  // With a login session (which is this manager's own), through the mate's login page: the
  // same user and password work there (the active manager copies its users to its mate).
  const go = token ? to : new URL("/login?next=" + encodeURIComponent(to.pathname + to.search), m.mate);
  notice(`${m.hostname} is the standby manager: going to the active one, ${to.origin} …`);
  setTimeout(() => location.replace(go.href), 1000);
}

let refreshing = false, again = false;
async function refresh() {
  if (leaving) return;
  if (refreshing) { again = true; return; }
  refreshing = true;
  try {
    const [s, groups] = await Promise.all([api("GET", "/api/v1/upgrade/status"), api("GET", "/api/v1/upgrade/log/groups")]);
    last = s; logGroups = groups;
    logEntries = groups.flatMap(g => [g.action, ...g.steps]);
    connection(true);
    document.getElementById("login").hidden = true; document.getElementById("app").hidden = false;
    render();
    await followActive(s);
  } catch (e) {
    if (!(e instanceof Unauthorised) && (token || csrf)) connection(false, e.message);
  } finally {
    refreshing = false;
    if (again) { again = false; refresh(); }
  }
}

async function act(body) {
  acting = true;
  render();
  try {
    const r = await api("POST", "/api/v1/upgrade/action", body);
    say(`Started ${r.action}`);
  } catch (e) { say(e.message, true); }
  acting = false;
  await refresh();
}

document.getElementById("upgrade-button").addEventListener("click", () => act({ cluster: selected, direction: "upgrade" }));
document.getElementById("backout-button").addEventListener("click", () => act({ cluster: selected, direction: "backout" }));
document.getElementById("advanced").addEventListener("change", e => {
  const value = e.target.value;
  e.target.value = "";
  if (value) act({ cluster: selected, action: JSON.parse(value) });
});
document.getElementById("bundle").addEventListener("change", e => {
  pendingBundle = e.target.value;
  say(`Click Select to use ${pendingBundle ? "tollgate-" + pendingBundle : "no bundle"}.`);
});
document.getElementById("select-bundle").addEventListener("click", async () => {
  const release = document.getElementById("bundle").value || null;
  try {
    const r = await api("POST", "/api/v1/upgrade/procedure", { release });
    say(r.procedure ? `Current bundle: ${r.procedure.label}; staging it on the servers` : "No bundle selected");
  } catch (e) { say(e.message, true); }
  pendingBundle = null;
  await refresh();
});
document.getElementById("save-token").addEventListener("click", () => {
  token = document.getElementById("token").value.trim();
  sessionStorage.setItem("tollgate-token", token);
  refresh();
});
if (arrivedFrom) notice(`Followed the active manager: ${arrivedFrom} is the standby of the pair; this is ${location.host}.`);
if (!token && !csrf) showLogin();
refresh();
setInterval(refresh, 1000);
