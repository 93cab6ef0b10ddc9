// The operators' page: reads and acts through the bridge's own HTTP API only, and refreshes
// every two seconds. Every rule (what may be updated, to what) is the API's; the page shows
// its verdicts and its error messages as they are.
"use strict";

const REFRESH_MS = 2000;
const state = { selected: null, clusters: [], releases: new Map(), shownFor: null };

const $ = (id) => document.getElementById(id);

// The API token, when the bridge asks for one: kept for this tab only (sessionStorage), sent as
// a bearer token, never in a cookie (so no other site can make the browser use it).
const TOKEN_KEY = "astute-bridge.token";
const savedToken = () => sessionStorage.getItem(TOKEN_KEY);

function showSignIn(message) {
  $("sign-in").hidden = false;
  $("sign-out").hidden = true;
  $("sign-in-error").textContent = message || "";
  for (const section of document.querySelectorAll("main > section")) section.hidden = true;
}

function signedIn() {
  $("sign-in").hidden = true;
  $("sign-out").hidden = savedToken() === null;
  for (const section of document.querySelectorAll("main > section:not(#detail)")) section.hidden = false;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// One call of the API; a refusal becomes an Error carrying the API's own message and code.
async function api(method, path, body) {
  const init = { method, headers: { accept: "application/json" } };
  const token = savedToken();
  if (token !== null) init.headers.authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (_) { /* an empty body (204) */ }
  if (response.status === 401) {
    const error = data && data.error;
    const message = token === null ? "" : `The token was refused: ${error ? error.message : "HTTP 401"}`;
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(message);
    throw new Error(error ? `${error.message} (${error.code})` : "HTTP 401");
  }
  if (!response.ok) {
    const error = data && data.error;
    throw new Error(error ? `${error.message} (${error.code})` : `HTTP ${response.status}`);
  }
  return data;
}

function releaseLabel(id) {
  if (id === null || id === undefined) return "—";
  const release = state.releases.get(id);
  return release ? `${release.name} ${release.version}` : `release ${id}`;
}

function clusterName(id) {
  const cluster = state.clusters.find((c) => c.id === id);
  return cluster ? cluster.name : id === null || id === undefined ? "—" : `environment ${id}`;
}

async function refreshReadiness() {
  const line = $("readiness");
  try {
    const response = await fetch("/readyz");
    const body = await response.json();
    if (body.ready) {
      line.textContent = "Bridge ready";
      line.classList.remove("down");
    } else {
      const why = Object.entries(body.not_ready || {}).map(([part, reason]) => `${part}: ${reason}`);
      line.textContent = `Bridge not ready — ${why.join("; ")}`;
      line.classList.add("down");
    }
  } catch (err) {
    line.textContent = `Bridge unreachable — ${err.message}`;
    line.classList.add("down");
  }
}

function renderEnvironments() {
  const body = $("environments").tBodies[0];
  body.replaceChildren();
  $("no-environments").hidden = state.clusters.length > 0;
  for (const cluster of state.clusters) {
    const select = el("button", { type: "button", class: "link", onclick: () => select_(cluster.id) }, cluster.name);
    const row = el("tr", {},
      el("th", { scope: "row" }, select),
      el("td", { class: `status-${cluster.status}` }, cluster.status),
      el("td", {}, releaseLabel(cluster.release_id)),
      el("td", {}, releaseLabel(cluster.pending_release_id)));
    if (cluster.id === state.selected) {
      row.classList.add("selected");
      row.setAttribute("aria-current", "true");
    }
    body.append(row);
  }
}

function select_(id) {
  state.selected = id;
  state.shownFor = null;
  for (const id_ of ["update-result", "update-error", "rollback-result", "rollback-error"]) $(id_).textContent = "";
  renderEnvironments();
  refreshDetail();
}

function renderTask(task) {
  const summary = $("task-summary");
  const bar = $("task-progress");
  if (!task) {
    summary.textContent = "No operation yet.";
    bar.hidden = true;
    $("task-message").textContent = "";
    return;
  }
  summary.textContent = `${task.name}: ${task.status}, ${task.progress}%`;
  summary.className = `status-${task.status}`;
  bar.hidden = false;
  bar.value = task.progress;
  bar.textContent = `${task.progress}%`;
  $("task-message").textContent = task.message || "";
}

function renderNodes(nodes) {
  const body = $("nodes").tBodies[0];
  body.replaceChildren();
  for (const node of nodes) {
    const roles = Array.isArray(node.roles) ? node.roles.join(", ") : "";
    const bar = el("progress", { max: "100", value: String(node.progress), "aria-label": `${node.name} progress` }, `${node.progress}%`);
    body.append(el("tr", {},
      el("th", { scope: "row" }, node.name),
      el("td", {}, roles),
      el("td", { class: `status-${node.status}` }, node.online === false ? `${node.status} (offline)` : node.status),
      el("td", {}, bar, ` ${node.progress}%`),
      el("td", {}, node.error_msg || "")));
  }
}

// What the update form offers: the releases the API's versions info says the current release
// can move to, and the current one (a redeploy); the others are listed with the facts that
// keep them out.
function renderTargets(cluster) {
  const key = `${cluster.id}:${cluster.release_id}:${state.releases.size}`;
  if (state.shownFor === key) return;
  state.shownFor = key;
  const current = state.releases.get(cluster.release_id);
  const select = $("target");
  select.replaceChildren();
  const offered = new Set();
  if (current) {
    select.append(el("option", { value: String(current.id) }, `${current.name} ${current.version} — update (redeploy)`));
    offered.add(current.id);
    for (const to of current.versions.can_update_to) {
      offered.add(to.release_id);
      select.append(el("option", { value: String(to.release_id) }, `${releaseLabel(to.release_id)} — ${to.operation}`));
    }
  }
  if (cluster.pending_release_id !== null && offered.has(cluster.pending_release_id)) {
    select.value = String(cluster.pending_release_id);
  }
  const list = $("not-offered");
  list.replaceChildren();
  for (const release of state.releases.values()) {
    if (offered.has(release.id)) continue;
    let why = `no update path between ${current ? current.version : "?"} and ${release.version} (can_update_from_versions)`;
    if (current && release.operating_system !== current.operating_system) why = `for ${release.operating_system}, the environment runs ${current.operating_system}`;
    else if (release.state !== "available") why = `not available (${release.state})`;
    list.append(el("li", {}, `${release.name} ${release.version}: ${why}`));
  }
  $("not-offered-box").hidden = list.children.length === 0;
}

async function refreshDetail() {
  const section = $("detail");
  if (state.selected === null) { section.hidden = true; return; }
  let cluster;
  try {
    cluster = await api("GET", `/api/clusters/${state.selected}/`);
  } catch (err) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  $("detail-title").textContent = `Environment ${cluster.name}`;
  const facts = $("facts");
  facts.replaceChildren(
    el("dt", {}, "Status"), el("dd", { class: `status-${cluster.status}` }, cluster.status),
    el("dt", {}, "Mode"), el("dd", {}, cluster.mode),
    el("dt", {}, "Release"), el("dd", {}, releaseLabel(cluster.release_id)),
    el("dt", {}, "Pending release"), el("dd", {}, releaseLabel(cluster.pending_release_id)));
  renderTask(cluster.latest_task);
  renderNodes(cluster.nodes || []);
  renderTargets(cluster);
  const failed = cluster.status.endsWith("_error");
  $("start-rollback").disabled = !failed;
  $("rollback-help").textContent = failed
    ? `The last ${cluster.status.replace("_error", "")} failed: roll back to ${releaseLabel(cluster.release_id)}.`
    : "A rollback is offered after a failed operation.";
}

async function refreshNotifications() {
  const filter = $("notification-filter");
  const chosen = filter.value;
  const known = new Set([...filter.options].map((o) => o.value));
  for (const cluster of state.clusters) {
    if (!known.has(String(cluster.id))) filter.append(el("option", { value: String(cluster.id) }, cluster.name));
  }
  const query = chosen ? `?cluster_id=${encodeURIComponent(chosen)}` : "";
  let notes;
  try {
    notes = await api("GET", `/api/notifications/${query}`);
    $("notifications-error").textContent = "";
  } catch (err) {
    $("notifications-error").textContent = err.message;
    return;
  }
  const list = $("notifications");
  list.replaceChildren();
  for (const note of notes) {
    const unread = note.status === "unread";
    const item = el("li", { class: unread ? "unread" : "read" },
      el("span", { class: `badge topic-${note.topic}` }, note.topic),
      el("span", { class: "message" }, note.message),
      el("span", {}, clusterName(note.cluster_id)),
      el("time", { datetime: note.datetime }, new Date(note.datetime).toLocaleString()));
    if (unread) {
      item.append(el("span", { class: "badge" }, "unread"));
      item.append(el("button", {
        type: "button",
        "aria-label": `Mark notification ${note.id} read`,
        onclick: () => markRead(note.id),
      }, "Mark read"));
    }
    list.append(item);
  }
}

async function markRead(id) {
  try {
    await api("PUT", `/api/notifications/${id}/`, { status: "read" });
    $("notifications-error").textContent = "";
  } catch (err) {
    $("notifications-error").textContent = err.message;
  }
  refreshNotifications();
}

// Every environment: the API answers a page at a time, the next one after the last id.
const CLUSTER_PAGE = 1000;
async function allClusters() {
  const all = [];
  for (;;) {
    const after = all.length > 0 ? `&after_id=${all[all.length - 1].id}` : "";
    const page = await api("GET", `/api/clusters/?limit=${CLUSTER_PAGE}${after}`);
    all.push(...page);
    if (page.length < CLUSTER_PAGE) return all;
  }
}

async function refresh() {
  await refreshReadiness();
  try {
    const [clusters, releases] = await Promise.all([allClusters(), api("GET", "/api/releases/")]);
    state.clusters = clusters;
    state.releases = new Map(releases.map((r) => [r.id, r]));
  } catch (err) {
    return; // the readiness line or the sign-in form says why
  }
  if (!$("sign-in").hidden) signedIn();
  $("sign-out").hidden = savedToken() === null;
  if (state.selected === null && state.clusters.length > 0) state.selected = state.clusters[0].id;
  renderEnvironments();
  await Promise.all([refreshDetail(), refreshNotifications()]);
}

// Sets the pending release (validated by the API), then asks for the dry run or the start.
async function update(dryRun) {
  const result = $("update-result");
  const error = $("update-error");
  result.textContent = "";
  error.textContent = "";
  const id = state.selected;
  const target = Number($("target").value);
  try {
    await api("PUT", `/api/clusters/${id}/`, { pending_release_id: target });
    if (dryRun) {
      const verdict = await api("PUT", `/api/clusters/${id}/update/?dry_run=true`);
      if (verdict.allowed) {
        const entries = verdict.message ? verdict.message.args.deployment_info.length : 0;
        result.textContent = `Dry run: allowed, ${verdict.operation} (${entries} deployment entries would be cast).`;
      } else {
        error.textContent = `Dry run: refused — ${verdict.reason} (${verdict.code})`;
      }
    } else {
      const task = await api("PUT", `/api/clusters/${id}/update/`);
      result.textContent = `${task.name} started: task ${task.uuid}`;
    }
  } catch (err) {
    error.textContent = err.message;
  }
  state.shownFor = null;
  refresh();
}

async function rollback() {
  const result = $("rollback-result");
  const error = $("rollback-error");
  result.textContent = "";
  error.textContent = "";
  try {
    const task = await api("PUT", `/api/clusters/${state.selected}/rollback/`);
    result.textContent = `rollback started: task ${task.uuid}`;
  } catch (err) {
    error.textContent = err.message;
  }
  refresh();
}

function signIn(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  if (token === "") return;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  $("sign-in-error").textContent = "";
  refresh();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.clusters = [];
  state.selected = null;
  showSignIn("");
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("dry-run").addEventListener("click", () => update(true));
  $("update-form").addEventListener("submit", (event) => { event.preventDefault(); update(false); });
  $("rollback-form").addEventListener("submit", (event) => { event.preventDefault(); rollback(); });
  $("notification-filter").addEventListener("change", () => refreshNotifications());
  refresh();
  setInterval(refresh, REFRESH_MS);
});
