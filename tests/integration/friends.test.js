'use strict';
// Friends and blacklists (friends.c): every method on each gate that the
// SDKs send it on, with their payloads (the node server SDK's Int64BE
// values, the Go SDK's plain integers, the websocket client SDK's
// {friends}/{blacks}), one JSON case per family; one-way lists and the
// direction of isblack/isblacks; the p2p rules (200049 from a receiver's
// blacklist, 200043 under p2p_require_friend, the app server exempt); the
// limits (max_friends 200048, max_blacks, 100 uids per call, empty lists);
// the rights of a client (its own lists only); isolation of projects and
// persistence across a restart. A client's link goes to either node of a
// cluster, whose friend and black lists have a change through the other
// node once it is answered (docs/cluster.md "Mirrors across nodes").

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode, int64s, ids, startWithProjects, stopChecked, sign, pushText } = require('./lib/rtm');
const { startRtmd, withLogs, sleep } = require('./lib/rtmd');

const I = fpnn.int64;
let nextMid = 7000000000n;
const freshMid = () => I((nextMid++).toString());
const text = (extra = {}) => ({ mid: freshMid(), mtype: 30, msg: 'hi', attrs: '', ...extra });

describe('friends', () => {
  let srv, conf, app, app2, p1, p2;
  const logs = () => [srv];
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(logs, fn));

  before(async () => {
    ({ srv, conf, projects: [p1, p2], apps: [app, app2] } = await startWithProjects([
      { pid: 83001, secret: 'friends-secret-one' },
      { pid: 83002, secret: 'friends-secret-two', p2p_require_friend: 1, max_friends: 3, max_blacks: 2 },
    ]));
  });

  after(() => stopChecked(srv, [app, app2]));

  // A JSON quest on a fresh server-gate link, signed as the SDKs sign.
  async function serverJson(project, method, payload) {
    const c = await fpnn.connect({ port: srv.ports.server_tcp });
    try {
      return await c.quest(method, sign(project, method, payload, { json: true }), { json: true });
    } finally {
      await c.destroy();
    }
  }

  it('server gate: friend lists are one-way, as the node SDK sends them (Int64BE)', async () => {
    assert.deepEqual(await app.call('addfriends', { uid: I(10), friends: int64s([11, 12, 13]) }), {});
    // Present friends again and repeats are harmless.
    await app.call('addfriends', { uid: I(10), friends: int64s([13, 14, 14]) });
    assert.deepEqual(ids((await app.call('getfriends', { uid: I(10) })).uids), [11, 12, 13, 14]);
    // One-way: 10's list is not 11's.
    assert.deepEqual(ids((await app.call('getfriends', { uid: I(11) })).uids), []);
    assert.deepEqual(await app.call('isfriend', { uid: I(10), fuid: I(12) }), { ok: true });
    assert.deepEqual(await app.call('isfriend', { uid: I(12), fuid: I(10) }), { ok: false });
    const some = await app.call('isfriends', { uid: I(10), fuids: int64s([14, 99, 11]) });
    assert.deepEqual(Object.keys(some), ['fuids']);
    assert.deepEqual(ids(some.fuids), [11, 14]);
    assert.deepEqual(ids((await app.call('isfriends', { uid: I(11), fuids: int64s([10]) })).fuids), []);

    assert.deepEqual(await app.call('delfriends', { uid: I(10), friends: int64s([11, 12, 77]) }), {});
    assert.deepEqual(ids((await app.call('getfriends', { uid: I(10) })).uids), [13, 14]);
    // A user is never its own friend: its uid in the list is ignored.
    await app.call('addfriends', { uid: I(10), friends: int64s([10]) });
    await app.call('addfriends', { uid: I(10), friends: int64s([10, 15]) });
    assert.deepEqual(ids((await app.call('getfriends', { uid: I(10) })).uids), [13, 14, 15]);
    assert.deepEqual(await app.call('isfriend', { uid: I(10), fuid: I(10) }), { ok: false });
  });

  it('server gate: the Go SDK\'s plain integers and 64-bit ids round-trip', async () => {
    await app.call('addfriends', { uid: 20, friends: [21, 300, 70000, 2000000000] });
    await app.call('addblacks', { uid: 20, blacks: [22] });
    assert.deepEqual(ids((await app.call('getfriends', { uid: 20 })).uids), [21, 300, 70000, 2000000000]);
    assert.deepEqual(ids((await app.call('getblacks', { uid: 20 })).uids), [22]);
    const big = '9223372036854775807';
    await app.call('addfriends', { uid: I(big), friends: int64s(['9007199254740993']) });
    const got = await app.call('getfriends', { uid: I(big) });
    assert.deepEqual(got.uids.map((v) => fpnn.toBigInt(v).toString()), ['9007199254740993']);
    assert.equal((await app.call('isfriend', { uid: I(big), fuid: I('9007199254740993') })).ok, true);
  });

  it('server gate: blacklists, and isblack/isblacks ask whether uid is on the others\' lists', async () => {
    assert.deepEqual(await app.call('addblacks', { uid: I(30), blacks: int64s([31, 32]) }), {});
    await app.call('addblacks', { uid: I(33), blacks: int64s([31]) });
    assert.deepEqual(ids((await app.call('getblacks', { uid: I(30) })).uids), [31, 32]);
    assert.deepEqual(ids((await app.call('getblacks', { uid: I(31) })).uids), []);
    // isblack {uid, buid}: is uid blocked by buid?
    assert.deepEqual(await app.call('isblack', { uid: I(31), buid: I(30) }), { ok: true });
    assert.deepEqual(await app.call('isblack', { uid: I(30), buid: I(31) }), { ok: false });
    // isblacks {uid, buids}: the buids that blocked uid.
    const by = await app.call('isblacks', { uid: I(31), buids: int64s([30, 33, 34]) });
    assert.deepEqual(Object.keys(by), ['buids']);
    assert.deepEqual(ids(by.buids), [30, 33]);
    assert.deepEqual(ids((await app.call('isblacks', { uid: I(30), buids: int64s([31, 33]) })).buids), []);
    await app.call('delblacks', { uid: I(30), blacks: int64s([31, 99]) });
    assert.deepEqual(ids((await app.call('getblacks', { uid: I(30) })).uids), [32]);
    assert.equal((await app.call('isblack', { uid: I(31), buid: I(30) })).ok, false);
    // Friends and blacklists are separate lists.
    assert.deepEqual(ids((await app.call('getfriends', { uid: I(30) })).uids), []);
  });

  it('JSON quests: the friends and blacklist families on both gates', async () => {
    assert.deepEqual(await serverJson(p1, 'addfriends', { uid: 40, friends: [41, 42] }), {});
    assert.deepEqual(await serverJson(p1, 'getfriends', { uid: 40 }), { uids: [41, 42] });
    assert.deepEqual(await serverJson(p1, 'isfriend', { uid: 40, fuid: 41 }), { ok: true });
    assert.deepEqual(await serverJson(p1, 'isfriends', { uid: 40, fuids: [42, 43] }), { fuids: [42] });
    assert.deepEqual(await serverJson(p1, 'delfriends', { uid: 40, friends: [41] }), {});
    assert.deepEqual(await serverJson(p1, 'addblacks', { uid: 40, blacks: [44] }), {});
    assert.deepEqual(await serverJson(p1, 'getblacks', { uid: 40 }), { uids: [44] });
    assert.deepEqual(await serverJson(p1, 'isblack', { uid: 44, buid: 40 }), { ok: true });
    assert.deepEqual(await serverJson(p1, 'isblacks', { uid: 44, buids: [40, 41] }), { buids: [40] });
    assert.deepEqual(await serverJson(p1, 'delblacks', { uid: 40, blacks: [44] }), {});
    const u = await login(srv, app, 45);
    try {
      assert.deepEqual(await u.call('addfriends', { friends: [46] }, { json: true }), {});
      assert.deepEqual(await u.call('getfriends', {}, { json: true }), { uids: [46] });
      assert.deepEqual(await u.call('addblacks', { blacks: [47] }, { json: true }), {});
      assert.deepEqual(await u.call('getblacks', {}, { json: true }), { uids: [47] });
      assert.deepEqual(await u.call('delblacks', { blacks: [47] }, { json: true }), {});
      assert.deepEqual(await u.call('delfriends', { friends: [46] }, { json: true }), {});
    } finally {
      await u.close();
    }
  });

  for (const transport of ['tcp', 'ws']) {
    it(`client gate over ${transport}: a user manages only its own lists`, async () => {
      const base = transport === 'tcp' ? 5000 : 6000;
      const u = await login(srv, app, base, { transport });
      try {
        // The websocket client SDK's payloads: {friends}, {blacks}, {}.
        assert.deepEqual(await u.call('addfriends', { friends: int64s([base + 1, base + 2]) }), {});
        assert.deepEqual(ids((await u.call('getfriends', {})).uids), [base + 1, base + 2]);
        assert.deepEqual(await u.call('delfriends', { friends: int64s([base + 1]) }), {});
        assert.deepEqual(ids((await u.call('getfriends', {})).uids), [base + 2]);
        assert.deepEqual(await u.call('addblacks', { blacks: int64s([base + 3, base + 4]) }), {});
        assert.deepEqual(await u.call('delblacks', { blacks: int64s([base + 4]) }), {});
        assert.deepEqual(ids((await u.call('getblacks', {})).uids), [base + 3]);
        // What the app server sees is the same list.
        assert.deepEqual(ids((await app.call('getfriends', { uid: I(base) })).uids), [base + 2]);
        assert.equal((await app.call('isblack', { uid: I(base + 3), buid: I(base) })).ok, true);

        // A uid in the payload does not name another user's list.
        await u.call('addfriends', { uid: I(base + 9), friends: int64s([base + 5]) });
        await u.call('addblacks', { uid: I(base + 9), blacks: int64s([base + 6]) });
        assert.deepEqual(ids((await app.call('getfriends', { uid: I(base + 9) })).uids), []);
        assert.deepEqual(ids((await app.call('getblacks', { uid: I(base + 9) })).uids), []);
        assert.deepEqual(ids((await u.call('getfriends', { uid: I(base + 9) })).uids), [base + 2, base + 5]);
        assert.deepEqual(ids((await u.call('getblacks', { uid: I(base + 9) })).uids), [base + 3, base + 6]);
        await u.call('delfriends', { uid: I(base + 2), friends: int64s([base]) });
        assert.deepEqual(ids((await u.call('getfriends', {})).uids), [base + 2, base + 5]);

        // Limits and bad requests apply on the client gate too.
        await expectCode(u.call('addfriends', { friends: [] }), 200033);
        await expectCode(u.call('addblacks', { blacks: int64s(Array.from({ length: 101 }, (_, i) => i + 1)) }), 200032);
        await expectCode(u.call('addfriends', {}), 10009);
        await expectCode(u.call('delblacks', { blacks: 'x' }), 10010);
        // The server-only questions are unknown on the client gate.
        for (const m of ['isfriend', 'isfriends', 'isblack', 'isblacks']) {
          await expectCode(u.call(m, { uid: I(base), fuid: I(base + 2), fuids: int64s([base + 2]), buid: I(base + 3), buids: int64s([base + 3]) }), 20004);
        }
      } finally {
        await u.close();
      }
    });
  }

  it('a user on B\'s blacklist cannot send p2p messages to B (200049); B can, and so can the app server', async () => {
    const [a, b, c] = [100, 101, 102];
    await app.call('addblacks', { uid: I(b), blacks: int64s([a]) });
    const ua = await login(srv, app, a, { transport: 'ws' });
    const ub = await login(srv, app, b);
    const uc = await login(srv, app, c);
    try {
      const e = await expectCode(ua.call('sendmsg', text({ to: I(b) })), 200049);
      assert.match(e.message, /blocked/);
      // sendmsgs is refused whole when one receiver refuses: c gets nothing.
      await expectCode(ua.call('sendmsgs', text({ tos: int64s([c, b]) })), 200049);
      // The blocked user may still write to others, and the receiver to it.
      await ua.call('sendmsg', text({ to: I(c), msg: 'to c' }));
      await uc.waitPush((p) => p.method === 'pushmsg' && pushText(p.payload) === 'to c');
      await ub.call('sendmsg', text({ to: I(a), msg: 'from b' }));
      await ua.waitPush((p) => p.method === 'pushmsg' && pushText(p.payload) === 'from b');
      // The app server is not subject to users' blacklists (it asks isblack).
      await app.call('sendmsg', text({ from: I(a), to: I(b), msg: 'via app' }));
      await ub.waitPush((p) => p.method === 'pushmsg' && pushText(p.payload) === 'via app');
      await app.call('sendmsgs', text({ from: I(a), tos: int64s([b, c]), msg: 'via app many' }));
      await ub.waitPush((p) => p.method === 'pushmsg' && pushText(p.payload) === 'via app many');
      assert.equal(ub.pushes.filter((p) => p.method === 'pushmsg' && fpnn.toNumber(p.payload.from) === a).length, 2);
      assert.equal(uc.pushes.filter((p) => pushText(p.payload) === 'hi').length, 0);
      // Friendship does not lift a blacklist, and without p2p_require_friend
      // strangers may write.
      await app.call('addfriends', { uid: I(b), friends: int64s([a]) });
      await expectCode(ua.call('sendmsg', text({ to: I(b) })), 200049);
      await uc.call('sendmsg', text({ to: I(b), msg: 'stranger' }));
      // Once removed from the blacklist, a may send again.
      await ub.call('delblacks', { blacks: int64s([a]) });
      await ua.call('sendmsg', text({ to: I(b), msg: 'unblocked' }));
      await ub.waitPush((p) => p.method === 'pushmsg' && pushText(p.payload) === 'unblocked');
    } finally {
      await ua.close();
      await ub.close();
      await uc.close();
    }
  });

  it('p2p_require_friend: a client writes only to users who count it as a friend (200043)', async () => {
    const [a, b, c] = [200, 201, 202];
    const ua = await login(srv, app2, a);
    const ub = await login(srv, app2, b, { transport: 'ws' });
    try {
      const e = await expectCode(ua.call('sendmsg', text({ to: I(b) })), 200043);
      assert.match(e.message, /not friend/);
      // a counting b as a friend is not enough: b decides who writes to b.
      await ua.call('addfriends', { friends: int64s([b]) });
      await expectCode(ua.call('sendmsg', text({ to: I(b) })), 200043);
      await ub.call('sendmsg', text({ to: I(a), msg: 'b to a' }));
      await ua.waitPush((p) => p.method === 'pushmsg' && pushText(p.payload) === 'b to a');
      await app2.call('addfriends', { uid: I(b), friends: int64s([a]) });
      await ua.call('sendmsg', text({ to: I(b), msg: 'a to b' }));
      await ub.waitPush((p) => p.method === 'pushmsg' && pushText(p.payload) === 'a to b');
      // sendmsgs needs every receiver's friendship.
      await expectCode(ua.call('sendmsgs', text({ tos: int64s([b, c]) })), 200043);
      // A blacklist wins over friendship.
      await app2.call('addblacks', { uid: I(b), blacks: int64s([a]) });
      await expectCode(ua.call('sendmsg', text({ to: I(b) })), 200049);
      await app2.call('delblacks', { uid: I(b), blacks: int64s([a]) });
      // The app server is exempt.
      await app2.call('sendmsg', text({ from: I(c), to: I(b), msg: 'app c to b' }));
      await ub.waitPush((p) => p.method === 'pushmsg' && pushText(p.payload) === 'app c to b');
      // Other projects keep the default (off).
      const x = await login(srv, app, a);
      await x.call('sendmsg', text({ to: I(b) }));
      await x.close();
    } finally {
      await ua.close();
      await ub.close();
    }
  });

  it('limits: max_friends (200048), max_blacks (200032), 100 uids per call, empty, missing', async () => {
    // Project 2: max_friends 3, max_blacks 2.
    await app2.call('addfriends', { uid: I(300), friends: int64s([1, 2]) });
    await expectCode(app2.call('addfriends', { uid: I(300), friends: int64s([3, 4]) }), 200048);
    await app2.call('addfriends', { uid: I(300), friends: int64s([2, 3]) });
    await expectCode(app2.call('addfriends', { uid: I(300), friends: int64s([4]) }), 200048);
    // Present friends may be named again without going over.
    await app2.call('addfriends', { uid: I(300), friends: int64s([1, 2, 3]) });
    assert.deepEqual(ids((await app2.call('getfriends', { uid: I(300) })).uids), [1, 2, 3]);
    // Concurrent adds cannot overshoot together.
    await app2.call('delfriends', { uid: I(300), friends: int64s([3]) });
    const racing = await Promise.allSettled([
      app2.call('addfriends', { uid: I(300), friends: int64s([5]) }),
      app2.call('addfriends', { uid: I(300), friends: int64s([6]) }),
    ]);
    assert.deepEqual(racing.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    assert.equal(racing.find((r) => r.status === 'rejected').reason.code, 200048);
    assert.equal((await app2.call('getfriends', { uid: I(300) })).uids.length, 3);
    // The limit binds a client too.
    const u = await login(srv, app2, 301);
    await u.call('addfriends', { friends: int64s([1, 2, 3]) });
    await expectCode(u.call('addfriends', { friends: int64s([4]) }), 200048);
    await u.call('addblacks', { blacks: int64s([1, 2]) });
    await expectCode(u.call('addblacks', { blacks: int64s([3]) }), 200032);
    await u.close();
    await expectCode(app2.call('addblacks', { uid: I(302), blacks: int64s([1, 2, 3]) }), 200032);

    // Project 1: the default max_friends is rtm-doc's 100.
    const hundred = int64s(Array.from({ length: 100 }, (_, i) => 1000 + i));
    await app.call('addfriends', { uid: I(303), friends: hundred });
    await expectCode(app.call('addfriends', { uid: I(303), friends: int64s([5]) }), 200048);
    // At most 100 uids per call, none is 200033, fields are required.
    const many = int64s(Array.from({ length: 101 }, (_, i) => 2000 + i));
    for (const [m, key] of [['addfriends', 'friends'], ['delfriends', 'friends'], ['addblacks', 'blacks'], ['delblacks', 'blacks']]) {
      await expectCode(app.call(m, { uid: I(304), [key]: many }), 200032);
      await expectCode(app.call(m, { uid: I(304), [key]: [] }), 200033);
      await expectCode(app.call(m, { uid: I(304) }), 10009);
      await expectCode(app.call(m, { [key]: int64s([1]) }), 10009);
    }
    await expectCode(app.call('isfriends', { uid: I(304), fuids: many }), 200032);
    await expectCode(app.call('isblacks', { uid: I(304), buids: many }), 200032);
    await expectCode(app.call('isfriends', { uid: I(304), fuids: [] }), 200033);
    await expectCode(app.call('isfriend', { uid: I(304) }), 10009);
    await expectCode(app.call('isblack', { buid: I(304) }), 10009);
    await expectCode(app.call('getfriends', {}), 10009);
    await expectCode(app.call('getblacks', { uid: 'x' }), 10010);
  });

  it('projects are isolated', async () => {
    await app.call('addfriends', { uid: I(400), friends: int64s([401]) });
    await app.call('addblacks', { uid: I(400), blacks: int64s([402]) });
    assert.deepEqual(ids((await app2.call('getfriends', { uid: I(400) })).uids), []);
    assert.equal((await app2.call('isblack', { uid: I(402), buid: I(400) })).ok, false);
    const u = await login(srv, app2, 402);
    await app2.call('addfriends', { uid: I(400), friends: int64s([402]) });
    await u.call('sendmsg', text({ to: I(400) }));
    await u.close();
  });

  it('lists survive a restart', async () => {
    await app.call('addfriends', { uid: I(500), friends: int64s([501, 502, 503]) });
    await app.call('delfriends', { uid: I(500), friends: int64s([502]) });
    await app.call('addblacks', { uid: I(500), blacks: int64s([504]) });
    await app2.call('addfriends', { uid: I(500), friends: int64s([509]) });
    await app.close();
    await app2.close();
    assert.equal(await srv.stop('SIGTERM'), 0);
    srv = await startRtmd({ dataDir: srv.dataDir, config: conf });
    app = await appServer(srv, { project: p1 });
    app2 = await appServer(srv, { project: p2 });
    assert.deepEqual(ids((await app.call('getfriends', { uid: I(500) })).uids), [501, 503]);
    assert.deepEqual(ids((await app.call('getblacks', { uid: I(500) })).uids), [504]);
    assert.deepEqual(ids((await app2.call('getfriends', { uid: I(500) })).uids), [509]);
    assert.deepEqual(ids((await app.call('getfriends', { uid: I(300) })).uids), []);
    assert.equal((await app2.call('getfriends', { uid: I(300) })).uids.length, 3);
    // The loaded lists still admit and refuse.
    const u = await login(srv, app, 504);
    await expectCode(u.call('sendmsg', text({ to: I(500) })), 200049);
    await u.close();
    // The loaded list counts against the limit.
    await expectCode(app2.call('addfriends', { uid: I(300), friends: int64s([9]) }), 200048);
    await sleep(10);
  });
});
