'use strict';
// The HTTP listener: health check, Prometheus metrics that follow the
// traffic, 404 for unknown paths, 405 for a known path asked with another
// method, and HEAD answered without a body. Metrics count one process: on
// a cluster the clients whose traffic they follow are pinned to the node
// scraped (srv.node(0), lib/rtmd.js).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const fpnn = require('./lib/fpnn');
const { get, metric } = require('./lib/http');
const { sanitizerReports, startRtmd, withLogs, waitFor, TEST_STORE } = require('./lib/rtmd');

describe('HTTP listener', () => {
  let srv;
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(() => srv, fn));

  before(async () => {
    srv = await startRtmd();
  });

  after(async () => {
    if (srv) {
      const alive = srv.alive;
      const code = await srv.stop('SIGTERM');
      await srv.cleanup();
      assert.ok(alive, `rtmd died during the tests\n${srv.diagnostics()}`);
      assert.equal(code, 0, `rtmd exit code after SIGTERM\n${srv.diagnostics()}`);
    }
    const reports = sanitizerReports();
    assert.equal(reports.length, 0, `sanitizer reports from rtmd:\n${reports.join('\n')}`);
  });

  it('GET /healthz answers 200 with JSON {status: "ok"}', async () => {
    const r = await get(srv.ports.http, '/healthz');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'] || '', /^application\/json/);
    const body = JSON.parse(r.body);
    assert.equal(body.status, 'ok');
  });

  it('GET /metrics answers Prometheus text', async () => {
    const r = await get(srv.ports.http, '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'] || '', /^text\/plain/);
    assert.notEqual(metric(r.body, 'rtmd_connections', { gate: 'client_tcp' }), undefined, 'rtmd_connections{gate="client_tcp"} present');
    for (const name of ['rtmd_packets_received_total', 'rtmd_packets_sent_total', 'rtmd_connections_accepted_total']) {
      const v = metric(r.body, name);
      assert.notEqual(v, undefined, `${name} present`);
      assert.ok(Number.isFinite(v) && v >= 0, `${name} is a number`);
    }
    // SQLite's WAL checkpoints (store.c); PostgreSQL has no WAL of ours.
    const wal = [
      ['rtmd_store_checkpoints_total', { by: 'checkpointer' }],
      ['rtmd_store_checkpoints_total', { by: 'writer' }],
      ['rtmd_store_checkpoint_frames_total'],
      ['rtmd_store_wal_restarts_total'],
      ['rtmd_store_wal_frames'],
    ];
    for (const [name, labels] of wal) {
      const v = metric(r.body, name, labels);
      if (TEST_STORE === 'sqlite') assert.ok(Number.isFinite(v) && v >= 0, `${name} present`);
      else assert.equal(v, undefined, `${name} absent on PostgreSQL`);
    }
  });

  it('metrics follow connections and packets', async () => {
    const scrape = async () => (await get(srv.ports.http, '/metrics')).body;
    const before = await scrape();
    const conn0 = metric(before, 'rtmd_connections', { gate: 'client_tcp' });
    const recv0 = metric(before, 'rtmd_packets_received_total');
    const sent0 = metric(before, 'rtmd_packets_sent_total');
    const acc0 = metric(before, 'rtmd_connections_accepted_total');

    const clients = [];
    const node = srv.node(0);
    for (let i = 0; i < 3; i++) clients.push(await fpnn.connect({ port: node.ports.client_tcp }));
    for (const c of clients) for (let k = 0; k < 10; k++) await c.quest('*echo', { k });
    // One scrape only: HTTP requests may count as received packets too, so
    // polling here would hide a server that does not count FPNN packets.
    const during = await scrape();
    assert.ok(metric(during, 'rtmd_packets_received_total') >= recv0 + 30, `packets received counted: ${recv0} -> ${metric(during, 'rtmd_packets_received_total')} after 30 quests`);
    assert.ok(metric(during, 'rtmd_packets_sent_total') >= sent0 + 30, `packets sent counted: ${sent0} -> ${metric(during, 'rtmd_packets_sent_total')} after 30 answers`);
    assert.ok(metric(during, 'rtmd_connections_accepted_total') >= acc0 + 3, 'accepted connections counted');
    assert.equal(metric(during, 'rtmd_connections', { gate: 'client_tcp' }), conn0 + 3, 'rtmd_connections{gate="client_tcp"} counts the 3 open clients');
    assert.equal(
      metric(during, 'rtmd_connections_accepted_total', { gate: 'client_tcp' }) ?? acc0 + 3,
      (metric(before, 'rtmd_connections_accepted_total', { gate: 'client_tcp' }) ?? acc0) + 3,
      'accepted client_tcp connections counted per gate',
    );

    for (const c of clients) await c.close();
    let after;
    const back = await waitFor(async () => {
      after = await scrape();
      return metric(after, 'rtmd_connections', { gate: 'client_tcp' }) === conn0;
    }, 3000);
    assert.ok(back, `the gauge goes back down to ${conn0} after the clients left (got ${metric(after, 'rtmd_connections', { gate: 'client_tcp' })})`);
    // Counters never go down.
    assert.ok(metric(after, 'rtmd_connections_accepted_total') >= acc0 + 3);
    assert.ok(metric(after, 'rtmd_packets_received_total') >= recv0 + 15);
  });

  it('connections that went quiet after small answers hold no buffers', async () => {
    const scrape = async () => (await get(srv.ports.http, '/metrics')).body;
    const clients = [];
    const node = srv.node(0);
    for (let i = 0; i < 3; i++) clients.push(await fpnn.connect({ port: node.ports.client_tcp }));
    for (let i = 0; i < 3; i++) clients.push(await fpnn.connect({ port: node.ports.client_ws, transport: 'ws' }));
    try {
      for (const c of clients) for (let k = 0; k < 5; k++) await c.quest('*echo', { k });
      // Scraped right away, well before the idle release of a quiet second:
      // every answer was written whole, and its buffer freed with it.
      const body = await scrape();
      assert.equal(metric(body, 'rtmd_connection_buffer_bytes'), 0, 'buffer bytes held by six quiet connections');
      // A large answer grows the buffer past its first size: it stays while
      // the connection is busy, and is counted.
      await clients[0].quest('*echo', { big: 'x'.repeat(4000) });
      assert.ok(metric(await scrape(), 'rtmd_connection_buffer_bytes') >= 4000, 'a large buffer is counted');
    } finally {
      for (const c of clients) await c.close();
    }
  });

  it('an unknown path answers 404', async () => {
    const r = await get(srv.ports.http, '/no/such/path');
    assert.equal(r.status, 404);
  });

  it('a known path asked with another method answers 405 with a JSON error', async () => {
    const r = await get(srv.ports.http, '/healthz', { method: 'POST' });
    assert.equal(r.status, 405);
    assert.equal(JSON.parse(r.body).error, 'method_not_allowed');
  });

  it('HEAD answers the headers of GET without a body', async () => {
    // A raw socket: an HTTP client library would hide body bytes after HEAD.
    const raw = await new Promise((resolve, reject) => {
      const s = net.connect(srv.ports.http, '127.0.0.1', () =>
        s.write('HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      let data = '';
      s.setEncoding('latin1');
      s.on('data', (d) => (data += d));
      s.on('end', () => resolve(data));
      s.on('error', reject);
    });
    assert.match(raw, /^HTTP\/1\.1 200 /);
    assert.match(raw, new RegExp(`Content-Length: ${'{"status":"ok"}'.length}\r\n`));
    assert.ok(raw.endsWith('\r\n\r\n'), `nothing after the head: ${JSON.stringify(raw)}`);
  });

  it('closes a link without keep-alive as soon as its answer is written', async () => {
    // An HTTP/1.0 client (or one that says "Connection: close") reads until
    // the server closes. The close used to wait for the loop's next event,
    // on an idle server its housekeeping tick (10 a second): tens of ms.
    const gaps = [];
    for (let i = 0; i < 20; i++) {
      gaps.push(await new Promise((resolve, reject) => {
        const s = net.connect(srv.ports.http, '127.0.0.1');
        let last = 0;
        let text = '';
        s.on('connect', () => s.write('GET /healthz HTTP/1.0\r\n\r\n'));
        s.on('data', (d) => {
          last = performance.now();
          text += d;
        });
        s.on('end', () => {
          s.destroy();
          if (!text.startsWith('HTTP/1.1 200 ') || !text.includes('"ok"')) reject(new Error(`answer: ${text}`));
          else resolve(performance.now() - last);
        });
        s.on('error', reject);
      }));
    }
    gaps.sort((a, b) => a - b);
    // The median, so that one request slowed by a busy machine does not
    // decide; with the close left to the tick the gaps spread over 0-100 ms.
    assert.ok(gaps[10] < 25, `close after the last byte of the answer: ${gaps.map((g) => g.toFixed(1)).join(', ')} ms`);
  });

  it('serves many requests in a row', async () => {
    for (let i = 0; i < 50; i++) {
      const r = await get(srv.ports.http, '/healthz');
      assert.equal(r.status, 200);
    }
  });
});
