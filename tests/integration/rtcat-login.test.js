'use strict';
// RealTimeCat token login on the client gate (auth.c, rtcat/, strid.c):
// auth with rtcat_token answers the token's uid, session and type, or
// refuses it (invalid: unknown or deleted; expired); 200060 for a project
// without the API; the rights of such a connection (only its session's
// room, 200021 elsewhere and for a sub token sending, 200020 for other
// methods); the pub/sub exchange in the session's room over WebSocket with
// membership pushes; a second login with the same token logging the first
// out; deleting the session or the token kicking with its reason.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { sdk } = require('./lib/rtcat');
const { User, answerPushes, expectCode, writeProjectsConfig } = require('./lib/rtm');
const { makeTempDir, sanitizerReports, sleep, startRtmd, withLogs } = require('./lib/rtmd');

const APP_ID = 'RtcatLogin0123456789abcd';
const I = fpnn.int64;

describe('RealTimeCat token login', () => {
  let srv, cat;
  const links = [];
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(() => [srv], fn));

  // ports: the client ports of one node (srv.node(i).ports) rather than alternating.
  const connect = async (transport = 'ws', ports = srv.ports) => {
    const port = transport === 'ws' ? ports.client_ws : ports.client_tcp;
    const client = await fpnn.connect({ host: '127.0.0.1', port, transport });
    answerPushes(client);
    for (const m of ['pushroomjoined', 'pushroomleft', 'pushroommsg', 'kickout']) client.onQuest(m, () => ({}));
    links.push(client);
    return client;
  };
  const tokenLogin = async (token, { transport = 'ws', args = { appid: APP_ID }, ports } = {}) => {
    const client = await connect(transport, ports);
    const u = new User(client, token);
    const answer = await client.quest('auth', { ...args, rtcat_token: token, version: 'rtcat-login-tests' });
    u.answer = answer;
    return u;
  };
  const newSession = async (opts = {}) => (await cat.createSession(opts)).json;
  const newToken = async (sessionId, opts = {}) => (await cat.createToken({ session_id: sessionId, ...opts })).json;

  before(async () => {
    const conf = writeProjectsConfig(await makeTempDir(), [
      { pid: 95, secret: 'rtcat-login-secret-95', app_id: APP_ID, app_key: 'rtcat-login-key',
        rtcat_apikey: 'login-key', rtcat_secret: 'login-secret', rtcat_day_seconds: 1 },
      { pid: 96, secret: 'rtcat-login-secret-96' },
    ]);
    srv = await startRtmd({ config: conf });
    cat = sdk(srv.ports.http, 'login-key', 'login-secret');
  });

  after(async () => {
    for (const c of links) if (!c.isClosed) c.destroy();
    assert.equal(await srv.stop('SIGTERM'), 0, srv.diagnostics());
    await srv.cleanup();
    assert.deepEqual(sanitizerReports(), []);
  });

  it('login: ok with uid, session and type; invalid, expired, deleted; 200060 without the API', async () => {
    const s = await newSession({ label: 'login' });
    const pub = await newToken(s.uuid);
    const sub = await newToken(s.uuid, { type: 'sub' });
    let u = await tokenLogin(pub.uuid);
    assert.deepEqual(u.answer, { ok: true, uid: pub.uuid, session: s.uuid, type: 'pub' });
    // By pid, over TCP, JSON.
    const c = await connect('tcp');
    assert.deepEqual(await c.quest('auth', { pid: 95, rtcat_token: sub.uuid }, { json: true }),
      { ok: true, uid: sub.uuid, session: s.uuid, type: 'sub' });
    // Unknown, malformed, deleted.
    u = await tokenLogin('00000000-0000-4000-8000-000000000000');
    assert.deepEqual(u.answer, { ok: false, reason: 'invalid' });
    u = await tokenLogin('not a token');
    assert.deepEqual(u.answer, { ok: false, reason: 'invalid' });
    const gone = await newToken(s.uuid);
    await cat.delToken(gone.uuid);
    u = await tokenLogin(gone.uuid);
    assert.deepEqual(u.answer, { ok: false, reason: 'invalid' });
    // Expired: a "day" is one second here.
    const short = await newToken(s.uuid, { live_days: 1 });
    const shortSession = await newSession({ live_days: 1 });
    const inShort = await newToken(shortSession.uuid, { permanent: true });
    await sleep(1200);
    u = await tokenLogin(short.uuid);
    assert.deepEqual(u.answer, { ok: false, reason: 'expired' });
    u = await tokenLogin(inShort.uuid);
    assert.deepEqual(u.answer, { ok: false, reason: 'expired' }, 'its session expired');
    // A project without rtcat_apikey.
    const other = await connect();
    await expectCode(other.quest('auth', { pid: 96, rtcat_token: pub.uuid }), 200060);
  });

  it('rights: only the session room; sub tokens do not send; other methods 200020', async () => {
    const s = await newSession();
    const pub = await tokenLogin((await newToken(s.uuid)).uuid);
    const sub = await tokenLogin((await newToken(s.uuid, { type: 'sub' })).uuid);
    const other = await newSession();
    for (const u of [pub, sub]) {
      await expectCode(u.call('enterroom', { rid: other.uuid }), 200021);
      await expectCode(u.call('enterroom', { rid: I(12) }), 200021);
      await expectCode(u.call('sendroommsg', { rid: other.uuid, mid: I(1), mtype: 30, msg: 'x' }), 200021);
      await expectCode(u.call('getroommsg', { rid: other.uuid, desc: true, num: 10 }), 200021);
      await expectCode(u.call('leaveroom', { rid: 'lobby' }), 200021);
      await expectCode(u.call('sendmsg', { to: 'someone', mid: I(2), mtype: 30, msg: 'x' }), 200020);
      await expectCode(u.call('getonlineusers', { uids: [] }), 200020);
      await expectCode(u.call('addattrs', { attrs: {} }), 200020);
      await expectCode(u.call('getroommsg', { rid: other.uuid }, { json: true }), 200021);
    }
    await sub.call('enterroom', { rid: s.uuid });
    const e = await expectCode(sub.call('sendroommsg', { rid: s.uuid, mid: I(3), mtype: 30, msg: 'x' }), 200021);
    assert.match(e.message, /receive only/);
    // ping still works.
    await pub.call('ping', {});
  });

  it('pub and sub exchange messages in the session room over WebSocket, with membership pushes', async () => {
    const s = await newSession();
    const t1 = await newToken(s.uuid);
    const t2 = await newToken(s.uuid);
    const t3 = await newToken(s.uuid, { type: 'sub' });
    // One node: the members list of enterroom and the membership pushes are
    // those of the node of the change (docs/cluster.md, "Rooms across nodes").
    const ports = srv.node(0).ports;
    const a = await tokenLogin(t1.uuid, { ports });
    const b = await tokenLogin(t2.uuid, { ports });
    const v = await tokenLogin(t3.uuid, { ports });
    assert.deepEqual(await a.call('enterroom', { rid: s.uuid }), { members: [] });
    assert.deepEqual(await b.call('enterroom', { rid: s.uuid }), { members: [t1.uuid] });
    let p = await a.waitPush((x) => x.method === 'pushroomjoined' && x.payload.uid === t2.uuid);
    assert.deepEqual(p.payload, { rid: s.uuid, uid: t2.uuid });
    assert.deepEqual([...(await v.call('enterroom', { rid: s.uuid }, { json: true })).members].sort(),
      [t1.uuid, t2.uuid].sort());
    await b.waitPush((x) => x.method === 'pushroomjoined' && x.payload.uid === t3.uuid);
    const ans = await a.call('sendroommsg', { rid: s.uuid, mid: I(10), mtype: 30, msg: 'hello' });
    assert.ok(ans.mtime !== undefined);
    for (const u of [b, v]) {
      p = await u.waitPush((x) => x.method === 'pushroommsg' && x.payload.msg === 'hello');
      assert.equal(p.payload.from, t1.uuid);
      assert.equal(p.payload.rid, s.uuid);
    }
    const hist = await v.call('getroommsg', { rid: s.uuid, desc: true, num: 10 });
    assert.ok(hist.msgs.some((m) => m[5] === 'hello' || (m.msg === 'hello')) || hist.num >= 1);
    await b.call('leaveroom', { rid: s.uuid });
    p = await a.waitPush((x) => x.method === 'pushroomleft' && x.payload.uid === t2.uuid);
    assert.equal(p.payload.rid, s.uuid);
  });

  it('a second login with the same token logs the first out (duplicate_login)', async () => {
    const s = await newSession();
    const t = await newToken(s.uuid);
    const first = await tokenLogin(t.uuid);
    assert.equal(first.answer.ok, true);
    const second = await tokenLogin(t.uuid);
    assert.equal(second.answer.ok, true);
    const k = await first.waitPush((x) => x.method === 'kickout');
    assert.equal(k.payload.reason, 'duplicate_login');
    await first.client.waitClosed?.(5000);
    await second.call('enterroom', { rid: s.uuid });
  });

  it('deleting the session kicks its logins (session_deleted), deleting a token kicks its own (token_deleted)', async () => {
    const s = await newSession();
    const ta = await newToken(s.uuid);
    const tb = await newToken(s.uuid, { type: 'sub' });
    const tc = await newToken(s.uuid);
    const a = await tokenLogin(ta.uuid);
    const b = await tokenLogin(tb.uuid);
    const c = await tokenLogin(tc.uuid);
    await a.call('enterroom', { rid: s.uuid });
    await c.call('enterroom', { rid: s.uuid });
    assert.equal((await cat.delToken(tc.uuid)).status, 204);
    let k = await c.waitPush((x) => x.method === 'kickout');
    assert.equal(k.payload.reason, 'token_deleted');
    await a.waitPush((x) => x.method === 'pushroomleft' && x.payload.uid === tc.uuid);
    assert.equal(a.pushes.filter((x) => x.method === 'kickout').length, 0, 'only the token\'s connection');
    assert.equal((await cat.delSession(s.uuid)).status, 204);
    for (const u of [a, b]) {
      k = await u.waitPush((x) => x.method === 'kickout');
      assert.equal(k.payload.reason, 'session_deleted');
    }
    // The token is gone for a new login too.
    assert.deepEqual((await tokenLogin(ta.uuid)).answer, { ok: false, reason: 'invalid' });
  });
});
