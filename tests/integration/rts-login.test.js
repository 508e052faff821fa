'use strict';
// String-id clients (RTS): auth with a string uid and an RTS AccessToken
// (minted by getrtstoken, and built by lib/rtstoken.js from the
// published format), the project named by its app_id or pid; invalid and
// expired tokens told apart; projects without RTS keys refusing string
// uids; numeric logins unchanged. Then what a string-id session does:
// sendmsg with a string `to` (text and binary) pushed with string `from`
// and `to`, a message to a user who never logged in read from history
// after its login, getonlinestatus, and the app server's getuserids and
// getstringids.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { buildRtsToken } = require('./lib/rtstoken');
const fpnn = require('./lib/fpnn');
const { appServer, expectCode, login, recordPushes, waitOnline, writeProjectsConfig } = require('./lib/rtm');
const { makeTempDir, onTwin, sanitizerReports, startRtmd, withLogs } = require('./lib/rtmd');

const APP_ID = 'Strid0123456789abcdefGHI';
const APP_KEY = 'strid-app-key';
const BASE = 2n ** 62n;

const buildToken = (opts) => buildRtsToken({ appId: APP_ID, key: APP_KEY, ...opts });

const now = () => Math.floor(Date.now() / 1000);

// A JSON quest of an app server, signed with plain numbers (lib/rtm.js).
const jsonCall = (a, method, payload) => a.call(method, payload, { json: true });

