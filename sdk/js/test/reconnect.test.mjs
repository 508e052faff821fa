// Reconnect: rtmd killed (SIGKILL) and started again on the same ports and
// data directory; the SDK goes RECONNECTING, then LOST after 10 s, and
// RECONNECTED once rtmd is back, logged in again with its token, and p2p
// works again; no unhandled rejection on the way. A kickout by the app
// server ends the session without reconnecting.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CONNECTION_STATE as S, CONNECTION_CHANGE_REASON as WHY, LOGOUT_REASON, ERROR_CODE } from '../src/index.js';
import { setup, sleep, rtmdLib, rtmLib, PID } from './helpers.mjs';

const unhandled = [];
process.on('unhandledRejection', (e) => unhandled.push(e));

describe('sdk reconnect', () => {
  let ctx;
  before(async () => {
    ctx = await setup();
  });
  after(async () => {
    await ctx.teardown();
  });

  test('rtmd killed and restarted: RECONNECTING, LOST, RECONNECTED, messages flow again', { timeout: 60000 }, async () => {
    const a = await ctx.user('rc-a');
    const b = await ctx.user('rc-b');
    await a.sendMessage('rc-b', 'before');
    await b.events.wait('onMessageReceived', (f, t) => t === 'before');
    const old = ctx.srv;
    // The ports it listened on (on a cluster, the first node's: its twin is
    // restarted on its own ports too, lib/rtmd.js).
    const ports = Object.fromEntries(Object.entries(old.listens).map(([gate, l]) => [gate, l.port]));
    await old.stop('SIGKILL');
    assert.deepEqual(await a.events.wait('onConnectionStateChanged', (s) => s === S.RECONNECTING), [S.RECONNECTING, WHY.NETWORK_LOST]);
    await b.events.wait('onConnectionStateChanged', (s) => s === S.RECONNECTING);
    // Sending while reconnecting is refused (20001), without a crash.
    await assert.rejects(a.sendMessage('rc-b', 'lost'), (e) => e.code === ERROR_CODE.CONNECTION_CLOSED);
    assert.deepEqual(await a.events.wait('onConnectionStateChanged', (s) => s === S.LOST, 15000), [S.LOST, WHY.RECONNECT_TIMEOUT]);
    ctx.srv = await rtmdLib.startRtmd({
      config: ctx.config,
      dataDir: old.dataDir,
      args: [`--client_tcp_port=${ports.client_tcp}`, `--client_ws_port=${ports.client_ws}`, `--server_tcp_port=${ports.server_tcp}`, `--http_port=${ports.http}`],
    });
    assert.equal(ctx.srv.listens.client_ws.port, ports.client_ws);
    ctx.app = await rtmLib.appServer(ctx.srv, { project: ctx.srv.projects.find((p) => p.pid === String(PID)) });
    // The backoff is at most reconnectMaxMs (1 s in the tests) plus jitter.
    assert.deepEqual(await a.events.wait('onConnectionStateChanged', (s) => s === S.RECONNECTED, 10000), [S.RECONNECTED, WHY.RECONNECT_SUCCESS]);
    await b.events.wait('onConnectionStateChanged', (s) => s === S.RECONNECTED, 10000);
    // Logged in again on their nodes: on a cluster, seen by the other one a moment later.
    await ctx.online('rc-a');
    await ctx.online('rc-b');
    await a.sendMessage('rc-b', 'after');
    await b.events.wait('onMessageReceived', (f, t) => t === 'after');
    await b.sendBinaryMessage('rc-a', new Uint8Array([9]).buffer);
    await a.events.wait('onBinaryMessageReceived');
    // login() results are not repeated by a reconnect; the states went in order.
    assert.equal(a.events.named('onLoginResult').length, 1);
    const states = a.events.named('onConnectionStateChanged').map(([s]) => s);
    assert.deepEqual(states, [S.CONNECTING, S.CONNECTED, S.RECONNECTING, S.LOST, S.RECONNECTED]);
    assert.deepEqual(unhandled, []);
  });

  test('kickout by the app server: onLogout(KICKED), DISCONNECTED, no reconnect', { timeout: 30000 }, async () => {
    const a = await ctx.user('kick-a');
    const { uids } = await ctx.app.call('getuserids', { ids: ['kick-a'] });
    await ctx.app.call('kickout', { uid: uids['kick-a'] });
    assert.deepEqual(await a.events.wait('onLogout'), [LOGOUT_REASON.KICKED]);
    await a.events.wait('onConnectionStateChanged', (s) => s === S.DISCONNECTED);
    await sleep(1500);
    const states = a.events.named('onConnectionStateChanged').map(([s]) => s);
    assert.deepEqual(states, [S.CONNECTING, S.CONNECTED, S.DISCONNECTED]);
    assert.equal(a.state, S.DISCONNECTED);
    // A new login works.
    await a.login(await ctx.token('kick-a'), 'kick-a');
    assert.deepEqual(unhandled, []);
  });
});
