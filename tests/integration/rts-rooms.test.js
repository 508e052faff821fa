'use strict';
// Rooms of string-id (RTS) clients: string rids on enterroom, leaveroom,
// sendroommsg and getroommsg (integer rids still work), the members list
// answered to enterroom, pushroommsg naming the sender and the room by
// strings, membership pushes (pushroomjoined, pushroomleft with its reason:
// 0 leaveroom or bye, 1 connection lost, 3 delroommember or kickout), none
// in rooms larger than room_events_max, and number-id members of the same
// room getting integers and no membership pushes.
//
// On two nodes (RTMD_TEST_STORE=cluster) every client logs in through the
// first node: the members list of enterroom and the membership pushes are
// those of the node of the change (docs/cluster.md, "Rooms across nodes").

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { User, answerPushes, expectCode, login, startWithProjects, stopChecked } = require('./lib/rtm');
const { withLogs, sleep } = require('./lib/rtmd');

const APP_ID = 'RtsRooms0123456789abcdef';
const SMALL_APP_ID = 'RtsRoomsSmall0123456789a';
const I = fpnn.int64;
const N = fpnn.toNumber;

describe('string-id clients in rooms', () => {
  let srv, app, small;
  const users = [];
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(() => [srv], fn));

  // A string-id login over WebSocket (the web SDK's transport) unless told.
  const rtsLogin = async (uid, { a = app, transport = 'ws', appid = APP_ID } = {}) => {
    const { token } = await a.call('getrtstoken', { uid });
    const one = srv.node(0).ports;
    const ports = { tcp: one.client_tcp, ws: one.client_ws };
    const client = await fpnn.connect({ host: '127.0.0.1', port: ports[transport], transport });
    answerPushes(client);
    for (const m of ['pushroomjoined', 'pushroomleft']) client.onQuest(m, () => ({}));
    assert.deepEqual(await client.quest('auth', { appid, uid, token, version: 'rts-rooms-tests' }), { ok: true });
    const u = new User(client, uid);
    users.push(u);
    return u;
  };
  const numLogin = async (uid) => {
    const u = await login(srv, app, uid, { ports: srv.node(0).ports });
    users.push(u);
    return u;
  };
  // The uid a string id maps to (rooms and users share the map).
  const uidOf = async (sid, a = app) => (await a.call('getuserids', { ids: [sid] })).uids[sid];
  const pushesOf = (u, method, rid) => u.pushes.filter((p) => p.method === method && (rid === undefined || p.payload.rid === rid));
  const joined = (u, rid, uid) => u.waitPush((p) => p.method === 'pushroomjoined' && p.payload.rid === rid && p.payload.uid === uid);
  const left = (u, rid, uid) => u.waitPush((p) => p.method === 'pushroomleft' && p.payload.rid === rid && p.payload.uid === uid);
  const send = (u, rid, mid, msg, opts) => u.call('sendroommsg', { rid, mid: I(mid), mtype: 30, msg }, opts);

  before(async () => {
    ({ srv, apps: [app, small] } = await startWithProjects([
      { pid: 71, secret: 'rts-rooms-secret-1', app_id: APP_ID, app_key: 'rts-rooms-key-1' },
      { pid: 72, secret: 'rts-rooms-secret-2', app_id: SMALL_APP_ID, app_key: 'rts-rooms-key-2', room_events_max: 1 },
    ]));
  });

  after(async () => {
    for (const u of users) if (!u.client.isClosed) u.client.destroy();
    await stopChecked(srv, [app, small]);
  });

  it('enter, members, pushroomjoined, send (text, binary), history and leave with string rids', async () => {
    const a = await rtsLogin('r1.alice');
    const b = await rtsLogin('r1.bob');
    const c = await rtsLogin('r1.carol', { transport: 'tcp' });
    assert.deepEqual(await a.call('enterroom', { rid: 'lobby.1' }), { members: [] });
    assert.deepEqual(await b.call('enterroom', { rid: 'lobby.1' }), { members: ['r1.alice'] });
    let p = await joined(a, 'lobby.1', 'r1.bob');
    assert.deepEqual(p.payload, { rid: 'lobby.1', uid: 'r1.bob' });
    // JSON: the same request and answer.
    const ans = await c.call('enterroom', { rid: 'lobby.1' }, { json: true });
    assert.deepEqual([...ans.members].sort(), ['r1.alice', 'r1.bob']);
    await joined(a, 'lobby.1', 'r1.carol');
    await joined(b, 'lobby.1', 'r1.carol');
    // Entering again: same answer, nobody told.
    assert.deepEqual([...(await b.call('enterroom', { rid: 'lobby.1' })).members].sort(), ['r1.alice', 'r1.carol']);
    // The room is the uid of its string id.
    const rid = await uidOf('lobby.1');
    assert.deepEqual((await app.call('getroommembers', { rid })).uids.map(N).sort(),
      [N(await uidOf('r1.alice')), N(await uidOf('r1.bob')), N(await uidOf('r1.carol'))].sort());

    const r = await send(a, 'lobby.1', 101, 'hello room');
    assert.ok(N(r.mtime) > 0);
    for (const u of [b, c]) {
      p = await u.waitPush((q) => q.method === 'pushroommsg' && N(q.payload.mid) === 101);
      assert.equal(p.payload.from, 'r1.alice');
      assert.equal(p.payload.rid, 'lobby.1');
      assert.equal(p.payload.msg, 'hello room');
      assert.equal(N(p.payload.mtime), N(r.mtime));
    }
    assert.equal(pushesOf(a, 'pushroommsg').length, 0, 'the sender gets no copy');
    const bin = Buffer.from([0, 1, 2, 255]);
    await send(b, 'lobby.1', 102, bin);
    p = await a.waitPush((q) => q.method === 'pushroommsg' && N(q.payload.mid) === 102);
    assert.equal(p.payload.from, 'r1.bob');
    assert.ok(Buffer.isBuffer(p.payload.msg) && p.payload.msg.equals(bin), 'binary stays binary');

    const h = await c.call('getroommsg', { rid: 'lobby.1', desc: true, num: 10 });
    assert.equal(N(h.num), 2);
    assert.deepEqual(h.msgs.map((m) => [m[1], N(m[3])]), [['r1.bob', 102], ['r1.alice', 101]]);
    const hj = await c.call('getroommsg', { rid: 'lobby.1', desc: false, num: 10 }, { json: true });
    assert.deepEqual(hj.msgs.map((m) => m[1]), ['r1.alice', 'r1.bob']);

    assert.deepEqual(await c.call('leaveroom', { rid: 'lobby.1' }), {});
    for (const u of [a, b]) assert.equal(N((await left(u, 'lobby.1', 'r1.carol')).payload.reason), 0);
    await expectCode(send(c, 'lobby.1', 103, 'gone'), 200040);
    await expectCode(c.call('getroommsg', { rid: 'lobby.1', num: 10 }), 200040);
    assert.equal(pushesOf(a, 'pushroomjoined', 'lobby.1').length, 2, 'no push for entering again');
  });

  it('integer rids still work for a string-id session; its enterroom lists members', async () => {
    const a = await rtsLogin('r2.alice');
    const b = await rtsLogin('r2.bob');
    assert.deepEqual(await a.call('enterroom', { rid: I(7001) }), { members: [] });
    assert.deepEqual(await b.call('enterroom', { rid: I(7001) }), { members: ['r2.alice'] });
    const p = await a.waitPush((q) => q.method === 'pushroomjoined' && q.payload.uid === 'r2.bob');
    assert.equal(N(p.payload.rid), 7001, 'a room without a string id is named by its number');
    await send(a, I(7001), 201, 'numbered');
    const m = await b.waitPush((q) => q.method === 'pushroommsg' && N(q.payload.mid) === 201);
    assert.equal(m.payload.from, 'r2.alice');
    assert.equal(N(m.payload.rid), 7001);
  });

  it('errors: an invalid string rid is 200001, a room not entered 200040', async () => {
    const a = await rtsLogin('r3.alice');
    for (const bad of ['has space', 'x'.repeat(129), '']) {
      await expectCode(a.call('enterroom', { rid: bad }), 200001);
      await expectCode(a.call('leaveroom', { rid: bad }), 200001);
      await expectCode(send(a, bad, 301, 'x'), 200001);
      await expectCode(a.call('getroommsg', { rid: bad, num: 10 }), 200001);
    }
    await expectCode(send(a, 'never.entered', 302, 'x'), 200040);
    await expectCode(send(a, 'never.entered', 303, 'x', { json: true }), 200040);
    assert.deepEqual(await a.call('leaveroom', { rid: 'never.entered' }), {});
  });

  it('pushroomleft reasons: 0 leaveroom and bye, 1 connection lost, 3 delroommember and kickout', async () => {
    const stay = await rtsLogin('r4.stay');
    await stay.call('enterroom', { rid: 'r4.room' });
    const enter = async (sid) => {
      const u = await rtsLogin(sid);
      await u.call('enterroom', { rid: 'r4.room' });
      await joined(stay, 'r4.room', sid);
      return u;
    };
    const reason = async (sid) => N((await left(stay, 'r4.room', sid)).payload.reason);

    const quitter = await enter('r4.quit');
    await quitter.call('leaveroom', { rid: 'r4.room' });
    assert.equal(await reason('r4.quit'), 0);

    const byer = await enter('r4.bye');
    assert.deepEqual(await byer.call('bye', {}), {});
    assert.equal(await reason('r4.bye'), 0);

    const dropped = await enter('r4.drop');
    dropped.client.destroy();
    assert.equal(await reason('r4.drop'), 1);

    const removed = await enter('r4.removed');
    const kickedOut = removed.waitPush((p) => p.method === 'kickoutroom');
    await app.call('delroommember', { rid: await uidOf('r4.room'), uid: await uidOf('r4.removed') });
    await kickedOut;
    assert.equal(await reason('r4.removed'), 3);

    const bulk = await enter('r4.bulk');
    await app.call('delroommembers', { rid: await uidOf('r4.room'), uids: [await uidOf('r4.bulk')] });
    assert.equal(await reason('r4.bulk'), 3);

    const kicked = await enter('r4.kicked');
    await app.call('kickout', { uid: await uidOf('r4.kicked') });
    assert.equal(await reason('r4.kicked'), 3);
    assert.ok(await kicked.client.waitClose(5000));

    const rooms = await enter('r4.rooms');
    await app.call('deleteuserrooms', { uid: await uidOf('r4.rooms'), rids: [await uidOf('r4.room')] });
    assert.equal(await reason('r4.rooms'), 3);

    const p = (await left(stay, 'r4.room', 'r4.drop')).payload;
    assert.deepEqual(Object.keys(p).sort(), ['reason', 'rid', 'uid']);
    assert.equal(pushesOf(stay, 'pushroomleft', 'r4.room').length, 7, 'one push per leave');
  });

  it('no membership pushes in rooms larger than room_events_max (1 here)', async () => {
    const a = await rtsLogin('r5.alice', { a: small, appid: SMALL_APP_ID });
    const b = await rtsLogin('r5.bob', { a: small, appid: SMALL_APP_ID });
    assert.deepEqual(await a.call('enterroom', { rid: 'big.room' }), { members: [] });
    assert.deepEqual(await b.call('enterroom', { rid: 'big.room' }), { members: ['r5.alice'] });
    await b.call('leaveroom', { rid: 'big.room' });
    await b.call('enterroom', { rid: 'big.room' });
    b.client.destroy();
    // Messages still flow; a message sent after the events is a barrier.
    const c = await rtsLogin('r5.carol', { a: small, appid: SMALL_APP_ID });
    await c.call('enterroom', { rid: 'big.room' });
    await send(c, 'big.room', 501, 'after');
    const m = await a.waitPush((q) => q.method === 'pushroommsg' && N(q.payload.mid) === 501);
    assert.equal(m.payload.from, 'r5.carol');
    await sleep(100);
    assert.deepEqual(a.pushes.filter((q) => q.method === 'pushroomjoined' || q.method === 'pushroomleft'), []);
  });

  it('number-id members of a string room get integers and no membership pushes', async () => {
    const rid = await uidOf('mixed.room');
    const n = await numLogin(7101);
    assert.deepEqual(await n.call('enterroom', { rid }), {}, 'number-id sessions keep the empty answer');
    const s = await rtsLogin('r6.str');
    assert.deepEqual((await s.call('enterroom', { rid: 'mixed.room' })).members.map(N), [7101]);
    const s2 = await rtsLogin('r6.str2');
    assert.deepEqual((await s2.call('enterroom', { rid: 'mixed.room' })).members.map((x) => (typeof x === 'string' ? x : N(x))),
      [7101, 'r6.str']);
    await joined(s, 'mixed.room', 'r6.str2');
    // A number-id user entering is told to string-id members by its number.
    const n2 = await numLogin(7102);
    await n2.call('enterroom', { rid });
    const pj = await s.waitPush((q) => q.method === 'pushroomjoined' && N(q.payload.uid) === 7102);
    assert.equal(pj.payload.rid, 'mixed.room');

    await send(s, 'mixed.room', 601, 'from a string id');
    const pn = await n.waitPush((q) => q.method === 'pushroommsg' && N(q.payload.mid) === 601);
    assert.equal(fpnn.toBigInt(pn.payload.from), fpnn.toBigInt(await uidOf('r6.str')));
    assert.equal(fpnn.toBigInt(pn.payload.rid), fpnn.toBigInt(rid));
    await n.call('sendroommsg', { rid, mid: I(602), mtype: 30, msg: 'from a number' });
    const ps = await s.waitPush((q) => q.method === 'pushroommsg' && N(q.payload.mid) === 602);
    assert.equal(N(ps.payload.from), 7101);
    assert.equal(ps.payload.rid, 'mixed.room');
    const h = await s.call('getroommsg', { rid: 'mixed.room', desc: true, num: 2 });
    assert.deepEqual(h.msgs.map((m) => (typeof m[1] === 'string' ? m[1] : N(m[1]))), [7101, 'r6.str']);
    const hn = await n.call('getroommsg', { rid, desc: true, num: 2 });
    assert.ok(hn.msgs.every((m) => typeof m[1] !== 'string'), 'a number-id session reads integers');

    await s2.call('leaveroom', { rid: 'mixed.room' });
    await left(s, 'mixed.room', 'r6.str2');
    await n2.client.close();
    assert.equal(N((await s.waitPush((q) => q.method === 'pushroomleft' && N(q.payload.uid) === 7102)).payload.reason), 1);
    await sleep(100);
    assert.deepEqual(n.pushes.filter((q) => q.method === 'pushroomjoined' || q.method === 'pushroomleft'), []);
  });
});

