// The dashboard: one EventSource, a snapshot a second, drawn with plain DOM and uPlot.
import uPlot from "/dashboard/uPlot.esm.js";

const $ = (selector) => document.querySelector(selector);
const history = { t: [], cash: [], pnl: [] };
const depthCharts = new Map(); // condition id -> { chart, element }
let equityChart = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

const time = (ms) => new Date(ms).toISOString().slice(11, 19);
const money = (text) => (text === null || text === undefined ? "" : Number(text).toFixed(2));
const signed = (text) => el("span", { class: Number(text) > 0 ? "pos" : Number(text) < 0 ? "neg" : "" }, money(text));

function duration(seconds) {
  if (seconds < 60) return `${seconds.toFixed(0)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.floor(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function fillList(selector, rows) {
  const target = $(selector);
  target.replaceChildren(...rows);
}

function definitions(selector, pairs) {
  fillList(selector, pairs.flatMap(([label, value]) => [el("dt", {}, label), el("dd", {}, value)]));
}

// -- the service and its tasks ---------------------------------------------------------------

function drawService(service) {
  const phase = $("#phase");
  phase.textContent = service.phase;
  phase.className = `badge ${service.phase === "running" ? "good" : service.phase === "failed" ? "bad" : "meh"}`;
  const ready = $("#ready");
  ready.textContent = service.ready ? "ready" : "not ready";
  ready.className = `badge ${service.ready ? "good" : "bad"}`;
  $("#uptime").textContent = `up ${duration(service.uptime)}`;
  const reasons = $("#reasons");
  reasons.hidden = service.ready;
  reasons.textContent = service.ready ? "" : service.reasons.join("; ");
}

function taskItem(task) {
  const label = el("span", { class: `status-${task.status}` }, task.status);
  const item = el("li", { "data-task": task.name, title: task.name }, `${task.label || task.name} `, label,
    ` restarts ${task.restarts}, errors ${task.errors}`);
  if (task.last_error) item.append(" ", el("span", { class: "error" }, task.last_error));
  return item;
}

// The tree the service's tasks form: the service's own, the agents' and one monitor per
// market (grouped, each group under its parent), or the tree the service sends.
function drawTasks(tasks, tree) {
  if (tree) {
    const node = (entry) => {
      const item = taskItem(entry);
      if (entry.children && entry.children.length) {
        item.append(el("ul", {}, ...entry.children.map(node)));
      }
      return item;
    };
    fillList("#tasks", [node(tree)]);
    return;
  }
  const groups = { service: [], agents: [], monitors: [] };
  for (const task of tasks) {
    if (task.name.startsWith("service.")) groups.service.push(task);
    else if (task.name.startsWith("monitor_")) groups.monitors.push(task);
    else groups.agents.push(task);
  }
  const branch = (name, members) => {
    const running = members.filter((t) => t.status === "running").length;
    return el("li", { "data-group": name }, `${name} (${running}/${members.length} running)`,
      el("ul", {}, ...members.map(taskItem)));
  };
  fillList("#tasks", [el("li", {}, "service",
    el("ul", {}, branch("service", groups.service), branch("agents", groups.agents),
      branch("monitors", groups.monitors)))]);
}

// -- books as depth charts ---------------------------------------------------------------------

// Cumulative size from the best price outwards, on one price axis for both sides.
function depthData(book) {
  const bids = book.bids.map(([p, s]) => [Number(p), Number(s)]);
  const asks = book.asks.map(([p, s]) => [Number(p), Number(s)]);
  const points = new Map();
  let total = 0;
  for (const [price, size] of bids) { total += size; points.set(price, [total, null]); }
  total = 0;
  for (const [price, size] of asks) {
    total += size;
    const known = points.get(price);
    points.set(price, known ? [known[0], total] : [null, total]);
  }
  const prices = [...points.keys()].sort((a, b) => a - b);
  return [prices, prices.map((p) => points.get(p)[0]), prices.map((p) => points.get(p)[1])];
}

function depthChart(element, data) {
  const stepped = uPlot.paths.stepped({ align: 1 });
  return new uPlot({
    width: Math.max(element.clientWidth, 300), height: 150, legend: { show: false },
    cursor: { show: false }, scales: { x: { time: false } },
    axes: [{ stroke: "#8a96a3", grid: { stroke: "#2a323c" } },
      { stroke: "#8a96a3", grid: { stroke: "#2a323c" }, size: 50 }],
    series: [{}, { label: "bids", stroke: "#3fb950", fill: "rgba(63,185,80,.25)", paths: stepped,
      points: { show: false } },
      { label: "asks", stroke: "#f85149", fill: "rgba(248,81,73,.25)", paths: stepped,
        points: { show: false } }],
  }, data, element);
}

function drawBooks(snapshot) {
  $("#books-count").textContent = snapshot.markets_total > snapshot.markets_shown
    ? `(${snapshot.markets_shown} of ${snapshot.markets_total} markets)`
    : `(${snapshot.markets_total} markets)`;
  const container = $("#books");
  const seen = new Set();
  for (const market of snapshot.books) {
    seen.add(market.market);
    let entry = depthCharts.get(market.market);
    if (!entry) {
      const chartBox = el("div", { class: "chart" });
      const element = el("div", { class: "market", "data-slug": market.slug },
        el("h3", { title: market.question }, market.slug || market.market),
        el("div", { class: "top muted" }), chartBox);
      container.append(element);
      entry = { element, chartBox, chart: null };
      depthCharts.set(market.market, entry);
    }
    const yes = market.yes, no = market.no;
    const top = (book, name) => book
      ? `${name} ${book.bids[0]?.[0] ?? "–"} / ${book.asks[0]?.[0] ?? "–"}${book.synced ? "" : " (unsynced)"}`
      : `${name} –`;
    entry.element.querySelector(".top").textContent = `${top(yes, "YES")} · ${top(no, "NO")}`;
    if (yes && (yes.bids.length || yes.asks.length)) {
      const data = depthData(yes);
      if (entry.chart) entry.chart.setData(data);
      else entry.chart = depthChart(entry.chartBox, data);
    }
  }
  for (const [id, entry] of depthCharts) {
    if (!seen.has(id)) { entry.chart?.destroy(); entry.element.remove(); depthCharts.delete(id); }
  }
}

// -- account, trades, signals, feed ------------------------------------------------------------

function drawEquity() {
  const data = [history.t, history.cash, history.pnl];
  if (equityChart) { equityChart.setData(data); return; }
  const element = $("#equity");
  equityChart = new uPlot({
    width: Math.max(element.clientWidth, 300), height: 180,
    scales: { x: { time: true }, usdc: {}, pnl: {} },
    axes: [{ stroke: "#8a96a3", grid: { stroke: "#2a323c" } },
      { scale: "usdc", stroke: "#8a96a3", grid: { stroke: "#2a323c" }, size: 60 },
      { scale: "pnl", side: 1, stroke: "#8a96a3", grid: { show: false }, size: 50 }],
    series: [{}, { label: "cash (USDC)", scale: "usdc", stroke: "#58a6ff", points: { show: false } },
      { label: "P&L (USDC)", scale: "pnl", stroke: "#d29922", points: { show: false } }],
  }, data, element);
}

function addPoint(ms, cash, pnl) {
  if (history.t.length && ms / 1000 <= history.t[history.t.length - 1]) return;
  history.t.push(ms / 1000);
  history.cash.push(Number(cash));
  history.pnl.push(Number(pnl));
  if (history.t.length > 3600) { history.t.shift(); history.cash.shift(); history.pnl.shift(); }
}

function drawAccount(account) {
  definitions("#account", [["cash", money(account.cash)], ["P&L", signed(account.pnl)],
    ["realized", signed(account.realized_pnl)], ["unrealized", signed(account.unrealized_pnl)],
    ["fills", account.trades ?? 0], ["orders", account.orders ?? 0]]);
}

function drawFeed(feed, connections) {
  definitions("#feed", [["markets ready", `${feed.monitors_ready ?? 0} / ${feed.markets ?? 0}`],
    ["events", feed.events ?? 0], ["invalid frames", feed.invalid_frames ?? 0],
    ["reconnects", feed.reconnects ?? 0], ["resyncs", feed.resyncs ?? 0],
    ["signals", feed.signals ?? 0]]);
  fillList("#connections tbody", connections.map((c) => el("tr", {},
    el("td", {}, c.name), el("td", {}, c.connected ? "yes" : "no"), el("td", { class: "num" }, c.assets),
    el("td", { class: "num" }, c.synced),
    el("td", { class: "num" }, c.silent_for === null ? "" : `${Number(c.silent_for).toFixed(1)} s`),
    el("td", { class: "num" }, c.reconnects), el("td", { class: "error" }, c.last_error ?? ""))));
}

function drawFills(fills) {
  fillList("#fills tbody", fills.map((f) => el("tr", {}, el("td", {}, time(f.time_ms)),
    el("td", {}, f.slug), el("td", {}, f.outcome), el("td", {}, f.side),
    el("td", { class: "num" }, f.price), el("td", { class: "num" }, f.size),
    el("td", { class: "num" }, f.fee))));
}

function drawSignals(signals) {
  fillList("#signals tbody", signals.map((s) => el("tr", { title: s.reason },
    el("td", {}, time(s.time_ms)), el("td", {}, s.slug), el("td", { class: "num" }, s.edge),
    el("td", {}, s.outcome))));
}

function render(snapshot) {
  drawService(snapshot.service);
  drawTasks(snapshot.tasks, snapshot.tree);
  const treeLines = $("#tree");
  treeLines.hidden = !snapshot.tree_lines;
  if (snapshot.tree_lines) treeLines.textContent = snapshot.tree_lines.join("\n");
  drawAccount(snapshot.account);
  if (snapshot.account.cash !== null && snapshot.account.cash !== undefined) {
    addPoint(snapshot.time_ms, snapshot.account.cash, snapshot.account.pnl);
  }
  drawEquity();
  drawFeed(snapshot.feed, snapshot.connections);
  drawBooks(snapshot);
  drawFills(snapshot.fills);
  drawSignals(snapshot.signals);
  const stream = $("#stream");
  stream.textContent = `live · ${time(snapshot.time_ms)}`;
  stream.dataset.updates = String(Number(stream.dataset.updates ?? 0) + 1);
}

const source = new EventSource("/dashboard/events");
source.addEventListener("history", (event) => {
  for (const [ms, cash, pnl] of JSON.parse(event.data)) addPoint(ms, cash, pnl);
});
source.addEventListener("snapshot", (event) => render(JSON.parse(event.data)));
source.addEventListener("error", () => { $("#stream").textContent = "disconnected, retrying…"; });
