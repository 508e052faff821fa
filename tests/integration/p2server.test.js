'use strict';
// P2Server (outbound.c, p2server.c): setserverparams stores the app
// server's URL (checked against the project's p2server_allow) and
// signature per connection; sendservermsg makes rtmd POST a JSON object to
// that URL and answers with the app server's status and body. Bounds:
// msg and reply body 64 KiB, a timeout, POSTs in flight per project and
// per user; no redirects; a URL outside the allowlist never gets a
// connection; a connection that closes cancels its POSTs; and the loop
// keeps answering while app servers are slow.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode } = require('./lib/rtm');
const { scrapeMetric, scrapeNodes } = require('./lib/http');
const { sanitizerReports, startRtmd, withLogs, sleep, waitFor } = require('./lib/rtmd');

const I = fpnn.int64;
const num = fpnn.toNumber;
const KB64 = 64 * 1024;
const RTS_APP_ID = 'P2sRtsApp0123456789abcde';

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

function closeServer(server) {
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('p2server', () => {
  let srv, dir, appHttp, trap, appPort, trapPort;
  let P, Q, OFF, RTS; // projects: normal, short timeout, P2Server off, RTS (app_id and string ids)
  const received = []; // {url, headers, json} of every POST the app server got
  const held = []; // responses of /rtm/hold, answered by the test
  const aborted = []; // urls of requests whose client (rtmd) went away
  const trapConnections = [];
  const logs = () => [srv];
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(logs, fn));

  before(async () => {
    appHttp = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (d) => chunks.push(d));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        let json = null;
        try {
          json = JSON.parse(raw.toString('utf8'));
        } catch (e) {
          json = null;
        }
        received.push({ url: req.url, method: req.method, headers: req.headers, json, raw });
        const route = req.url.split('?')[0];
        if (route === '/rtm/echo') {
          if (json && json.type === 'binary') {
            res.writeHead(200, { 'content-type': 'application/octet-stream' });
            res.end(Buffer.from(json.message, 'base64'));
          } else {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ got: json && json.message }));
          }
        } else if (route === '/rtm/fail') {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end('app broke');
        } else if (route === '/rtm/big') {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          res.end(Buffer.alloc(KB64 + 1, 0x61));
        } else if (route === '/rtm/redirect') {
          res.writeHead(302, { location: `http://127.0.0.1:${trapPort}/rtm/echo` });
          res.end('moved');
        } else if (route === '/rtm/hold' || route === '/rtm/silent') {
          // /rtm/hold: answered by the test; /rtm/silent: never
          res.on('close', () => {
            if (!res.writableEnded) aborted.push(req.url);
          });
          if (route === '/rtm/hold') held.push(res);
        } else {
          res.writeHead(404);
          res.end();
        }
      });
    });
    appPort = await listen(appHttp);
    // A listener on a port no allowlist names: it must never see a connection.
    trap = net.createServer((s) => {
      trapConnections.push(s.remoteAddress);
      s.destroy();
    });
    trapPort = await listen(trap);

    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtmd-p2s-'));
    const conf = path.join(dir, 'rtmd.conf');
    fs.writeFileSync(conf,
      '[project]\npid = 91001\nsecret = "p2server-secret-1"\n' +
      `p2server_allow = "http://127.0.0.1:${appPort}/rtm/, http://127.0.0.1:${appPort}/exact"\n` +
      'p2server_timeout_ms = 4000\np2server_max_inflight = 3\np2server_max_inflight_per_user = 2\n' +
      '[project]\npid = 91002\nsecret = "p2server-secret-2"\n' +
      `p2server_allow = http://localhost:${appPort}/rtm/silent\np2server_timeout_ms = 300\n` +
      '[project]\npid = 91003\nsecret = "p2server-secret-3"\n' +
      `[project]\npid = 91004\nsecret = "p2server-secret-4"\napp_id = ${RTS_APP_ID}\napp_key = rts-key-4\n` +
      `p2server_allow = "http://127.0.0.1:${appPort}/rtm/"\n`);
    srv = await startRtmd({ config: conf });
    const proj = (pid) => srv.projects.find((p) => p.pid === pid);
    P = await appServer(srv, { project: proj('91001') });
    Q = await appServer(srv, { project: proj('91002') });
    OFF = await appServer(srv, { project: proj('91003') });
    RTS = await appServer(srv, { project: proj('91004') });
  });

  after(async () => {
    for (const a of [P, Q, OFF, RTS]) if (a && !a.client.isClosed) await a.close();
    for (const r of held) if (!r.writableEnded) r.end();
    const code = await srv.stop('SIGTERM');
    await srv.cleanup();
    await closeServer(appHttp);
    await closeServer(trap);
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 0, `rtmd exit code after SIGTERM\n${srv.diagnostics()}`);
    assert.deepEqual(sanitizerReports(), []);
  });

  const echoUrl = () => `http://127.0.0.1:${appPort}/rtm/echo`;

  it('a string-id session of an RTS project posts its app_id and string user id', async () => {
    const { token } = await RTS.call('getrtstoken', { uid: 'alice.p2s' });
    const c = await fpnn.connect({ port: srv.ports.client_tcp, transport: 'tcp', timeoutMs: 5000 });
    try {
      assert.deepEqual(await c.quest('auth', { appid: RTS_APP_ID, uid: 'alice.p2s', token }), { ok: true });
      assert.deepEqual(await c.quest('setserverparams', { signature: 'sig-alice', url: echoUrl() }), {});
      const before = received.length;
      const a = await c.quest('sendservermsg', { mid: 5, msg: 'from a string id' });
      assert.equal(num(a.status), 200);
      const posted = received[before].json;
      assert.equal(posted.appId, RTS_APP_ID);
      assert.equal(posted.userId, 'alice.p2s');
    } finally {
      await c.destroy();
    }
  });

  it('text message: the app server gets the JSON object, the client its status and body (msgpack and JSON)', async () => {
    const u = await login(srv, P, 6001);
    const w = await login(srv, P, 6002, { transport: 'ws' });
    try {
      assert.deepEqual(await u.call('setserverparams', { signature: 'sig-6001', url: echoUrl() }), {});
      const before = received.length;
      const a = await u.call('sendservermsg', { mid: I('9007199254740993'), msg: 'hello app 你好' });
      assert.equal(num(a.status), 200);
      assert.deepEqual(JSON.parse(a.body), { got: 'hello app 你好' });
      const r = received[before];
      assert.equal(r.method, 'POST');
      assert.equal(r.url, '/rtm/echo');
      assert.equal(r.headers['content-type'], 'application/json');
      assert.equal(r.headers.expect, undefined);
      assert.deepEqual(Object.keys(r.json), ['appId', 'userId', 'businessId', 'signature', 'mid', 'type', 'message']);
      assert.equal(r.json.appId, '91001');
      assert.equal(r.json.userId, '6001');
      assert.equal(r.json.businessId, '');
      assert.equal(r.json.signature, 'sig-6001');
      assert.equal(r.json.type, 'text');
      assert.equal(r.json.message, 'hello app 你好');
      // mid is written exactly, even beyond 2^53
      assert.match(r.raw.toString(), /"mid":9007199254740993[,}]/);

      // The JSON form over WebSocket; a query string is passed on.
      assert.deepEqual(await w.call('setserverparams', { signature: 'ws-sig', url: `${echoUrl()}?room=7` }, { json: true }), {});
      const j = await w.call('sendservermsg', { mid: 5, msg: 'over json' }, { json: true });
      assert.equal(j.status, 200);
      assert.deepEqual(JSON.parse(j.body), { got: 'over json' });
      assert.equal(received.at(-1).url, '/rtm/echo?room=7');
      assert.equal(received.at(-1).json.userId, '6002');
      assert.equal(received.at(-1).json.signature, 'ws-sig');

      // setserverparams again replaces the URL and signature
      await u.call('setserverparams', { signature: 'sig-2', url: `http://127.0.0.1:${appPort}/exact` });
      const e = await u.call('sendservermsg', { mid: I(6), msg: 'x' });
      assert.equal(num(e.status), 404);
      assert.equal(received.at(-1).url, '/exact');
      assert.equal(received.at(-1).json.signature, 'sig-2');
    } finally {
      await u.close();
      await w.close();
    }
  });

  it('binary message round trip at 64 KiB, 64 KiB + 1 refused (200030), a reply body over 64 KiB is 200093', async () => {
    const u = await login(srv, P, 6003);
    try {
      await u.call('setserverparams', { signature: 's', url: echoUrl() });
      const bytes = crypto.randomBytes(KB64);
      const a = await u.call('sendservermsg', { mid: I(1), msg: bytes });
      assert.equal(num(a.status), 200);
      assert.ok(Buffer.isBuffer(a.body), 'binary reply comes back as bin');
      assert.ok(a.body.equals(bytes), 'the same bytes');
      const r = received.at(-1);
      assert.equal(r.json.type, 'binary');
      assert.ok(Buffer.from(r.json.message, 'base64').equals(bytes));

      const before = received.length;
      const e = await expectCode(u.call('sendservermsg', { mid: I(2), msg: Buffer.alloc(KB64 + 1) }), 200030);
      assert.match(e.message, /65536/);
      await expectCode(u.call('sendservermsg', { mid: I(3), msg: 'y'.repeat(KB64 + 1) }), 200030);
      assert.equal(received.length, before, 'nothing was posted');

      await u.call('setserverparams', { signature: 's', url: `http://127.0.0.1:${appPort}/rtm/big` });
      const big = await expectCode(u.call('sendservermsg', { mid: I(4), msg: 'big please' }), 200093);
      assert.match(big.message, /64 KiB/);
    } finally {
      await u.close();
    }
  });

  it('an app-server error status comes back as status and body', async () => {
    const u = await login(srv, P, 6004);
    try {
      await u.call('setserverparams', { signature: 's', url: `http://127.0.0.1:${appPort}/rtm/fail` });
      const a = await u.call('sendservermsg', { mid: I(1), msg: 'boom' });
      assert.equal(num(a.status), 500);
      assert.equal(a.body, 'app broke');
    } finally {
      await u.close();
    }
  });

  it('a silent app server: 200091 after p2server_timeout_ms; a refused connection: 200092', async () => {
    const u = await login(srv, Q, 6005);
    try {
      await u.call('setserverparams', { signature: 's', url: `http://localhost:${appPort}/rtm/silent` });
      const t0 = Date.now();
      const e = await expectCode(u.call('sendservermsg', { mid: I(1), msg: 'anyone?' }), 200091);
      const took = Date.now() - t0;
      assert.ok(took >= 250 && took < 2500, `timed out after ${took} ms (setting 300)`);
      assert.match(e.message, /in time/);
      await waitFor(() => aborted.includes('/rtm/silent'), 2000);
    } finally {
      await u.close();
    }
    // a port where nothing listens (the allowlist names it, nobody serves it)
    const closed = net.createServer();
    const port = await listen(closed);
    await closeServer(closed);
    const dir2 = fs.mkdtempSync(path.join(os.tmpdir(), 'rtmd-p2s-'));
    const conf = path.join(dir2, 'rtmd.conf');
    fs.writeFileSync(conf, `[project]\npid = 91009\nsecret = "p2server-secret-9"\np2server_allow = http://127.0.0.1:${port}/\n`);
    const s2 = await startRtmd({ config: conf });
    try {
      const app2 = await appServer(s2);
      const v = await login(s2, app2, 1);
      await v.call('setserverparams', { signature: 's', url: `http://127.0.0.1:${port}/hook` });
      const e = await expectCode(v.call('sendservermsg', { mid: I(1), msg: 'hi' }), 200092);
      assert.match(e.message, /refused/);
      assert.equal(await scrapeMetric(s2.ports.http, 'rtmd_outbound_failures_total', { reason: 'refused' }), 1);
      await v.close();
      await app2.close();
    } finally {
      assert.equal(await s2.stop('SIGTERM'), 0);
      await s2.cleanup();
      fs.rmSync(dir2, { recursive: true, force: true });
    }
  });

  it('URLs outside the allowlist are refused (200021) and never connected to', async () => {
    const u = await login(srv, P, 6006);
    try {
      const refused = [
        `http://127.0.0.1:${trapPort}/rtm/echo`, // another port
        `http://2130706433:${trapPort}/rtm/echo`, // the same address written as a number
        `https://127.0.0.1:${appPort}/rtm/echo`, // another scheme
        `http://localhost:${appPort}/rtm/echo`, // another host name for the same address
        `http://127.0.0.1:${appPort}/rtmx`, // not under /rtm/
        `http://127.0.0.1:${appPort}/rtm/../admin`, // normalised: /admin
        `http://127.0.0.1:${appPort}/rtm/%2e%2e/admin`, // an encoded dot
        `http://127.0.0.1:${appPort}/exactly`, // /exact covers /exact and /exact/..., not /exactly
        `http://user:pw@127.0.0.1:${appPort}/rtm/echo`, // userinfo
        `http://127.0.0.1:${appPort}/rtm/echo#frag`, // a fragment
        `ftp://127.0.0.1:${appPort}/rtm/`, // another protocol
        `127.0.0.1:${appPort}/rtm/echo`, // no scheme
        'not a url',
      ];
      for (const url of refused) {
        const e = await expectCode(u.call('setserverparams', { signature: 's', url }), 200021);
        assert.match(e.message, /url not allowed/, url);
      }
      // nothing was stored: sending still needs setserverparams
      await expectCode(u.call('sendservermsg', { mid: I(1), msg: 'x' }), 200090);
      // a URL that is allowed, after normalisation (dot segments, case of the scheme)
      assert.deepEqual(await u.call('setserverparams', { signature: 's', url: `HTTP://127.0.0.1:${appPort}/rtm/x/../echo` }), {});
      assert.equal(num((await u.call('sendservermsg', { mid: I(2), msg: 'x' })).status), 200);
      // the address as one number is 127.0.0.1 once parsed: the same parse is checked and fetched
      assert.deepEqual(await u.call('setserverparams', { signature: 's', url: `http://2130706433:${appPort}/rtm/echo` }), {});
      assert.equal(num((await u.call('sendservermsg', { mid: I(3), msg: 'x' })).status), 200);
      // a project without p2server_allow: P2Server is off
      const o = await login(srv, OFF, 6007);
      await expectCode(o.call('setserverparams', { signature: 's', url: echoUrl() }), 200060);
      await expectCode(o.call('sendservermsg', { mid: I(1), msg: 'x' }), 200060);
      await o.close();
      await sleep(200);
      assert.deepEqual(trapConnections, [], 'the disallowed port saw no connection');
      assert.ok(await scrapeMetric(srv.ports.http, 'rtmd_outbound_pin_refusals_total') === 0);
    } finally {
      await u.close();
    }
  });

  it('payload checks: 10009, 10010, 200030 on the signature', async () => {
    const u = await login(srv, P, 6008);
    try {
      await expectCode(u.call('setserverparams', { url: echoUrl() }), 10009);
      await expectCode(u.call('setserverparams', { signature: 's' }), 10009);
      await expectCode(u.call('setserverparams', { signature: 5, url: echoUrl() }), 10010);
      await expectCode(u.call('setserverparams', { signature: 's', url: 7 }), 10010);
      await expectCode(u.call('setserverparams', { signature: Buffer.from([0xff, 0xfe]), url: echoUrl() }), 10010);
      await expectCode(u.call('setserverparams', { signature: 's'.repeat(1025), url: echoUrl() }), 200030);
      await expectCode(u.call('setserverparams', { signature: 's', url: `${echoUrl()}/${'a'.repeat(2048)}` }), 200030);
      await u.call('setserverparams', { signature: 's', url: echoUrl() });
      await expectCode(u.call('sendservermsg', { msg: 'x' }), 10009);
      await expectCode(u.call('sendservermsg', { mid: I(1) }), 10009);
      await expectCode(u.call('sendservermsg', { mid: 'one', msg: 'x' }), 10010);
      await expectCode(u.call('sendservermsg', { mid: I(1), msg: 12 }), 10010);
      // not logged in
      const c = await fpnn.connect({ port: srv.ports.client_tcp });
      await expectCode(c.quest('sendservermsg', { mid: I(1), msg: 'x' }), 200022);
      await c.close();
      // the server gate does not serve them
      await expectCode(P.client.quest('setserverparams', { signature: 's', url: echoUrl() }), 20004);
    } finally {
      await u.close();
    }
  });

  it('a bad p2server_allow entry stops rtmd at start, naming the project and the entry', async () => {
    const dir3 = fs.mkdtempSync(path.join(os.tmpdir(), 'rtmd-p2s-'));
    try {
      for (const [entry, why] of [
        ['ftp://files.example.com/', /only http and https/],
        ['https://u:p@app.example.com/', /a user/],
        ['https://app.example.com/rtm?x=1', /a query/],
        ['https://app.example.com/#top', /a fragment/],
        ['https://app_server.example.com/', /host name/],
        ['app.example.com/rtm', /not a URL/],
      ]) {
        const conf = path.join(dir3, 'rtmd.conf');
        fs.writeFileSync(conf, `[project]\npid = 91010\nsecret = "p2server-secret-10"\n` +
          `p2server_allow = "https://ok.example.com/, ${entry}"\n`);
        await assert.rejects(startRtmd({ config: conf }), (e) => {
          assert.match(e.message, /project 91010: p2server_allow: '/);
          assert.ok(e.message.includes(entry), entry);
          assert.match(e.message, why);
          return true;
        });
      }
    } finally {
      fs.rmSync(dir3, { recursive: true, force: true });
    }
  });

  it('redirects are not followed: the 302 comes back and its Location gets no connection', async () => {
    const u = await login(srv, P, 6009);
    try {
      await u.call('setserverparams', { signature: 's', url: `http://127.0.0.1:${appPort}/rtm/redirect` });
      const a = await u.call('sendservermsg', { mid: I(1), msg: 'x' });
      assert.equal(num(a.status), 302);
      assert.equal(a.body, 'moved');
      await sleep(200);
      assert.deepEqual(trapConnections, []);
    } finally {
      await u.close();
    }
  });

  // The in-flight caps and the outbound gauges are a node's (docs/cluster.md,
  // "Not yet across nodes"): the two cases below go through the first node,
  // whose /metrics is srv's.
  it('too many in flight: 200010 at once per user and per project; the loop answers pings meanwhile', async () => {
    const u = await login(srv, P, 6010, { ports: srv.node(0).ports });
    const v = await login(srv, P, 6011, { ports: srv.node(0).ports });
    try {
      const hold = `http://127.0.0.1:${appPort}/rtm/hold`;
      await u.call('setserverparams', { signature: 's', url: hold });
      await v.call('setserverparams', { signature: 's', url: hold });
      const heldBefore = held.length;
      const p1 = u.call('sendservermsg', { mid: I(1), msg: 'a' });
      const p2 = u.call('sendservermsg', { mid: I(2), msg: 'b' });
      await waitFor(() => held.length === heldBefore + 2, 3000);
      const t0 = Date.now();
      const e = await expectCode(u.call('sendservermsg', { mid: I(3), msg: 'c' }), 200010);
      assert.ok(Date.now() - t0 < 1000, 'refused at once');
      assert.match(e.message, /user/);
      // the project allows 3: v gets one, then 200010 naming the project
      const p3 = v.call('sendservermsg', { mid: I(4), msg: 'd' });
      await waitFor(() => held.length === heldBefore + 3, 3000);
      const pe = await expectCode(v.call('sendservermsg', { mid: I(5), msg: 'e' }), 200010);
      assert.match(pe.message, /project/);
      assert.equal(await scrapeMetric(srv.ports.http, 'rtmd_outbound_in_flight'), 3);
      // while three POSTs wait, the loop answers at once
      for (let i = 0; i < 20; i++) {
        const s = process.hrtime.bigint();
        await u.call('ping', {});
        const ms = Number(process.hrtime.bigint() - s) / 1e6;
        assert.ok(ms < 200, `ping answered in ${ms} ms`);
      }
      // the app server answers: so do the quests, in any order
      held[heldBefore + 1].end('second');
      held[heldBefore].end('first');
      held[heldBefore + 2].writeHead(201).end('third');
      assert.equal((await p1).body, 'first');
      assert.equal((await p2).body, 'second');
      assert.equal(num((await p3).status), 201);
      assert.equal(await scrapeMetric(srv.ports.http, 'rtmd_outbound_in_flight'), 0);
      // places are given back
      await u.call('setserverparams', { signature: 's', url: echoUrl() });
      assert.equal(num((await u.call('sendservermsg', { mid: I(6), msg: 'again' })).status), 200);
    } finally {
      await u.close();
      await v.close();
    }
  });

  it('a connection closed while its POST is in flight: the POST is cancelled, nothing breaks', async () => {
    const u = await login(srv, P, 6012, { ports: srv.node(0).ports });
    const hold = `http://127.0.0.1:${appPort}/rtm/hold`;
    await u.call('setserverparams', { signature: 's', url: hold });
    const heldBefore = held.length;
    const abortedBefore = aborted.length;
    const cancelledBefore = await scrapeMetric(srv.ports.http, 'rtmd_outbound_failures_total', { reason: 'cancelled' });
    u.call('sendservermsg', { mid: I(1), msg: 'bye' }).catch(() => {});
    u.call('sendservermsg', { mid: I(2), msg: 'bye' }).catch(() => {});
    await waitFor(() => held.length === heldBefore + 2, 3000);
    u.client.destroy();
    // rtmd drops its side of both POSTs well before the 4 s timeout
    await waitFor(() => aborted.length === abortedBefore + 2, 2000);
    assert.equal(await scrapeMetric(srv.ports.http, 'rtmd_outbound_failures_total', { reason: 'cancelled' }),
      cancelledBefore + 2);
    assert.equal(await scrapeMetric(srv.ports.http, 'rtmd_outbound_in_flight'), 0);
    // the user's places are back, on a new connection (whose parameters are its own)
    const u2 = await login(srv, P, 6012, { ports: srv.node(0).ports });
    try {
      await expectCode(u2.call('sendservermsg', { mid: I(3), msg: 'x' }), 200090);
      await u2.call('setserverparams', { signature: 's', url: echoUrl() });
      const a = u2.call('sendservermsg', { mid: I(4), msg: 'x' });
      const b = u2.call('sendservermsg', { mid: I(5), msg: 'y' });
      assert.equal(num((await a).status), 200);
      assert.equal(num((await b).status), 200);
    } finally {
      await u2.close();
    }
    assert.ok(await scrapeNodes(srv, 'rtmd_outbound_requests_total') > 5);
    assert.ok(await scrapeNodes(srv, 'rtmd_outbound_answered_total') > 5);
  });
});
