'use strict';
// With tls_cert and tls_key, rtmd serves WebSocket over TLS (wss://, the
// same FPNN gate as ws://) and HTTP over TLS, with the certificate chain it
// was given. A client that does not trust the chain, or speaks plaintext to
// a TLS port, gets no service; a pending TLS handshake is closed at the
// login deadline like any link that has not logged in.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const https = require('node:https');
const net = require('node:net');
const tls = require('node:tls');
const fpnn = require('../integration/lib/fpnn');
const { appServer, login } = require('../integration/lib/rtm');
const { startRtmd, makeTempDir, removeTempDir, sanitizerReports } = require('../integration/lib/rtmd');
const { makeCa, makeServerCert } = require('../integration/lib/tls');

let srv, dir;
const links = [];

after(async () => {
  for (const l of links) if (!l.client.isClosed) await l.close();
  if (srv) {
    assert.equal(await srv.stop('SIGTERM'), 0, srv.diagnostics());
    await srv.cleanup();
  }
  if (dir) await removeTempDir(dir);
  assert.deepEqual(sanitizerReports(), []);
});

function httpsGet(port, path, ca) {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: 'localhost', port, path, ca }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
  });
}

test('wss and https with the configured chain', async () => {
  dir = await makeTempDir();
  const ca = makeCa(dir);
  const cert = makeServerCert(dir, ca);
  srv = await startRtmd({ args: [`--tls_cert=${cert.cert}`, `--tls_key=${cert.key}`, '--client_wss_port=0', '--https_port=0', '--login_timeout=2'] });
  assert.ok(srv.ports.client_wss > 0 && srv.ports.https > 0, 'both TLS listeners are announced');

  // HTTPS: the same routes as HTTP.
  const health = await httpsGet(srv.ports.https, '/healthz', ca.pem);
  assert.equal(health.status, 200);
  const metrics = await httpsGet(srv.ports.https, '/metrics', ca.pem);
  assert.match(metrics.body, /rtmd_connections/);

  // wss: a user logs in and receives a message sent by another over ws.
  const app = await appServer(srv);
  links.push(app);
  const alice = await login(srv, app, 7001, { transport: 'wss', ca: ca.pem });
  links.push(alice);
  const bob = await login(srv, app, 7002, { transport: 'ws' });
  links.push(bob);
  await bob.call('sendmsg', { to: fpnn.int64(7001), mid: fpnn.int64(1), mtype: 51, msg: 'over tls', attrs: '' });
  const push = await alice.waitPush((q) => q.method === 'pushmsg');
  assert.equal(push.payload.msg, 'over tls');
  const big = 'x'.repeat(100000); // several TLS records each way
  const echo = await alice.call('sendmsg', { to: fpnn.int64(7002), mid: fpnn.int64(2), mtype: 51, msg: big.slice(0, 20000), attrs: '' });
  assert.ok(echo.mtime);

  // A client that does not trust the chain gets no further than the handshake.
  await assert.rejects(fpnn.connect({ host: 'localhost', port: srv.ports.client_wss, transport: 'wss' }), /certificate/);
  await assert.rejects(httpsGet(srv.ports.https, '/healthz', undefined), /certificate/);

  // Plaintext to the TLS port: closed without an answer.
  const plain = await new Promise((resolve) => {
    const s = net.connect(srv.ports.https, '127.0.0.1', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
    let got = Buffer.alloc(0);
    s.on('data', (d) => { got = Buffer.concat([got, d]); });
    s.on('close', () => resolve(got));
    s.on('error', () => {});
  });
  assert.equal(plain.includes(Buffer.from('200 OK')), false, 'no HTTP answer in plaintext');

  // A handshake that never finishes holds its slot only until the login deadline.
  const stalled = tls.connect({ host: '127.0.0.1', port: srv.ports.client_wss, rejectUnauthorized: false });
  stalled.on('error', () => {});
  const closedAt = await new Promise((resolve) => {
    const start = Date.now();
    stalled.once('secureConnect', () => {}); // handshake done, then silence
    stalled.once('close', () => resolve(Date.now() - start));
  });
  assert.ok(closedAt < 5000, `closed after ${closedAt} ms`);
});
