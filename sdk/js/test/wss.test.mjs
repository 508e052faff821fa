// The SDK over wss:// (rtmd's WebSocket-over-TLS listener): two users log
// in with a certificate chain signed by a test CA that the client trusts,
// and exchange text and binary messages; a client that does not trust the
// CA never logs in and reports the failure as a login result, not as an
// unhandled exception.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import WebSocket from 'ws';
import { LOGIN_ERROR_CODE } from '../src/index.js';
import { setup, bytes, sameBytes, rtmdLib } from './helpers.mjs';

const require = createRequire(import.meta.url);
const { makeCa, makeServerCert } = require('../../../tests/integration/lib/tls.js');

let ctx;
after(async () => {
  if (ctx) await ctx.teardown();
});

test('text and binary over wss with a trusted chain; an untrusting client cannot log in', { timeout: 30000 }, async () => {
  const dir = await rtmdLib.makeTempDir('rtmd-sdk-tls-');
  const ca = makeCa(dir);
  const cert = makeServerCert(dir, ca);
  ctx = await setup({ args: [`--tls_cert=${cert.cert}`, `--tls_key=${cert.key}`, '--client_wss_port=0', '--https_port=0'] });
  // Read for each client: on a cluster they alternate between the nodes.
  const endpoint = () => `wss://localhost:${ctx.srv.ports.client_wss}`;
  // ws takes TLS options as its third argument; the SDK calls new WebSocket(url).
  class TrustingWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { ca: ca.pem });
    }
  }
  const a = await ctx.user('wss-a', { endpoint: endpoint(), WebSocket: TrustingWebSocket });
  const b = await ctx.user('wss-b', { endpoint: endpoint(), WebSocket: TrustingWebSocket });
  await a.sendMessage('wss-b', 'over tls');
  assert.deepEqual(await b.events.wait('onMessageReceived'), ['wss-a', 'over tls']);
  const blob = bytes(4096, 3);
  await b.sendBinaryMessage('wss-a', blob);
  const [from, got] = await a.events.wait('onBinaryMessageReceived');
  assert.equal(from, 'wss-b');
  assert.ok(sameBytes(got, blob));

  const untrusting = ctx.client({ endpoint: endpoint(), WebSocket, connectTimeoutMs: 3000 });
  await assert.rejects(untrusting.login(await ctx.token('wss-c'), 'wss-c'));
  const [uid, code] = await untrusting.events.wait('onLoginResult');
  assert.equal(uid, 'wss-c');
  assert.notEqual(code, LOGIN_ERROR_CODE.SUCCESS);
});
