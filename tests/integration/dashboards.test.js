'use strict';
// The Grafana dashboard (etc/grafana/rtmd-dashboard.json) and the alert
// rules (etc/prometheus/rtmd-alerts.yml) cannot drift from /metrics: every
// rtmd_* name their queries use is a series a running rtmd exports once it
// has served a login and a message, every stage="..." they name has
// samples, and every label they group by is a label of that metric. The
// dashboard is importable: Grafana's datasource input and one query per
// panel. The store's size is SQLite's, so not in the pg.* and cl.* suites.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const fpnn = require('./lib/fpnn');
const { appServer, login } = require('./lib/rtm');
const { startRtmd, waitFor } = require('./lib/rtmd');

const ETC = path.join(__dirname, '..', '..', 'etc');
const DASHBOARD = path.join(ETC, 'grafana', 'rtmd-dashboard.json');
const ALERTS = path.join(ETC, 'prometheus', 'rtmd-alerts.yml');

function scrape(srv) {
  return new Promise((resolve, reject) => {
    http.get(srv.url('http', '/metrics'), (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

// name -> Set of label names, and the stages with histogram samples.
function series(text) {
  const labels = new Map();
  const stages = new Set();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{([^}]*)\})? /.exec(line);
    if (!m) continue;
    if (!labels.has(m[1])) labels.set(m[1], new Set());
    for (const l of (m[2] || '').matchAll(/([a-z_]+)="([^"]*)"/g)) {
      labels.get(m[1]).add(l[1]);
      if (m[1] === 'rtmd_stage_seconds_bucket' && l[1] === 'stage') stages.add(l[2]);
    }
  }
  return { labels, stages };
}

function queries() {
  const dash = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'));
  assert.ok(dash.__inputs.some((i) => i.pluginId === 'prometheus'), 'a Prometheus datasource input');
  assert.ok(dash.uid && dash.title);
  const exprs = [];
  for (const p of dash.panels.filter((x) => x.type !== 'row')) {
    assert.ok(p.targets.length > 0, `panel ${p.title} has a query`);
    for (const t of p.targets) exprs.push(t.expr);
  }
  const rules = fs.readFileSync(ALERTS, 'utf8');
  for (const m of rules.matchAll(/^\s*expr: (.+)$/gm)) exprs.push(m[1]);
  assert.ok(exprs.length > 20);
  return exprs;
}

test('every metric, stage and grouping label of the dashboard and the alert rules exists in /metrics', async () => {
  const exprs = queries();
  const srv = await startRtmd();
  try {
    const app = await appServer(srv);
    const user = await login(srv, app, 401);
    await app.call('sendmsg', { from: fpnn.int64(401), to: fpnn.int64(402), mid: fpnn.int64(1), mtype: 30, msg: 'hi', attrs: '' });
    let have;
    await waitFor(async () => {
      have = series(await scrape(srv));
      return ['server', 'apply', 'fdatasync', 'queue'].every((s) => have.stages.has(s));
    }, 5000);
    for (const e of exprs) {
      for (const [name] of e.matchAll(/\brtmd_[a-z_]+/g)) assert.ok(have.labels.has(name), `${name} (in ${e}) is in /metrics`);
      for (const [, stage] of e.matchAll(/stage="([a-z_]+)"/g)) assert.ok(have.stages.has(stage), `stage ${stage} has samples`);
      for (const [, by, name] of e.matchAll(/by \(([a-z_, ]+)\) \((?:rate\()?(rtmd_[a-z_]+)/g)) {
        for (const label of by.split(',').map((x) => x.trim()).filter((x) => x !== 'instance' && x !== 'le')) {
          assert.ok(have.labels.get(name).has(label), `${name} has the label ${label} (${e})`);
        }
      }
    }
    user.client.destroy();
    await app.close();
  } finally {
    await srv.cleanup();
  }
});
