'use strict';
// HTTP helpers of the integration tests: a plain request to rtmd's HTTP
// listener, and reading one metric out of the Prometheus text of /metrics.

const http = require('node:http');

function get(port, path, { method = 'GET', timeoutMs = 5000, headers = {}, localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, timeout: timeoutMs, agent: false, localAddress }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

// Sum of every sample of a metric (with or without labels) whose labels
// contain all of `labels`.
function metric(text, name, labels = {}) {
  let found = false;
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.trim()) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = {};
    for (const kv of (m[3] || '').split(',')) {
      const e = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*$/.exec(kv);
      if (e) have[e[1]] = e[2];
    }
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) {
      found = true;
      sum += Number(m[4]);
    }
  }
  return found ? sum : undefined;
}

// The value of a metric in rtmd's /metrics right now (see metric()).
async function scrapeMetric(port, name, labels = {}) {
  return metric((await get(port, '/metrics')).body, name, labels);
}

// The sum of a metric over every node of srv (srv.nodes of lib/rtmd.js:
// srv alone, or both nodes of a cluster): what one process counts, added up.
async function scrapeNodes(srv, name, labels = {}) {
  const values = await Promise.all(srv.nodes.map((n) => scrapeMetric(n.ports.http, name, labels)));
  const found = values.filter((v) => v !== undefined);
  return found.length ? found.reduce((a, b) => a + b, 0) : undefined;
}

module.exports = { get, metric, scrapeMetric, scrapeNodes };
