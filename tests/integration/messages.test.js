'use strict';
// Messages: sendmsg, sendmsgs, sendgroupmsg, sendroommsg (both gates) and
// broadcastmsg (server gate); the pushes they cause (pushmsg, pushgroupmsg,
// pushroommsg, pushbroadcastmsg, whatever the mtype: the RTM SDKs map the
// chat types 30/31/32 to their chat events themselves), string and binary
// bodies delivered as sent, every error code of the sending rules,
// duplicate mids (also while the first is being committed and after a
// restart), order, durability across kill -9, and the per-user rate limit.
// Client-gate tests run over TCP and over WebSocket.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode, pushText, chatMap } = require('./lib/rtm');
const { sanitizerReports, startRtmd, storeRows, withLogs, sleep, makeTempDir } = require('./lib/rtmd');

const P1 = { pid: '81001', secret: 'messages-secret-81001' };
// Tight limits: small bodies, three receivers, two messages a second (burst 3).
const P2 = { pid: '81002', secret: 'messages-secret-81002' };
const TRANSPORTS = ['tcp', 'ws'];

let nextUid = 100000;
const freshUid = () => nextUid++;
let nextMid = 5000000000n;
const freshMid = () => fpnn.int64((nextMid++).toString());

const big = (v) => fpnn.toBigInt(v);
const pushesOf = (user, method) => user.pushes.filter((p) => p.method === method);

function writeConfig(dir) {
  const conf = path.join(dir, 'rtmd.conf');
  fs.writeFileSync(conf,
    `[project]\npid = ${P1.pid}\nsecret = "${P1.secret}"\nuser_msg_burst = 1000\n` +
    `[project]\npid = ${P2.pid}\nsecret = "${P2.secret}"\nmax_msg_bytes = 64\nmax_attrs_bytes = 16\n` +
    'max_receivers = 3\nuser_msg_rate = 2\nuser_msg_burst = 3\n');
  return conf;
}


