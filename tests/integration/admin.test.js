'use strict';
// Admin calls of the server SDKs (Go SDK src/rtm/*.go): the clean-ups
// cleanmsg, delconversationmsgs, clearusermsg, clearprojectmsg and
// clearprojectgroup, editmsg, addsessions / removesessions, project bans
// (addprojectban / removeprojectban / isprojectban: no sending, unlike the
// blacklist), and the bulk room calls addroommembers, delroommembers,
// adduserrooms, deleteuserrooms. Payloads as the SDK sends them (msgpack,
// one JSON case per family), every error code, the storage count freed by
// clean-ups, a 50,000-message clean-up during which pings and sends keep
// being answered promptly, and persistence across a restart.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode, int64s, ids, startWithProjects, stopChecked } = require('./lib/rtm');
const { startRtmd, withLogs, sleep } = require('./lib/rtmd');

const I = (v) => fpnn.int64(String(v));
const num = (v) => fpnn.toNumber(v);
let nextMid = 9100000000n;
const freshMid = () => I(nextMid++);

// A JSON quest of an app server, signed with plain numbers (lib/rtm.js).
const jsonCall = (a, method, payload) => a.call(method, payload, { json: true });

describe('admin', () => {
  let srv, app, app2, p1, p2, conf;
  const logs = () => [srv];
  const it = (name, fn, timeout = 120000) => test(name, { timeout }, withLogs(logs, fn));

  const sendP2P = (from, to, msg = 'hello', a = app) =>
    a.call('sendmsg', { from: I(from), to: I(to), mid: freshMid(), mtype: 30, msg, attrs: '' });
  const sendGroup = (from, gid, msg = 'hello') =>
    app.call('sendgroupmsg', { from: I(from), gid: I(gid), mid: freshMid(), mtype: 30, msg, attrs: '' });
  const sendBroadcast = (from, msg = 'hello') =>
    app.call('broadcastmsg', { from: I(from), mid: freshMid(), mtype: 30, msg, attrs: '' });
  const p2pHistory = async (uid, ouid, a = app) =>
    (await a.call('getp2pmsg', { uid: I(uid), ouid: I(ouid), desc: true, num: 20 })).msgs;
  const groupCount = async (gid) => num((await app.call('getmsgnum', { type: 2, xid: I(gid) })).num);

  before(async () => {
    ({ srv, conf, projects: [p1, p2], apps: [app, app2] } = await startWithProjects([
      { pid: 83001, secret: 'admin-secret-one', max_rooms_per_user: 3, storage_quota_mb: 1, history_days: 0 },
      { pid: 83002, secret: 'admin-secret-two' },
    ]));
  });

  after(() => stopChecked(srv, [app, app2]));

  it('project bans: addprojectban forbids sending, not logging in; removeprojectban; isprojectban', async () => {
    // The Go SDK: addprojectban {uid, btime}, removeprojectban {uid}, isprojectban {uid} -> {ok}.
    assert.deepEqual(await app.call('addprojectban', { uid: I(501), btime: 0 }), {});
    assert.equal((await app.call('isprojectban', { uid: I(501) })).ok, true);
    assert.equal((await app.call('isprojectblack', { uid: I(501) })).ok, false, 'a ban is not the blacklist');
    assert.equal((await app2.call('isprojectban', { uid: I(501) })).ok, false, 'projects are apart');
    const u = await login(srv, app, 501); // may still log in
    const e = await expectCode(u.call('sendmsg', { to: I(502), mid: freshMid(), mtype: 30, msg: 'x', attrs: '' }), 200021);
    assert.match(e.message, /banned in project/);
    await expectCode(sendP2P(501, 502), 200021);
    await expectCode(sendBroadcast(501), 200021);
    await sendP2P(501, 502, 'x', app2); // the other project's uid 501 is free
    // JSON, as an SDK with the JSON flag sends it.
    assert.equal((await jsonCall(app, 'isprojectban', { uid: 501 })).ok, true);
    assert.deepEqual(await app.call('removeprojectban', { uid: I(501) }), {});
    assert.equal((await app.call('isprojectban', { uid: I(501) })).ok, false);
    await u.call('sendmsg', { to: I(502), mid: freshMid(), mtype: 30, msg: 'x', attrs: '' });
    // A timed ban ends.
    await app.call('addprojectban', { uid: I(503), btime: 1 });
    await expectCode(sendP2P(503, 502), 200021);
    await sleep(2100);
    await sendP2P(503, 502);
    await expectCode(app.call('addprojectban', { uid: I(503) }), 10009);
    await expectCode(app.call('isprojectban', { uid: 'x' }), 10010);
    await u.close();
  });

  it('editmsg replaces msg and attrs; history and getmsg return the edited message', async () => {
    const mid = freshMid();
    await app.call('sendmsg', { from: I(601), to: I(602), mid, mtype: 30, msg: 'before', attrs: 'a0' });
    // The Go SDK: {mid, from, xid, type, msg, attrs, timeLimit}.
    assert.deepEqual(await app.call('editmsg', { mid, from: I(601), xid: I(602), type: 1, msg: 'after', attrs: 'a1', timeLimit: I(0) }), {});
    const h = await p2pHistory(602, 601);
    assert.equal(h.length, 1);
    assert.equal(h[0][5], 'after');
    assert.equal(h[0][6], 'a1');
    const g = await app.call('getmsg', { mid, from: I(601), xid: I(602), type: 1 });
    assert.equal(g.msg, 'after');
    assert.equal(g.attrs, 'a1');
    // Group, JSON.
    await app.call('addgroupmembers', { gid: I(60), uids: int64s([601]) });
    const gm = freshMid();
    await app.call('sendgroupmsg', { from: I(601), gid: I(60), mid: gm, mtype: 30, msg: 'g', attrs: '' });
    assert.deepEqual(await jsonCall(app, 'editmsg', { mid: num(gm), from: 601, xid: 60, type: 2, msg: 'g2', attrs: '', timeLimit: 0 }), {});
    const gh = await app.call('getgroupmsg', { gid: I(60), desc: true, num: 5, uid: I(601) });
    assert.equal(gh.msgs[0][5], 'g2');
    // Errors: too old, absent, deleted, too large, missing and wrong fields.
    await sleep(30);
    await expectCode(app.call('editmsg', { mid, from: I(601), xid: I(602), type: 1, msg: 'late', attrs: '', timeLimit: I(10) }), 200021);
    assert.equal((await app.call('getmsg', { mid, from: I(601), xid: I(602), type: 1 })).msg, 'after');
    await expectCode(app.call('editmsg', { mid: I(1), from: I(601), xid: I(602), type: 1, msg: 'x', attrs: '', timeLimit: I(0) }), 200070);
    await app.call('delmsg', { mid, from: I(601), xid: I(602), type: 1 });
    await expectCode(app.call('editmsg', { mid, from: I(601), xid: I(602), type: 1, msg: 'x', attrs: '', timeLimit: I(0) }), 200070);
    await expectCode(app.call('editmsg', { mid: gm, from: I(601), xid: I(60), type: 2, msg: 'x'.repeat(40000), attrs: '', timeLimit: I(0) }), 200030);
    await expectCode(app.call('editmsg', { mid: gm, from: I(601), xid: I(60), type: 2, attrs: '', timeLimit: I(0) }), 10009);
    await expectCode(app.call('editmsg', { mid: gm, from: I(601), xid: I(60), type: 9, msg: 'x', attrs: '', timeLimit: I(0) }), 10010);
    await expectCode(app2.call('editmsg', { mid: gm, from: I(601), xid: I(60), type: 2, msg: 'x', attrs: '', timeLimit: I(0) }), 200070);
  });

  it('cleanmsg: a conversation within begin..end; delconversationmsgs: one sender', async () => {
    const mt = [];
    for (let i = 0; i < 4; i++) {
      mt.push(num((await sendP2P(701, 702, `m${i}`)).mtime));
      await sleep(5);
    }
    // The Go SDK: cleanmsg {from, xid, type, begin, end}.
    assert.deepEqual(await app.call('cleanmsg', { from: I(702), xid: I(701), type: 1, begin: I(mt[1]), end: I(mt[2]) }), {});
    assert.deepEqual((await p2pHistory(701, 702)).map((m) => m[5]), ['m3', 'm0']);
    await app.call('cleanmsg', { from: I(701), xid: I(702), type: 1, begin: I(0), end: I(0) });
    assert.equal((await p2pHistory(701, 702)).length, 0);

    await app.call('addgroupmembers', { gid: I(70), uids: int64s([701, 702]) });
    for (let i = 0; i < 3; i++) {
      await sendGroup(701, 70);
      await sendGroup(702, 70);
    }
    // The Go SDK: delconversationmsgs {from, xid, type}.
    assert.deepEqual(await app.call('delconversationmsgs', { from: I(701), xid: I(70), type: 2 }), {});
    let n = await app.call('getmsgnum', { type: 2, xid: I(70) });
    assert.deepEqual([num(n.sender), num(n.num)], [1, 3]);
    assert.deepEqual(await jsonCall(app, 'delconversationmsgs', { from: 702, xid: 70, type: 2 }), {});
    assert.equal(await groupCount(70), 0);
    await sendGroup(701, 70);
    await app.call('cleanmsg', { from: I(0), xid: I(70), type: 2, begin: I(0), end: I(0) });
    assert.equal(await groupCount(70), 0);
    // Broadcasts: from != 0 takes only that sender's.
    await sendBroadcast(703);
    await sendBroadcast(704);
    await app.call('cleanmsg', { from: I(703), xid: I(0), type: 4, begin: I(0), end: I(0) });
    const b = await app.call('getbroadcastmsg', { uid: I(1), desc: true, num: 20 });
    assert.ok(b.msgs.every((m) => num(m[1]) !== 703));
    assert.ok(b.msgs.some((m) => num(m[1]) === 704));

    await expectCode(app.call('cleanmsg', { from: I(1), xid: I(2), type: 0, begin: I(0), end: I(0) }), 10010);
    await expectCode(app.call('cleanmsg', { from: I(1), type: 1, begin: I(0), end: I(0) }), 10009);
    await expectCode(app.call('delconversationmsgs', { xid: I(70), type: 2 }), 10009);
    await expectCode(app.call('delconversationmsgs', { from: I(1), xid: 'x', type: 2 }), 10010);
  });

  it('clearprojectmsg by type; clearusermsg: what the user sent and its p2p conversations', async () => {
    await app.call('addgroupmembers', { gid: I(80), uids: int64s([801, 802]) });
    const u = await login(srv, app, 801);
    await u.call('enterroom', { rid: I(80) });
    await app.call('sendroommsg', { from: I(801), rid: I(80), mid: freshMid(), mtype: 30, msg: 'r', attrs: '' });
    await sendGroup(801, 80);
    await sendGroup(802, 80);
    await sendP2P(801, 803);
    await sendP2P(803, 801);
    await sendP2P(802, 803);
    await sendP2P(802, 803, 'other project', app2);
    // The Go SDK: clearprojectmsg {type}, ClearType 0 p2p, 1 room, 2 group, 3 broadcast, 4 all.
    assert.deepEqual(await app.call('clearprojectmsg', { type: 1 }), {});
    assert.equal(num((await app.call('getmsgnum', { type: 3, xid: I(80) })).num), 0);
    assert.equal(await groupCount(80), 2);
    // clearusermsg {uid}
    assert.deepEqual(await app.call('clearusermsg', { uid: I(801) }), {});
    assert.equal(await groupCount(80), 1, "the other member's group message stays");
    assert.equal((await p2pHistory(801, 803)).length, 0, 'both directions of its p2p conversations');
    assert.equal((await p2pHistory(802, 803)).length, 1);
    assert.deepEqual(await jsonCall(app, 'clearprojectmsg', { type: 0 }), {});
    assert.equal((await p2pHistory(802, 803)).length, 0);
    assert.equal(await groupCount(80), 1);
    await app.call('clearprojectmsg', { type: 4 });
    assert.equal(await groupCount(80), 0);
    assert.equal((await p2pHistory(802, 803, app2)).length, 1, 'other projects keep theirs');
    await expectCode(app.call('clearprojectmsg', { type: 5 }), 10010);
    await expectCode(app.call('clearprojectmsg', {}), 10009);
    await expectCode(app.call('clearusermsg', {}), 10009);
    await expectCode(u.call('clearusermsg', { uid: I(801) }), 20004); // server gate only
    await u.close();
  });

  it('removesessions hides p2p conversations from getsession, addsessions shows them again', async () => {
    await sendP2P(901, 902);
    await sendP2P(903, 901);
    const u = await login(srv, app, 901);
    assert.deepEqual(ids((await u.call('getsession', {})).p2p), [902, 903]);
    // The Go SDK: removesessions / addsessions {uid, uids}.
    assert.deepEqual(await app.call('removesessions', { uid: I(901), uids: int64s([902, 903]) }), {});
    assert.deepEqual(ids((await u.call('getsession', {})).p2p), []);
    assert.deepEqual(ids((await u.call('getunread', {})).p2p), [], 'removed conversations are read');
    assert.deepEqual(await app.call('addsessions', { uid: I(901), uids: int64s([903]) }), {});
    assert.deepEqual(ids((await u.call('getsession', {})).p2p), [903]);
    assert.deepEqual(await jsonCall(app, 'addsessions', { uid: 901, uids: [902] }), {});
    assert.deepEqual(ids((await u.call('getsession', {})).p2p), [902, 903]);
    await expectCode(app.call('addsessions', { uid: I(901), uids: [] }), 200033);
    await expectCode(app.call('removesessions', { uid: I(901), uids: int64s([...Array(101).keys()]) }), 200032);
    await expectCode(app.call('removesessions', { uids: int64s([1]) }), 10009);
    await u.close();
  });

  it('bulk rooms: addroommembers, delroommembers, adduserrooms, deleteuserrooms', async () => {
    const a = await login(srv, app, 1001);
    const b = await login(srv, app, 1002);
    // The Go SDK: addroommembers {rid, uids} -> {successedUids}; 1003 is offline.
    const r = await app.call('addroommembers', { rid: I(100), uids: int64s([1001, 1002, 1003]) });
    assert.deepEqual(ids(r.successedUids), [1001, 1002]);
    assert.deepEqual(ids((await app.call('getroommembers', { rid: I(100) })).uids), [1001, 1002]);
    const d = await app.call('delroommembers', { rid: I(100), uids: int64s([1002]) });
    assert.deepEqual(ids(d.successedUids), [1002]);
    const kick = await b.waitPush((p) => p.method === 'kickoutroom');
    assert.equal(num(kick.payload.rid), 100);
    assert.deepEqual(ids((await app.call('getroommembers', { rid: I(100) })).uids), [1001]);
    // adduserrooms {rids, uid} / deleteuserrooms {rids, uid} -> {}
    assert.deepEqual(await app.call('adduserrooms', { rids: int64s([101, 102]), uid: I(1002) }), {});
    assert.deepEqual(ids((await b.call('getuserrooms', {})).rooms), [101, 102]);
    await expectCode(app.call('adduserrooms', { rids: int64s([103, 104]), uid: I(1002) }), 200047);
    assert.deepEqual(ids((await b.call('getuserrooms', {})).rooms), [101, 102], 'all or nothing');
    await expectCode(app.call('adduserrooms', { rids: int64s([101]), uid: I(1003) }), 200001);
    assert.deepEqual(await app.call('deleteuserrooms', { rids: int64s([101, 105]), uid: I(1002) }), {});
    assert.deepEqual(ids((await b.call('getuserrooms', {})).rooms), [102]);
    assert.deepEqual(ids((await jsonCall(app, 'addroommembers', { rid: 106, uids: [1001] })).successedUids), [1001]);
    await expectCode(app.call('addroommembers', { rid: I(100), uids: [] }), 200033);
    await expectCode(app.call('delroommembers', { rid: I(100), uids: int64s([...Array(101).keys()]) }), 200032);
    await expectCode(app.call('deleteuserrooms', { uid: I(1) }), 10009);
    await a.close();
    await b.close();
  });

  it('clearprojectgroup drops every group of the project, durably', async () => {
    await app.call('addgroupmembers', { gid: I(110), uids: int64s([1101, 1102]) });
    await app.call('addgroupmembers', { gid: I(111), uids: int64s([1101]) });
    await app2.call('addgroupmembers', { gid: I(110), uids: int64s([1101]) });
    await sendGroup(1101, 110);
    // The Go SDK: clearprojectgroup {}.
    assert.deepEqual(await app.call('clearprojectgroup', {}), {});
    assert.deepEqual(ids((await app.call('getgroupmembers', { gid: I(110) })).uids), []);
    assert.deepEqual(ids((await app.call('getusergroups', { uid: I(1101) })).gids), []);
    assert.deepEqual(ids((await app2.call('getgroupmembers', { gid: I(110) })).uids), [1101]);
    assert.equal(await groupCount(110), 1, 'group messages stay');
    assert.deepEqual(await jsonCall(app, 'clearprojectgroup', {}), {});
  });

  it('a 50,000-message clean-up: pings and sends answered promptly meanwhile; the storage count freed', async () => {
    // Fill most of the 1 MiB quota with the messages of uid 1201, in 25
    // sendmsgs of 2000 receivers (20 bytes each: 1,000,000 bytes).
    const body = 'y'.repeat(20);
    const tos = int64s([...Array(2000).keys()].map((i) => 20000 + i));
    for (let i = 0; i < 25; i++) await app.call('sendmsgs', { from: I(1201), tos, mid: freshMid(), mtype: 30, msg: body, attrs: '' });
    await sleep(1500); // the storage count catches up (quota.c, once a second)
    const big = () => app.call('sendmsgs', { from: I(1202), tos: int64s([1203, 1204, 1205]), mid: freshMid(), mtype: 30, msg: 'z'.repeat(20000), attrs: '' });
    await expectCode(big(), 200080); // 60,000 more bytes do not fit

    const pinger = await appServer(srv, { project: p1 });
    let worstPing = 0, worstSend = 0, pings = 0, sends = 0, done = false;
    const pingLoop = (async () => {
      while (!done) {
        const t = process.hrtime.bigint();
        await pinger.client.quest('ping', {});
        worstPing = Math.max(worstPing, Number(process.hrtime.bigint() - t) / 1e6);
        pings++;
        await sleep(2);
      }
    })();
    const sendLoop = (async () => {
      while (!done) {
        const t = process.hrtime.bigint();
        await sendP2P(1204, 1205, 's', pinger);
        worstSend = Math.max(worstSend, Number(process.hrtime.bigint() - t) / 1e6);
        sends++;
        await sleep(5);
      }
    })();
    await sleep(50);
    const t0 = Date.now();
    assert.deepEqual(await app.call('clearusermsg', { uid: I(1201) }, { timeoutMs: 60000 }), {});
    const took = Date.now() - t0;
    done = true;
    await Promise.all([pingLoop, sendLoop]);
    await pinger.close();
    console.log(`clearusermsg of 50,000 messages: ${took} ms; ${pings} pings (worst ${worstPing.toFixed(1)} ms), ` +
      `${sends} sends (worst ${worstSend.toFixed(1)} ms) meanwhile`);
    assert.ok(pings > 0 && sends > 0);
    assert.ok(worstPing < 500, `a ping waited ${worstPing} ms`);
    assert.ok(worstSend < 1500, `a send waited ${worstSend} ms`);
    assert.equal((await p2pHistory(1201, 20000)).length, 0);
    assert.equal((await p2pHistory(1201, 21999)).length, 0);
    assert.ok((await p2pHistory(1204, 1205)).length > 0, 'concurrent sends are kept');
    // The storage count lost the deleted bytes: the big message fits now.
    await sleep(1500);
    await big();
  });

  it('clean-ups, edits, bans and cleared groups persist across a restart', async () => {
    const mid = freshMid();
    await app.call('sendmsg', { from: I(1301), to: I(1302), mid, mtype: 30, msg: 'old', attrs: '' });
    await app.call('editmsg', { mid, from: I(1301), xid: I(1302), type: 1, msg: 'new', attrs: 'n', timeLimit: I(0) });
    await sendP2P(1303, 1304);
    await app.call('cleanmsg', { from: I(1303), xid: I(1304), type: 1, begin: I(0), end: I(0) });
    await app.call('addprojectban', { uid: I(1305), btime: 0 });
    await app.call('addgroupmembers', { gid: I(130), uids: int64s([1301]) });
    await app.call('clearprojectgroup', {});
    await app.close();
    await app2.close();
    assert.equal(await srv.stop('SIGTERM'), 0);
    srv = await startRtmd({ dataDir: srv.dataDir, config: conf });
    app = await appServer(srv, { project: p1 });
    app2 = await appServer(srv, { project: p2 });
    const h = await p2pHistory(1302, 1301);
    assert.equal(h[0][5], 'new');
    assert.equal(h[0][6], 'n');
    assert.equal((await p2pHistory(1303, 1304)).length, 0);
    assert.equal((await app.call('isprojectban', { uid: I(1305) })).ok, true);
    await expectCode(sendP2P(1305, 1), 200021);
    assert.deepEqual(ids((await app.call('getgroupmembers', { gid: I(130) })).uids), []);
    // New messages take ids above the deleted ones.
    const a = await sendP2P(1303, 1304);
    assert.ok(num(a.mtime) > 0);
    assert.equal((await p2pHistory(1303, 1304)).length, 1);
  });
});
