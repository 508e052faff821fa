'use strict';
// Rooms: entering, leaving and listing on the client gate (TCP and
// WebSocket), room members and counts on both gates, the app server's
// addroommember (online users only, else 200055) and delroommember (with a oneway
// kickoutroom push), the per-user room limit (200047), leaving every room
// when the last connection ends, and project isolation.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { login, expectCode, int64s, ids, startWithProjects, stopChecked } = require('./lib/rtm');
const { withLogs, waitFor, sleep } = require('./lib/rtmd');

describe('rooms', () => {
  let srv, app, app2;
  const logs = () => [srv];
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(logs, fn));
  const I = fpnn.int64;
  const members = async (rid, a = app) => ids((await a.call('getroommembers', { rid: I(rid) })).uids);
  const count = async (rid, a = app) => fpnn.toNumber((await a.call('getroomcount', { rids: int64s([rid]) })).cn[String(rid)]);

  before(async () => {
    ({ srv, apps: [app, app2] } = await startWithProjects([
      { pid: 82001, secret: 'rooms-secret-one', max_rooms_per_user: 3 },
      { pid: 82002, secret: 'rooms-secret-two' },
    ]));
  });

  after(() => stopChecked(srv, [app, app2]));

  for (const transport of ['tcp', 'ws']) {
    it(`client gate over ${transport}: enter, list, count, leave`, async () => {
      const base = transport === 'tcp' ? 1000 : 2000;
      const a = await login(srv, app, base + 1, { transport });
      const b = await login(srv, app, base + 2, { transport });
      await a.call('enterroom', { rid: I(base) });
      await a.call('enterroom', { rid: I(base) }); // idempotent
      await b.call('enterroom', { rid: I(base) });
      await a.call('enterroom', { rid: I(base + 50) });
      assert.deepEqual(ids((await a.call('getuserrooms', {})).rooms), [base, base + 50]);
      assert.deepEqual(ids((await b.call('getroommembers', { rid: I(base) })).uids), [base + 1, base + 2]);
      const cn = (await b.call('getroomcount', { rids: int64s([base, base + 50, base + 99]) })).cn;
      assert.deepEqual(Object.fromEntries(Object.entries(cn).map(([k, v]) => [k, fpnn.toNumber(v)])),
        { [base]: 2, [base + 50]: 1, [base + 99]: 0 });
      assert.equal(fpnn.toNumber((await a.call('getroomcount', { rid: I(base) })).cn[String(base)]), 2);
      assert.deepEqual(await members(base), [base + 1, base + 2]);
      assert.equal(await count(base), 2);

      await a.call('leaveroom', { rid: I(base) });
      await a.call('leaveroom', { rid: I(base) }); // not in it any more: still fine
      assert.deepEqual(ids((await a.call('getuserrooms', {})).rooms), [base + 50]);
      assert.deepEqual(await members(base), [base + 2]);
      await b.call('leaveroom', { rid: I(base) });
      assert.deepEqual(await members(base), []);
      assert.equal(await count(base), 0);

      await expectCode(a.call('enterroom', {}), 10009);
      await expectCode(a.call('getroomcount', { rids: int64s(Array.from({ length: 101 }, (_, i) => i)) }), 200032);
      // Server-only methods are unknown on the client gate.
      await expectCode(a.call('addroommember', { rid: I(base), uid: I(base + 1) }), 20004);
      await expectCode(a.call('delroommember', { rid: I(base), uid: I(base + 2) }), 20004);
      await a.close();
      await b.close();
    });
  }

  it('a user is in at most max_rooms_per_user rooms (200047)', async () => {
    const u = await login(srv, app, 3001);
    for (const rid of [31, 32, 33]) await u.call('enterroom', { rid: I(rid) });
    await expectCode(u.call('enterroom', { rid: I(34) }), 200047);
    await u.call('enterroom', { rid: I(33) }); // already in: no new room
    await expectCode(app.call('addroommember', { rid: I(35), uid: I(3001) }), 200047);
    await u.call('leaveroom', { rid: I(31) });
    await u.call('enterroom', { rid: I(34) });
    assert.deepEqual(ids((await u.call('getuserrooms', {})).rooms), [32, 33, 34]);
    await u.close();
  });

  it('addroommember puts an online user in a room; offline users get 200055 and are not added later', async () => {
    const u = await login(srv, app, 4001, { transport: 'ws' });
    await app.call('addroommember', { rid: I(40), uid: I(4001) });
    await app.call('addroommember', { rid: I(40), uid: I(4001) });
    assert.deepEqual(ids((await u.call('getuserrooms', {})).rooms), [40]);
    assert.deepEqual(await members(40), [4001]);
    await expectCode(app.call('addroommember', { rid: I(40), uid: I(4999) }), 200055); // RTM_EC_NOT_ONLINE
    await expectCode(app.call('addroommember', { rid: I(40) }), 10009);
    assert.deepEqual(await members(40), [4001]);
    // rooms are not persistent: nothing is kept for a user who is offline
    const later = await login(srv, app, 4999);
    assert.deepEqual(ids((await later.call('getuserrooms', {})).rooms), []);
    assert.deepEqual(await members(40), [4001]);
    await later.close();
    await u.close();
  });

  it('delroommember removes the user and pushes a oneway kickoutroom {rid} to each connection', async () => {
    const tcp = await login(srv, app, 5001);
    const ws = await login(srv, app, 5001, { transport: 'ws' });
    const other = await login(srv, app, 5002);
    await tcp.call('enterroom', { rid: I(50) });
    await other.call('enterroom', { rid: I(50) });
    await tcp.call('enterroom', { rid: I(51) });
    // On a cluster rooms are per user and node (docs/cluster.md): a user in
    // both rooms on both nodes, as on one node, when ws is on the other.
    if (ws.twin !== tcp.twin) for (const rid of [50, 51]) await ws.call('enterroom', { rid: I(rid) });
    const pushes = [tcp.client.waitQuest('kickoutroom', 3000), ws.client.waitQuest('kickoutroom', 3000)];
    await app.call('delroommember', { rid: I(50), uid: I(5001) });
    for (const p of await Promise.all(pushes)) {
      assert.equal(p.mtype, 0, 'kickoutroom is a oneway quest');
      assert.equal(fpnn.toNumber(p.payload.rid), 50);
    }
    // The other node's membership keys follow its record a Redis round
    // trip after its push (docs/cluster.md "Rooms across nodes").
    if (ws.twin !== tcp.twin) await waitFor(async () => (await members(50)).length === 1, 3000);
    assert.deepEqual(await members(50), [5002]);
    assert.deepEqual(ids((await ws.call('getuserrooms', {})).rooms), [51]);
    // Not in the room (any more) or offline: nothing to do, no push.
    await app.call('delroommember', { rid: I(50), uid: I(5001) });
    await app.call('delroommember', { rid: I(50), uid: I(5999) });
    await sleep(100);
    assert.equal(tcp.pushes.filter((p) => p.method === 'kickoutroom').length, 1);
    assert.equal(other.pushes.filter((p) => p.method === 'kickoutroom').length, 0);
    // The connections stay open.
    assert.deepEqual(ids((await tcp.call('getuserrooms', {})).rooms), [51]);
    for (const u of [tcp, ws, other]) await u.close();
  });

  it('a user leaves every room when its last connection ends', async () => {
    const a1 = await login(srv, app, 6001);
    const a2 = await login(srv, app, 6001, { transport: 'ws' });
    const b = await login(srv, app, 6002, { transport: 'ws' });
    await a1.call('enterroom', { rid: I(60) });
    await a2.call('enterroom', { rid: I(61) });
    await b.call('enterroom', { rid: I(60) });
    // On a cluster, per user and node: in both rooms on both nodes, when
    // a1 and a2 are on different ones.
    if (a1.twin !== a2.twin) {
      await a1.call('enterroom', { rid: I(61) });
      await a2.call('enterroom', { rid: I(60) });
    }
    // Rooms belong to the user, not to one connection.
    assert.deepEqual(ids((await a2.call('getuserrooms', {})).rooms), [60, 61]);
    await a1.close();
    await sleep(100);
    assert.deepEqual(await members(60), [6001, 6002]);
    await a2.close();
    assert.ok(await waitFor(async () => (await members(60)).length === 1, 3000));
    assert.deepEqual(await members(60), [6002]);
    assert.deepEqual(await members(61), []);
    b.client.destroy();
    assert.ok(await waitFor(async () => (await count(60)) === 0, 3000));
    // Coming back starts with no rooms.
    const again = await login(srv, app, 6001);
    assert.deepEqual(ids((await again.call('getuserrooms', {})).rooms), []);
    await again.close();
  });

  it('projects are isolated', async () => {
    const u = await login(srv, app, 7001);
    await u.call('enterroom', { rid: I(70) });
    assert.deepEqual(await members(70, app2), []);
    assert.equal(await count(70, app2), 0);
    await expectCode(app2.call('addroommember', { rid: I(70), uid: I(7001) }), 200055);
    const v = await login(srv, app2, 7001);
    await v.call('enterroom', { rid: I(70) });
    await v.call('enterroom', { rid: I(71) });
    assert.deepEqual(ids((await u.call('getuserrooms', {})).rooms), [70]);
    await app2.call('delroommember', { rid: I(70), uid: I(7001) });
    assert.deepEqual(await members(70), [7001]);
    assert.equal(u.pushes.filter((p) => p.method === 'kickoutroom').length, 0);
    await u.close();
    await v.close();
  });
});
