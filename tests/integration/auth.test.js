'use strict';
// Identity: signed app-server requests (the current form; ts outside the
// window and replayed salts refused; tests/raw/sign-* cover the rest),
// tokens (gettoken, removetoken, expiry), client login (auth) with its error
// codes, uids of the string-id range (2^62 and above) refused to number-id
// clients (200001), multi-login policy, kickout, presence, session
// attributes.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { appServer, login, sign, expectCode, answerPushes } = require('./lib/rtm');
const { sanitizerReports, startRtmd, storeRows, withLogs, sleep, makeTempDir, removeTempDir, waitFor } = require('./lib/rtmd');
const { scrapeMetric } = require('./lib/http');
const fs = require('node:fs');
const path = require('node:path');

describe('identity and sessions', () => {
  let srv, single, app;
  const extra = [];
  const logs = () => [srv, single, ...extra];
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(logs, fn));
  const client = (s = srv) => fpnn.connect({ port: s.ports.client_tcp });

  before(async () => {
    const dir = await makeTempDir();
    const conf = path.join(dir, 'rtmd.conf');
    fs.writeFileSync(conf, '[project]\npid = 70001\nsecret = "secret-one-70001"\nmulti_login = 0\ntoken_ttl = 2\n' +
      '[project]\npid = 70002\nsecret = "secret-two-70002"\n');
    srv = await startRtmd({ args: ['--sign_window=60'] });
    single = await startRtmd({ args: [`--config=${conf}`] });
    app = await appServer(srv);
  });

  after(async () => {
    if (app.client && !app.client.isClosed) await app.close();
    for (const s of [srv, single]) {
      const code = await s.stop('SIGTERM');
      await s.cleanup();
      assert.equal(code, 0, `rtmd exit code after SIGTERM\n${s.diagnostics()}`);
    }
    for (const s of extra) await s.cleanup();
    assert.deepEqual(sanitizerReports(), []);
  });

  it('server requests need a valid signature of the current form; others get 200002', async () => {
    const p = app.project;
    const ok = await app.client.quest('getonlineusers', sign(p, 'getonlineusers', { uids: [] }));
    assert.deepEqual(ok.uids, []);
    await expectCode(app.client.quest('getonlineusers', { uids: [], pid: fpnn.int64(p.pid) }), 200002);
    await expectCode(app.client.quest('getonlineusers', sign({ ...p, secret: 'wrong-secret' }, 'getonlineusers', { uids: [] })), 200002);
    // signed for another method
    const other = sign(p, 'gettoken', { uids: [] });
    await expectCode(app.client.quest('getonlineusers', other), 200002);
    // unknown project
    await expectCode(app.client.quest('getonlineusers', sign({ pid: 999, secret: p.secret }, 'getonlineusers', { uids: [] })), 200002);
  });

  it('a ts outside the window is refused with 200008, a replayed salt with 200006', async () => {
    const p = app.project;
    const once = sign(p, 'getonlineusers', { uids: [] });
    await app.client.quest('getonlineusers', once);
    await expectCode(app.client.quest('getonlineusers', once), 200006);
    const stale = Math.floor(Date.now() / 1000) - 120;
    await expectCode(app.client.quest('getonlineusers', sign(p, 'getonlineusers', { uids: [] }, { ts: stale })), 200008);
    const future = Math.floor(Date.now() / 1000) + 120;
    await expectCode(app.client.quest('getonlineusers', sign(p, 'getonlineusers', { uids: [] }, { ts: future })), 200008);
  });

  it('gettoken mints a token that logs the user in; a wrong token answers ok:false', async () => {
    const token = await app.token(1001);
    assert.equal(typeof token, 'string');
    assert.ok(token.length >= 16);
    const c = await client();
    const bad = await c.quest('auth', { pid: fpnn.int64(app.project.pid), uid: fpnn.int64(1001), token: 'nope', version: 't' });
    assert.equal(bad.ok, false);
    const other = await c.quest('auth', { pid: fpnn.int64(app.project.pid), uid: fpnn.int64(1002), token, version: 't' });
    assert.equal(other.ok, false, 'a token is bound to its uid');
    const good = await c.quest('auth', { pid: fpnn.int64(app.project.pid), uid: fpnn.int64(1001), token, version: 't' });
    assert.equal(good.ok, true);
    await expectCode(c.quest('auth', { pid: fpnn.int64(app.project.pid), uid: fpnn.int64(1001), token, version: 't' }), 200023);
    await c.close();
  });

  it('uids of the string-id range (2^62 and above): no token (200001), no login (200001)', async () => {
    const base = 2n ** 62n;
    for (const uid of [base, base + 1n, 2n ** 63n - 1n]) {
      const e = await expectCode(app.call('gettoken', { uid: fpnn.int64(uid.toString()) }), 200001);
      assert.match(e.ex, /string-id/);
      const c = await client();
      // refused before the token is looked at: not ok:false but 200001
      await expectCode(c.quest('auth', { pid: fpnn.int64(app.project.pid), uid: fpnn.int64(uid.toString()), token: 'x', version: 't' }), 200001);
      await c.quest('ping', {});
      await c.close();
    }
    // The largest number-id uid is fine on both.
    const top = (base - 1n).toString();
    const u = await login(srv, app, top);
    assert.equal((await app.call('getonlineusers', { uids: [fpnn.int64(top)] })).uids.length, 1);
    await u.close();
    // JSON, signed as a JSON app server does, the uid written exactly.
    const salt = 1234567 + Math.floor(Math.random() * 1e6);
    const ts = Math.floor(Date.now() / 1000);
    const { sign: sig } = sign(app.project, 'gettoken', {}, { salt, ts });
    const text = `{"pid":${app.project.pid},"salt":${salt},"ts":${ts},"sign":"${sig}","uid":${base}}`;
    await expectCode(app.client.quest('gettoken', Buffer.from(text), { json: true }), 200001);
  });

  it('methods before auth get 200022; an unknown pid gets 200001', async () => {
    const c = await client();
    await expectCode(c.quest('getonlineusers', { uids: [] }), 200022);
    await expectCode(c.quest('auth', { pid: fpnn.int64(424242), uid: fpnn.int64(1), token: 'x', version: 't' }), 200001);
    await c.quest('ping', {});
    await c.close();
  });

  it('removetoken revokes; presence follows connections; getonlineusers caps at 200', async () => {
    const u = await login(srv, app, 2001);
    const online = await app.call('getonlineusers', { uids: [fpnn.int64(2001), fpnn.int64(2002)] });
    assert.deepEqual(online.uids.map(fpnn.toNumber), [2001]);
    const fromClient = await u.call('getonlineusers', { uids: [fpnn.int64(2001), fpnn.int64(2002)] });
    assert.deepEqual(fromClient.uids.map(fpnn.toNumber), [2001]);
    const tooMany = Array.from({ length: 201 }, (_, i) => fpnn.int64(i + 1));
    await expectCode(app.call('getonlineusers', { uids: tooMany }), 200032);
    // Every token of the user goes, and only the user's.
    const tokens = [await app.token(2002), await app.token(2002)];
    const other = await app.token(2003);
    await app.call('removetoken', { uid: fpnn.int64(2002) });
    for (const token of tokens) {
      const c = await client();
      const refused = await c.quest('auth', { pid: fpnn.int64(app.project.pid), uid: fpnn.int64(2002), token, version: 't' });
      assert.equal(refused.ok, false);
      await c.close();
    }
    const c = await client();
    const kept = await c.quest('auth', { pid: fpnn.int64(app.project.pid), uid: fpnn.int64(2003), token: other, version: 't' });
    assert.equal(kept.ok, true, "another user's token still works");
    await c.close();
    await u.close();
    await sleep(100);
    const after = await app.call('getonlineusers', { uids: [fpnn.int64(2001)] });
    assert.deepEqual(after.uids, []);
  });

  it('server kickout closes every connection of the user after a kickout push', async () => {
    // A multi-login project: on the demo project (single login) b's login
    // would itself kick a, before the kickout this test is about.
    const app2 = await appServer(single, { project: single.projects.find((p) => p.pid === '70002') });
    const a = await login(single, app2, 3001);
    const b = await login(single, app2, 3001, { transport: 'ws' });
    const pushes = [a.client.waitQuest('kickout', 3000), b.client.waitQuest('kickout', 3000)];
    await app2.call('kickout', { uid: fpnn.int64(3001) });
    await Promise.all(pushes);
    assert.equal(await a.client.waitClose(3000), true);
    assert.equal(await b.client.waitClose(3000), true);
    const online = await app2.call('getonlineusers', { uids: [fpnn.int64(3001)] });
    assert.deepEqual(online.uids, []);
    await app2.close();
  });

  it('addattrs/getattrs list the user connections; client kickout closes one by ce', async () => {
    // Project 70002 has no app_id: multi_login is 1 there (the demo project
    // has one, and so single login by default).
    const app2 = await appServer(single, { project: single.projects.find((p) => p.pid === '70002') });
    const a = await login(single, app2, 4001, { attrs: { device: 'phone' } });
    const b = await login(single, app2, 4001, { transport: 'ws' });
    await b.call('addattrs', { attrs: { device: 'browser', v: '2' } });
    // On a cluster (lib/rtmd.js) b may be on the other node, which a's node
    // learns through Redis a moment after the login.
    let got;
    assert.ok(await waitFor(async () => (got = await a.call('getattrs', {})).attrs.length === 2, 3000),
      'both connections listed');
    const mine = got.attrs.find((m) => m.my === '1');
    const other = got.attrs.find((m) => m.my === '0');
    assert.equal(mine.device, 'phone');
    assert.equal(other.device, 'browser');
    assert.equal(other.v, '2');
    assert.match(mine.login, /^\d+$/);
    await a.call('kickout', { ce: other.ce });
    assert.equal(await b.client.waitClose(3000), true);
    const left = await a.call('getattrs', {});
    assert.equal(left.attrs.length, 1);
    await a.close();
    await app2.close();
  });

  it('single-login projects: a new login kicks the older connection', async () => {
    const p1 = single.projects.find((p) => p.pid === '70001');
    const app1 = await appServer(single, { project: p1 });
    const first = await login(single, app1, 5001);
    const kicked = first.client.waitQuest('kickout', 3000);
    const second = await login(single, app1, 5001, { transport: 'ws' });
    await kicked;
    assert.equal(await first.client.waitClose(3000), true);
    const online = await app1.call('getonlineusers', { uids: [fpnn.int64(5001)] });
    assert.deepEqual(online.uids.map(fpnn.toNumber), [5001]);
    await second.close();
    await app1.close();
  });

  it('tokens expire after token_ttl; projects do not see each other', async () => {
    const p1 = single.projects.find((p) => p.pid === '70001');
    const p2 = single.projects.find((p) => p.pid === '70002');
    const app1 = await appServer(single, { project: p1 });
    const app2 = await appServer(single, { project: p2 });
    const token = await app1.token(6001);
    // A token of project 1 does not log in to project 2.
    const c = await client(single);
    const cross = await c.quest('auth', { pid: fpnn.int64(p2.pid), uid: fpnn.int64(6001), token, version: 't' });
    assert.equal(cross.ok, false);
    // A signature made with project 1's secret does not pass for project 2.
    await expectCode(app2.client.quest('gettoken', sign({ pid: p2.pid, secret: p1.secret }, 'gettoken', { uid: fpnn.int64(1) })), 200002);
    const u = await login(single, app1, 6002);
    const seen = await app2.call('getonlineusers', { uids: [fpnn.int64(6002)] });
    assert.deepEqual(seen.uids, [], 'project 2 does not see project 1 users');
    await sleep(3100);
    const late = await c.quest('auth', { pid: fpnn.int64(p1.pid), uid: fpnn.int64(6001), token, version: 't' });
    assert.equal(late.ok, false, 'expired token');
    await c.close();
    await u.close();
    await app1.close();
    await app2.close();
  });

  it('expired tokens are swept from memory and deleted from the store', async () => {
    const dir = await makeTempDir();
    const conf = path.join(dir, 'rtmd.conf');
    const p = { pid: 70003, secret: 'secret-three-70003' };
    fs.writeFileSync(conf, `[project]\npid = ${p.pid}\nsecret = "${p.secret}"\ntoken_ttl = 1\n`);
    const dataDir = path.join(dir, 'data');
    const s = await startRtmd({ config: conf, dataDir, args: ['--retention_interval=1'] });
    extra.push(s);
    const a = await appServer(s, { project: s.projects.find((x) => x.pid === String(p.pid)) });
    for (const uid of [8001, 8002, 8003]) await a.token(uid);
    assert.equal(await scrapeMetric(s.ports.http, 'rtmd_tokens'), 3);
    // Nobody tries them: the sweep alone forgets them once expired.
    const swept = await waitFor(async () => (await scrapeMetric(s.ports.http, 'rtmd_tokens')) === 0, 6000, 100);
    assert.ok(swept, `rtmd_tokens is ${await scrapeMetric(s.ports.http, 'rtmd_tokens')} 6 s after the tokens expired`);
    await sleep(1500); // the store's purge runs once per retention_interval
    await a.close();
    assert.equal(await s.stop('SIGTERM'), 0);
    assert.deepEqual(await storeRows(dataDir, 'SELECT count(*) FROM tokens'), [['0']], 'expired rows deleted from the store');
    await removeTempDir(dir);
  });

  it('tokens survive a restart; a stored token of a string-id uid logs nobody in', async () => {
    const token = await app.token(7001);
    await app.close();
    const code = await srv.stop('SIGTERM');
    assert.equal(code, 0);
    // As an older rtmd could have minted it.
    const old = (2n ** 62n).toString();
    const pid = srv.projects[0].pid;
    await storeRows(srv.dataDir,
      `INSERT INTO tokens(pid, uid, token, expires_at) VALUES (${pid}, ${old}, 'old-string-uid-token', ${Math.floor(Date.now() / 1000) + 3600})`);
    const again = await startRtmd({ dataDir: srv.dataDir });
    try {
      const c = await client(again);
      const ok = await c.quest('auth', { pid: fpnn.int64(again.projects[0].pid), uid: fpnn.int64(7001), token, version: 't' });
      assert.equal(ok.ok, true);
      await c.close();
      const d = await client(again);
      await expectCode(d.quest('auth', { pid: fpnn.int64(pid), uid: fpnn.int64(old), token: 'old-string-uid-token', version: 't' }), 200001);
      await d.close();
    } finally {
      assert.equal(await again.stop('SIGTERM'), 0);
      await again.cleanup();
    }
  });
});
