'use strict';
// User, group and room info (info.c): every method on each gate with the
// payloads the SDKs send (server: rtm-server-sdk-nodejs and -go; client:
// rtm-client-sdk-websocket) and the answers they read ({oinfo, pinfo},
// {oinfo}, {info: {"<id>": oinfo}}), one JSON case per family, the size
// and list limits with their codes (per project), each rights rule of the
// client gate, project isolation, persistence across a restart, and
// `rtmctl info`.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode, int64s, startWithProjects, stopChecked } = require('./lib/rtm');
const { startRtmd, withLogs, run, rtmctlBin } = require('./lib/rtmd');

describe('info', () => {
  let srv, app, app2, p1, p2, conf;
  const logs = () => [srv];
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(logs, fn));
  const I = fpnn.int64;
  // A salt that survives JSON (below 2^53), for the JSON cases.

  before(async () => {
    ({ srv, conf, projects: [p1, p2], apps: [app, app2] } = await startWithProjects([
      { pid: 83001, secret: 'info-secret-one' },
      { pid: 83002, secret: 'info-secret-two', max_oinfo_bytes: 10, max_pinfo_bytes: 20 },
    ]));
  });

  after(() => stopChecked(srv, [app, app2]));

  it('server gate: user info set, read, partly replaced; open info of many', async () => {
    // rtm-server-sdk-nodejs setUserInfo(uid, oinfo, pinfo): {uid, oinfo?, pinfo?}.
    assert.deepEqual(await app.call('setuserinfo', { uid: I(11), oinfo: 'open 11', pinfo: 'private 11' }), {});
    assert.deepEqual(await app.call('getuserinfo', { uid: I(11) }), { oinfo: 'open 11', pinfo: 'private 11' });
    // A part not sent is kept.
    await app.call('setuserinfo', { uid: I(11), pinfo: 'private 11 b' });
    assert.deepEqual(await app.call('getuserinfo', { uid: I(11) }), { oinfo: 'open 11', pinfo: 'private 11 b' });
    await app.call('setuserinfo', { uid: I(11), oinfo: 'open 11 b' });
    assert.deepEqual(await app.call('getuserinfo', { uid: I(11) }), { oinfo: 'open 11 b', pinfo: 'private 11 b' });
    // Nothing to change is fine; nothing stored reads as empty strings
    // (rtm-server-sdk-go reads both as strings).
    assert.deepEqual(await app.call('setuserinfo', { uid: I(11) }), {});
    assert.deepEqual(await app.call('getuserinfo', { uid: I(4242) }), { oinfo: '', pinfo: '' });
    // Clearing a part stores the empty string.
    await app.call('setuserinfo', { uid: I(12), oinfo: 'open 12', pinfo: 'p12' });
    await app.call('setuserinfo', { uid: I(13), pinfo: 'only private' });
    // bin is taken as well as str.
    await app.call('setuserinfo', { uid: I(14), oinfo: Buffer.from('bin open 14') });

    // getuseropeninfo {uids} -> {info: {"uid": oinfo}}: string keys (the Go
    // SDK converts keys and values as strings); no pinfo; users without open
    // info are left out.
    const got = await app.call('getuseropeninfo', { uids: int64s([11, 12, 13, 14, 4242]) });
    assert.deepEqual(got, { info: { 11: 'open 11 b', 12: 'open 12', 14: 'bin open 14' } });
    assert.deepEqual(Object.keys(got.info).sort(), ['11', '12', '14']);
    // Repeats are answered once.
    assert.deepEqual(await app.call('getuseropeninfo', { uids: int64s([12, 12]) }), { info: { 12: 'open 12' } });
    await app.call('setuserinfo', { uid: I(12), oinfo: '' });
    assert.deepEqual(await app.call('getuseropeninfo', { uids: int64s([12]) }), { info: {} });
    assert.deepEqual(await app.call('getuserinfo', { uid: I(12) }), { oinfo: '', pinfo: 'p12' });
  });

  it('64-bit ids round-trip exactly, as string keys', async () => {
    const uid = '9223372036854775807';
    await app.call('setuserinfo', { uid: I(uid), oinfo: 'max' });
    assert.deepEqual(await app.call('getuseropeninfo', { uids: int64s([uid]) }), { info: { [uid]: 'max' } });
    const gid = '9007199254740993';
    await app.call('setgroupinfo', { gid: I(gid), oinfo: 'g' });
    await app.call('addgroupmembers', { gid: I(gid), uids: int64s([15]) });
    const u = await login(srv, app, 15);
    assert.deepEqual(await u.call('getgroupsopeninfo', { gids: int64s([gid]) }), { info: { [gid]: 'g' } });
    await u.close();
  });

  it('server gate: group and room info; the open forms are client-only', async () => {
    // setGroupInfo(gid, oinfo, pinfo) / setRoomInfo(rid, oinfo, pinfo).
    await app.call('setgroupinfo', { gid: I(100), oinfo: 'group open', pinfo: 'group private' });
    assert.deepEqual(await app.call('getgroupinfo', { gid: I(100) }), { oinfo: 'group open', pinfo: 'group private' });
    await app.call('setgroupinfo', { gid: I(100), oinfo: 'group open b' });
    assert.deepEqual(await app.call('getgroupinfo', { gid: I(100) }), { oinfo: 'group open b', pinfo: 'group private' });
    await app.call('setroominfo', { rid: I(100), oinfo: 'room open', pinfo: 'room private' });
    assert.deepEqual(await app.call('getroominfo', { rid: I(100) }), { oinfo: 'room open', pinfo: 'room private' });
    // Users, groups and rooms with one id are three things.
    await app.call('setuserinfo', { uid: I(100), oinfo: 'user open' });
    assert.deepEqual(await app.call('getgroupinfo', { gid: I(100) }), { oinfo: 'group open b', pinfo: 'group private' });
    assert.deepEqual(await app.call('getroominfo', { rid: I(100) }), { oinfo: 'room open', pinfo: 'room private' });
    assert.deepEqual(await app.call('getuserinfo', { uid: I(100) }), { oinfo: 'user open', pinfo: '' });
    assert.deepEqual(await app.call('getroominfo', { rid: I(101) }), { oinfo: '', pinfo: '' });
    for (const m of ['getgroupopeninfo', 'getroomopeninfo', 'getgroupsopeninfo', 'getroomsopeninfo']) {
      await expectCode(app.call(m, { gid: I(100), rid: I(100), gids: int64s([100]), rids: int64s([100]) }), 20004);
    }
  });

  for (const transport of ['tcp', 'ws']) {
    it(`client gate over ${transport}: own user info, open info of others`, async () => {
      const base = transport === 'tcp' ? 2000 : 3000;
      const me = await login(srv, app, base + 1, { transport });
      // RTMClient.js setUserInfo(oinfo, pinfo): {oinfo?, pinfo?}; getUserInfo: {}.
      assert.deepEqual(await me.call('setuserinfo', { oinfo: 'my open', pinfo: 'my private' }), {});
      assert.deepEqual(await me.call('getuserinfo', {}), { oinfo: 'my open', pinfo: 'my private' });
      await me.call('setuserinfo', { pinfo: 'my private b' });
      assert.deepEqual(await me.call('getuserinfo', {}), { oinfo: 'my open', pinfo: 'my private b' });
      assert.deepEqual(await app.call('getuserinfo', { uid: I(base + 1) }), { oinfo: 'my open', pinfo: 'my private b' });

      // A client writes and reads only its own user info: a uid in the
      // payload names nobody else.
      await app.call('setuserinfo', { uid: I(base + 2), oinfo: 'other open', pinfo: 'other private' });
      await me.call('setuserinfo', { uid: I(base + 2), oinfo: 'hijack' });
      assert.deepEqual(await app.call('getuserinfo', { uid: I(base + 2) }), { oinfo: 'other open', pinfo: 'other private' });
      assert.deepEqual(await me.call('getuserinfo', { uid: I(base + 2) }), { oinfo: 'hijack', pinfo: 'my private b' });
      // Open info of anyone: getUserOpenInfo(uids) -> {info}.
      assert.deepEqual(await me.call('getuseropeninfo', { uids: int64s([base + 1, base + 2, base + 3]) }),
        { info: { [base + 1]: 'hijack', [base + 2]: 'other open' } });
      await me.close();
    });

    it(`client gate over ${transport}: group info for members, open info for anyone`, async () => {
      const base = transport === 'tcp' ? 2100 : 3100;
      const gid = I(base);
      await app.call('addgroupmembers', { gid, uids: int64s([base + 1]) });
      await app.call('setgroupinfo', { gid: I(base + 50), oinfo: 'other group' });
      const member = await login(srv, app, base + 1, { transport });
      const outsider = await login(srv, app, base + 9, { transport });

      // RTMClient.js setGroupInfo(gid, oinfo, pinfo) / getGroupInfo(gid) /
      // getGroupOpenInfo(gid) / getGroupsOpenInfo(gids).
      await member.call('setgroupinfo', { gid, oinfo: 'g open', pinfo: 'g private' });
      assert.deepEqual(await member.call('getgroupinfo', { gid }), { oinfo: 'g open', pinfo: 'g private' });
      assert.deepEqual(await member.call('getgroupopeninfo', { gid }), { oinfo: 'g open' });
      assert.deepEqual(await app.call('getgroupinfo', { gid }), { oinfo: 'g open', pinfo: 'g private' });

      // Not a member: 200041 for writing and for the private info, also
      // for a group that does not exist; the open info is for anyone.
      await expectCode(outsider.call('setgroupinfo', { gid, oinfo: 'x' }), 200041);
      await expectCode(outsider.call('setgroupinfo', { gid: I(base + 77), oinfo: 'x' }), 200041);
      await expectCode(outsider.call('getgroupinfo', { gid }), 200041);
      assert.deepEqual(await outsider.call('getgroupopeninfo', { gid }), { oinfo: 'g open' });
      assert.deepEqual(await outsider.call('getgroupopeninfo', { gid: I(base + 77) }), { oinfo: '' });
      assert.deepEqual(await outsider.call('getgroupsopeninfo', { gids: int64s([base, base + 50, base + 77]) }),
        { info: { [base]: 'g open', [base + 50]: 'other group' } });
      assert.deepEqual(await app.call('getgroupinfo', { gid }), { oinfo: 'g open', pinfo: 'g private' });

      // A member that left loses the rights.
      await member.call('delgroupmembers', { gid, uids: int64s([base + 1]) });
      await expectCode(member.call('getgroupinfo', { gid }), 200041);
      await expectCode(member.call('setgroupinfo', { gid, pinfo: 'y' }), 200041);
      await member.close();
      await outsider.close();
    });

    it(`client gate over ${transport}: room info for those in the room, open info for anyone`, async () => {
      const base = transport === 'tcp' ? 2200 : 3200;
      const rid = I(base);
      await app.call('setroominfo', { rid: I(base + 50), oinfo: 'other room' });
      const inside = await login(srv, app, base + 1, { transport });
      const outsider = await login(srv, app, base + 9, { transport });
      await inside.call('enterroom', { rid });

      // RTMClient.js setRoomInfo(rid, oinfo, pinfo) / getRoomInfo(rid) /
      // getRoomOpenInfo(rid) / getRoomsOpenInfo(rids).
      await inside.call('setroominfo', { rid, oinfo: 'r open', pinfo: 'r private' });
      assert.deepEqual(await inside.call('getroominfo', { rid }), { oinfo: 'r open', pinfo: 'r private' });
      assert.deepEqual(await inside.call('getroomopeninfo', { rid }), { oinfo: 'r open' });

      await expectCode(outsider.call('setroominfo', { rid, oinfo: 'x' }), 200040);
      await expectCode(outsider.call('getroominfo', { rid }), 200040);
      assert.deepEqual(await outsider.call('getroomopeninfo', { rid }), { oinfo: 'r open' });
      assert.deepEqual(await outsider.call('getroomsopeninfo', { rids: int64s([base, base + 50, base + 77]) }),
        { info: { [base]: 'r open', [base + 50]: 'other room' } });

      await inside.call('leaveroom', { rid });
      await expectCode(inside.call('getroominfo', { rid }), 200040);
      await expectCode(inside.call('setroominfo', { rid, oinfo: 'y' }), 200040);
      assert.deepEqual(await app.call('getroominfo', { rid }), { oinfo: 'r open', pinfo: 'r private' });
      await inside.close();
      await outsider.close();
    });
  }

  it('JSON quests: one per family, answered in JSON', async () => {
    const uid = 4001;
    const user = await app.call('setuserinfo', { uid, oinfo: 'json open', pinfo: 'json private' }, { json: true });
    assert.deepEqual(user, {});
    assert.deepEqual(await app.call('getuseropeninfo', { uids: [uid] }, { json: true }),
      { info: { [uid]: 'json open' } });
    await app.call('addgroupmembers', { gid: I(4002), uids: int64s([uid]) });
    const u = await login(srv, app, uid);
    assert.deepEqual(await u.call('getuserinfo', {}, { json: true }), { oinfo: 'json open', pinfo: 'json private' });
    await u.call('setgroupinfo', { gid: 4002, oinfo: 'json group', pinfo: 'gp' }, { json: true });
    assert.deepEqual(await u.call('getgroupsopeninfo', { gids: [4002] }, { json: true }), { info: { 4002: 'json group' } });
    await u.call('enterroom', { rid: I(4003) });
    await u.call('setroominfo', { rid: 4003, oinfo: 'json room' }, { json: true });
    assert.deepEqual(await u.call('getroominfo', { rid: 4003 }, { json: true }), { oinfo: 'json room', pinfo: '' });
    assert.deepEqual(await app.call('getroominfo', { rid: 4003 }, { json: true }),
      { oinfo: 'json room', pinfo: '' });
    await u.close();
  });

  it('limits: 65535 bytes of oinfo and of pinfo (200030), 100 ids (200032), no ids (200033), types', async () => {
    const max = 'o'.repeat(65535);
    const over = 'o'.repeat(65536);
    await app.call('setuserinfo', { uid: I(5001), oinfo: max, pinfo: max });
    assert.deepEqual(await app.call('getuserinfo', { uid: I(5001) }), { oinfo: max, pinfo: max });
    await expectCode(app.call('setuserinfo', { uid: I(5001), oinfo: over }), 200030);
    await expectCode(app.call('setuserinfo', { uid: I(5001), pinfo: over }), 200030);
    await expectCode(app.call('setgroupinfo', { gid: I(5001), oinfo: over }), 200030);
    await expectCode(app.call('setroominfo', { rid: I(5001), pinfo: over }), 200030);
    // A refused write changes nothing, not even the part within the limit.
    await expectCode(app.call('setuserinfo', { uid: I(5001), oinfo: 'small', pinfo: over }), 200030);
    assert.deepEqual(await app.call('getuserinfo', { uid: I(5001) }), { oinfo: max, pinfo: max });
    const u = await login(srv, app, 5002, { transport: 'ws' });
    await expectCode(u.call('setuserinfo', { oinfo: over }), 200030);
    await expectCode(u.call('setuserinfo', { pinfo: over }), 200030);

    const many = int64s(Array.from({ length: 101 }, (_, i) => 6000 + i));
    await expectCode(app.call('getuseropeninfo', { uids: many }), 200032);
    await expectCode(u.call('getuseropeninfo', { uids: many }), 200032);
    await expectCode(u.call('getgroupsopeninfo', { gids: many }), 200032);
    await expectCode(u.call('getroomsopeninfo', { rids: many }), 200032);
    assert.deepEqual(await u.call('getuseropeninfo', { uids: many.slice(0, 100) }), { info: {} });
    await expectCode(u.call('getuseropeninfo', { uids: [] }), 200033);
    await expectCode(u.call('getgroupsopeninfo', { gids: [] }), 200033);
    await expectCode(u.call('getroomsopeninfo', { rids: [] }), 200033);

    // Missing and mistyped fields.
    await expectCode(app.call('setuserinfo', { oinfo: 'x' }), 10009);
    await expectCode(app.call('getuserinfo', {}), 10009);
    await expectCode(app.call('getgroupinfo', {}), 10009);
    await expectCode(app.call('setroominfo', { oinfo: 'x' }), 10009);
    await expectCode(app.call('getuseropeninfo', {}), 10009);
    await expectCode(u.call('getgroupsopeninfo', {}), 10009);
    await expectCode(app.call('setuserinfo', { uid: I(5001), oinfo: 7 }), 10010);
    await expectCode(u.call('setuserinfo', { pinfo: ['x'] }), 10010);
    await expectCode(u.call('getroomsopeninfo', { rids: I(1) }), 10010);
    await u.close();
  });

  it('the limits are per project (max_oinfo_bytes, max_pinfo_bytes)', async () => {
    await app2.call('setuserinfo', { uid: I(1), oinfo: '0123456789', pinfo: '01234567890123456789' });
    await expectCode(app2.call('setuserinfo', { uid: I(1), oinfo: '0123456789x' }), 200030);
    await expectCode(app2.call('setuserinfo', { uid: I(1), pinfo: '01234567890123456789x' }), 200030);
    await expectCode(app2.call('setgroupinfo', { gid: I(1), oinfo: '0123456789x' }), 200030);
    // The other project keeps the default.
    await app.call('setuserinfo', { uid: I(1), oinfo: '0123456789x' });
  });

  it('open info of many that does not fit in max_packet is refused (200032), not cut', async () => {
    const big = 'b'.repeat(65535);
    const uids = Array.from({ length: 40 }, (_, i) => 7000 + i);
    await Promise.all(uids.map((uid) => app.call('setuserinfo', { uid: I(uid), oinfo: big })));
    const e = await expectCode(app.call('getuseropeninfo', { uids: int64s(uids) }), 200032);
    assert.match(e.message, /max_packet/);
    const fits = await app.call('getuseropeninfo', { uids: int64s(uids.slice(0, 20)) });
    assert.equal(Object.keys(fits.info).length, 20);
  });

  it('projects are isolated', async () => {
    await app.call('setuserinfo', { uid: I(8001), oinfo: 'one', pinfo: 'one p' });
    await app.call('setgroupinfo', { gid: I(8001), oinfo: 'one g' });
    assert.deepEqual(await app2.call('getuserinfo', { uid: I(8001) }), { oinfo: '', pinfo: '' });
    assert.deepEqual(await app2.call('getgroupinfo', { gid: I(8001) }), { oinfo: '', pinfo: '' });
    assert.deepEqual(await app2.call('getuseropeninfo', { uids: int64s([8001]) }), { info: {} });
    const u = await login(srv, app2, 8002);
    assert.deepEqual(await u.call('getgroupsopeninfo', { gids: int64s([8001]) }), { info: {} });
    await u.close();
  });

  it('rtmctl info gets and sets user, group and room info over the server gate', async () => {
    const addr = `127.0.0.1:${srv.ports.server_tcp}`;
    const signed = ['--pid', String(p1.pid), '--secret', p1.secret];
    const ctl = (args) => run(rtmctlBin(), ['info', addr, ...args, ...signed], { timeoutMs: 10000 });
    const show = (r) => `exit=${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
    let r = await ctl(['set', '--uid', '9001', '--oinfo', 'ctl open', '--pinfo', 'ctl private']);
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(await app.call('getuserinfo', { uid: I(9001) }), { oinfo: 'ctl open', pinfo: 'ctl private' });
    r = await ctl(['set', '--uid', '9001', '--pinfo', 'ctl private b']);
    assert.equal(r.code, 0, show(r));
    r = await ctl(['get', '--uid', '9001']);
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(JSON.parse(r.stdout), { oinfo: 'ctl open', pinfo: 'ctl private b' });
    r = await ctl(['set', '--group', '9002', '--oinfo', 'ctl group']);
    assert.equal(r.code, 0, show(r));
    r = await ctl(['get', '--group', '9002']);
    assert.deepEqual(JSON.parse(r.stdout), { oinfo: 'ctl group', pinfo: '' });
    await app.call('setroominfo', { rid: I(9003), pinfo: 'room by app' });
    r = await ctl(['get', '--room', '9003']);
    assert.deepEqual(JSON.parse(r.stdout), { oinfo: '', pinfo: 'room by app' });
    // Errors: the server's code on stderr (exit 2); bad usage exits 1.
    // (Project two allows 10 bytes: a first request of a link is bounded
    // by prelogin_max_packet, 64 KiB, until it is signed.)
    r = await run(rtmctlBin(), ['info', addr, 'set', '--uid', '9001', '--oinfo', 'o'.repeat(11), '--pid', String(p2.pid),
      '--secret', p2.secret], { timeoutMs: 10000 });
    assert.equal(r.code, 2, show(r));
    assert.equal(JSON.parse(r.stderr).code, 200030);
    for (const bad of [['get'], ['set', '--uid', '1'], ['get', '--uid', '1', '--group', '2'], ['get', '--uid', '1', '--oinfo', 'x'], ['put', '--uid', '1']]) {
      r = await ctl(bad);
      assert.equal(r.code, 1, show(r));
    }
  });

  it('info survives a restart', async () => {
    await app.call('setuserinfo', { uid: I(9501), oinfo: 'kept open', pinfo: 'kept private' });
    await app.call('setgroupinfo', { gid: I(9502), oinfo: 'kept group', pinfo: 'kept gp' });
    await app.call('setroominfo', { rid: I(9503), oinfo: 'kept room', pinfo: 'kept rp' });
    await app2.call('setuserinfo', { uid: I(9501), oinfo: 'two' });
    await app.close();
    await app2.close();
    assert.equal(await srv.stop('SIGTERM'), 0);
    srv = await startRtmd({ dataDir: srv.dataDir, config: conf });
    app = await appServer(srv, { project: p1 });
    app2 = await appServer(srv, { project: p2 });
    assert.deepEqual(await app.call('getuserinfo', { uid: I(9501) }), { oinfo: 'kept open', pinfo: 'kept private' });
    assert.deepEqual(await app.call('getgroupinfo', { gid: I(9502) }), { oinfo: 'kept group', pinfo: 'kept gp' });
    assert.deepEqual(await app.call('getroominfo', { rid: I(9503) }), { oinfo: 'kept room', pinfo: 'kept rp' });
    assert.deepEqual(await app2.call('getuseropeninfo', { uids: int64s([9501]) }), { info: { 9501: 'two' } });
    const u = await login(srv, app, 9504, { transport: 'ws' });
    assert.deepEqual(await u.call('getroomsopeninfo', { rids: int64s([9503]) }), { info: { 9503: 'kept room' } });
    await u.close();
  });
});
