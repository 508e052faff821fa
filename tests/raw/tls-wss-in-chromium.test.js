'use strict';
// A browser speaks FPNN to rtmd over wss://: Chromium, trusting the CA
// that signed rtmd's certificate, opens the WebSocket gate over TLS,
// logs in, sends a message to a user on a plain ws link and answers the
// push that user sends back, all with its own WebSocket and msgpack
// (@msgpack/msgpack, the library the JavaScript SDK will use). Without that
// trust the browser does not connect.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const fpnn = require('../integration/lib/fpnn');
const { appServer, login } = require('../integration/lib/rtm');
const { startRtmd, makeTempDir, removeTempDir, sanitizerReports } = require('../integration/lib/rtmd');
const { makeCa, makeServerCert } = require('../integration/lib/tls');
const { launch, homeTrusting } = require('../integration/lib/browser');

let srv, dir;
const closers = [];

after(async () => {
  for (const c of closers.reverse()) await c();
  if (srv) {
    assert.equal(await srv.stop('SIGTERM'), 0, srv.diagnostics());
    await srv.cleanup();
  }
  if (dir) await removeTempDir(dir);
  assert.deepEqual(sanitizerReports(), []);
});

// Runs in the page: a minimal FPNN client over one WebSocket.
async function browserSession({ url, pid, uid, token, peer }) {
  const mp = globalThis.MessagePack;
  const opts = { useBigInt64: true };
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error('WebSocket failed to open'));
  });
  let seq = 0;
  const pending = new Map();
  const pushes = [];
  let onPush = () => {};
  const encode = (mtype, method, status, s, payload) => {
    const body = mp.encode(payload, opts);
    const m = mtype === 2 ? new Uint8Array(0) : new TextEncoder().encode(method);
    const buf = new Uint8Array(16 + m.length + body.length);
    const dv = new DataView(buf.buffer);
    buf.set([0x46, 0x50, 0x4e, 0x4e, 1, 0x80, mtype, mtype === 2 ? status : m.length]);
    dv.setUint32(8, body.length, true);
    dv.setUint32(12, s, true);
    buf.set(m, 16);
    buf.set(body, 16 + m.length);
    return buf;
  };
  ws.onmessage = (ev) => {
    const buf = new Uint8Array(ev.data);
    const dv = new DataView(ev.data);
    const mtype = buf[6];
    const ss = buf[7];
    const psize = dv.getUint32(8, true);
    const s = dv.getUint32(12, true);
    if (mtype === 2) {
      const payload = mp.decode(buf.subarray(16, 16 + psize), opts);
      const p = pending.get(s);
      pending.delete(s);
      if (ss === 0) p.resolve(payload);
      else p.reject(new Error(`error ${payload.code}: ${payload.ex}`));
      return;
    }
    const method = new TextDecoder().decode(buf.subarray(16, 16 + ss));
    const payload = mp.decode(buf.subarray(16 + ss, 16 + ss + psize), opts);
    if (mtype === 1) ws.send(encode(2, '', 0, s, {}));
    if (method !== 'ping') {
      pushes.push({ method, msg: payload.msg, from: String(payload.from) });
      onPush();
    }
  };
  const quest = (method, payload) => new Promise((resolve, reject) => {
    seq += 1;
    pending.set(seq, { resolve, reject });
    ws.send(encode(1, method, 0, seq, payload));
  });
  const auth = await quest('auth', { pid: BigInt(pid), uid: BigInt(uid), token, version: 'chromium' });
  const sent = await quest('sendmsg', { to: BigInt(peer), mid: 1n, mtype: 51, msg: 'from chromium', attrs: '' });
  const gotPush = pushes.some((p) => p.method === 'pushmsg') ? Promise.resolve()
    : new Promise((resolve) => { onPush = () => pushes.some((p) => p.method === 'pushmsg') && resolve(); });
  globalThis.rtmdReady = true;
  await gotPush;
  ws.close();
  return { ok: auth.ok, mtime: String(sent.mtime), pushes };
}

test('Chromium logs in and chats over wss', { timeout: 60000 }, async () => {
  dir = await makeTempDir();
  const ca = makeCa(dir);
  const cert = makeServerCert(dir, ca);
  srv = await startRtmd({ args: [`--tls_cert=${cert.cert}`, `--tls_key=${cert.key}`, '--client_wss_port=0', '--https_port=0'] });
  const app = await appServer(srv);
  closers.push(() => app.close());
  const peer = await login(srv, app, 7302, { transport: 'ws' });
  closers.push(() => peer.close());
  const url = `wss://localhost:${srv.ports.client_wss}/service/websocket`;
  const msgpackUmd = path.join(__dirname, '../integration/node_modules/@msgpack/msgpack/dist.umd/msgpack.min.js');

  // Trusting nothing: the TLS handshake fails and the page sees an error.
  const untrusting = await launch([], { home: path.join(dir, 'untrusting') });
  closers.push(() => untrusting.close());
  const p0 = await untrusting.newPage();
  await p0.addScriptTag({ path: msgpackUmd });
  const refused = await p0.evaluate(async (u) => new Promise((resolve) => {
    const ws = new WebSocket(u);
    ws.onopen = () => resolve('open');
    ws.onerror = () => resolve('error');
  }), url);
  assert.equal(refused, 'error');

  // Trusting the test CA.
  const browser = await launch([], { home: homeTrusting(path.join(dir, 'trusting'), ca.cert) });
  closers.push(() => browser.close());
  const page = await browser.newPage();
  await page.addScriptTag({ path: msgpackUmd });
  const token = await app.token(7301);
  const session = page.evaluate(browserSession, { url, pid: app.project.pid, uid: 7301, token, peer: 7302 });
  session.catch(() => {});
  const inbound = await peer.waitPush((q) => q.method === 'pushmsg', 20000);
  assert.equal(inbound.payload.msg, 'from chromium');
  assert.equal(fpnn.toNumber(inbound.payload.from), 7301);
  await page.waitForFunction(() => globalThis.rtmdReady === true, null, { timeout: 20000 });
  await peer.call('sendmsg', { to: fpnn.int64(7301), mid: fpnn.int64(2), mtype: 51, msg: 'to chromium', attrs: '' });
  const result = await session;
  assert.equal(result.ok, true);
  assert.ok(Number(result.mtime) > 0);
  assert.deepEqual(result.pushes.filter((p) => p.method === 'pushmsg').map((p) => [p.msg, p.from]), [['to chromium', '7302']]);
});
