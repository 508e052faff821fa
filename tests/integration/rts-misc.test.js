'use strict';
// RTS projects (those with an app_id), beyond login: sendmsgs of a
// string-id session with string ids in `tos`; messages up to 64 KiB (the
// default max_msg_bytes of an app_id project), text and binary, over TCP
// and WebSocket, for sendmsg and sendroommsg, 65,537 bytes refused with
// 200030, 20,481 still refused without app_id; single login by default
// (multi_login 0) with the kickout push's reason, "duplicate_login" or
// "kicked"; explicit settings winning over those defaults, and the demo
// project getting them; businessid in the P2Server POST, in listen events
// and messages, and counted in /metrics.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const fpnn = require('./lib/fpnn');
const { appServer, expectCode, login, recordPushes, waitOnline, writeProjectsConfig } = require('./lib/rtm');
const { get, scrapeMetric, scrapeNodes } = require('./lib/http');
const { makeTempDir, onTwin, sanitizerReports, startRtmd, withLogs } = require('./lib/rtmd');

const I = fpnn.int64;
const APP_ID = 'RtsMisc0123456789abcdefG';
const APP_ID_EXPLICIT = 'RtsMisc0123456789abcdefH';
const KB64 = 64 * 1024;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('RTS projects: sendmsgs, 64 KiB messages, duplicate login, businessid', () => {
  let srv, demo, app, explicitApp, plainApp, demoApp, appHttp, appPort;
  const posts = [];
  const clients = [];
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(() => [srv, demo], fn));
  const project = (s, pid) => s.projects.find((p) => p.pid === String(pid));

  const connect = async (s, transport, ports = s.ports) => {
    ports = { tcp: ports.client_tcp, ws: ports.client_ws };
    const c = await fpnn.connect({ host: '127.0.0.1', port: ports[transport], transport });
    c.onTwin = onTwin(s, ports[transport]);
    recordPushes(c);
    for (const m of ['pushmsg', 'pushroommsg', 'kickout']) c.onQuest(m, () => (m === 'kickout' ? undefined : {}));
    clients.push(c);
    return c;
  };
  // A string-id login (by app id, or by pid for the demo project).
  // ports: the client ports of one node (srv.node(i).ports) rather than alternating.
  const rtsLogin = async (uid, { transport = 'ws', on = srv, via = app, businessid, appid = APP_ID, ports } = {}) => {
    const { token } = await via.call('getrtstoken', { uid });
    const c = await connect(on, transport, ports);
    const args = on === srv ? { appid, uid, token } : { pid: I(via.project.pid), uid, token };
    if (businessid !== undefined) args.businessid = businessid;
    assert.deepEqual(await c.quest('auth', args), { ok: true });
    // On a cluster (lib/rtmd.js), presence reaches the app server's node a
    // moment after the login, as lib/rtm.js login() waits for.
    if (c.onTwin) await waitOnline(via, (await via.call('getuserids', { ids: [uid] })).uids[uid]);
    return c;
  };
  const byMid = (method, mid) => (q) => q.method === method && fpnn.toNumber(q.payload.mid) === mid;

  before(async () => {
    appHttp = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (d) => chunks.push(d));
      req.on('end', () => {
        posts.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('ok');
      });
    });
    appPort = await new Promise((r) => appHttp.listen(0, '127.0.0.1', () => r(appHttp.address().port)));
    const conf = writeProjectsConfig(await makeTempDir(), [
      { pid: 61, secret: 'rts-misc-secret-61', app_id: APP_ID, app_key: 'rts-misc-key',
        p2server_allow: `http://127.0.0.1:${appPort}/rtm/` },
      { pid: 62, secret: 'rts-misc-secret-62', app_id: APP_ID_EXPLICIT, app_key: 'rts-misc-key-2', multi_login: 1,
        max_msg_bytes: 30000 },
      { pid: 63, secret: 'rts-misc-secret-63' },
    ]);
    srv = await startRtmd({ config: conf });
    demo = await startRtmd();
    app = await appServer(srv, { project: project(srv, 61) });
    explicitApp = await appServer(srv, { project: project(srv, 62) });
    plainApp = await appServer(srv, { project: project(srv, 63) });
    demoApp = await appServer(demo);
  });

  after(async () => {
    for (const c of clients) c.destroy();
    for (const a of [app, explicitApp, plainApp, demoApp]) if (a) await a.close();
    if (appHttp) await new Promise((r) => appHttp.close(() => r()));
    const alive = srv.alive && demo.alive;
    await srv.cleanup();
    await demo.cleanup();
    assert.ok(alive, `rtmd died during the tests\n${srv.diagnostics()}\n${demo.diagnostics()}`);
    assert.deepEqual(sanitizerReports(), []);
  });

  // ---- sendmsgs ----

  it('sendmsgs of a string-id session: string ids and integers in tos, pushes with string ids', async () => {
    const a = await rtsLogin('sm.alice');
    const b = await rtsLogin('sm.bob', { transport: 'tcp' });
    const n = await login(srv, app, 3001);
    const r = await a.quest('sendmsgs', { tos: ['sm.bob', I(3001), 'sm.newcomer', 'sm.bob', 'sm.alice'], mid: I(1),
      mtype: 30, msg: 'to all' });
    assert.ok(fpnn.toNumber(r.mtime) > 0);
    let p = await b.waitPush(byMid('pushmsg', 1));
    assert.equal(p.payload.from, 'sm.alice');
    assert.equal(p.payload.to, 'sm.bob');
    assert.equal(p.payload.msg, 'to all');
    p = await n.waitPush((q) => q.method === 'pushmsg' && fpnn.toNumber(q.payload.mid) === 1);
    const { uids } = await app.call('getuserids', { ids: ['sm.alice'] });
    assert.equal(fpnn.toBigInt(p.payload.from), fpnn.toBigInt(uids['sm.alice']));
    await sleep(100);
    assert.equal(b.pushes.filter(byMid('pushmsg', 1)).length, 1, 'a repeated receiver gets one push');
    // The never-seen receiver got its uid and reads the message after login.
    const c = await rtsLogin('sm.newcomer');
    const h = await c.quest('getp2pmsg', { ouid: 'sm.alice', desc: true, num: 10 });
    assert.equal(h.msgs.length, 1);
    assert.equal(h.msgs[0][5], 'to all');
    // Binary stays binary; the JSON form of the quest is translated too.
    const bin = Buffer.from([0, 255, 1, 254]);
    await a.quest('sendmsgs', { tos: ['sm.bob'], mid: I(2), mtype: 30, msg: bin });
    p = await b.waitPush(byMid('pushmsg', 2));
    assert.ok(Buffer.isBuffer(p.payload.msg));
    assert.deepEqual(p.payload.msg, bin);
    await a.quest('sendmsgs', { tos: ['sm.bob'], mid: 3, mtype: 30, msg: 'json' }, { json: true });
    p = await b.waitPush(byMid('pushmsg', 3));
    assert.equal(p.payload.from, 'sm.alice');
    await n.close();
  });

  it('sendmsgs errors: an invalid string id 200001, only oneself 200052, empty 200033, too many 200032', async () => {
    const a = await rtsLogin('sme.alice');
    const send = (tos, mid) => a.quest('sendmsgs', { tos, mid: I(mid), mtype: 30, msg: 'x' });
    await expectCode(send(['sme.bob', 'bad id'], 10), 200001);
    await expectCode(send(['x'.repeat(129)], 11), 200001);
    await expectCode(send(['sme.alice'], 12), 200052);
    await expectCode(send([], 13), 200033);
    await expectCode(send(Array.from({ length: 2001 }, (_, i) => `sme.u${i}`), 14), 200032);
    await expectCode(send([1.5], 15), 10010);
    await expectCode(a.quest('sendmsgs', { tos: 'sme.bob', mid: I(16), mtype: 30, msg: 'x' }), 10010);
    // The refused lists stored nothing: sme.bob has no message.
    const bob = await rtsLogin('sme.bob', { transport: 'tcp' });
    assert.equal((await bob.quest('getp2pmsg', { ouid: 'sme.alice', desc: true, num: 10 })).msgs.length, 0);
  });

  // ---- 64 KiB messages ----

  for (const transport of ['ws', 'tcp']) {
    it(`64 KiB p2p text and binary arrive intact, one byte more is 200030 (${transport})`, async () => {
      const a = await rtsLogin(`big.alice.${transport}`, { transport });
      const b = await rtsLogin(`big.bob.${transport}`, { transport });
      const to = `big.bob.${transport}`;
      const text = 'é'.repeat(KB64 / 2); // 65,536 bytes of UTF-8
      assert.equal(Buffer.byteLength(text), KB64);
      const bin = Buffer.alloc(KB64);
      for (let i = 0; i < bin.length; i++) bin[i] = (i * 7) & 255;
      await a.quest('sendmsg', { to, mid: I(100), mtype: 30, msg: text });
      let p = await b.waitPush(byMid('pushmsg', 100));
      assert.equal(p.payload.msg, text);
      await a.quest('sendmsg', { to, mid: I(101), mtype: 30, msg: bin });
      p = await b.waitPush(byMid('pushmsg', 101));
      assert.ok(Buffer.isBuffer(p.payload.msg), 'binary stays binary in the push');
      assert.ok(p.payload.msg.equals(bin));
      // History keeps both as they were sent.
      const h = await b.quest('getp2pmsg', { ouid: `big.alice.${transport}`, desc: true, num: 10 });
      const byId = (mid) => h.msgs.find((m) => fpnn.toNumber(m[3]) === mid);
      assert.equal(byId(100)[5], text);
      assert.ok(Buffer.isBuffer(byId(101)[5]) && byId(101)[5].equals(bin), 'binary stays binary in history');
      await expectCode(a.quest('sendmsg', { to, mid: I(102), mtype: 30, msg: 'a'.repeat(KB64 + 1) }), 200030);
      await expectCode(a.quest('sendmsg', { to, mid: I(103), mtype: 30, msg: Buffer.alloc(KB64 + 1) }), 200030);
      // The link lives on.
      await a.quest('sendmsg', { to, mid: I(104), mtype: 30, msg: 'after' });
      await b.waitPush(byMid('pushmsg', 104));
    });
  }

  it('64 KiB room messages (integer rid), text and binary; 65,537 bytes 200030', async () => {
    const rid = 6101;
    const a = await rtsLogin('room.alice');
    const b = await rtsLogin('room.bob', { transport: 'tcp' });
    for (const c of [a, b]) await c.quest('enterroom', { rid: I(rid) });
    const text = 'x'.repeat(KB64);
    const bin = Buffer.alloc(KB64, 0xab);
    await a.quest('sendroommsg', { rid: I(rid), mid: I(200), mtype: 30, msg: text });
    let p = await b.waitPush(byMid('pushroommsg', 200));
    assert.equal(p.payload.msg, text);
    await a.quest('sendroommsg', { rid: I(rid), mid: I(201), mtype: 30, msg: bin });
    p = await b.waitPush(byMid('pushroommsg', 201));
    assert.ok(Buffer.isBuffer(p.payload.msg) && p.payload.msg.equals(bin));
    const h = await b.quest('getroommsg', { rid: I(rid), desc: true, num: 10 });
    const m = h.msgs.find((x) => fpnn.toNumber(x[3]) === 201);
    assert.ok(Buffer.isBuffer(m[5]) && m[5].equals(bin), 'binary stays binary in room history');
    await expectCode(a.quest('sendroommsg', { rid: I(rid), mid: I(202), mtype: 30, msg: 'x'.repeat(KB64 + 1) }), 200030);
    await expectCode(a.quest('sendroommsg', { rid: I(rid), mid: I(203), mtype: 30, msg: Buffer.alloc(KB64 + 1) }), 200030);
  });

  it('a project without app_id keeps 20,480 bytes; an explicit max_msg_bytes wins; the demo project has 64 KiB', async () => {
    const u = await login(srv, plainApp, 4001);
    await login(srv, plainApp, 4002);
    await u.call('sendmsg', { to: I(4002), mid: I(1), mtype: 30, msg: 'a'.repeat(20480) });
    await expectCode(u.call('sendmsg', { to: I(4002), mid: I(2), mtype: 30, msg: 'a'.repeat(20481) }), 200030);
    const e = await rtsLogin('explicit.alice', { via: explicitApp, appid: APP_ID_EXPLICIT });
    await e.quest('sendmsg', { to: 'explicit.bob', mid: I(1), mtype: 30, msg: 'a'.repeat(30000) });
    await expectCode(e.quest('sendmsg', { to: 'explicit.bob', mid: I(2), mtype: 30, msg: 'a'.repeat(30001) }), 200030);
    const d = await rtsLogin('demo.alice', { on: demo, via: demoApp });
    await d.quest('sendmsg', { to: 'demo.bob', mid: I(1), mtype: 30, msg: Buffer.alloc(KB64) });
    await expectCode(d.quest('sendmsg', { to: 'demo.bob', mid: I(2), mtype: 30, msg: Buffer.alloc(KB64 + 1) }), 200030);
  });

  // ---- duplicate login ----

  it('a second login of a string id logs the first out with reason duplicate_login', async () => {
    const first = await rtsLogin('dup.alice');
    const kicked = first.waitQuest('kickout', 5000);
    const second = await rtsLogin('dup.alice', { transport: 'tcp' });
    const k = await kicked;
    assert.deepEqual(k.payload, { reason: 'duplicate_login' });
    assert.ok(await first.waitClose(5000), 'the first link is closed');
    assert.deepEqual(await second.quest('getonlinestatus', { uids: ['dup.alice'] }), { online: ['dup.alice'] });
  });

  it("the app server's kickout says reason kicked", async () => {
    const c = await rtsLogin('kick.alice');
    const kicked = c.waitQuest('kickout', 5000);
    const { uids } = await app.call('getuserids', { ids: ['kick.alice'] });
    await app.call('kickout', { uid: uids['kick.alice'] });
    assert.deepEqual((await kicked).payload, { reason: 'kicked' });
    assert.ok(await c.waitClose(5000));
  });

  it('multi_login defaults: 0 with app_id (demo project too), 1 without, an explicit 1 wins', async () => {
    // Without app_id: two number-id logins live side by side (on one node:
    // getattrs lists the sessions of the asking node, docs/cluster.md).
    const one = srv.node(0).ports;
    const n1 = await login(srv, plainApp, 5001, { ports: one });
    const n2 = await login(srv, plainApp, 5001, { transport: 'ws', ports: one });
    assert.equal((await n2.call('getattrs', {})).attrs.length, 2);
    // An app_id project with an explicit multi_login = 1.
    const e1 = await rtsLogin('multi.alice', { via: explicitApp, appid: APP_ID_EXPLICIT, ports: one });
    await rtsLogin('multi.alice', { via: explicitApp, appid: APP_ID_EXPLICIT, transport: 'tcp', ports: one });
    assert.equal((await e1.quest('getattrs', {})).attrs.length, 2);
    // The demo project has an app_id: single login, for number ids too.
    const d1 = await rtsLogin('demo.dup', { on: demo, via: demoApp });
    const kicked = d1.waitQuest('kickout', 5000);
    await rtsLogin('demo.dup', { on: demo, via: demoApp, transport: 'tcp' });
    assert.deepEqual((await kicked).payload, { reason: 'duplicate_login' });
    const m1 = await login(demo, demoApp, 5002);
    const mk = m1.client.waitQuest('kickout', 5000);
    await login(demo, demoApp, 5002, { transport: 'ws' });
    assert.deepEqual((await mk).payload, { reason: 'duplicate_login' });
    await n1.close();
  });

  // ---- businessid ----

  it('businessid goes in the P2Server POST ("" without one)', async () => {
    const send = async (c, mid) => {
      await c.quest('setserverparams', { signature: 'sig', url: `http://127.0.0.1:${appPort}/rtm/hook` });
      const r = await c.quest('sendservermsg', { mid: I(mid), msg: 'hello' });
      assert.equal(r.status, 200);
      return posts.find((p) => p.mid === mid);
    };
    const a = await rtsLogin('biz.p2s', { businessid: 'shop-7' });
    let post = await send(a, 701);
    assert.equal(post.businessId, 'shop-7');
    assert.equal(post.userId, 'biz.p2s');
    const b = await rtsLogin('biz.p2s.none');
    post = await send(b, 702);
    assert.equal(post.businessId, '');
  });

  it('listen events and messages of a session with a businessid carry it', async () => {
    const l = await appServer(srv, { project: project(srv, 61) });
    const got = [];
    l.client.on('quest', (q) => got.push(q));
    l.client.onQuest('pushevent', () => ({}));
    l.client.onQuest('pushmsg', () => ({}));
    await l.call('addlisten', { events: ['login', 'logout'], p2p: true });
    const a = await rtsLogin('biz.listen', { businessid: 'shop-9' });
    const b = await rtsLogin('biz.plain');
    await a.quest('sendmsg', { to: 'biz.plain', mid: I(801), mtype: 30, msg: 'with business' });
    await b.quest('sendmsg', { to: 'biz.listen', mid: I(802), mtype: 30, msg: 'without' });
    a.destroy();
    const find = async (pred) => {
      for (let i = 0; i < 250; i++) {
        const q = got.find(pred);
        if (q) return q;
        await sleep(20);
      }
      throw new Error('no such listen push');
    };
    const { uids } = await app.call('getuserids', { ids: ['biz.listen', 'biz.plain'] });
    const isUser = (q, sid) => fpnn.toBigInt(q.payload.uid) === fpnn.toBigInt(uids[sid]);
    let q = await find((x) => x.method === 'pushevent' && x.payload.event === 'login' && isUser(x, 'biz.listen'));
    assert.equal(q.payload.businessid, 'shop-9');
    q = await find((x) => x.method === 'pushevent' && x.payload.event === 'login' && isUser(x, 'biz.plain'));
    assert.equal(q.payload.businessid, undefined, 'only when non-empty');
    q = await find((x) => x.method === 'pushmsg' && fpnn.toNumber(x.payload.mid) === 801);
    assert.equal(q.payload.businessid, 'shop-9');
    assert.equal(q.payload.msg, 'with business');
    q = await find((x) => x.method === 'pushmsg' && fpnn.toNumber(x.payload.mid) === 802);
    assert.equal(q.payload.businessid, undefined);
    q = await find((x) => x.method === 'pushevent' && x.payload.event === 'logout' && isUser(x, 'biz.listen'));
    assert.equal(q.payload.businessid, 'shop-9');
    // The receiver's push has no businessid.
    const p = await b.waitPush(byMid('pushmsg', 801));
    assert.equal(p.payload.businessid, undefined);
    await l.close();
  });

  it('/metrics counts logins per business id, at most 100 labels, the rest under "other"', async () => {
    // Each node counts its own logins (docs/cluster.md): the labels and
    // their cap are one node's, so the logins all go through the first.
    const port = srv.ports.http;
    const ports = srv.node(0).ports;
    const before = await scrapeNodes(srv, 'rtmd_rts_logins_total', { business: 'metrics-a' });
    assert.ok(!before, 'no sample before the first login');
    await rtsLogin('met.a1', { businessid: 'metrics-a', ports });
    await rtsLogin('met.a2', { businessid: 'metrics-a', transport: 'tcp', ports });
    await rtsLogin('met.q', { businessid: 'with "quote" \\ back', ports });
    assert.equal(await scrapeMetric(port, 'rtmd_rts_logins_total', { business: 'metrics-a' }), 2);
    const text = (await get(port, '/metrics')).body;
    assert.match(text, /rtmd_rts_logins_total\{business="with \\"quote\\" \\\\ back"\} 1/);
    const otherBefore = await scrapeMetric(port, 'rtmd_rts_logins_total', { business: 'other' });
    for (let i = 0; i < 100; i++) await rtsLogin(`met.m${i}`, { businessid: `many-${i}`, transport: 'tcp', ports });
    const body = (await get(port, '/metrics')).body;
    const labels = body.split('\n').filter((line) => line.startsWith('rtmd_rts_logins_total{'));
    assert.equal(labels.length, 101, 'at most 100 business labels, and other');
    assert.ok((await scrapeMetric(port, 'rtmd_rts_logins_total', { business: 'other' })) > otherBefore);
    assert.ok(!(await scrapeMetric(port, 'rtmd_rts_logins_total', { business: 'many-99' })));
  }, 60000);
});
