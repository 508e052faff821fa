'use strict';
// Groups: membership through the server gate (addgroupmembers,
// delgroupmembers, delgroup, getgroupmembers, isgroupmember, getusergroups,
// getgroupcount) and the client gate (TCP and WebSocket, with the caller's
// rights: only members may add, remove or list), the limits (100 uids per
// call, empty lists, 10000 members by default, max_groups and
// max_group_members per project), project isolation and persistence across
// a restart. A client's link goes to either node of a cluster, whose group
// mirror has a change through the other node once it is answered
// (docs/cluster.md "Mirrors across nodes").

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode, int64s, ids, startWithProjects, stopChecked } = require('./lib/rtm');
const { startRtmd, withLogs, sleep } = require('./lib/rtmd');

describe('groups', () => {
  let srv, app, app2, app3, p1, p2, p3, conf;
  const logs = () => [srv];
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(logs, fn));
  const I = fpnn.int64;

  before(async () => {
    ({ srv, conf, projects: [p1, p2, p3], apps: [app, app2, app3] } = await startWithProjects([
      { pid: 81001, secret: 'groups-secret-one' },
      { pid: 81002, secret: 'groups-secret-two' },
      { pid: 81003, secret: 'groups-secret-three', max_groups: 3, max_group_members: 5 },
    ]));
  });

  after(() => stopChecked(srv, [app, app2, app3]));

  it('server gate: add, list, check, count, remove members; delete a group', async () => {
    await app.call('addgroupmembers', { gid: I(100), uids: int64s([11, 12, 13]) });
    // Adding present members again is harmless; repeats in one call count once.
    await app.call('addgroupmembers', { gid: I(100), uids: int64s([13, 14, 14]) });
    assert.deepEqual(ids((await app.call('getgroupmembers', { gid: I(100) })).uids), [11, 12, 13, 14]);
    assert.equal((await app.call('isgroupmember', { gid: I(100), uid: I(12) })).ok, true);
    assert.equal((await app.call('isgroupmember', { gid: I(100), uid: I(99) })).ok, false);
    assert.equal(fpnn.toNumber((await app.call('getgroupcount', { gid: I(100) })).cn), 4);
    await app.call('addgroupmembers', { gid: I(101), uids: int64s([12]) });
    assert.deepEqual(ids((await app.call('getusergroups', { uid: I(12) })).gids), [100, 101]);
    assert.deepEqual(ids((await app.call('getusergroups', { uid: I(4242) })).gids), []);

    await app.call('delgroupmembers', { gid: I(100), uids: int64s([11, 12, 77]) });
    assert.deepEqual(ids((await app.call('getgroupmembers', { gid: I(100) })).uids), [13, 14]);
    assert.deepEqual(ids((await app.call('getusergroups', { uid: I(12) })).gids), [101]);

    await app.call('delgroup', { gid: I(100) });
    assert.deepEqual(ids((await app.call('getgroupmembers', { gid: I(100) })).uids), []);
    assert.equal(fpnn.toNumber((await app.call('getgroupcount', { gid: I(100) })).cn), 0);
    assert.equal((await app.call('isgroupmember', { gid: I(100), uid: I(13) })).ok, false);
    assert.deepEqual(ids((await app.call('getusergroups', { uid: I(13) })).gids), []);
    // Deleting an unknown group is fine.
    await app.call('delgroup', { gid: I(100) });
  });

  it('64-bit ids round-trip exactly', async () => {
    const gid = '9007199254740993';
    const uid = '9223372036854775807';
    await app.call('addgroupmembers', { gid: I(gid), uids: int64s([uid]) });
    const got = await app.call('getgroupmembers', { gid: I(gid) });
    assert.deepEqual(got.uids.map((v) => fpnn.toBigInt(v).toString()), [uid]);
    const groups = await app.call('getusergroups', { uid: I(uid) });
    assert.deepEqual(groups.gids.map((v) => fpnn.toBigInt(v).toString()), [gid]);
  });

  it('limits: empty uids 200033, more than 100 uids 200032, missing fields 10009', async () => {
    await expectCode(app.call('addgroupmembers', { gid: I(200), uids: [] }), 200033);
    await expectCode(app.call('delgroupmembers', { gid: I(200), uids: [] }), 200033);
    const many = int64s(Array.from({ length: 101 }, (_, i) => 1000 + i));
    await expectCode(app.call('addgroupmembers', { gid: I(200), uids: many }), 200032);
    await expectCode(app.call('delgroupmembers', { gid: I(200), uids: many }), 200032);
    await app.call('addgroupmembers', { gid: I(200), uids: many.slice(0, 100) });
    assert.equal(fpnn.toNumber((await app.call('getgroupcount', { gid: I(200) })).cn), 100);
    await expectCode(app.call('addgroupmembers', { uids: int64s([1]) }), 10009);
    await expectCode(app.call('addgroupmembers', { gid: I(200) }), 10009);
    await expectCode(app.call('isgroupmember', { gid: I(200) }), 10009);
    await expectCode(app.call('getusergroups', {}), 10009);
  });

  it('a group holds at most 10000 members (200042)', async () => {
    const gid = I(300);
    const pending = [];
    for (let k = 0; k < 100; k++) {
      const uids = int64s(Array.from({ length: 100 }, (_, i) => 100000 + k * 100 + i));
      pending.push(app.call('addgroupmembers', { gid, uids }));
    }
    await Promise.all(pending);
    assert.equal(fpnn.toNumber((await app.call('getgroupcount', { gid })).cn), 10000);
    await expectCode(app.call('addgroupmembers', { gid, uids: int64s([1]) }), 200042);
    // Present members may be named again without going over.
    await app.call('addgroupmembers', { gid, uids: int64s([100000, 100001]) });
    // Concurrent adds cannot overshoot the limit together.
    await app.call('delgroupmembers', { gid, uids: int64s([100000, 100001]) });
    const racing = await Promise.allSettled([
      app.call('addgroupmembers', { gid, uids: int64s([5, 6]) }),
      app.call('addgroupmembers', { gid, uids: int64s([7, 8]) }),
    ]);
    assert.deepEqual(racing.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    assert.equal(racing.find((r) => r.status === 'rejected').reason.code, 200042);
    assert.equal(fpnn.toNumber((await app.call('getgroupcount', { gid })).cn), 10000);
    await app.call('delgroup', { gid });
  });

  it('max_group_members and max_groups per project (200042), adds in flight counted', async () => {
    const add = (gid, uids, a = app3) => a.call('addgroupmembers', { gid: I(gid), uids: int64s(uids) });
    const count = async (gid) => fpnn.toNumber((await app3.call('getgroupcount', { gid: I(gid) })).cn);
    // Members: 5 at most; a call that would pass it adds none of its uids.
    await add(1, [1, 2, 3]);
    let e = await expectCode(add(1, [4, 5, 6]), 200042);
    assert.match(e.message, /max group members/);
    assert.equal(await count(1), 3);
    await add(1, [3, 4, 5]);
    assert.equal(await count(1), 5);
    await expectCode(add(1, [6]), 200042);
    // The same numbers in another project are under the defaults.
    await add(1, [101, 102, 103, 104, 105, 106, 107], app2);
    // Groups: 3 at most; a full project still takes members into its groups.
    await add(2, [1]);
    await add(3, [1]);
    e = await expectCode(add(4, [1]), 200042);
    assert.match(e.message, /max groups/);
    assert.deepEqual(ids((await app3.call('getusergroups', { uid: I(1) })).gids), [1, 2, 3]);
    await add(2, [2]);
    // A group emptied by delgroupmembers or delgroup frees its place.
    await app3.call('delgroupmembers', { gid: I(3), uids: int64s([1]) });
    await add(4, [1]);
    await app3.call('delgroup', { gid: I(4) });
    // Two new groups racing for the last place: one of them gets it.
    const racing = await Promise.allSettled([add(5, [1]), add(6, [1])]);
    assert.deepEqual(racing.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    assert.equal(racing.find((r) => r.status === 'rejected').reason.code, 200042);
    // Clients are bounded the same way.
    const u = await login(srv, app3, 2);
    await expectCode(u.call('addgroupmembers', { gid: I(2), uids: int64s([7, 8, 9, 10]) }), 200042);
    await u.call('addgroupmembers', { gid: I(2), uids: int64s([7, 8, 9]) });
    assert.equal(await count(2), 5);
    await u.close();
  });

  for (const transport of ['tcp', 'ws']) {
    it(`client gate over ${transport}: members use their groups with their own rights`, async () => {
      const base = transport === 'tcp' ? 5000 : 6000;
      const gid = I(base);
      await app.call('addgroupmembers', { gid, uids: int64s([base + 1, base + 2]) });
      const member = await login(srv, app, base + 1, { transport });
      const outsider = await login(srv, app, base + 9, { transport });

      const got = await member.call('getgroupmembers', { gid });
      assert.deepEqual(ids(got.uids), [base + 1, base + 2]);
      assert.equal(got.onlines, undefined);
      const withOnline = await member.call('getgroupmembers', { gid, online: true });
      assert.deepEqual(ids(withOnline.onlines), [base + 1]);
      const count = await member.call('getgroupcount', { gid, online: true });
      assert.equal(fpnn.toNumber(count.cn), 2);
      assert.equal(fpnn.toNumber(count.online), 1);
      assert.deepEqual(ids((await member.call('getusergroups', {})).gids), [base]);

      // A member adds and removes others, and may leave.
      await member.call('addgroupmembers', { gid, uids: int64s([base + 3, base + 4]) });
      await member.call('delgroupmembers', { gid, uids: int64s([base + 2]) });
      assert.deepEqual(ids((await app.call('getgroupmembers', { gid })).uids), [base + 1, base + 3, base + 4]);
      await expectCode(member.call('addgroupmembers', { gid, uids: [] }), 200033);
      await expectCode(member.call('addgroupmembers', { gid, uids: int64s(Array.from({ length: 101 }, (_, i) => i + 1)) }), 200032);

      // Others get 200041, including for a group that does not exist yet:
      // clients cannot create groups.
      await expectCode(outsider.call('getgroupmembers', { gid }), 200041);
      await expectCode(outsider.call('getgroupcount', { gid }), 200041);
      await expectCode(outsider.call('addgroupmembers', { gid, uids: int64s([base + 9]) }), 200041);
      await expectCode(outsider.call('delgroupmembers', { gid, uids: int64s([base + 1]) }), 200041);
      await expectCode(outsider.call('addgroupmembers', { gid: I(base + 77), uids: int64s([base + 9]) }), 200041);
      assert.deepEqual(ids((await outsider.call('getusergroups', {})).gids), []);
      // Server-only methods are unknown on the client gate.
      await expectCode(member.call('delgroup', { gid }), 20004);
      await expectCode(member.call('isgroupmember', { gid, uid: I(base + 1) }), 20004);

      await member.call('delgroupmembers', { gid, uids: int64s([base + 1]) });
      await expectCode(member.call('getgroupmembers', { gid }), 200041);
      await member.close();
      await outsider.close();
    });
  }

  it('projects are isolated', async () => {
    await app.call('addgroupmembers', { gid: I(700), uids: int64s([1, 2]) });
    assert.deepEqual(ids((await app2.call('getgroupmembers', { gid: I(700) })).uids), []);
    assert.equal((await app2.call('isgroupmember', { gid: I(700), uid: I(1) })).ok, false);
    assert.deepEqual(ids((await app2.call('getusergroups', { uid: I(1) })).gids), []);
    await app2.call('addgroupmembers', { gid: I(700), uids: int64s([3]) });
    await app2.call('delgroup', { gid: I(700) });
    assert.deepEqual(ids((await app.call('getgroupmembers', { gid: I(700) })).uids), [1, 2]);
    const u = await login(srv, app2, 1);
    await expectCode(u.call('getgroupmembers', { gid: I(700) }), 200041);
    await u.close();
  });

  it('groups survive a restart', async () => {
    await app.call('addgroupmembers', { gid: I(800), uids: int64s([1, 2, 3]) });
    await app.call('delgroupmembers', { gid: I(800), uids: int64s([2]) });
    await app.call('addgroupmembers', { gid: I(801), uids: int64s([3]) });
    await app2.call('addgroupmembers', { gid: I(800), uids: int64s([9]) });
    await app.close();
    await app2.close();
    await app3.close();
    assert.equal(await srv.stop('SIGTERM'), 0);
    srv = await startRtmd({ dataDir: srv.dataDir, config: conf });
    app = await appServer(srv, { project: p1 });
    app2 = await appServer(srv, { project: p2 });
    app3 = await appServer(srv, { project: p3 });
    // The groups loaded count against max_groups (3 in p3: 1, 2 and 5 or 6).
    await expectCode(app3.call('addgroupmembers', { gid: I(7), uids: int64s([1]) }), 200042);
    await app3.call('addgroupmembers', { gid: I(1), uids: int64s([1]) });
    assert.deepEqual(ids((await app.call('getgroupmembers', { gid: I(800) })).uids), [1, 3]);
    assert.deepEqual(ids((await app.call('getusergroups', { uid: I(3) })).gids), [800, 801]);
    assert.deepEqual(ids((await app2.call('getgroupmembers', { gid: I(800) })).uids), [9]);
    assert.equal(fpnn.toNumber((await app.call('getgroupcount', { gid: I(200) })).cn), 100);
    const u = await login(srv, app, 3, { transport: 'ws' });
    assert.deepEqual(ids((await u.call('getusergroups', {})).gids), [800, 801]);
    await u.close();
    await sleep(10);
  });
});