describe('string-id clients (RTS login, p2p, presence, translation)', () => {
  let srv, app, plain;
  const clients = [];
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(() => [srv], fn));
  const project = (pid) => srv.projects.find((p) => p.pid === String(pid));

  const connect = async (transport = 'tcp') => {
    const ports = { tcp: srv.ports.client_tcp, ws: srv.ports.client_ws };
    const port = ports[transport];
    const c = await fpnn.connect({ host: '127.0.0.1', port, transport });
    c.onTwin = onTwin(srv, port);
    recordPushes(c);
    for (const m of ['pushmsg', 'kickout']) c.onQuest(m, () => (m === 'kickout' ? undefined : {}));
    clients.push(c);
    return c;
  };
  // Logs a string-id user in with a token from getrtstoken; returns the link.
  const rtsLogin = async (uid, { transport, json = false } = {}) => {
    const { token } = await app.call('getrtstoken', { uid });
    const c = await connect(transport);
    const ans = await c.quest('auth', { appid: APP_ID, uid, token, version: 'rts-tests' }, { json });
    assert.deepEqual(ans, { ok: true });
    // On a cluster (lib/rtmd.js), presence reaches the app server's node a
    // moment after the login, as lib/rtm.js login() waits for.
    if (c.onTwin) await waitOnline(app, (await app.call('getuserids', { ids: [uid] })).uids[uid]);
    return c;
  };

  before(async () => {
    const conf = writeProjectsConfig(await makeTempDir(), [
      { pid: 51, secret: 'strid-project-secret', app_id: APP_ID, app_key: APP_KEY, multi_login: 0 },
      { pid: 52, secret: 'plain-project-secret' },
    ]);
    srv = await startRtmd({ config: conf });
    app = await appServer(srv, { project: project(51) });
    plain = await appServer(srv, { project: project(52) });
  });

  after(async () => {
    for (const c of clients) c.destroy();
    if (app) await app.close();
    if (plain) await plain.close();
    const alive = srv.alive;
    await srv.cleanup();
    assert.ok(alive, `rtmd died during the tests\n${srv.diagnostics()}`);
    assert.deepEqual(sanitizerReports(), []);
  });

  it('login with a getrtstoken token (msgpack, TCP and WebSocket; JSON), by appid or pid', async () => {
    await rtsLogin('alice');
    await rtsLogin('alice.ws', { transport: 'ws' });
    await rtsLogin('alice.json', { json: true });
    const { token } = await app.call('getrtstoken', { uid: 'by-pid' });
    const c = await connect();
    assert.deepEqual(await c.quest('auth', { pid: fpnn.int64(51), uid: 'by-pid', token, businessid: 'shop-1' }), { ok: true });
    // A logged-in link cannot log in again.
    await expectCode(c.quest('auth', { pid: fpnn.int64(51), uid: 'by-pid', token }), 200023);
  });

  it('login with a token built from the format (node:crypto), with and without expiry', async () => {
    let c = await connect();
    const t = buildToken({ user: 'built', issued: now(), expire: now() + 60 });
    assert.deepEqual(await c.quest('auth', { appid: APP_ID, uid: 'built', token: t }), { ok: true });
    c = await connect();
    const t0 = buildToken({ user: 'built0', issued: now(), expire: 0 });
    assert.deepEqual(await c.quest('auth', { appid: APP_ID, uid: 'built0', token: t0 }), { ok: true });
  });

  it('refusals: invalid (wrong key, app id, user, garbage, none) vs expired; the link stays usable', async () => {
    const c = await connect();
    const auth = (p) => c.quest('auth', { appid: APP_ID, uid: 'mallory', ...p });
    const invalid = { ok: false, reason: 'invalid' };
    const issued = now();
    assert.deepEqual(await auth({ token: buildToken({ user: 'mallory', key: 'other', issued, expire: 0 }) }), invalid);
    assert.deepEqual(await auth({ token: buildToken({ user: 'mallory', appId: 'Other0123456789abcdefGHI', issued, expire: 0 }) }), invalid);
    assert.deepEqual(await auth({ token: buildToken({ user: 'alice', issued, expire: 0 }) }), invalid);
    assert.deepEqual(await auth({ token: 'garbage' }), invalid);
    assert.deepEqual(await auth({}), invalid);
    const expired = buildToken({ user: 'mallory', issued: issued - 100, expire: issued - 10 });
    assert.deepEqual(await auth({ token: expired }), { ok: false, reason: 'expired' });
    // A forged expired token is invalid, not expired.
    assert.deepEqual(await auth({ token: buildToken({ user: 'mallory', key: 'x', issued: issued - 100, expire: issued - 10 }) }), invalid);
    const good = buildToken({ user: 'mallory', issued, expire: 0 });
    assert.deepEqual(await auth({ token: good }), { ok: true });
  });

  it('argument errors: unknown appid, invalid string uid, bad businessid', async () => {
    const c = await connect();
    const token = buildToken({ user: 'eve', issued: now(), expire: 0 });
    await expectCode(c.quest('auth', { appid: 'Nope0123456789abcdefGHIJ', uid: 'eve', token }), 200001);
    await expectCode(c.quest('auth', { appid: 'short', uid: 'eve', token }), 200001);
    await expectCode(c.quest('auth', { uid: 'eve', token }), 200001);
    await expectCode(c.quest('auth', { appid: APP_ID, uid: 'has space', token }), 200001);
    await expectCode(c.quest('auth', { appid: APP_ID, uid: 'x'.repeat(129), token }), 200001);
    await expectCode(c.quest('auth', { appid: APP_ID, uid: 'eve', token, businessid: 5 }), 10010);
    await expectCode(c.quest('auth', { appid: APP_ID, uid: 'eve', token, businessid: 'b'.repeat(129) }), 10010);
    assert.deepEqual(await c.quest('auth', { appid: APP_ID, uid: 'eve', token, businessid: 'b'.repeat(128) }), { ok: true });
  });

  it('a second login of the same string id kicks the first out (multi_login 0)', async () => {
    const first = await rtsLogin('dup.user');
    const kicked = first.waitQuest('kickout', 5000);
    const second = await rtsLogin('dup.user', { transport: 'ws' });
    await kicked;
    assert.ok(await first.waitClose(5000), 'the first link is closed');
    assert.deepEqual(await second.quest('getonlinestatus', { uids: ['dup.user'] }), { online: ['dup.user'] });
  });

  it('a project without app_id/app_key refuses string uids (200060)', async () => {
    const c = await connect();
    const token = buildToken({ user: 'alice', issued: now(), expire: 0 });
    const e = await expectCode(c.quest('auth', { pid: fpnn.int64(52), uid: 'alice', token }), 200060);
    assert.match(e.message, /app_id and app_key/);
  });

  it('numeric logins are unchanged, and a numeric client still uses integer ids', async () => {
    const u = await login(srv, app, 1001);
    const v = await login(srv, app, 1002);
    await u.call('sendmsg', { to: fpnn.int64(1002), mid: fpnn.int64(1), mtype: 30, msg: 'hi' });
    const p = await v.waitPush((q) => q.method === 'pushmsg');
    assert.equal(fpnn.toNumber(p.payload.from), 1001);
    assert.equal(fpnn.toNumber(p.payload.to), 1002);
    // A string `to` from a number-id session is not translated.
    await expectCode(u.call('sendmsg', { to: 'alice', mid: fpnn.int64(2), mtype: 30, msg: 'x' }), 10010);
    // getonlinestatus works for number ids too.
    assert.deepEqual((await u.call('getonlinestatus', { uids: [fpnn.int64(1002), fpnn.int64(1003)] })).online.map(fpnn.toNumber), [1002]);
    // A string-range uid still cannot log in as a number.
    await expectCode(login(srv, app, (BASE + 1n).toString()), 200001);
    await u.close();
    await v.close();
  });

  it('p2p between string-id users: text and binary, string from/to in the push, to a number-id user too', async () => {
    const a = await rtsLogin('p2p.alice');
    const b = await rtsLogin('p2p.bob', { transport: 'ws' });
    const r = await a.quest('sendmsg', { to: 'p2p.bob', mid: fpnn.int64(11), mtype: 30, msg: 'hello bob' });
    assert.ok(fpnn.toNumber(r.mtime) > 0);
    let p = await b.waitPush((q) => q.method === 'pushmsg' && fpnn.toNumber(q.payload.mid) === 11);
    assert.equal(p.payload.from, 'p2p.alice');
    assert.equal(p.payload.to, 'p2p.bob');
    assert.equal(p.payload.msg, 'hello bob');
    const bin = Buffer.from([0, 1, 2, 255, 254]);
    await b.quest('sendmsg', { to: 'p2p.alice', mid: fpnn.int64(12), mtype: 40, msg: bin });
    p = await a.waitPush((q) => q.method === 'pushmsg' && fpnn.toNumber(q.payload.mid) === 12);
    assert.equal(p.payload.from, 'p2p.bob');
    assert.ok(Buffer.isBuffer(p.payload.msg), 'binary stays binary');
    assert.deepEqual(p.payload.msg, bin);
    // To oneself: refused as for numbers.
    await expectCode(a.quest('sendmsg', { to: 'p2p.alice', mid: fpnn.int64(13), mtype: 30, msg: 'me' }), 200052);
    // Invalid string `to`.
    await expectCode(a.quest('sendmsg', { to: 'bad id', mid: fpnn.int64(14), mtype: 30, msg: 'x' }), 200001);
    // A number-id user: integer `to` from a string-id sender; its push has the
    // sender's uid (an integer), a string-id receiver of a number-id sender
    // gets an integer `from`.
    const n = await login(srv, app, 2001);
    await a.quest('sendmsg', { to: fpnn.int64(2001), mid: fpnn.int64(15), mtype: 30, msg: 'to a number' });
    p = await n.waitPush((q) => q.method === 'pushmsg' && fpnn.toNumber(q.payload.mid) === 15);
    assert.ok(BigInt(fpnn.toBigInt(p.payload.from)) >= BASE);
    const { uids } = await app.call('getuserids', { ids: ['p2p.alice'] });
    assert.equal(fpnn.toBigInt(p.payload.from), fpnn.toBigInt(uids['p2p.alice']));
    await n.call('sendmsg', { to: uids['p2p.alice'], mid: fpnn.int64(16), mtype: 30, msg: 'from a number' });
    p = await a.waitPush((q) => q.method === 'pushmsg' && fpnn.toNumber(q.payload.mid) === 16);
    assert.equal(fpnn.toNumber(p.payload.from), 2001);
    assert.equal(p.payload.to, 'p2p.alice');
    await n.close();
  });

  it('a message to a user who never logged in is read from history after its login', async () => {
    const a = await rtsLogin('hist.alice');
    await a.quest('sendmsg', { to: 'hist.newcomer', mid: fpnn.int64(21), mtype: 30, msg: 'welcome' });
    const c = await rtsLogin('hist.newcomer');
    const h = await c.quest('getp2pmsg', { ouid: 'hist.alice', desc: true, num: 10 });
    assert.equal(h.msgs.length, 1);
    assert.equal(fpnn.toNumber(h.msgs[0][1]), 2, 'received');
    assert.equal(fpnn.toNumber(h.msgs[0][3]), 21);
    assert.equal(h.msgs[0][5], 'welcome');
  });

  it('getonlinestatus: string ids including oneself, never-seen ids, bounds', async () => {
    const a = await rtsLogin('on.alice');
    const b = await rtsLogin('on.bob');
    const ask = (uids, json = false) => a.quest('getonlinestatus', { uids }, { json });
    assert.deepEqual(await ask(['on.alice', 'on.bob', 'on.nobody', 'bad id', 7]), { online: ['on.alice', 'on.bob'] });
    assert.deepEqual(await ask(['on.bob'], true), { online: ['on.bob'] });
    b.destroy();
    for (let i = 0; i < 100; i++) {
      if ((await ask(['on.bob'])).online.length === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(await ask(['on.bob', 'on.alice']), { online: ['on.alice'] });
    assert.deepEqual(await ask([]), { online: [] });
    await expectCode(ask(Array.from({ length: 201 }, (_, i) => `u${i}`)), 200032);
    await expectCode(a.quest('getonlinestatus', {}), 10009);
    await expectCode(a.quest('getonlinestatus', { uids: 'on.bob' }), 10010);
    // Not a server-gate method.
    await expectCode(app.call('getonlinestatus', { uids: ['on.alice'] }), 20004);
    // Never-seen ids asked about do not get mappings.
    assert.deepEqual(await app.call('getstringids', { uids: [] }), { ids: {} });
  });

  it('getuserids / getstringids translate for the app server (msgpack and JSON), unknown ones left out', async () => {
    await rtsLogin('tr.alice');
    const { uids } = await app.call('getuserids', { ids: ['tr.alice', 'tr.never', 'bad id', 5] });
    assert.deepEqual(Object.keys(uids).sort(), ['tr.alice', 'tr.never']);
    const alice = fpnn.toBigInt(uids['tr.alice']);
    const never = fpnn.toBigInt(uids['tr.never']);
    assert.ok(alice >= BASE && never >= BASE && alice !== never);
    // Stable; an id asked twice is one key of the answer.
    // (the raw answer: {uids|ids: map of one entry}, a decoder would hide a repeated key)
    const again = await app.call('getuserids', { ids: ['tr.alice', 'tr.alice'] }, { full: true });
    assert.equal(fpnn.toBigInt(again.payload.uids['tr.alice']), alice);
    assert.deepEqual([...again.raw.subarray(0, 7)], [0x81, 0xa4, ...Buffer.from('uids'), 0x81]);
    const twice = await app.call('getstringids', { uids: [fpnn.int64(alice), fpnn.int64(alice)] }, { full: true });
    assert.deepEqual(twice.payload, { ids: { [alice.toString()]: 'tr.alice' } });
    assert.deepEqual([...twice.raw.subarray(0, 6)], [0x81, 0xa3, ...Buffer.from('ids'), 0x81]);
    const { ids } = await app.call('getstringids', { uids: [fpnn.int64(alice), fpnn.int64(never), fpnn.int64(BASE + 999999n), fpnn.int64(77)] });
    assert.deepEqual(ids, { [alice.toString()]: 'tr.alice', [never.toString()]: 'tr.never' });
    // JSON: the same maps (a uid above 2^53 loses precision in a JSON number,
    // so only the keys are compared here).
    assert.deepEqual(Object.keys((await jsonCall(app, 'getuserids', { ids: ['tr.alice'] })).uids), ['tr.alice']);
    assert.deepEqual(Object.values((await jsonCall(app, 'getstringids', { uids: [1] })).ids), []);
    // Errors and bounds.
    await expectCode(app.call('getuserids', {}), 10009);
    await expectCode(app.call('getstringids', { uids: 'x' }), 10010);
    await expectCode(app.call('getuserids', { ids: Array.from({ length: 201 }, (_, i) => `u${i}`) }), 200032);
    // Each project has its own mappings.
    const other = await plain.call('getstringids', { uids: [fpnn.int64(alice)] });
    assert.deepEqual(other, { ids: {} });
  });
});
