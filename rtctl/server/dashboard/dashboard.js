// The rtctl dashboard: the deployment through the admin API, refreshed every 2 s.
// Every string from the API is put in the page as text (textContent), never as HTML:
// a user or room name chosen by a client cannot become markup or script.
const API = "/api/v1";
const EVERY_MS = 2000;
const POINTS = 90; // chart history: 3 minutes
const TOKEN_KEY = "rtctl-admin-token";

const $ = (id) => document.getElementById(id);
const series = { connections: [], events: [], deliveries: [], lag: [] };
let previous = {}; // node id -> the node record rates were last taken from
let timer = null;

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { Authorization: `Bearer ${token}`, ...(options.headers || {}) };
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path, { ...options, headers });
  if (response.status === 401) {
    logout("the admin token was refused");
    throw new Error("unauthorized");
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error((body.error && body.error.message) || `HTTP ${response.status}`);
  }
  return options.raw ? response : response.json();
}

function cell(value) {
  const td = document.createElement("td");
  td.textContent = Array.isArray(value) ? value.join(", ") : value == null ? "" : String(value);
  return td;
}

function button(label, action) {
  const td = document.createElement("td");
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", async () => {
    b.disabled = true;
    try { await action(); await refresh(); } catch (e) { say(e.message); } finally { b.disabled = false; }
  });
  td.append(b);
  return td;
}

// rows: records; columns: [header, field or function]; actions: [label, record => promise]
function fill(table, columns, rows, actions = []) {
  table.replaceChildren();
  const head = table.insertRow();
  for (const [title] of columns) {
    const th = document.createElement("th");
    th.textContent = title;
    head.append(th);
  }
  for (const [label] of actions) {
    const th = document.createElement("th");
    th.textContent = label;
    head.append(th);
  }
  if (rows.length === 0) {
    const td = table.insertRow().insertCell();
    td.colSpan = columns.length + actions.length;
    td.className = "empty";
    td.textContent = "none";
    return;
  }
  for (const row of rows) {
    const tr = table.insertRow();
    tr.dataset.id = row.sid || row.id || row.user_id || row.room || "";
    for (const [, field] of columns) {
      tr.append(cell(typeof field === "function" ? field(row) : row[field]));
    }
    for (const [label, action] of actions) tr.append(button(label, () => action(row)));
  }
}

function say(text) {
  $("status").textContent = text;
}

function push(name, value) {
  series[name].push(value);
  if (series[name].length > POINTS) series[name].shift();
}

// a node's rates over its last heartbeat interval, from the counts in its record
function rates(nodes) {
  const out = { events: 0, deliveries: 0, lag: 0, connections: 0 };
  for (const node of nodes) {
    const before = previous[node.id];
    const stats = node.stats || {};
    out.lag = Math.max(out.lag, stats.loop_lag_ms || 0);
    out.connections += stats.connections || 0;
    if (before && node.last_seen_at !== before.last_seen_at) {
      const span = (Date.parse(node.last_seen_at) - Date.parse(before.last_seen_at)) / 1000;
      const was = before.stats || {};
      if (span > 0) {
        node.rates = {
          events: Math.max(0, ((stats.events_in || 0) - (was.events_in || 0)) / span),
          deliveries: Math.max(0, ((stats.deliveries || 0) - (was.deliveries || 0)) / span),
        };
      }
      previous[node.id] = node;
    } else if (!before) {
      previous[node.id] = node;
    } else {
      node.rates = before.rates;
    }
    if (node.rates) {
      out.events += node.rates.events;
      out.deliveries += node.rates.deliveries;
    }
  }
  return out;
}

function draw(canvas, values) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const top = Math.max(1, ...values);
  ctx.fillStyle = "#556";
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(String(Math.round(top)), 2, 11);
  ctx.fillText(values.length ? String(Math.round(values[values.length - 1])) : "", width - 40, 11);
  ctx.strokeStyle = "#2b6cb0";
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = (i / (POINTS - 1)) * width;
    const y = height - 2 - (v / top) * (height - 16);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

