'use strict';
// Bans and the project blacklist on the server gate: addgroupban /
// removegroupban / isbanofgroup, addroomban / removeroomban / isbanofroom,
// addprojectblack / removeprojectblack / isprojectblack; btime in seconds
// (<= 0 for ever), expiry, bans of every group or every room (no gid or
// rid, as the SDKs send them), the blacklist refusing logins (200024) and
// kicking the user out when added, persistence across a restart, and
// project isolation. A client's link goes to either node of a cluster,
// whose ban mirror has a change through the other node once it is
// answered (docs/cluster.md "Mirrors across nodes").

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode, startWithProjects, stopChecked } = require('./lib/rtm');
const { startRtmd, withLogs, sleep } = require('./lib/rtmd');

describe('bans and blacklist', () => {
  let srv, app, app2, p1, p2, conf;
  const logs = () => [srv];
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(logs, fn));
  const I = fpnn.int64;
  const isGroupBan = async (gid, uid, a = app) => (await a.call('isbanofgroup', { gid: I(gid), uid: I(uid) })).ok;
  const isRoomBan = async (rid, uid, a = app) => (await a.call('isbanofroom', { rid: I(rid), uid: I(uid) })).ok;
  const isBlack = async (uid, a = app) => (await a.call('isprojectblack', { uid: I(uid) })).ok;

  // Logs uid in with a fresh token; resolves with the auth answer or rejects.
  async function rawAuth(uid, transport = 'tcp', a = app) {
    const token = await a.token(uid);
    const port = transport === 'ws' ? srv.ports.client_ws : srv.ports.client_tcp;
    const c = await fpnn.connect({ port, transport });
    try {
      return await c.quest('auth', { pid: I(a.project.pid), uid: I(uid), token, version: 'rtmd-tests' });
    } finally {
      await c.close();
    }
  }

  before(async () => {
    ({ srv, conf, projects: [p1, p2], apps: [app, app2] } = await startWithProjects([
      { pid: 83001, secret: 'bans-secret-one' },
      { pid: 83002, secret: 'bans-secret-two' },
    ]));
  });

  after(() => stopChecked(srv, [app, app2]));

  it('group bans: add, check, remove; per group and per user', async () => {
    assert.equal(await isGroupBan(10, 1), false);
    await app.call('addgroupban', { gid: I(10), uid: I(1), btime: 0 });
    assert.equal(await isGroupBan(10, 1), true);
    assert.equal(await isGroupBan(11, 1), false);
    assert.equal(await isGroupBan(10, 2), false);
    assert.equal(await isRoomBan(10, 1), false, 'a group ban is not a room ban');
    await app.call('removegroupban', { gid: I(10), uid: I(1) });
    assert.equal(await isGroupBan(10, 1), false);
    await app.call('removegroupban', { gid: I(10), uid: I(1) }); // absent: fine
    await expectCode(app.call('addgroupban', { gid: I(10), uid: I(1) }), 10009);
    await expectCode(app.call('isbanofgroup', { gid: I(10) }), 10009);
  });

  it('room bans: add, check, remove; a negative btime bans for ever', async () => {
    await app.call('addroomban', { rid: I(20), uid: I(1), btime: -5 });
    assert.equal(await isRoomBan(20, 1), true);
    assert.equal(await isGroupBan(20, 1), false);
    await app.call('addroomban', { rid: I(21), uid: I(1), btime: 3600 });
    assert.equal(await isRoomBan(21, 1), true);
    await app.call('removeroomban', { rid: I(20), uid: I(1) });
    assert.equal(await isRoomBan(20, 1), false);
    assert.equal(await isRoomBan(21, 1), true);
    await expectCode(app.call('removeroomban', { rid: I(21) }), 10009);
  });

  it('bans with btime 1 expire after a second; a new add replaces the old duration', async () => {
    await app.call('addgroupban', { gid: I(30), uid: I(3), btime: 1 });
    await app.call('addroomban', { rid: I(30), uid: I(3), btime: 1 });
    await app.call('addgroupban', { gid: I(31), uid: I(3), btime: 1 });
    await app.call('addgroupban', { gid: I(31), uid: I(3), btime: 0 }); // now for ever
    assert.equal(await isGroupBan(30, 3), true);
    assert.equal(await isRoomBan(30, 3), true);
    await sleep(2100);
    assert.equal(await isGroupBan(30, 3), false);
    assert.equal(await isRoomBan(30, 3), false);
    assert.equal(await isGroupBan(31, 3), true);
  });

  for (const transport of ['tcp', 'ws']) {
    it(`blacklist over ${transport}: adding kicks the user out, login is refused with 200024, removing lets it back`, async () => {
      const uid = transport === 'tcp' ? 4001 : 4002;
      const u = await login(srv, app, uid, { transport });
      const second = await login(srv, app, uid, { transport: transport === 'tcp' ? 'ws' : 'tcp' });
      const kicked = u.client.waitQuest('kickout', 3000);
      await app.call('addprojectblack', { uid: I(uid), btime: 0 });
      await kicked;
      assert.equal(await u.client.waitClose(3000), true);
      assert.equal(await second.client.waitClose(3000), true);
      assert.equal(await isBlack(uid), true);
      assert.deepEqual((await app.call('getonlineusers', { uids: [I(uid)] })).uids, []);
      await expectCode(rawAuth(uid, transport), 200024);
      await app.call('removeprojectblack', { uid: I(uid) });
      assert.equal(await isBlack(uid), false);
      assert.equal((await rawAuth(uid, transport)).ok, true);
    });
  }

  it('a blacklisting with btime 1 ends after a second; offline users can be blacklisted', async () => {
    await app.call('addprojectblack', { uid: I(5001), btime: 1 });
    assert.equal(await isBlack(5001), true);
    await expectCode(rawAuth(5001), 200024);
    await sleep(2100);
    assert.equal(await isBlack(5001), false);
    assert.equal((await rawAuth(5001)).ok, true);
    await expectCode(app.call('addprojectblack', { uid: I(5001) }), 10009);
    await expectCode(app.call('isprojectblack', {}), 10009);
  });

  it('group and room bans forbid sending there (200044, 200045) until removed', async (t) => {
    const u = await login(srv, app, 9001, { transport: 'ws' });
    await app.call('addgroupmembers', { gid: I(90), uids: [I(9001), I(9002)] });
    await u.call('enterroom', { rid: I(90) });
    const send = (method, key, mid) => u.call(method, { [key]: I(90), mid: I(mid), mtype: 8, msg: 'hi', attrs: '' });
    try {
      await send('sendgroupmsg', 'gid', 1);
    } catch (e) {
      if (e.code !== 20004) throw e;
      t.skip('sending is not implemented yet');
      await u.close();
      return;
    }
    await app.call('addgroupban', { gid: I(90), uid: I(9001), btime: 0 });
    await app.call('addroomban', { rid: I(90), uid: I(9001), btime: 0 });
    await expectCode(send('sendgroupmsg', 'gid', 2), 200044);
    await expectCode(send('sendroommsg', 'rid', 3), 200045);
    await app.call('removegroupban', { gid: I(90), uid: I(9001) });
    await app.call('removeroomban', { rid: I(90), uid: I(9001) });
    await send('sendgroupmsg', 'gid', 4);
    await send('sendroommsg', 'rid', 5);
    await u.close();
  });

  it('bans of every group and every room: no gid or rid (as the SDKs send), nil, or <= 0', async () => {
    const allGroups = async (uid, extra = {}) => (await app.call('isbanofgroup', { uid: I(uid), ...extra })).ok;
    const allRooms = async (uid, extra = {}) => (await app.call('isbanofroom', { uid: I(uid), ...extra })).ok;
    // Node addGroupBan(undefined, uid, btime) and Go AddGroupBan(0, ...) send no gid.
    await app.call('addgroupban', { uid: I(11), btime: 0 });
    assert.equal(await allGroups(11), true);
    assert.equal(await allGroups(11, { gid: null }), true);
    assert.equal(await allGroups(11, { gid: I(0) }), true, 'Go IsBanOfGroup(0, uid) sends gid 0');
    assert.equal(await isGroupBan(5, 11), true, 'banned in every group');
    assert.equal(await isGroupBan(5, 12), false);
    assert.equal(await allRooms(11), false, 'not in rooms');
    assert.equal(await isRoomBan(5, 11), false);
    // One group's ban and the ban of all are separate entries.
    await app.call('addgroupban', { gid: I(5), uid: I(11), btime: 0 });
    await app.call('removegroupban', { gid: I(5), uid: I(11) });
    assert.equal(await isGroupBan(5, 11), true, 'the ban of all groups stays');
    await app.call('addgroupban', { gid: I(5), uid: I(11), btime: 0 });
    await app.call('removegroupban', { uid: I(11) });
    assert.equal(await allGroups(11), false);
    assert.equal(await isGroupBan(5, 11), true, 'the ban of group 5 stays');
    assert.equal(await isGroupBan(6, 11), false);
    await app.call('removegroupban', { gid: I(5), uid: I(11) });
    // A gid <= 0 names every group too (the Go SDK's documented meaning).
    await app.call('addgroupban', { gid: I(-3), uid: I(13), btime: 0 });
    assert.equal(await isGroupBan(77, 13), true);
    await app.call('removegroupban', { gid: null, uid: I(13) });
    assert.equal(await isGroupBan(77, 13), false);
    // Rooms, the same; timed.
    await app.call('addroomban', { uid: I(11), btime: 1 });
    assert.equal(await allRooms(11), true);
    assert.equal(await isRoomBan(8, 11), true);
    assert.equal(await allGroups(11), false);
    await sleep(2100);
    assert.equal(await isRoomBan(8, 11), false, 'expired');
    await app.call('addroomban', { rid: null, uid: I(11), btime: 0 });
    assert.equal(await isRoomBan(8, 11), true);
    await app.call('removeroomban', { uid: I(11) });
    assert.equal(await allRooms(11), false);
    // JSON, signed as a JSON app server does: no rid.
    await app.call('addroomban', { uid: 14, btime: 0 }, { json: true });
    assert.equal(await isRoomBan(123, 14), true);
    // Wrong types are still refused.
    await expectCode(app.call('addgroupban', { gid: 'all', uid: I(11), btime: 0 }), 10010);
    await expectCode(app.call('isbanofroom', { rid: true, uid: I(11) }), 10010);
    await expectCode(app.call('removeroomban', {}), 10009);
  });

  it('a ban of every group or room forbids sending to each (200044, 200045), on both gates', async () => {
    const u = await login(srv, app, 9101);
    await app.call('addgroupmembers', { gid: I(91), uids: [I(9101), I(9102)] });
    await u.call('enterroom', { rid: I(91) });
    const send = (method, key, mid) => u.call(method, { [key]: I(91), mid: I(mid), mtype: 8, msg: 'hi', attrs: '' });
    const appSend = (method, key, mid) => app.call(method, { from: I(9101), [key]: I(91), mid: I(mid), mtype: 8, msg: 'hi', attrs: '' });
    await app.call('addgroupban', { uid: I(9101), btime: 0 });
    await app.call('addroomban', { uid: I(9101), btime: 0 });
    await expectCode(send('sendgroupmsg', 'gid', 1), 200044);
    await expectCode(send('sendroommsg', 'rid', 2), 200045);
    await expectCode(appSend('sendgroupmsg', 'gid', 3), 200044);
    await expectCode(appSend('sendroommsg', 'rid', 4), 200045);
    await app.call('sendgroupmsg', { from: I(9102), gid: I(91), mid: I(5), mtype: 8, msg: 'hi', attrs: '' });
    await app.call('removegroupban', { uid: I(9101) });
    await app.call('removeroomban', { uid: I(9101) });
    await send('sendgroupmsg', 'gid', 6);
    await send('sendroommsg', 'rid', 7);
    await u.close();
  });

  it('ban methods are not on the client gate', async () => {
    const u = await login(srv, app, 6001);
    await expectCode(u.call('addgroupban', { gid: I(1), uid: I(6002), btime: 0 }), 20004);
    await expectCode(u.call('isprojectblack', { uid: I(6001) }), 20004);
    await u.close();
  });

  it('projects are isolated', async () => {
    await app.call('addprojectblack', { uid: I(7001), btime: 0 });
    await app.call('addgroupban', { gid: I(70), uid: I(7001), btime: 0 });
    await app.call('addroomban', { rid: I(70), uid: I(7001), btime: 0 });
    assert.equal(await isBlack(7001, app2), false);
    assert.equal(await isGroupBan(70, 7001, app2), false);
    assert.equal(await isRoomBan(70, 7001, app2), false);
    assert.equal((await rawAuth(7001, 'tcp', app2)).ok, true);
    await app2.call('removeprojectblack', { uid: I(7001) });
    assert.equal(await isBlack(7001), true);
  });

  it('bans survive a restart; expired ones do not come back', async () => {
    await app.call('addprojectblack', { uid: I(8001), btime: 0 });
    await app.call('addgroupban', { gid: I(80), uid: I(8001), btime: 3600 });
    await app.call('addroomban', { rid: I(80), uid: I(8001), btime: 0 });
    await app.call('addroomban', { rid: I(81), uid: I(8001), btime: 1 });
    await app.call('addgroupban', { uid: I(8003), btime: 0 });
    await app.call('addroomban', { uid: I(8003), btime: 3600 });
    await app2.call('addgroupban', { gid: I(80), uid: I(8002), btime: 0 });
    await app.close();
    await app2.close();
    assert.equal(await srv.stop('SIGTERM'), 0);
    await sleep(2100);
    srv = await startRtmd({ dataDir: srv.dataDir, config: conf });
    app = await appServer(srv, { project: p1 });
    app2 = await appServer(srv, { project: p2 });
    assert.equal(await isBlack(8001), true);
    assert.equal(await isGroupBan(80, 8001), true);
    assert.equal(await isRoomBan(80, 8001), true);
    assert.equal(await isRoomBan(81, 8001), false);
    assert.equal(await isGroupBan(80, 8002, app2), true);
    assert.equal(await isGroupBan(4242, 8003), true, 'the ban of every group is back');
    assert.equal(await isRoomBan(4242, 8003), true, 'the ban of every room is back');
    assert.equal(await isGroupBan(4242, 8003, app2), false);
    assert.equal(await isGroupBan(80, 8002), false);
    assert.equal(await isBlack(7001), true);
    await expectCode(rawAuth(8001, 'ws'), 200024);
  });
});
