'use strict';
// The admin page's API, GET /admin/api/stats, from Node alone (no
// browser): off by default (every /admin path is 404, as any unknown
// path); on with admin_token, a request without "Authorization: Bearer
// <admin_token>" is refused with 401, WWW-Authenticate: Bearer and a JSON
// error, whatever near miss it carries; every API answer has
// Cache-Control: no-store; and the figures follow known traffic: sessions
// per project, connections per gate, logins by result, messages by kind,
// the store, the fullest rooms and the last warning logged.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const fpnn = require('./lib/fpnn');
const { get } = require('./lib/http');
const { AppServer, appServer, login, writeProjectsConfig } = require('./lib/rtm');
const { makeTempDir, sanitizerReports, startRtmd, waitFor, withLogs, TEST_STORE } = require('./lib/rtmd');

const TOKEN = 'admin-http-token-0123456789';
const I = (v) => fpnn.int64(String(v));
let nextMid = 7300000000n;
const freshMid = () => I(nextMid++);

const servers = [];
after(async () => {
  for (const s of servers) {
    const alive = s.alive;
    await s.cleanup();
    assert.ok(alive, `rtmd died during the test\n${s.diagnostics()}`);
  }
  assert.deepEqual(sanitizerReports(), []);
});

async function start(args, projects = [{ pid: 731, secret: 'admin-http-secret-a' }]) {
  const dir = await makeTempDir();
  const srv = await startRtmd({ config: writeProjectsConfig(dir, projects), args });
  servers.push(srv);
  return srv;
}

const stats = (srv, headers = {}) => get(srv.ports.http, '/admin/api/stats', { headers });
const bearer = (token) => ({ Authorization: `Bearer ${token}` });

async function figures(srv) {
  const r = await stats(srv, bearer(TOKEN));
  assert.equal(r.status, 200, r.body);
  assert.equal(r.headers['cache-control'], 'no-store');
  assert.equal(r.headers['x-content-type-options'], 'nosniff');
  assert.match(r.headers['content-type'], /^application\/json/);
  return JSON.parse(r.body);
}

test('off by default: every /admin path answers 404, with or without a token', withLogs(() => servers, async () => {
  const page = await makeTempDir();
  fs.writeFileSync(path.join(page, 'index.html'), '<!doctype html><title>x</title>');
  const srv = await start([`--admin_dir=${page}`]); // a page but no token: still off
  for (const p of ['/admin', '/admin/', '/admin/index.html', '/admin/api/stats']) {
    const r = await get(srv.ports.http, p, { headers: bearer(TOKEN) });
    assert.equal(r.status, 404, `${p}: ${r.body}`);
    assert.equal(JSON.parse(r.body).error, 'not_found');
  }
  assert.match(srv.stderr, /admin_dir is set but admin_token is empty: the admin page is off/);
}));

