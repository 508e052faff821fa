'use strict';
// Many clients at once: 300 users, half over TCP and half over WebSocket,
// all in one group and one room. Membership and counts must be exact on
// both gates; room and group messages (sendroommsg, sendgroupmsg) must reach
// every other member exactly once (no push missing, none duplicated); and
// when half the users disconnect the room shrinks while the group stays.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { appServer, login, int64s, ids } = require('./lib/rtm');
const { sanitizerReports, startRtmd, withLogs, waitFor } = require('./lib/rtmd');

const N = 300;
const BASE_UID = 10001;
const GID = 900;
const RID = 900;
const SENDERS = 10;

describe('many clients in rooms and groups', () => {
  let srv, app;
  const users = [];
  const logs = () => [srv];
  const it = (name, fn, timeout = 120000) => test(name, { timeout }, withLogs(logs, fn));
  const I = fpnn.int64;

  before(async () => {
    srv = await startRtmd();
    app = await appServer(srv);
  });

  after(async () => {
    await Promise.all(users.map((u) => u.client.destroy()));
    if (app && !app.client.isClosed) await app.close();
    const code = await srv.stop('SIGTERM');
    await srv.cleanup();
    assert.equal(code, 0, `rtmd exit code after SIGTERM\n${srv.diagnostics()}`);
    assert.deepEqual(sanitizerReports(), []);
  });

  it(`${N} users over TCP and WebSocket join one group and one room`, async () => {
    const uids = Array.from({ length: N }, (_, i) => BASE_UID + i);
    for (let i = 0; i < N; i += 50) {
      const batch = uids.slice(i, i + 50).map((uid, k) => login(srv, app, uid, { transport: (i + k) % 2 ? 'ws' : 'tcp' }));
      users.push(...(await Promise.all(batch)));
    }
    for (let i = 0; i < N; i += 100) await app.call('addgroupmembers', { gid: I(GID), uids: int64s(uids.slice(i, i + 100)) });
    await Promise.all(users.map((u) => u.call('enterroom', { rid: I(RID) })));

    assert.deepEqual(ids((await app.call('getroommembers', { rid: I(RID) })).uids), uids);
    assert.equal(fpnn.toNumber((await app.call('getroomcount', { rids: [I(RID)] })).cn[String(RID)]), N);
    assert.deepEqual(ids((await app.call('getgroupmembers', { gid: I(GID) })).uids), uids);
    const counts = await Promise.all(users.slice(0, 20).map((u) => u.call('getgroupcount', { gid: I(GID), online: true })));
    for (const c of counts) {
      assert.equal(fpnn.toNumber(c.cn), N);
      assert.equal(fpnn.toNumber(c.online), N);
    }
    const rooms = await Promise.all(users.map((u) => u.call('getuserrooms', {})));
    for (const r of rooms) assert.deepEqual(ids(r.rooms), [RID]);
  });

  it('room and group messages reach every other member exactly once', async (t) => {
    assert.equal(users.length, N, 'the previous test logged every user in');
    // The messaging service may not be there yet: probe it first.
    const probe = { rid: I(RID), mid: I(1), mtype: 8, msg: 'probe', attrs: '' };
    try {
      await users[0].call('sendroommsg', probe);
    } catch (e) {
      if (e.code === 20004) {
        t.skip('sendroommsg is not implemented yet');
        return;
      }
      throw e;
    }
    const sent = []; // {method, from, mid}
    const sends = [];
    for (let s = 0; s < SENDERS; s++) {
      const sender = users[s * 29];
      const mid = 1000 + s;
      sent.push({ method: 'pushroommsg', from: sender.uid, mid });
      sent.push({ method: 'pushgroupmsg', from: sender.uid, mid: mid + 500 });
      sends.push(sender.call('sendroommsg', { rid: I(RID), mid: I(mid), mtype: 8, msg: `room ${s}`, attrs: '' }));
      sends.push(sender.call('sendgroupmsg', { gid: I(GID), mid: I(mid + 500), mtype: 8, msg: `group ${s}`, attrs: '' }));
    }
    await Promise.all(sends);
    const wanted = new Set(sent.map((m) => `${m.method}:${m.from}:${m.mid}`));
    const keyOf = (p) => `${p.method}:${fpnn.toNumber(p.payload.from)}:${fpnn.toNumber(p.payload.mid)}`;
    const received = (u) => u.pushes.map(keyOf).filter((k) => wanted.has(k));
    const expectedFor = (u) => sent.filter((m) => m.from !== u.uid).length;
    await waitFor(() => users.every((u) => received(u).length >= expectedFor(u)), 20000, 100);

    let missing = 0;
    let duplicated = 0;
    for (const u of users) {
      const got = new Map();
      for (const k of received(u)) got.set(k, (got.get(k) || 0) + 1);
      for (const m of sent) {
        const n = got.get(`${m.method}:${m.from}:${m.mid}`) || 0;
        if (n > 1) duplicated++;
        if (n === 0 && m.from !== u.uid) missing++;
      }
    }
    assert.equal(duplicated, 0, 'duplicated pushes');
    assert.equal(missing, 0, 'missing pushes');
  });

  it('when half the users disconnect the room shrinks and the group stays', async () => {
    const leaving = users.filter((_, i) => i % 2 === 0);
    const staying = users.filter((_, i) => i % 2 === 1);
    await Promise.all(leaving.map((u) => u.close()));
    const expected = staying.map((u) => u.uid).sort((a, b) => a - b);
    const ok = await waitFor(async () => fpnn.toNumber((await app.call('getroomcount', { rids: [I(RID)] })).cn[String(RID)]) === expected.length, 5000);
    assert.ok(ok, 'room count after disconnects');
    assert.deepEqual(ids((await app.call('getroommembers', { rid: I(RID) })).uids), expected);
    const g = await staying[0].call('getgroupmembers', { gid: I(GID), online: true });
    assert.equal(g.uids.length, N);
    assert.deepEqual(ids(g.onlines), expected);
  });
});
