// Login (success, invalid and expired tokens, updateLoginToken logging in
// again on its own, bad user id), logout, getPeerOnlineStatus (peer and
// oneself), setBusinessId before and after login, getSdkVersion/createRTS
// arguments, destroyRTS.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import {
  createRTS, destroyRTS, getSdkVersion, CONNECTION_STATE, LOGIN_ERROR_CODE, LOGOUT_REASON, USER_ONLINE_STATUS, ERROR_CODE,
} from '../src/index.js';
import { setup, buildToken, now, sleep, waitFor, APP_ID } from './helpers.mjs';

describe('sdk session', () => {
  let ctx;
  before(async () => {
    ctx = await setup();
  });
  after(async () => {
    await ctx.teardown();
  });

  test('getSdkVersion and createRTS arguments', () => {
    assert.equal(getSdkVersion(), '0.1.0');
    assert.throws(() => createRTS('', { endpoint: 'ws://127.0.0.1:1', WebSocket }), TypeError);
    assert.throws(() => createRTS(APP_ID, { endpoint: 'http://127.0.0.1:1', WebSocket }), TypeError);
    // Node 20 has no global WebSocket and no page location: both must be given.
    assert.throws(() => createRTS(APP_ID, { WebSocket }), /endpoint/);
    const r = createRTS(APP_ID, { endpoint: 'ws://127.0.0.1:9', WebSocket });
    assert.equal(r.url, 'ws://127.0.0.1:9/service/websocket');
    assert.equal(createRTS(APP_ID, { endpoint: 'wss://h.example:13322/x/y', WebSocket }).url, 'wss://h.example:13322/x/y');
  });

  test('login: success with events in order, then logout', async () => {
    const rts = ctx.client();
    await rts.login(await ctx.token('sess-a'), 'sess-a');
    const [uid, code, elapsed] = await rts.events.wait('onLoginResult');
    assert.equal(uid, 'sess-a');
    assert.equal(code, LOGIN_ERROR_CODE.SUCCESS);
    assert.ok(elapsed >= 0);
    assert.deepEqual(rts.events.named('onConnectionStateChanged').map((a) => a[0]), [CONNECTION_STATE.CONNECTING, CONNECTION_STATE.CONNECTED]);
    // A second login on the same instance is refused.
    await assert.rejects(rts.login(await ctx.token('sess-a'), 'sess-a'), (e) => e.code === ERROR_CODE.ALREADY_LOGGED_IN);
    await rts.logout();
    assert.deepEqual((await rts.events.wait('onLogout'))[0], LOGOUT_REASON.LOGOUT);
    assert.equal(rts.events.named('onConnectionStateChanged').at(-1)[0], CONNECTION_STATE.DISCONNECTED);
    // Offline now, seen from another user; messages are refused locally.
    const b = await ctx.user('sess-b');
    assert.ok(await waitFor(async () => (await b.getPeerOnlineStatus('sess-a')) === USER_ONLINE_STATUS.OFFLINE, 3000));
    await assert.rejects(rts.sendMessage('sess-b', 'x'), (e) => e.code === ERROR_CODE.NOT_LOGGED_IN);
    // And it can log in again.
    await rts.login(await ctx.token('sess-a'), 'sess-a');
    assert.equal(await b.getPeerOnlineStatus('sess-a'), USER_ONLINE_STATUS.ONLINE);
  });

  test('login with an invalid token: INVALID_TOKEN; updateLoginToken logs in on its own', async () => {
    const rts = ctx.client();
    const bad = buildToken({ user: 'sess-inv', issued: now(), expire: 0, key: 'not-the-key' });
    await assert.rejects(rts.login(bad, 'sess-inv'), (e) => e.code === ERROR_CODE.INVALID_AUTH_TOKEN && e.loginError === LOGIN_ERROR_CODE.INVALID_TOKEN);
    assert.deepEqual((await rts.events.wait('onLoginResult')).slice(0, 2), ['sess-inv', LOGIN_ERROR_CODE.INVALID_TOKEN]);
    assert.equal(rts.events.named('onTokenExpired').length, 0);
    await rts.updateLoginToken(await ctx.token('sess-inv'));
    await rts.events.wait('onLoginResult', (u, c) => c === LOGIN_ERROR_CODE.SUCCESS);
    await rts.events.wait('onConnectionStateChanged', (s) => s === CONNECTION_STATE.CONNECTED);
    await ctx.online('sess-inv'); // a login of updateLoginToken's, not through ctx's wrapper
    const other = await ctx.user('sess-inv-peer');
    assert.equal(await other.getPeerOnlineStatus('sess-inv'), USER_ONLINE_STATUS.ONLINE);
  });

  test('login with an expired token: TOKEN_EXPIRED and onTokenExpired; updateLoginToken logs in', async () => {
    const rts = ctx.client();
    const expired = buildToken({ user: 'sess-exp', issued: now() - 100, expire: now() - 10 });
    await assert.rejects(rts.login(expired, 'sess-exp'), (e) => e.loginError === LOGIN_ERROR_CODE.TOKEN_EXPIRED && e.reason === 'expired');
    await rts.events.wait('onTokenExpired');
    assert.equal((await rts.events.wait('onLoginResult'))[1], LOGIN_ERROR_CODE.TOKEN_EXPIRED);
    // A token from getrtstoken with a lifetime, as an app server hands out.
    await rts.updateLoginToken(await ctx.token('sess-exp', 600));
    await rts.events.wait('onLoginResult', (u, c) => c === LOGIN_ERROR_CODE.SUCCESS);
    assert.equal(await rts.getPeerOnlineStatus('sess-exp'), USER_ONLINE_STATUS.ONLINE);
  });

  test('updateLoginToken while logged in only keeps the token', async () => {
    const rts = await ctx.user('sess-upd');
    await rts.updateLoginToken(await ctx.token('sess-upd'));
    await sleep(200);
    assert.equal(rts.events.named('onLoginResult').length, 1);
    assert.equal(rts.state, CONNECTION_STATE.CONNECTED);
  });

  test('login refusals: bad user id, unknown app id, unreachable server', async () => {
    const rts = ctx.client();
    await assert.rejects(rts.login('x', 'not valid!'), (e) => e.loginError === LOGIN_ERROR_CODE.INVALID_USER_ID);
    assert.equal((await rts.events.wait('onLoginResult'))[1], LOGIN_ERROR_CODE.INVALID_USER_ID);
    const other = createRTS('Unknown0123456789abcdefG', { endpoint: ctx.endpoint(), WebSocket });
    await assert.rejects(other.login(await ctx.token('sess-x'), 'sess-x'), (e) => e.code === 200001 && e.loginError === LOGIN_ERROR_CODE.INVALID_USER_ID);
    destroyRTS(other);
    const dead = createRTS(APP_ID, { endpoint: 'ws://127.0.0.1:9', WebSocket, connectTimeoutMs: 2000 });
    await assert.rejects(dead.login(await ctx.token('sess-x'), 'sess-x'), (e) => e.loginError === LOGIN_ERROR_CODE.LOGIN_FAILED);
    assert.equal(dead.state, CONNECTION_STATE.DISCONNECTED);
    destroyRTS(dead);
  });

  test('getPeerOnlineStatus of a peer and of oneself, with onPeerOnlineStatus', async () => {
    const a = await ctx.user('pres-a');
    assert.equal(await a.getPeerOnlineStatus('pres-a'), USER_ONLINE_STATUS.ONLINE);
    assert.equal(await a.getPeerOnlineStatus('pres-nobody'), USER_ONLINE_STATUS.OFFLINE);
    const b = await ctx.user('pres-b');
    assert.equal(await a.getPeerOnlineStatus('pres-b'), USER_ONLINE_STATUS.ONLINE);
    assert.deepEqual(a.events.named('onPeerOnlineStatus'), [['pres-a', 1], ['pres-nobody', 0], ['pres-b', 1]]);
    await b.logout();
    assert.ok(await waitFor(async () => (await a.getPeerOnlineStatus('pres-b')) === USER_ONLINE_STATUS.OFFLINE, 3000));
    // Not logged in: refused.
    await assert.rejects(ctx.client().getPeerOnlineStatus('pres-a'), (e) => e.code === ERROR_CODE.NOT_LOGGED_IN);
  });

  test('setBusinessId: true before login (and the login carries it), false after', async () => {
    const rts = ctx.client();
    assert.equal(rts.setBusinessId('shop-1'), true);
    assert.equal(rts.setBusinessId('x'.repeat(129)), false);
    await rts.login(await ctx.token('biz-a'), 'biz-a');
    assert.equal(rts.setBusinessId('shop-2'), false);
    assert.equal(rts.businessId, 'shop-1');
    await rts.logout();
    assert.equal(rts.setBusinessId('shop-2'), true);
  });

  test('destroyRTS logs out and stops events', async () => {
    const rts = await ctx.user('destroy-a');
    const watcher = await ctx.user('destroy-w');
    const n = rts.events.length;
    destroyRTS(rts);
    assert.ok(await waitFor(async () => (await watcher.getPeerOnlineStatus('destroy-a')) === USER_ONLINE_STATUS.OFFLINE, 3000));
    assert.equal(rts.events.length, n);
    await assert.rejects(rts.login('x', 'destroy-a'), (e) => e.code === ERROR_CODE.DESTROYED);
  });
});