test('on: refused without the right bearer token, answered with it; no-store on every answer',
  withLogs(() => servers, async () => {
    const srv = await start([`--admin_token=${TOKEN}`]);
    const misses = [{}, bearer('wrong-token-0123456789'), bearer(TOKEN.slice(0, -1)), bearer(`${TOKEN}x`),
      bearer(''), { Authorization: TOKEN }, { Authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` }];
    for (const headers of misses) {
      const r = await stats(srv, headers);
      assert.equal(r.status, 401, JSON.stringify(headers));
      assert.match(r.headers['www-authenticate'], /^Bearer/);
      assert.equal(r.headers['cache-control'], 'no-store');
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
      assert.match(r.headers['content-type'], /^application\/json/);
      assert.equal(JSON.parse(r.body).error, 'unauthorized');
      assert.ok(!r.body.includes(TOKEN.slice(0, 8)), 'the answer never shows the token');
    }
    // The scheme's case does not matter (RFC 7235); the token's does.
    assert.equal((await stats(srv, { Authorization: `bearer ${TOKEN}` })).status, 200);
    assert.equal((await stats(srv, bearer(TOKEN.toUpperCase()))).status, 401);
    const post = await get(srv.ports.http, '/admin/api/stats', { method: 'POST', headers: bearer(TOKEN) });
    assert.equal(post.status, 405);
    assert.equal(post.headers['cache-control'], 'no-store');
    // No admin_dir: the API alone, no page.
    assert.equal((await get(srv.ports.http, '/admin/')).status, 404);
    const f = await figures(srv);
    assert.match(f.version, /^\d+\.\d+/);
    assert.ok(Number.isInteger(f.uptime_seconds) && f.uptime_seconds >= 0);
    assert.ok(!srv.stderr.includes(TOKEN), 'the token is never logged');
  }));

test('ten wrong tokens a minute from one address, then 429 for that address only, even with the right token',
  withLogs(() => servers, async () => {
    const srv = await start([`--admin_token=${TOKEN}`]);
    const from = (localAddress, token) => get(srv.ports.http, '/admin/api/stats', { headers: bearer(token), localAddress });
    for (let i = 0; i < 10; i++) assert.equal((await from('127.0.0.1', `wrong-token-${i}-0123456789`)).status, 401);
    const locked = await from('127.0.0.1', TOKEN);
    assert.equal(locked.status, 429);
    assert.equal(JSON.parse(locked.body).error, 'too_many_failures');
    assert.ok(Number(locked.headers['retry-after']) > 0 && Number(locked.headers['retry-after']) <= 60);
    assert.equal(locked.headers['cache-control'], 'no-store');
    // Another address keeps its own count.
    assert.equal((await from('127.0.0.2', TOKEN)).status, 200);
    assert.equal((await from('127.0.0.2', 'wrong-token-x-0123456789')).status, 401);
  }));

test('the figures follow known traffic', { timeout: 60000 }, withLogs(() => servers, async () => {
  const projects = [{ pid: 732, secret: 'admin-http-secret-b' }, { pid: 733, secret: 'admin-http-secret-c' }];
  const srv = await start([`--admin_token=${TOKEN}`, '--sign_fail_max=2'], projects);
  const before = await figures(srv);
  const pA = srv.projects.find((p) => p.pid === '732'), pB = srv.projects.find((p) => p.pid === '733');
  const appA = await appServer(srv, { project: pA }), appB = await appServer(srv, { project: pB });
  // The figures are one node's: on a cluster, every client on the first.
  const { ports } = srv.node(0);
  const users = [];
  for (const [app, uid] of [[appA, 1], [appA, 2], [appA, 3], [appB, 9]]) users.push(await login(srv, app, uid, { ports }));
  // A refused login: a token that is not one.
  const c = await fpnn.connect({ port: ports.client_tcp });
  const bad = await c.quest('auth', { pid: I(732), uid: I(4), token: 'not-a-token', version: 't' });
  assert.equal(bad.ok, false);
  c.destroy();
  // Room 50 gets 3 members, room 51 one.
  for (const u of users.slice(0, 3)) await u.call('enterroom', { rid: I(50) });
  await users[0].call('enterroom', { rid: I(51) });
  for (let i = 0; i < 3; i++)
    await appA.call('sendmsg', { from: I(1), to: I(2), mid: freshMid(), mtype: 30, msg: `p${i}`, attrs: '' });
  for (let i = 0; i < 2; i++)
    await appA.call('sendroommsg', { from: I(1), rid: I(50), mid: freshMid(), mtype: 30, msg: `r${i}`, attrs: '' });

  const f = await figures(srv);
  assert.deepEqual(f.projects.map((p) => [p.pid, p.sessions]).sort(), [[732, 3], [733, 1]]);
  assert.equal(f.sessions, 4);
  assert.ok(f.connections.client_tcp >= 4, JSON.stringify(f.connections));
  assert.ok(f.connections.server_tcp >= 2, JSON.stringify(f.connections));
  assert.ok(f.connections.http >= 1, JSON.stringify(f.connections));
  assert.equal(f.logins.ok - before.logins.ok, 4);
  assert.equal(f.logins.denied - before.logins.denied, 1);
  assert.equal(f.messages.p2p - before.messages.p2p, 3);
  assert.equal(f.messages.room - before.messages.room, 2);
  assert.equal(f.messages.group, before.messages.group);
  if (TEST_STORE === 'sqlite') assert.ok(f.store.bytes > 0, `store.bytes ${f.store.bytes}`);
  else assert.equal(f.store.bytes, null);
  assert.ok(Number.isInteger(f.store.pending));
  for (const stage of ['apply', 'server']) {
    assert.ok(f.store.latency[stage].count > before.store.latency[stage].count, stage);
    assert.ok(f.store.latency[stage].sum_ns > before.store.latency[stage].sum_ns, stage);
  }
  assert.deepEqual(f.top_rooms.slice(0, 2), [{ pid: 732, rid: 50, members: 3 }, { pid: 732, rid: 51, members: 1 }]);

  // A warning: an app-server link whose signatures fail twice is closed.
  assert.ok(!f.recent_errors.some((l) => l.includes('failed signatures')));
  const forger = new AppServer((await appServer(srv, { project: pA })).client, { ...pA, secret: 'not-the-secret' });
  for (let i = 0; i < 2; i++) await assert.rejects(forger.call('getonlineusers', { uids: [I(1)] }));
  const seen = await waitFor(async () => (await figures(srv)).recent_errors.some((l) =>
    / warn +conn \d+ \S+: 2 failed signatures in a row, closing the link/.test(l)), 5000);
  assert.ok(seen, `the warning is among the recent errors: ${JSON.stringify((await figures(srv)).recent_errors)}`);
  forger.client.destroy();
  for (const u of users) u.client.destroy();
  await appA.close();
  await appB.close();
}));
