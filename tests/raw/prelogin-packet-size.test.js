'use strict';
// Before a link authenticated, prelogin_max_packet (64 KiB by default) bounds
// its packets and WebSocket messages instead of max_packet: a link that
// announces a larger one is closed as soon as its header arrives, without
// the server buffering it. Once logged in (or signed once, on the server
// gate), max_packet applies.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fpnn = require('../integration/lib/fpnn');
const { startRtmd, withLogs } = require('../integration/lib/rtmd');
const { appServer, login, stopChecked } = require('../integration/lib/rtm');
const { rawConnect, closedWithin, wsUpgrade, wsBinaryHeader } = require('../integration/lib/rawsock');

const BIG = 1024 * 1024; // under max_packet (2 MiB), over prelogin_max_packet
const ABOVE_PRELOGIN = 200 * 1024;
let srv;
let app;

before(async () => {
  srv = await startRtmd({ args: ['--handshake_timeout=60', '--login_timeout=60'] });
  app = await appServer(srv);
});

after(() => stopChecked(srv, [app]));

// The first bytes of a quest whose header announces a BIG payload.
function bigQuestHead() {
  const packet = fpnn.encodePacket({ mtype: fpnn.MTYPE_TWOWAY, method: '*echo', seq: 1, payload: Buffer.alloc(BIG, 0xc0) });
  return packet.subarray(0, 4096);
}

for (const gate of ['client_tcp', 'server_tcp']) {
  test(`${gate}: a packet announced over prelogin_max_packet closes the link at once`, { timeout: 10000 }, withLogs(() => srv, async () => {
    const s = await rawConnect(srv.ports[gate]);
    s.write(bigQuestHead());
    assert.ok(await closedWithin(s, 1500), 'link holding the start of a 1 MiB packet before login is closed');
  }));
}

test('client_ws: a message announced over prelogin_max_packet closes the link at once', { timeout: 10000 }, withLogs(() => srv, async () => {
  const s = await rawConnect(srv.ports.client_ws);
  s.write(wsUpgrade(srv.listens.client_ws.path));
  s.write(Buffer.concat([wsBinaryHeader(BIG), Buffer.alloc(4096, 1)]));
  assert.ok(await closedWithin(s, 1500), 'link announcing a 1 MiB message before login is closed');
  const got = s.received;
  assert.match(got.toString('latin1'), /^HTTP\/1\.1 101 /, 'the upgrade itself was accepted');
  const close = got.subarray(got.indexOf('\r\n\r\n') + 4);
  assert.equal(close[0], 0x88, 'a close frame follows');
  assert.equal(close.readUInt16BE(2), 1009, 'with status 1009 (message too big)');
}));

for (const transport of ['tcp', 'ws']) {
  test(`${transport}: once logged in, packets up to max_packet are taken`, { timeout: 10000 }, withLogs(() => srv, async () => {
    const user = await login(srv, app, transport === 'tcp' ? 9101 : 9102, { transport });
    try {
      const sent = { b: crypto.randomBytes(ABOVE_PRELOGIN) };
      const got = await user.call('*echo', sent);
      assert.ok(sent.b.equals(got.b));
    } finally {
      await user.close();
    }
  }));
}

test('server_tcp: once a request was signed, packets up to max_packet are taken', { timeout: 10000 }, withLogs(() => srv, async () => {
  const a = await appServer(srv);
  try {
    assert.ok(await a.token(9103));
    const sent = { b: crypto.randomBytes(ABOVE_PRELOGIN) };
    const got = await a.client.quest('*echo', sent);
    assert.ok(sent.b.equals(got.b));
  } finally {
    await a.close();
  }
}));