describe('messages', () => {
  let srv, conf, app, app2;
  const extra = [];
  const logs = () => [srv, ...extra];
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(logs, fn));

  before(async () => {
    conf = writeConfig(await makeTempDir());
    srv = await startRtmd({ config: conf });
    app = await appServer(srv, { project: P1 });
    app2 = await appServer(srv, { project: P2 });
  });

  after(async () => {
    for (const a of [app, app2]) if (a && !a.client.isClosed) await a.close();
    for (const s of [srv, ...extra]) {
      if (s.exitSignal === 'SIGKILL') continue; // killed on purpose by a test
      const code = await s.stop('SIGTERM');
      await s.cleanup();
      assert.equal(code, 0, `rtmd exit code after SIGTERM\n${s.diagnostics()}`);
    }
    assert.deepEqual(sanitizerReports(), []);
  });

  const user = (uid, transport = 'tcp', a = app) => login(srv, a, uid, { transport, project: a.project });

  for (const transport of TRANSPORTS) {
    it(`client sendmsg over ${transport}: the receiver gets pushmsg with every field, 64-bit ids exact`, async () => {
      const fromUid = 9007199254740993n + BigInt(freshUid()); // above 2^53
      const toUid = freshUid();
      const a = await user(fromUid, transport);
      const a2 = await user(fromUid, transport === 'tcp' ? 'ws' : 'tcp');
      const b = await user(toUid, transport);
      const mid = fpnn.int64('9223372036854775001');
      const ans = await a.call('sendmsg', { to: fpnn.int64(toUid), mid, mtype: 8, msg: 'hello', attrs: '{"k":1}' });
      const mtime = big(ans.mtime);
      assert.ok(mtime > BigInt(Date.now() - 60000) && mtime <= BigInt(Date.now() + 1000), 'mtime is unix ms');
      const p = await b.waitPush((q) => q.method === 'pushmsg');
      assert.equal(p.mtype, 1, 'pushed as a twoway quest');
      assert.deepEqual(fpnn.normalize(p.payload), {
        from: fromUid, to: BigInt(toUid), mtype: 8n, mid: 9223372036854775001n, msg: 'hello', attrs: '{"k":1}', mtime,
      });
      await sleep(200);
      assert.equal(pushesOf(a, 'pushmsg').length + pushesOf(a2, 'pushmsg').length, 0, 'no copy to the sender');
      for (const u of [a, a2, b]) await u.close();
    });

    it(`server sendmsg reaches the receiver over ${transport}; binary and string bodies are delivered as sent`, async () => {
      const from = freshUid();
      const to = freshUid();
      const b = await user(to, transport);
      const s = await app.call('sendmsg', { from: fpnn.int64(from), to: fpnn.int64(to), mid: freshMid(), mtype: 20, msg: 'text body', attrs: '' });
      const bin = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80]);
      await app.call('sendmsg', { from: fpnn.int64(from), to: fpnn.int64(to), mid: freshMid(), mtype: 20, msg: bin, attrs: 'a' });
      await b.waitPush((q) => q.method === 'pushmsg' && Buffer.isBuffer(q.payload.msg));
      const got = pushesOf(b, 'pushmsg');
      assert.equal(got.length, 2);
      assert.equal(typeof got[0].payload.msg, 'string');
      assert.equal(got[0].payload.msg, 'text body');
      assert.equal(big(got[0].payload.mtime), big(s.mtime));
      assert.ok(Buffer.isBuffer(got[1].payload.msg), 'bin stays bin');
      assert.deepEqual(got[1].payload.msg, bin);
      assert.equal(big(got[1].payload.from), BigInt(from));
      // And from a client: a binary body is delivered as bin too.
      const c = await user(freshUid(), transport);
      await c.call('sendmsg', { to: fpnn.int64(to), mid: freshMid(), mtype: 21, msg: Buffer.from('raw'), attrs: '' });
      const p = await b.waitPush((q) => q.method === 'pushmsg' && toNum(q.payload.mtype) === 21);
      assert.ok(Buffer.isBuffer(p.payload.msg));
      await b.close();
      await c.close();
    });

    it(`chat types 30/31/32 over ${transport} are pushed as pushmsg/pushgroupmsg with their mtype`, async () => {
      const a = await user(freshUid(), transport);
      const b = await user(freshUid(), transport);
      for (const mtype of [30, 31, 32]) {
        await a.call('sendmsg', { to: fpnn.int64(b.uid), mid: freshMid(), mtype, msg: `chat ${mtype}`, attrs: '' });
      }
      await b.waitPush(() => pushesOf(b, 'pushmsg').length === 3);
      // text chat (30) carries msg as the map the Unity and Android SDKs read
      assert.deepEqual(pushesOf(b, 'pushmsg').map((p) => [toNum(p.payload.mtype), p.payload.msg]),
        [[30, chatMap('chat 30')], [31, 'chat 31'], [32, 'chat 32']]);
      assert.equal(b.pushes.filter((p) => /chat|audio|cmd/.test(p.method)).length, 0, 'no pushchat-style quests');
      await a.close();
      await b.close();
    });
  }

  it('sendmsgs (server gate): one push per receiver with its own `to`; the sender is dropped from tos', async () => {
    const from = freshUid();
    const [b, c] = [await user(freshUid()), await user(freshUid(), 'ws')];
    const mid = freshMid();
    const tos = [b.uid, c.uid, from, b.uid].map(fpnn.int64);
    const ans = await app.call('sendmsgs', { from: fpnn.int64(from), tos, mid, mtype: 9, msg: 'to many', attrs: '' });
    for (const u of [b, c]) {
      const p = await u.waitPush((q) => q.method === 'pushmsg');
      assert.equal(big(p.payload.to), BigInt(u.uid));
      assert.equal(big(p.payload.from), BigInt(from));
      assert.equal(big(p.payload.mtime), big(ans.mtime));
    }
    await sleep(200);
    assert.equal(pushesOf(b, 'pushmsg').length, 1, 'a repeated receiver gets one copy');
    // a retry is answered the same and delivered to nobody again
    const again = await app.call('sendmsgs', { from: fpnn.int64(from), tos, mid, mtype: 9, msg: 'to many', attrs: '' });
    assert.equal(big(again.mtime), big(ans.mtime));
    await sleep(200);
    assert.equal(pushesOf(b, 'pushmsg').length + pushesOf(c, 'pushmsg').length, 2);
    const rows = await storeRows(srv.dataDir, `SELECT conv_a, conv_b FROM messages WHERE pid=${P1.pid} AND from_uid=${from} ORDER BY conv_b`);
    assert.equal(rows.length, 2, 'one row per receiver conversation');
    await b.close();
    await c.close();
  });

  it('sendmsgs errors: 200033 empty, 200032 over max_receivers, 200052 only oneself; client sendmsgs works', async () => {
    const base = { mid: freshMid(), mtype: 9, msg: 'x', attrs: '' };
    await expectCode(app2.call('sendmsgs', { ...base, from: fpnn.int64(1), tos: [] }), 200033);
    const four = [2, 3, 4, 5].map(fpnn.int64);
    await expectCode(app2.call('sendmsgs', { ...base, from: fpnn.int64(1), tos: four }), 200032);
    await expectCode(app2.call('sendmsgs', { ...base, from: fpnn.int64(1), tos: [fpnn.int64(1)] }), 200052);
    await expectCode(app2.call('sendmsgs', { ...base, from: fpnn.int64(1), tos: 'nope' }), 10010);
    await expectCode(app2.call('sendmsgs', { ...base, from: fpnn.int64(1), tos: ['x'] }), 10010);
    const a = await user(freshUid(), 'ws');
    const b = await user(freshUid());
    await a.call('sendmsgs', { tos: [fpnn.int64(b.uid)], mid: freshMid(), mtype: 9, msg: 'from client', attrs: '' });
    const p = await b.waitPush((q) => q.method === 'pushmsg');
    assert.equal(p.payload.msg, 'from client');
    await a.close();
    await b.close();
  });

  it('sending rules: 200005 mtype, 200030 sizes, 200052 self, 10009 missing / 10010 mistyped fields', async () => {
    const u = freshUid();
    const a = await user(u, 'tcp', app2);
    const ok = { to: fpnn.int64(u + 1), mid: freshMid(), mtype: 1, msg: 'm', attrs: '' };
    await expectCode(a.call('sendmsg', { ...ok, mtype: 0 }), 200005);
    await expectCode(a.call('sendmsg', { ...ok, mtype: 128 }), 200005);
    await expectCode(a.call('sendmsg', { ...ok, msg: 'x'.repeat(65) }), 200030);
    await expectCode(a.call('sendmsg', { ...ok, attrs: 'y'.repeat(17) }), 200030);
    await expectCode(a.call('sendmsg', { ...ok, to: fpnn.int64(u) }), 200052);
    const missing = async (key) => {
      const p = { ...ok };
      delete p[key];
      const e = await expectCode(a.call('sendmsg', p), 10009);
      assert.match(e.ex, new RegExp(key));
    };
    for (const key of ['to', 'mid', 'mtype', 'msg']) await missing(key);
    await expectCode(a.call('sendmsg', { ...ok, msg: 12 }), 10010);
    await expectCode(a.call('sendmsg', { ...ok, to: 'abc' }), 10010);
    await expectCode(a.call('sendmsg', { ...ok, attrs: 5 }), 10010);
    // server gate: from is required
    await expectCode(app2.call('sendmsg', { ...ok }), 10009);
    await expectCode(app2.call('sendmsg', { ...ok, from: fpnn.int64(7), to: fpnn.int64(7) }), 200052);
    await expectCode(app2.call('broadcastmsg', { mid: freshMid(), mtype: 200, msg: 'm', attrs: '', from: fpnn.int64(1) }), 200005);
    // at the limit is fine; attrs may be absent
    await a.call('sendmsg', { to: fpnn.int64(u + 1), mid: freshMid(), mtype: 1, msg: 'x'.repeat(64) });
    await a.close();
  });

  it('group messages: client senders members only (200041), the app server as any uid; pushgroupmsg to every other online member, chat mtype kept', async () => {
    const gid = fpnn.int64(7000000000001n);
    const [m1, m2, m3, outsider] = [freshUid(), freshUid(), freshUid(), freshUid()];
    await app.call('addgroupmembers', { gid, uids: [m1, m2, m3].map(fpnn.int64) });
    const a = await user(m1, 'ws');
    const b = await user(m2);
    const c = await user(m3, 'ws');
    const o = await user(outsider);
    const ans = await a.call('sendgroupmsg', { gid, mid: freshMid(), mtype: 30, msg: 'hi group', attrs: '' });
    for (const u of [b, c]) {
      const p = await u.waitPush((q) => q.method === 'pushgroupmsg');
      assert.deepEqual(fpnn.normalize(p.payload), {
        from: BigInt(m1), gid: 7000000000001n, mtype: 30n, mid: big(p.payload.mid), msg: chatMap('hi group'), attrs: '', mtime: big(ans.mtime),
      });
    }
    await expectCode(o.call('sendgroupmsg', { gid, mid: freshMid(), mtype: 1, msg: 'x', attrs: '' }), 200041);
    await app.call('sendgroupmsg', { from: fpnn.int64(m2), gid, mid: freshMid(), mtype: 1, msg: Buffer.from('bin'), attrs: '' });
    const p = await a.waitPush((q) => q.method === 'pushgroupmsg');
    assert.ok(Buffer.isBuffer(p.payload.msg));
    await sleep(200);
    assert.equal(pushesOf(a, 'pushgroupmsg').length, 1, 'the sender got only the other message');
    // The app server is trusted: a system account that is no member sends
    // to the group (a chat message too), and every member gets it.
    const system = freshUid();
    const sys = await app.call('sendgroupmsg', { from: fpnn.int64(system), gid, mid: freshMid(), mtype: 30, msg: 'from the system', attrs: '' });
    for (const u of [a, b, c]) {
      const q = await u.waitPush((x) => x.method === 'pushgroupmsg' && pushText(x.payload) === 'from the system');
      assert.equal(big(q.payload.from), BigInt(system));
      assert.equal(big(q.payload.mtime), big(sys.mtime));
    }
    const h = await app.call('getgroupmsg', { gid, uid: fpnn.int64(m1), desc: true, num: 1 });
    assert.equal(big(h.msgs[0][1]), BigInt(system), 'stored under the uid given');
    assert.equal(pushesOf(o, 'pushgroupmsg').length, 0);
    assert.equal(pushesOf(o, 'pushgroupmsg').length, 0);
    for (const u of [a, b, c, o]) await u.close();
  });

  it('room messages: client senders only in the room (200040), the app server as any uid; pushroommsg to the others in it', async () => {
    const rid = fpnn.int64(8000000000001n);
    const a = await user(freshUid());
    const b = await user(freshUid(), 'ws');
    const o = await user(freshUid());
    await a.call('enterroom', { rid });
    await b.call('enterroom', { rid });
    const ans = await a.call('sendroommsg', { rid, mid: freshMid(), mtype: 5, msg: 'in the room', attrs: 'r' });
    const p = await b.waitPush((q) => q.method === 'pushroommsg');
    assert.deepEqual(fpnn.normalize(p.payload), {
      from: BigInt(a.uid), rid: 8000000000001n, mtype: 5n, mid: big(p.payload.mid), msg: 'in the room', attrs: 'r', mtime: big(ans.mtime),
    });
    await expectCode(o.call('sendroommsg', { rid, mid: freshMid(), mtype: 5, msg: 'x', attrs: '' }), 200040);
    await app.call('sendroommsg', { from: fpnn.int64(b.uid), rid, mid: freshMid(), mtype: 5, msg: 'server', attrs: '' });
    await a.waitPush((q) => q.method === 'pushroommsg');
    // a bot that is in no room (and not even online) speaks in the room
    const bot = freshUid();
    await app.call('sendroommsg', { from: fpnn.int64(bot), rid, mid: freshMid(), mtype: 30, msg: 'bot says', attrs: '' });
    for (const u of [a, b]) {
      const q = await u.waitPush((x) => x.method === 'pushroommsg' && pushText(x.payload) === 'bot says');
      assert.equal(big(q.payload.from), BigInt(bot));
    }
    await sleep(200);
    assert.equal(pushesOf(o, 'pushroommsg').length, 0);
    assert.equal(pushesOf(b, 'pushroommsg').length, 2);
    for (const u of [a, b, o]) await u.close();
  });

  it('bans: a group-banned member gets 200044, a room-banned user 200045', async (t) => {
    const gid = fpnn.int64(7000000000002n);
    const rid = fpnn.int64(8000000000002n);
    const a = await user(freshUid());
    await app.call('addgroupmembers', { gid, uids: [fpnn.int64(a.uid)] });
    await a.call('enterroom', { rid });
    try {
      await app.call('addgroupban', { gid, uid: fpnn.int64(a.uid), btime: 60 });
      await app.call('addroomban', { rid, uid: fpnn.int64(a.uid), btime: 60 });
    } catch (e) {
      if (e.code === 20004) {
        await a.close();
        t.skip('addgroupban/addroomban are not implemented yet');
        return;
      }
      throw e;
    }
    await expectCode(a.call('sendgroupmsg', { gid, mid: freshMid(), mtype: 1, msg: 'x', attrs: '' }), 200044);
    await expectCode(a.call('sendroommsg', { rid, mid: freshMid(), mtype: 1, msg: 'x', attrs: '' }), 200045);
    // bans hold on the server gate too (membership does not)
    await expectCode(app.call('sendgroupmsg', { from: fpnn.int64(a.uid), gid, mid: freshMid(), mtype: 1, msg: 'x', attrs: '' }), 200044);
    await expectCode(app.call('sendroommsg', { from: fpnn.int64(a.uid), rid, mid: freshMid(), mtype: 1, msg: 'x', attrs: '' }), 200045);
    await a.close();
  });

  it('broadcastmsg reaches every online user of the project but the sender, and no other project', async () => {
    const from = freshUid();
    const sender = await user(from);
    const xs = [await user(freshUid()), await user(freshUid(), 'ws')];
    const other = await user(freshUid(), 'tcp', app2);
    const ans = await app.call('broadcastmsg', { from: fpnn.int64(from), mid: freshMid(), mtype: 31, msg: 'to all', attrs: '' });
    for (const u of xs) {
      const p = await u.waitPush((q) => q.method === 'pushbroadcastmsg');
      assert.deepEqual(fpnn.normalize(p.payload), {
        from: BigInt(from), mtype: 31n, mid: big(p.payload.mid), msg: 'to all', attrs: '', mtime: big(ans.mtime),
      });
    }
    await sleep(200);
    assert.equal(pushesOf(sender, 'pushbroadcastmsg').length, 0);
    assert.equal(pushesOf(other, 'pushbroadcastmsg').length, 0);
    for (const u of [sender, ...xs, other]) await u.close();
  });

  for (const transport of TRANSPORTS) {
    it(`a retried mid over ${transport} (also while the first is being committed) is answered alike and delivered once`, async () => {
      const a = await user(freshUid(), transport);
      const b = await user(freshUid(), transport);
      const mid = freshMid();
      const body = { to: fpnn.int64(b.uid), mid, mtype: 3, msg: 'once', attrs: '' };
      // pipelined: the retry arrives before the first one is durable
      const q1 = a.client.prepareQuest('sendmsg', body);
      const q2 = a.client.prepareQuest('sendmsg', body);
      a.client.writePackets([q1.packet, q2.packet]);
      const [r1, r2] = await Promise.all([q1.answer, q2.answer]);
      assert.equal(big(r2.mtime), big(r1.mtime));
      await sleep(300);
      const r3 = await a.call('sendmsg', body);
      assert.equal(big(r3.mtime), big(r1.mtime));
      await sleep(300);
      assert.equal(pushesOf(b, 'pushmsg').length, 1);
      // the same mid to another conversation is another message
      const c = await user(freshUid());
      await a.call('sendmsg', { ...body, to: fpnn.int64(c.uid) });
      await c.waitPush((q) => q.method === 'pushmsg');
      const rows = await storeRows(srv.dataDir, `SELECT count(*) FROM messages WHERE pid=${P1.pid} AND from_uid=${a.uid} AND mid=${big(mid)}`);
      assert.equal(rows[0][0], '2');
      for (const u of [a, b, c]) await u.close();
    });
  }

  it('200 messages from one sender arrive and are stored in the order they were sent', async () => {
    const a = await user(freshUid());
    const b = await user(freshUid(), 'ws');
    const n = 200;
    const quests = [];
    for (let i = 0; i < n; i++) {
      quests.push(a.client.prepareQuest('sendmsg', { to: fpnn.int64(b.uid), mid: fpnn.int64(1000 + i), mtype: 2, msg: `m${i}`, attrs: '' }, { timeoutMs: 20000 }));
    }
    a.client.writePackets(quests.map((q) => q.packet));
    const answers = await Promise.all(quests.map((q) => q.answer));
    for (let i = 1; i < n; i++) assert.ok(big(answers[i].mtime) >= big(answers[i - 1].mtime), 'mtime never goes back');
    await b.waitPush(() => pushesOf(b, 'pushmsg').length >= n, 15000);
    assert.deepEqual(pushesOf(b, 'pushmsg').map((p) => p.payload.msg), Array.from({ length: n }, (_, i) => `m${i}`));
    const lo = Math.min(a.uid, b.uid);
    const hi = Math.max(a.uid, b.uid);
    const rows = await storeRows(srv.dataDir, `SELECT mid FROM messages WHERE pid=${P1.pid} AND conv_type=1 AND conv_a=${lo} AND conv_b=${hi} ORDER BY id`);
    assert.deepEqual(rows.map((r) => Number(r[0])), Array.from({ length: n }, (_, i) => 1000 + i));
    await a.close();
    await b.close();
  });

  it('the rate limit refuses client messages over the burst with 200010; the server gate is not limited', async () => {
    const a = await user(freshUid(), 'tcp', app2);
    const to = fpnn.int64(a.uid + 1);
    const send = () => a.call('sendmsg', { to, mid: freshMid(), mtype: 1, msg: 'r', attrs: '' });
    for (let i = 0; i < 3; i++) await send();
    await expectCode(send(), 200010);
    await sleep(1100); // two more tokens
    await send();
    for (let i = 0; i < 6; i++) {
      await app2.call('sendmsg', { from: fpnn.int64(a.uid), to, mid: freshMid(), mtype: 1, msg: 's', attrs: '' });
    }
    await a.close();
  });

  it('answered messages survive kill -9; a retry after the restart is a duplicate; ids go on increasing', async () => {
    const dataDir = await makeTempDir();
    const s1 = await startRtmd({ config: conf, dataDir });
    extra.push(s1);
    const ap = await appServer(s1, { project: P1 });
    const from = freshUid();
    const to = freshUid();
    const mids = Array.from({ length: 15 }, () => freshMid());
    const answers = await Promise.all(mids.map((mid, i) =>
      ap.call('sendmsg', { from: fpnn.int64(from), to: fpnn.int64(to), mid, mtype: 4, msg: i % 2 ? Buffer.from([i, 0, 255]) : `s${i}`, attrs: `a${i}` })));
    assert.equal(await s1.stop('SIGKILL'), 'SIGKILL');
    await ap.client.destroy();
    const rows = await storeRows(dataDir, `SELECT mid, mtime, is_binary, hex(msg), attrs, id FROM messages WHERE pid=${P1.pid} AND from_uid=${from} ORDER BY id`,
      `SELECT mid, mtime, is_binary, upper(encode(msg, 'hex')), attrs, id FROM messages WHERE pid=${P1.pid} AND from_uid=${from} ORDER BY id`);
    assert.equal(rows.length, 15, 'every answered message is on disk');
    rows.forEach((r, i) => {
      assert.equal(BigInt(r[0]), big(mids[i]));
      assert.equal(BigInt(r[1]), big(answers[i].mtime));
      assert.equal(r[2], i % 2 ? '1' : '0');
      assert.equal(r[3], i % 2 ? Buffer.from([i, 0, 255]).toString('hex').toUpperCase() : Buffer.from(`s${i}`).toString('hex').toUpperCase());
      assert.equal(r[4], `a${i}`);
    });
    const maxId = BigInt(rows[rows.length - 1][5]);

    const s2 = await startRtmd({ config: conf, dataDir });
    extra.push(s2);
    const ap2 = await appServer(s2, { project: P1 });
    const receiver = await login(s2, ap2, to, { project: P1 });
    const again = await ap2.call('sendmsg', { from: fpnn.int64(from), to: fpnn.int64(to), mid: mids[3], mtype: 4, msg: 's3', attrs: 'a3' });
    assert.equal(big(again.mtime), big(answers[3].mtime), 'answered with the first mtime');
    await ap2.call('sendmsg', { from: fpnn.int64(from), to: fpnn.int64(to), mid: freshMid(), mtype: 4, msg: 'new', attrs: '' });
    await receiver.waitPush((q) => q.method === 'pushmsg');
    await sleep(200);
    assert.deepEqual(pushesOf(receiver, 'pushmsg').map((p) => p.payload.msg), ['new'], 'the duplicate is not delivered');
    // Through the protocol too: the history (getp2pmsg) holds every answered message once, in order.
    const hist = await ap2.call('getp2pmsg', { uid: fpnn.int64(from), ouid: fpnn.int64(to), desc: false, num: 50 });
    const msgs = hist.msgs.map((m) => ({ mid: big(m[3]), msg: m[5], mtime: big(m[7]) }));
    assert.equal(msgs.length, 16);
    msgs.slice(0, 15).forEach((m, i) => {
      assert.equal(m.mid, big(mids[i]));
      assert.equal(m.mtime, big(answers[i].mtime));
      if (i % 2) assert.deepEqual(m.msg, Buffer.from([i, 0, 255]), 'binary history stays bin');
      else assert.equal(m.msg, `s${i}`);
    });
    assert.equal(msgs[15].msg, 'new');
    await receiver.close();
    await ap2.close();
    assert.equal(await s2.stop('SIGTERM'), 0);
    const after = await storeRows(dataDir, `SELECT count(*), max(id) FROM messages WHERE pid=${P1.pid} AND from_uid=${from}`);
    assert.equal(after[0][0], '16');
    assert.ok(BigInt(after[0][1]) > maxId, 'ids continue after the restart');
  }, 60000);

  it('JSON quests get JSON answers with mtime', async () => {
    const from = freshUid();
    const ans = await app.call('sendmsg', { from, to: from + 1, mid: 424242, mtype: 1, msg: 'json', attrs: '' }, { json: true });
    assert.ok(Number(ans.mtime) > 0);
  });
});

function toNum(v) {
  return fpnn.toNumber(v);
}
