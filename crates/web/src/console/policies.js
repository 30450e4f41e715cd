"use strict";
// The Policies page: reads and acts through the manager's policy API with the login session
// (the browser sends its cookie; each request carries the session's CSRF token from the page's
// csrf-token meta tag). Nothing is pushed without a preview the operator confirmed; nothing is
// uninstalled without the confirmation that names the consequence.
const csrf = (document.querySelector('meta[name="csrf-token"]') || { content: "" }).content;
const operator = document.querySelector(".policies").dataset.operator === "true";
const CONFIRM = "every call is allowed";
const $ = id => document.getElementById(id);

let candidate = null;   // the candidate previewed: {policy, name, lists, clusters}
let previewed = null;   // its preview
let rollbackTo = null;  // the version a roll-back waits for confirmation of

function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

const num = n => Number(n || 0).toLocaleString("en-US");
const when = t => (t || "").replace("T", " ").replace(/\.\d+/, "").replace("Z", "");

class ApiError extends Error {
  constructor(status, body) { super(body.message || body.error || `HTTP ${status}`); this.status = status; this.body = body; }
}

async function api(method, path, body) {
  let r;
  try {
    r = await fetch(path, {
      method, cache: "no-store",
      headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new Error(`the manager at ${location.host} does not answer`);
  }
  const data = await r.json().catch(() => ({}));
  if (r.status === 401) { location.href = "/login?next=/policies"; throw new ApiError(401, data); }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

function say(text, error = false) {
  const m = $("message");
  m.textContent = text; m.className = error ? "err" : "ok";
}

function checked(name) {
  return [...document.querySelectorAll(`input[name="${name}"]:checked`)].map(i => i.value);
}

function details(list) {
  return h("ul", { class: "diags" }, ...list.map(d =>
    h("li", {}, [d.file, d.line ? `line ${d.line}` : "", d.field].filter(Boolean).join(", ") + ": " + d.message)));
}

// --- candidate and preview -------------------------------------------------------------

async function readCandidate() {
  const file = $("policy-file").files[0];
  if (!file) throw new Error("choose a policy file first");
  const lists = {};
  for (const f of $("list-files").files) lists[f.name.replace(/\.txt$/i, "")] = await f.text();
  const clusters = checked("target");
  if (!clusters.length) throw new Error("choose at least one engine cluster");
  return { policy: await file.text(), name: file.name, lists, clusters };
}

function resetPreview() {
  candidate = null; previewed = null;
  $("preview").hidden = true; $("refusal").hidden = true; $("validation").replaceChildren();
  $("candidate-summary").textContent = "";
  if ($("push-button")) { $("push-button").disabled = true; $("push-confirm").checked = false; }
}

async function preview() {
  resetPreview();
  $("push-result").hidden = true;
  let c;
  try { c = await readCandidate(); } catch (e) { say(e.message, true); return; }
  say("Validating and comparing…");
  let p;
  try {
    p = await api("POST", "/api/v1/policy/preview", c);
  } catch (e) {
    say(e.message, true);
    if (e.body && e.body.details) $("validation").replaceChildren(h("p", { class: "err" }, "Invalid:"), details(e.body.details));
    return;
  }
  candidate = c; previewed = p;
  const lists = Object.keys(c.lists).length;
  $("candidate-summary").textContent =
    `${c.name}: schema ${p.schema}, ${num(p.rules)} rules, ${lists} list${lists === 1 ? "" : "s"}`;
  if (p.valid === false) {
    $("validation").replaceChildren(h("p", { class: "err", id: "invalid" }, `Invalid (checked by ${p.checked_by}):`), details(p.diagnostics));
  } else if (p.valid === true) {
    $("validation").replaceChildren(h("p", { class: "ok", id: "valid" }, `Valid (checked by ${p.checked_by}).`));
  } else {
    $("validation").replaceChildren(h("p", { class: "muted" }, "No engine could check it now."));
  }
  if (p.refusal) {
    $("refusal").hidden = false;
    $("refusal").replaceChildren(h("strong", {}, "Mixed versions: "), p.refusal);
  }
  const tbody = $("preview-table").tBodies[0];
  tbody.replaceChildren(...p.clusters.map(cl => {
    const k = cl.changes.counts;
    const base = { manager: `v${cl.installed_version}`, nothing: "nothing installed", engine: "the engine's policy", unknown: "unknown (no answer)" }[cl.baseline];
    return h("tr", { "data-cluster": cl.cluster },
      h("td", {}, cl.cluster), h("td", {}, cl.servers.join(", ")), h("td", {}, base),
      h("td", { class: "n", "data-k": "rules_added" }, num(k.rules_added)),
      h("td", { class: "n", "data-k": "rules_removed" }, num(k.rules_removed)),
      h("td", { class: "n", "data-k": "rules_changed" }, num(k.rules_changed)),
      h("td", { class: "n", "data-k": "entries_added" }, num(k.entries_added)),
      h("td", { class: "n", "data-k": "entries_removed" }, num(k.entries_removed)));
  }));
  $("preview-details").replaceChildren(...p.clusters.map(cl => {
    const ch = cl.changes;
    const items = [];
    if (ch.rules_added.length) items.push(h("li", {}, "Rules added: " + ch.rules_added.join(", ")));
    if (ch.rules_removed.length) items.push(h("li", {}, "Rules removed: " + ch.rules_removed.join(", ")));
    if (ch.rules_changed.length) items.push(h("li", {}, "Rules changed: " + ch.rules_changed.join(", ")));
    for (const l of ch.lists) {
      const more = (shown, total) => total > shown.length ? ` … (${num(total)} in all)` : "";
      items.push(h("li", {}, `List ${l.list}${l.new_list ? " (new)" : ""}${l.dropped_list ? " (dropped)" : ""}: ` +
        `+${num(l.added_count)} ${l.added.join(" ")}${more(l.added, l.added_count)}; ` +
        `−${num(l.removed_count)} ${l.removed.join(" ")}${more(l.removed, l.removed_count)}`));
    }
    if (!items.length) items.push(h("li", { class: "muted" }, "No change."));
    return h("div", { class: "cluster-changes" }, h("h4", {}, cl.cluster), h("ul", {}, ...items));
  }));
  $("preview").hidden = false;
  updatePush();
  say(p.refusal ? "A push would be refused: see why above." : "Read the changes, confirm and push.", !!p.refusal);
}

function updatePush() {
  if (!$("push-button")) return;
  $("push-button").disabled = !(previewed && !previewed.refusal && previewed.valid !== false && $("push-confirm").checked);
}

function showResult(answer) {
  $("push-result").hidden = false;
  $("push-version").textContent = answer.version ? `(version ${answer.version})` : "";
  $("push-table").tBodies[0].replaceChildren(...(answer.clusters || []).map(c =>
    h("tr", { "data-cluster": c.cluster },
      h("td", {}, c.cluster),
      h("td", { class: c.ok ? "ok" : "err" }, c.ok ? "installed" : "failed"),
      h("td", {}, c.servers.map(s => s.ok ? `${s.hostname} ✓` : `${s.hostname} ✗ ${s.error || ""}`).join("; ")))));
}

async function push() {
  if (!candidate || !previewed) return;
  $("push-button").disabled = true;
  say("Pushing…");
  try {
    const answer = await api("POST", "/api/v1/policy/push", candidate);
    showResult(answer);
    say(`Version ${answer.version} installed on ${answer.clusters.map(c => c.cluster).join(", ")}.`);
    resetPreview();
  } catch (e) {
    say(e.message, true);
    updatePush();
  }
  await versions();
}

// --- versions and roll-back ------------------------------------------------------------

function clusterCell(v) {
  return h("td", {}, ...v.clusters.map(c =>
    h("span", { class: "cl " + (c.ok ? "ok" : "err"), title: c.servers.map(s => `${s.hostname}: ${s.ok ? "ok" : s.error}`).join("\n") },
      `${c.cluster} ${c.ok ? "✓" : "✗"} `)));
}

async function versions() {
  let list;
  try { list = await api("GET", "/api/v1/policy/versions"); } catch (e) { say(e.message, true); return; }
  $("versions").tBodies[0].replaceChildren(...list.map(v => {
    const cells = [
      h("td", { class: "n" }, `v${v.version}`), h("td", {}, v.label), h("td", {}, v.actor), h("td", {}, when(v.at)),
      h("td", {}, v.kind === "uninstall" ? "" : num(v.rules)), clusterCell(v),
    ];
    if (operator) {
      cells.push(h("td", {}, v.kind === "uninstall" ? "" :
        h("button", { type: "button", class: "rollback", "data-version": v.version, onclick: () => askRollback(v) }, `Roll back to v${v.version}`)));
    }
    return h("tr", { "data-version": v.version, "data-kind": v.kind }, ...cells);
  }));
}

function askRollback(v) {
  rollbackTo = v;
  $("rollback-text").textContent =
    `Install v${v.version} (${v.name}, ${num(v.rules)} rules, by ${v.actor}) again on ${v.clusters.map(c => c.cluster).join(", ")}?`;
  $("rollback-confirm").hidden = false;
  $("rollback-go").focus();
}

async function rollback() {
  if (!rollbackTo) return;
  const v = rollbackTo;
  rollbackTo = null;
  $("rollback-confirm").hidden = true;
  say(`Rolling back to v${v.version}…`);
  try {
    const answer = await api("POST", "/api/v1/policy/rollback", { version: v.version });
    showResult(answer);
    say(`Rolled back to v${v.version}: version ${answer.version} installed on ${answer.clusters.map(c => c.cluster).join(", ")}.`);
  } catch (e) {
    say(e.message, true);
  }
  await versions();
}

// --- uninstall -------------------------------------------------------------------------

function updateUninstall() {
  if (!$("uninstall-button")) return;
  $("uninstall-button").disabled = !($("uninstall-confirm").checked && checked("uninstall").length);
}

async function uninstall() {
  const clusters = checked("uninstall");
  $("uninstall-button").disabled = true;
  try {
    const answer = await api("POST", "/api/v1/policy/uninstall", { clusters, confirm: $("uninstall-confirm").checked ? CONFIRM : "" });
    $("uninstall-result").replaceChildren(h("p", { class: "ok" }, `Uninstalled on ${clusters.join(", ")} (version ${answer.version}): ${CONFIRM} there.`));
    say(`Uninstalled on ${clusters.join(", ")}.`);
  } catch (e) {
    $("uninstall-result").replaceChildren(h("p", { class: "err" }, e.message));
  }
  $("uninstall-confirm").checked = false;
  updateUninstall();
  await versions();
}

$("preview-button").addEventListener("click", preview);
$("policy-file").addEventListener("change", resetPreview);
$("list-files").addEventListener("change", resetPreview);
document.querySelectorAll('input[name="target"]').forEach(i => i.addEventListener("change", resetPreview));
if (operator) {
  $("push-confirm").addEventListener("change", updatePush);
  $("push-button").addEventListener("click", push);
  $("rollback-go").addEventListener("click", rollback);
  $("rollback-cancel").addEventListener("click", () => { rollbackTo = null; $("rollback-confirm").hidden = true; });
  $("uninstall-confirm").addEventListener("change", updateUninstall);
  document.querySelectorAll('input[name="uninstall"]').forEach(i => i.addEventListener("change", updateUninstall));
  $("uninstall-button").addEventListener("click", uninstall);
}
versions();