// The members list is cut where it might not fit in max_packet (and at
// 1,000 members): with max_packet 4096, 23 members at most, then more: true.
describe('the enterroom members list of a large room', () => {
  let srv, app;
  const links = [];
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(() => [srv], fn));

  before(async () => {
    const { makeTempDir, startRtmd } = require('./lib/rtmd');
    const { appServer, writeProjectsConfig } = require('./lib/rtm');
    const conf = writeProjectsConfig(await makeTempDir(), [
      { pid: 73, secret: 'rts-rooms-secret-3', app_id: APP_ID, app_key: 'rts-rooms-key-3' },
    ]);
    srv = await startRtmd({ config: conf, args: ['--max_packet=4096', '--prelogin_max_packet=4096'] });
    app = await appServer(srv, { project: srv.projects[0] });
  });

  after(async () => {
    for (const c of links) c.destroy();
    await stopChecked(srv, [app]);
  });

  it('lists what surely fits and sets more: true', async () => {
    const enter = async (uid) => {
      const { token } = await app.call('getrtstoken', { uid });
      const c = await fpnn.connect({ host: '127.0.0.1', port: srv.node(0).ports.client_ws, transport: 'ws' });
      answerPushes(c);
      for (const m of ['pushroomjoined', 'pushroomleft']) c.onQuest(m, () => ({}));
      links.push(c);
      assert.deepEqual(await c.quest('auth', { appid: APP_ID, uid, token }), { ok: true });
      return c.quest('enterroom', { rid: 'crowd' });
    };
    for (let i = 0; i < 23; i++) await enter(`m${String(i).padStart(2, '0')}`);
    let ans = await enter('m23');
    assert.equal(ans.members.length, 23);
    assert.equal(ans.more, undefined, 'all 23 others listed');
    ans = await enter('m24');
    assert.equal(ans.members.length, 23);
    assert.equal(ans.more, true);
    assert.ok(ans.members.every((m) => /^m\d\d$/.test(m)));
  });
});