// every tick, whichever view is shown: the charts keep their history
async function collect() {
  const status = await api("/status");
  const r = rates(status.nodes);
  push("connections", r.connections);
  push("events", r.events);
  push("deliveries", r.deliveries);
  push("lag", r.lag);
  return status;
}

const VIEWS = {
  async overview(status) {
    for (const canvas of document.querySelectorAll("canvas[data-series]")) {
      draw(canvas, series[canvas.dataset.series]);
    }
    fill($("nodes-table"), [["Node", "id"], ["Host", "host"], ["Version", "version"],
      ["Sessions", "sessions"], ["Events in /s", (n) => n.rates ? n.rates.events.toFixed(1) : "-"],
      ["Deliveries /s", (n) => n.rates ? n.rates.deliveries.toFixed(1) : "-"],
      ["Loop lag ms", (n) => (n.stats || {}).loop_lag_ms], ["Last seen", "last_seen_at"]],
    status.nodes);
    return `${status.backend}, ${status.nodes.length} node(s), ${status.sessions} session(s)`;
  },
  async sessions() {
    const rows = await api("/sessions");
    fill($("sessions-table"), [["Session", "sid"], ["User", "user_id"], ["Name", "user_name"],
      ["Node", "node"], ["Rooms", "rooms"], ["Connected", "connected_at"]], rows,
    [["Kick", (s) => api("/sessions/kick", { method: "POST", body: JSON.stringify({ sids: [s.sid] }) })]]);
    return `${rows.length} session(s)`;
  },
  async users() {
    const rows = await api("/users/online");
    fill($("users-table"), [["User", "user_id"], ["Name", "user_name"], ["Sessions", "sessions"],
      ["Nodes", "nodes"]], rows);
    return `${rows.length} user(s) online`;
  },
  async rooms() {
    const rows = await api("/rooms");
    fill($("rooms-table"), [["Room", "room"], ["Members", "members"], ["Nodes", "nodes"]], rows);
    return `${rows.length} room(s)`;
  },
  async tasks() {
    const rows = await api("/tasks");
    fill($("tasks-table"), [["Task", "id"], ["Kind", "kind"], ["Chat", "item_id"],
      ["User", "user_id"], ["Node", "node"], ["Started", "started_at"]], rows,
    [["Stop", (t) => api("/tasks/stop", { method: "POST", body: JSON.stringify({ ids: [t.id] }) })]]);
    return `${rows.length} task(s)`;
  },
  async documents() {
    const rows = await api("/docs");
    fill($("documents-table"), [["Document", "id"], ["Updates", "updates"], ["Bytes", "bytes"],
      ["Open in", (d) => (d.sessions || []).length], ["Updated", "updated_at"]], rows,
    [["Export", exportDocument],
     ["Compact", (d) => api("/docs/compact", { method: "POST", body: JSON.stringify({ ids: [d.id] }) })]]);
    return `${rows.length} document(s)`;
  },
};

async function exportDocument(doc) {
  const response = await api(`/docs/${encodeURIComponent(doc.id)}/export?format=json`, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = `${doc.id.replace(/[^A-Za-z0-9._-]/g, "_")}.json`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function current() {
  const name = location.hash.slice(1);
  return name in VIEWS ? name : "overview";
}

async function refresh() {
  const name = current();
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== name;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.hash === `#${name}`);
  try {
    const status = await collect();
    say(await VIEWS[name](status));
  } catch (e) {
    if (e.message !== "unauthorized") say(`error: ${e.message}`);
  }
}

function start() {
  $("login").hidden = true;
  $("tabs").hidden = false;
  previous = {};
  refresh();
  clearInterval(timer);
  timer = setInterval(refresh, EVERY_MS);
}

function logout(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(timer);
  for (const section of document.querySelectorAll("main > section")) section.hidden = true;
  $("tabs").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = reason || "";
  say("");
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value);
  $("token").value = "";
  try {
    await api("/status");
    $("login-error").textContent = "";
    start();
  } catch (e) {
    if (e.message !== "unauthorized") logout(e.message);
  }
});
$("logout").addEventListener("click", () => logout());
window.addEventListener("hashchange", refresh);
if (sessionStorage.getItem(TOKEN_KEY)) start();
