// The admin page: keeps the admin token in sessionStorage (for this tab
// only), polls /admin/api/stats every second with it as a Bearer token,
// and shows the figures; rates (messages/s, logins/s) and the mean write
// latency over each interval come from two polls of the cumulative
// counters. Three small uPlot charts keep the last two minutes. A 401
// shows "refused" and forgets the token. Everything from the server is
// put in the page as text, never as HTML (log lines hold peer strings).
import uPlot from 'uplot';

const POLL_MS = 1000;
const WINDOW_S = 120;
const TOKEN_KEY = 'rtmd-admin-token';

const $ = (id) => document.getElementById(id);
const sum = (obj) => Object.values(obj).reduce((a, b) => a + b, 0);

let timer = null;
let previous = null; // { at (s), stats }
const series = { t: [], messages: [], logins: [], latency: [] };
const charts = {};

function setState(state, text) {
  document.body.dataset.state = state;
  $('status').textContent = text;
  const on = state === 'live';
  $('figures').hidden = !on;
  $('login-form').hidden = state === 'live' || state === 'connecting';
  $('logout-button').hidden = !on;
}

function makeChart(id, label, color) {
  const el = $(id);
  return new uPlot({
    width: 360,
    height: 160,
    legend: { show: false },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    series: [{}, { label, stroke: color, width: 1.5, spanGaps: true }],
    axes: [{ space: 60 }, { size: 50 }],
  }, [[], []], el);
}

function fillRows(tbody, rows) {
  const fresh = rows.map((cells) => {
    const tr = document.createElement('tr');
    for (const cell of cells) {
      const td = document.createElement('td');
      td.textContent = String(cell);
      tr.append(td);
    }
    return tr;
  });
  tbody.replaceChildren(...fresh);
}

const formatBytes = (n) => n === null ? 'n/a (PostgreSQL)'
  : n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`;

function formatUptime(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

function push(key, value) {
  series[key].push(value);
}

function render(stats, now) {
  $('version').textContent = stats.version;
  $('uptime').textContent = formatUptime(stats.uptime_seconds);
  $('sessions').textContent = String(stats.sessions);
  $('messages-total').textContent = String(sum(stats.messages));
  $('logins-total').textContent = `${stats.logins.ok} / ${stats.logins.denied} / ${stats.logins.error}`;
  $('store-bytes').textContent = formatBytes(stats.store.bytes);
  $('store-pending').textContent = String(stats.store.pending);
  fillRows($('projects'), stats.projects.map((p) => [p.pid, p.sessions]));
  fillRows($('connections'), Object.entries(stats.connections));
  fillRows($('top-rooms'), stats.top_rooms.map((r) => [r.pid, r.rid, r.members]));
  $('recent-errors').replaceChildren(...stats.recent_errors.slice().reverse().map((line) => {
    const li = document.createElement('li');
    li.textContent = line;
    return li;
  }));

  if (previous) {
    const dt = Math.max(0.001, now - previous.at);
    const before = previous.stats;
    const messages = (sum(stats.messages) - sum(before.messages)) / dt;
    const logins = (sum(stats.logins) - sum(before.logins)) / dt;
    const apply = stats.store.latency.apply, applyBefore = before.store.latency.apply;
    const writes = apply.count - applyBefore.count;
    const latency = writes > 0 ? (apply.sum_ns - applyBefore.sum_ns) / writes / 1e6 : null;
    $('messages-rate').textContent = messages.toFixed(1);
    $('logins-rate').textContent = logins.toFixed(1);
    $('write-latency').textContent = latency === null ? 'idle' : `${latency.toFixed(2)} ms`;
    push('t', now);
    push('messages', messages);
    push('logins', logins);
    push('latency', latency);
    while (series.t.length && series.t[0] < now - WINDOW_S)
      for (const key of Object.keys(series)) series[key].shift();
    $('chart-messages').dataset.last = messages.toFixed(1);
    $('chart-logins').dataset.last = logins.toFixed(1);
    charts.messages.setData([series.t, series.messages]);
    charts.logins.setData([series.t, series.logins]);
    charts.latency.setData([series.t, series.latency]);
    document.body.dataset.points = String(series.t.length);
  }
  previous = { at: now, stats };
}

async function poll() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return;
  let res;
  try {
    res = await fetch('api/stats', { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' });
  } catch (e) {
    $('status').textContent = `Cannot reach rtmd: ${e.message}`;
    return;
  }
  if (res.status === 401) {
    stop();
    sessionStorage.removeItem(TOKEN_KEY);
    setState('refused', 'refused: the token was not accepted.');
    return;
  }
  if (!res.ok) {
    $('status').textContent = `rtmd answered ${res.status}.`;
    return;
  }
  const stats = await res.json();
  if (!sessionStorage.getItem(TOKEN_KEY)) return; // logged out meanwhile
  setState('live', `Live: ${new Date().toLocaleTimeString()}`);
  render(stats, Date.now() / 1000);
}

function start() {
  stop();
  previous = null;
  for (const key of Object.keys(series)) series[key] = [];
  setState('connecting', 'Connecting...');
  poll();
  timer = setInterval(poll, POLL_MS);
}

function stop() {
  if (timer) clearInterval(timer);
  timer = null;
}

document.addEventListener('DOMContentLoaded', () => {
  charts.messages = makeChart('chart-messages', 'messages/s', '#1565c0');
  charts.logins = makeChart('chart-logins', 'logins/s', '#2e7d32');
  charts.latency = makeChart('chart-latency', 'ms', '#c62828');
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('token-input').value.trim());
    $('token-input').value = '';
    start();
  });
  $('logout-button').addEventListener('click', () => {
    stop();
    sessionStorage.removeItem(TOKEN_KEY);
    setState('logged-out', 'Not logged in.');
  });
  if (sessionStorage.getItem(TOKEN_KEY)) start();
  else setState('logged-out', 'Not logged in.');
  document.body.dataset.ready = 'true';
});
