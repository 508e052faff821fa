// RealTimeCat sessions in the SDK: joinSession(token) with tokens made
// through rtmd's REST API (fetch, as an app server would): two tokens of one
// session meet in its room (members, joined/left, text and binary both
// ways), a sub token receives but cannot send (200021), refused tokens
// (unknown, deleted, expired) reject the login with their codes, deleting
// the session or a token ends the session with onLogout(SESSION_CLOSED) and
// no reconnect, and a restart of rtmd is survived: re-login with the token,
// the room entered again.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  CONNECTION_STATE as S, CONNECTION_CHANGE_REASON as WHY, LOGIN_ERROR_CODE, LOGOUT_REASON, ERROR_CODE,
} from '../src/index.js';
import { setup, sleep, waitFor, rtmdLib, recordRoom, bytes, sameBytes } from './helpers.mjs';

const APIKEY = 'sdk-rtcat-apikey-0123456789';
const SECRET = 'sdk-rtcat-secret-0123456789';
const PERMISSION_DENIED = 200021;

const unhandled = [];
process.on('unhandledRejection', (e) => unhandled.push(e));

describe('sdk joinSession (RealTimeCat tokens)', () => {
  let ctx;
  // The REST API of rtmd: JSON bodies, the two X-RTCAT headers.
  const rest = async (method, path, body) => {
    const res = await fetch(`http://127.0.0.1:${ctx.srv.ports.http}/v0.4${path}`, {
      method,
      headers: { 'X-RTCAT-APIKEY': APIKEY, 'X-RTCAT-SECRET': SECRET, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    const json = text ? JSON.parse(text) : null;
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    if (method === 'DELETE') await onTwin(path, 404);
    return json;
  };
  // On a cluster (lib/rtmd.js) the clients log in on both nodes, and a change
  // through the first node reaches the twin's mirror a moment later
  // (docs/cluster.md, "Mirrors across nodes"): wait until the twin's GET of
  // path answers status. Alone it returns at once.
  const onTwin = async (path, status) => {
    if (!ctx.srv.twin) return;
    const seen = async () => (await fetch(`http://127.0.0.1:${ctx.srv.twin.ports.http}/v0.4${path}`, {
      headers: { 'X-RTCAT-APIKEY': APIKEY, 'X-RTCAT-SECRET': SECRET },
    })).status === status;
    assert.ok(await waitFor(seen, 5000), `${path}: ${status} on the other node`);
  };
  const newSession = (fields = {}) => rest('POST', '/sessions', { label: 'sdk-test', ...fields });
  const newToken = async (sid, fields = {}) => {
    const made = await rest('POST', `/sessions/${sid}/tokens`, fields);
    for (const t of Array.isArray(made) ? made : [made]) await onTwin(`/tokens/${t.uuid}`, 200);
    return made;
  };
  // A client that joined the session with token; its room's events recorded.
  const joined = async (token, options) => {
    const rts = ctx.client(options);
    const room = await rts.joinSession(token);
    room.events = recordRoom(room);
    return { rts, room };
  };

  before(async () => {
    ctx = await setup({ extra: { rtcat_apikey: APIKEY, rtcat_secret: SECRET, rtcat_day_seconds: 2 } });
  });
  after(async () => {
    await ctx.teardown();
    assert.deepEqual(unhandled, []);
  });

  test('two pub tokens of one session meet: members, joined/left, text and binary both ways', { timeout: 30000 }, async () => {
    const s = await newSession();
    const t1 = await newToken(s.uuid);
    const t2 = await newToken(s.uuid);
    const a = await joined(t1.uuid);
    assert.deepEqual(a.rts.sessionInfo, { uid: t1.uuid, session: s.uuid, type: 'pub' });
    assert.equal(a.room.roomId, s.uuid);
    assert.equal(a.rts.state, S.CONNECTED);
    assert.deepEqual(a.rts.events.named('onLoginResult').map(([u, c]) => [u, c]), [[t1.uuid, LOGIN_ERROR_CODE.SUCCESS]]);
    const b = await joined(t2.uuid);
    // Handlers set right after joinSession resolves see who was there.
    assert.deepEqual(await b.room.events.wait('onUserJoined'), [{ userId: t1.uuid, extraInfo: '' }]);
    assert.deepEqual(await a.room.events.wait('onUserJoined'), [{ userId: t2.uuid, extraInfo: '' }]);
    assert.equal(b.room.events.named('onRoomStateChanged')[0][2], 0);

    await a.room.sendRoomMessage('hello from a');
    assert.deepEqual(await b.room.events.wait('onRoomMessageReceived'), [t1.uuid, 'hello from a']);
    await b.room.sendRoomMessage('hello from b');
    assert.deepEqual(await a.room.events.wait('onRoomMessageReceived'), [t2.uuid, 'hello from b']);
    await a.room.sendRoomBinaryMessage(bytes(300, 1));
    const [fromA, binA] = await b.room.events.wait('onRoomBinaryMessageReceived');
    assert.equal(fromA, t1.uuid);
    assert.ok(sameBytes(binA, bytes(300, 1)));
    await b.room.sendRoomBinaryMessage(new Uint8Array(bytes(50, 7)));
    const [fromB, binB] = await a.room.events.wait('onRoomBinaryMessageReceived');
    assert.equal(fromB, t2.uuid);
    assert.ok(sameBytes(binB, bytes(50, 7)));
    // Each hears only the other (no echo of one's own messages).
    assert.equal(a.room.events.named('onRoomMessageReceived').length, 1);

    await b.room.leaveRoom();
    assert.deepEqual(await a.room.events.wait('onUserLeave'), [t2.uuid, 0]);
    await b.rts.logout();
    assert.equal(b.rts.sessionInfo, null);
    // A new joinSession on the same instance works after a logout.
    const again = await b.rts.joinSession(t2.uuid);
    assert.equal(again, b.room);
    await a.room.events.wait('onUserJoined', (u) => u.userId === t2.uuid && a.room.events.named('onUserJoined').length === 2);
    await assert.rejects(b.rts.joinSession(t2.uuid), (e) => e.code === ERROR_CODE.ALREADY_LOGGED_IN);
  });

  test('a sub token receives but its sends reject with 200021', { timeout: 30000 }, async () => {
    const s = await newSession();
    const pub = await newToken(s.uuid, { type: 'pub' });
    const sub = await newToken(s.uuid, { type: 'sub' });
    const a = await joined(pub.uuid);
    const r = await joined(sub.uuid);
    assert.deepEqual(r.rts.sessionInfo, { uid: sub.uuid, session: s.uuid, type: 'sub' });
    await a.room.events.wait('onUserJoined', (u) => u.userId === sub.uuid);
    await a.room.sendRoomMessage('to everyone');
    assert.deepEqual(await r.room.events.wait('onRoomMessageReceived'), [pub.uuid, 'to everyone']);
    await assert.rejects(r.room.sendRoomMessage('may I?'), (e) => e.code === PERMISSION_DENIED);
    await assert.rejects(r.room.sendRoomBinaryMessage(bytes(4)), (e) => e.code === PERMISSION_DENIED);
    assert.deepEqual(r.room.events.named('onRoomMessageSendResult').map(([, err]) => err), [PERMISSION_DENIED, PERMISSION_DENIED]);
    await sleep(200);
    assert.equal(a.room.events.named('onRoomMessageReceived').length, 0);
    assert.equal(r.rts.state, S.CONNECTED, 'a refused send does not end the session');
  });

  test('unknown, deleted and expired tokens reject the login with their codes', { timeout: 30000 }, async () => {
    const refused = async (token, loginError, reason) => {
      const rts = ctx.client();
      await assert.rejects(rts.joinSession(token), (e) => e.code === ERROR_CODE.INVALID_AUTH_TOKEN && e.loginError === loginError && e.reason === reason);
      assert.equal(rts.state, S.DISCONNECTED);
      assert.equal(rts.sessionInfo, null);
      assert.deepEqual(rts.events.named('onLoginResult').map(([, c]) => c), [loginError]);
      return rts;
    };
    await refused(randomUUID(), LOGIN_ERROR_CODE.INVALID_TOKEN, 'invalid');
    const s = await newSession();
    const t = await newToken(s.uuid);
    await rest('DELETE', `/tokens/${t.uuid}`);
    await refused(t.uuid, LOGIN_ERROR_CODE.INVALID_TOKEN, 'invalid');
    // A token of one day, a day being 2 s here (rtcat_day_seconds).
    const short = await newToken(s.uuid, { live_days: 1 });
    const ok = await joined(short.uuid);
    await ok.rts.logout();
    await sleep(2500);
    const rts = await refused(short.uuid, LOGIN_ERROR_CODE.TOKEN_EXPIRED, 'expired');
    assert.equal(rts.events.named('onTokenExpired').length, 1);
    // A deleted session's tokens are refused.
    const gone = await newSession();
    const tg = await newToken(gone.uuid);
    await rest('DELETE', `/sessions/${gone.uuid}`);
    await refused(tg.uuid, LOGIN_ERROR_CODE.INVALID_TOKEN, 'invalid');
    // Not a token at all: refused by the SDK before sending.
    await assert.rejects(ctx.client().joinSession(''), (e) => e.code === ERROR_CODE.INVALID_PARAMETER);
  });

  test('deleting the session or a token: onLogout(SESSION_CLOSED), DISCONNECTED, no reconnect', { timeout: 30000 }, async () => {
    const s = await newSession();
    const [t1, t2, t3] = await newToken(s.uuid, { number: 3 });
    const a = await joined(t1.uuid);
    const b = await joined(t2.uuid);
    const c = await joined(t3.uuid);
    await a.room.events.wait('onUserJoined', (u) => u.userId === t3.uuid);
    // The token of c is deleted: c is out, the others see it leave.
    await rest('DELETE', `/tokens/${t3.uuid}`);
    assert.deepEqual(await c.rts.events.wait('onLogout'), [LOGOUT_REASON.SESSION_CLOSED]);
    assert.deepEqual(await c.rts.events.wait('onConnectionStateChanged', (st) => st === S.DISCONNECTED), [S.DISCONNECTED, WHY.SESSION_CLOSED]);
    await a.room.events.wait('onUserLeave', (u) => u === t3.uuid);
    assert.equal(c.rts.sessionInfo, null);
    // The session is deleted: both are out.
    await rest('DELETE', `/sessions/${s.uuid}`);
    for (const x of [a, b]) {
      assert.deepEqual(await x.rts.events.wait('onLogout'), [LOGOUT_REASON.SESSION_CLOSED]);
      await x.rts.events.wait('onConnectionStateChanged', (st) => st === S.DISCONNECTED);
    }
    await sleep(1500);
    for (const x of [a, b, c]) {
      const states = x.rts.events.named('onConnectionStateChanged').map(([st]) => st);
      assert.deepEqual(states, [S.CONNECTING, S.CONNECTED, S.DISCONNECTED]);
      assert.equal(x.rts.events.named('onLogout').length, 1);
    }
  });

  test('rtmd restarted: re-login with the token, the session room entered again, messages flow', { timeout: 60000 }, async () => {
    const s = await newSession({ permanent: true });
    const t1 = await newToken(s.uuid);
    const t2 = await newToken(s.uuid);
    const a = await joined(t1.uuid);
    const b = await joined(t2.uuid);
    await a.room.events.wait('onUserJoined', (u) => u.userId === t2.uuid);
    const old = ctx.srv;
    // The ports it listened on (on a cluster, the first node's: its twin is
    // restarted on its own ports too, lib/rtmd.js).
    const listened = (srv) => Object.fromEntries(Object.entries(srv.listens).map(([gate, l]) => [gate, l.port]));
    const ports = listened(old);
    await old.stop('SIGKILL');
    await a.rts.events.wait('onConnectionStateChanged', (st) => st === S.RECONNECTING);
    await b.rts.events.wait('onConnectionStateChanged', (st) => st === S.RECONNECTING);
    ctx.srv = await rtmdLib.startRtmd({
      config: ctx.config,
      dataDir: old.dataDir,
      args: [`--client_tcp_port=${ports.client_tcp}`, `--client_ws_port=${ports.client_ws}`, `--server_tcp_port=${ports.server_tcp}`, `--http_port=${ports.http}`],
    });
    for (const x of [a, b]) {
      await x.rts.events.wait('onConnectionStateChanged', (st) => st === S.RECONNECTED, 15000);
      const [rid, uid, state, extra] = await x.room.events.wait('onRoomStateChanged', (...args) => JSON.parse(args[3]).join_type === 1, 10000);
      assert.deepEqual([rid, uid, state], [s.uuid, x.rts.sessionInfo.uid, 0]);
      assert.equal(JSON.parse(extra).join_type, 1);
    }
    assert.deepEqual(a.rts.sessionInfo, { uid: t1.uuid, session: s.uuid, type: 'pub' });
    // Both are in the room again: a message crosses.
    await b.room.sendRoomMessage('after the restart');
    assert.deepEqual(await a.room.events.wait('onRoomMessageReceived', (f, m) => m === 'after the restart'), [t2.uuid, 'after the restart']);

    // Down again; b's token is deleted before b is back: its re-login is
    // refused and the session is over for b (no more attempts); a goes on.
    // b's next attempt is put off (its backoff made 10 minutes) and then
    // made at once, after the delete.
    b.rts.reconnectMinMs = 600000;
    b.rts.reconnectMaxMs = 600000;
    const ports2 = listened(ctx.srv);
    const old2 = ctx.srv;
    await old2.stop('SIGKILL');
    await b.rts.events.wait('onConnectionStateChanged', (st) => st === S.RECONNECTING && b.rts.events.named('onConnectionStateChanged').filter(([x]) => x === S.RECONNECTING).length === 2);
    ctx.srv = await rtmdLib.startRtmd({
      config: ctx.config,
      dataDir: old2.dataDir,
      args: [`--client_tcp_port=${ports2.client_tcp}`, `--client_ws_port=${ports2.client_ws}`, `--server_tcp_port=${ports2.server_tcp}`, `--http_port=${ports2.http}`],
    });
    await rest('DELETE', `/tokens/${t2.uuid}`);
    b.rts._reconnectNow();
    assert.deepEqual(await b.rts.events.wait('onLogout', () => true, 15000), [LOGOUT_REASON.SESSION_CLOSED]);
    assert.deepEqual(await b.rts.events.wait('onConnectionStateChanged', (st) => st === S.DISCONNECTED), [S.DISCONNECTED, WHY.INVALID_TOKEN]);
    assert.deepEqual(b.rts.events.named('onLoginResult').map(([u, c]) => [u, c]), [[t2.uuid, LOGIN_ERROR_CODE.SUCCESS], [t2.uuid, LOGIN_ERROR_CODE.INVALID_TOKEN]]);
    assert.equal(b.rts.sessionInfo, null);
    await a.rts.events.wait('onConnectionStateChanged', (st) => st === S.RECONNECTED && a.rts.events.named('onConnectionStateChanged').filter(([x]) => x === S.RECONNECTED).length === 2, 15000);
    await sleep(1500);
    assert.equal(b.rts.state, S.DISCONNECTED);
    assert.equal(b.rts.events.named('onLogout').length, 1);
  });
});
