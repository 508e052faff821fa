'use strict';
// Rooms across the nodes of a cluster (docs/cluster.md, "Rooms across
// nodes"): members on both nodes get a room's messages once; getroomcount
// and getroommembers answer every node's members through either node and
// gate; the app server's addroommember / delroommember through node 1 act
// on a user whose session is on node 2 (messages, kickoutroom); a killed
// node's members leave the counts within the dead bound; a room message
// goes only to the nodes with members in the room, also to a member who
// entered on node 2 just before the message went through node 1;
// getonlinestatus
// of a string id online on the other node says online; membership records
// from Redis that do not parse change nothing; after a Redis restart the
// nodes write their memberships again.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { login, answerPushes, recordPushes } = require('./lib/rtm');
const { sanitizerReports, waitFor, withLogs, sleep } = require('./lib/rtmd');
const { startCluster, RECORD_KINDS, frameRecord } = require('./lib/cluster');

const PID = 7501;
const APP_ID = 'Clrooms0123456789abcdefG';
const I = fpnn.int64;
const DEAD_BOUND_MS = 6000;
let nextMid = 1;
const freshMid = () => nextMid++;

describe('rooms across cluster nodes', () => {
  let c;
  let apps = []; // the app server of each node
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(() => (c ? c.nodes : []), fn));

  before(async () => {
    c = await startCluster({
      nodes: 2,
      redis: true,
      // multi_login: a user's connections on both nodes stay (an RTS project
      // defaults to single login).
      projects: [{ pid: PID, secret: 'cluster-rooms-secret', app_id: APP_ID, app_key: 'cluster-rooms-key', multi_login: 1 }],
    });
    apps = await c.appServers(PID);
    await c.joined();
  });

  after(async () => {
    if (c) await c.stop();
    assert.deepEqual(sanitizerReports(), []);
  });

  // uid logged in on node n, online on the other node.
  const user = (n, uid) => c.user(PID, n, uid);
  const byMid = (mid) => (q) => q.method === 'pushroommsg' && fpnn.toNumber(q.payload.mid) === mid;
  const count = (u, mid) => u.pushes.filter(byMid(mid)).length;
  const members = async (caller, rid) =>
    (await caller.call('getroommembers', { rid: I(rid) })).uids.map(fpnn.toNumber).sort((x, y) => x - y);
  const roomCount = async (caller, rid) => fpnn.toNumber((await caller.call('getroomcount', { rids: [I(rid)] })).cn[String(rid)]);
  const send = async (from, rid) => {
    const mid = freshMid();
    await from.call('sendroommsg', { rid: I(rid), mid: I(mid), mtype: 30, msg: 'room', attrs: '' });
    return mid;
  };

  let a, b; // a on node 1, b on node 2 (both in room 10)

  it('members on both nodes: one push each; count and members through both nodes and both gates', async () => {
    a = await user(0, 2001);
    b = await user(1, 2002);
    await a.call('enterroom', { rid: I(10) });
    await b.call('enterroom', { rid: I(10) });
    const mid = await send(a, 10);
    await b.waitPush(byMid(mid));
    await sleep(150);
    assert.equal(count(b, mid), 1, 'exactly one push');
    assert.equal(count(a, mid), 0, 'the sender gets no copy');
    for (const caller of [apps[0], apps[1], a, b]) {
      assert.deepEqual(await members(caller, 10), [2001, 2002]);
      assert.equal(await roomCount(caller, 10), 2);
    }
    // Several rooms in one getroomcount, a repeated one, an empty one.
    const cn = (await apps[0].call('getroomcount', { rids: [I(10), I(11), I(10)] })).cn;
    assert.deepEqual(Object.fromEntries(Object.entries(cn).map(([k, v]) => [k, fpnn.toNumber(v)])), { 10: 2, 11: 0 });
    // A member on the node with a second connection counts once.
    const a2 = await login(c.nodes[1], apps[1], 2001);
    c.links.push(a2.client);
    await a2.call('enterroom', { rid: I(10) });
    assert.equal(await roomCount(apps[0], 10), 2);
    assert.deepEqual(await members(apps[1], 10), [2001, 2002]);
    await a2.close();
  });

  it('addroommember through node 1 of a user only on node 2: it gets the room\'s messages', async () => {
    const sender = await user(0, 2003);
    await sender.call('enterroom', { rid: I(20) });
    const r = await apps[0].call('addroommember', { rid: I(20), uid: I(2002) });
    assert.deepEqual(r, {});
    // Answered once node 2 has applied it and published its rooms: both
    // nodes see b in room 20 at once.
    assert.ok((await members(apps[0], 20)).includes(2002), 'node 1 sees b in room 20');
    assert.ok((await members(apps[1], 20)).includes(2002), 'node 2 sees b in room 20');
    const mid = await send(sender, 20);
    await b.waitPush(byMid(mid));
    assert.deepEqual(fpnn.toNumber((await b.call('getuserrooms', {})).rooms.find((x) => fpnn.toNumber(x) === 20)), 20);
    // addroommembers and adduserrooms the same way.
    const rm = await apps[0].call('addroommembers', { rid: I(21), uids: [I(2002), I(2999)] });
    assert.deepEqual(rm.successedUids.map(fpnn.toNumber), [2002], 'a user online nowhere is left out');
    await apps[0].call('adduserrooms', { uid: I(2002), rids: [I(22), I(23)] });
    const rooms = (await b.call('getuserrooms', {})).rooms.map(fpnn.toNumber);
    assert.ok([21, 22, 23].every((x) => rooms.includes(x)), 'b entered rooms 21, 22, 23 on node 2');
    for (const rid of [21, 22, 23]) assert.ok((await members(apps[0], rid)).includes(2002), `node 1 sees b in ${rid}`);
    // A user online nowhere: the same errors as one node.
    await assert.rejects(apps[0].call('addroommember', { rid: I(20), uid: I(2999) }), (e) => e.code === 200055);
    await assert.rejects(apps[0].call('adduserrooms', { uid: I(2999), rids: [I(20)] }), (e) => e.code === 200001);
  });

  it('delroommember through node 1 of a user on node 2: kickoutroom, and no more messages', async () => {
    await apps[0].call('delroommember', { rid: I(10), uid: I(2002) });
    assert.equal(await roomCount(apps[0], 10), 1, 'count 1 once answered');
    const k = await b.waitPush((q) => q.method === 'kickoutroom' && fpnn.toNumber(q.payload.rid) === 10);
    assert.ok(k);
    assert.deepEqual(await members(apps[1], 10), [2001]);
    const mid = await send(a, 10);
    await sleep(400);
    assert.equal(count(b, mid), 0, 'b no longer gets room 10');
    // deleteuserrooms and delroommembers the same way.
    await apps[0].call('deleteuserrooms', { uid: I(2002), rids: [I(22)] });
    assert.equal(await roomCount(apps[0], 22), 0);
    await apps[0].call('delroommembers', { rid: I(23), uids: [I(2002)] });
    assert.equal(await roomCount(apps[0], 23), 0);
    for (const rid of [22, 23])
      await b.waitPush((q) => q.method === 'kickoutroom' && fpnn.toNumber(q.payload.rid) === rid);
  });

  it('getonlinestatus through node 1 says a string-id user on node 2 is online', async () => {
    const { token } = await apps[1].call('getrtstoken', { uid: 'rooms.xena' });
    const x = await fpnn.connect({ host: '127.0.0.1', port: c.nodes[1].ports.client_tcp });
    c.links.push(x);
    answerPushes(x);
    recordPushes(x);
    assert.deepEqual(await x.quest('auth', { appid: APP_ID, uid: 'rooms.xena', token }), { ok: true });
    const { token: t2 } = await apps[0].call('getrtstoken', { uid: 'rooms.yann' });
    const y = await fpnn.connect({ host: '127.0.0.1', port: c.nodes[0].ports.client_tcp });
    c.links.push(y);
    answerPushes(y);
    assert.deepEqual(await y.quest('auth', { appid: APP_ID, uid: 'rooms.yann', token: t2 }), { ok: true });
    const status = async () => (await y.quest('getonlinestatus', { uids: ['rooms.xena', 'rooms.nobody', 'rooms.yann'] })).online;
    assert.ok(await waitFor(async () => (await status()).includes('rooms.xena'), 5000), 'xena online via node 1');
    assert.deepEqual(await status(), ['rooms.xena', 'rooms.yann']);
    x.destroy();
    assert.ok(await waitFor(async () => !(await status()).includes('rooms.xena'), 5000), 'xena offline via node 1');
  });

  const messageRecords = (n) => c.recordsReceived(n);

  it('a room message goes only to the nodes with members in the room', async () => {
    const s = await user(0, 2101);
    const o = await user(1, 2102);
    await s.call('enterroom', { rid: I(50) });
    await o.call('enterroom', { rid: I(51) }); // node 2 has rooms, not this one
    // A p2p message to o marks the end: node 2 gets it once the room
    // messages before it were routed (one node, one channel, in order).
    const marker = async () => {
      const mid = freshMid();
      await s.call('sendmsg', { to: I(2102), mid: I(mid), mtype: 30, msg: 'mark', attrs: '' });
      await o.waitPush((q) => q.method === 'pushmsg' && fpnn.toNumber(q.payload.mid) === mid);
    };
    const before = await messageRecords(1);
    for (let i = 0; i < 10; i++) await send(s, 50);
    await marker();
    assert.equal(await messageRecords(1) - before, 1, 'node 2 got the marker only, no room record');
    // o enters room 50 on node 2: node 2 gets the room's messages.
    await o.call('enterroom', { rid: I(50) });
    const mid = await send(s, 50);
    await o.waitPush(byMid(mid));
    await marker();
    assert.equal(await messageRecords(1) - before, 3);
    // ... and no more once its last member there left.
    await o.call('leaveroom', { rid: I(50) });
    assert.ok(await waitFor(async () => {
      const b0 = await messageRecords(1);
      await send(s, 50);
      await marker();
      return await messageRecords(1) - b0 === 1;
    }, 3000), 'node 2 gets no room record after its last member left');
    await o.call('leaveroom', { rid: I(51) });
  });

  it('enterroom on node 2, then at once a message through node 1: it arrives, every time', async () => {
    const o = await user(1, 2103);
    const ITER = 400;
    for (let i = 0; i < ITER; i++) {
      const rid = 60000 + i; // a room new on node 2: its entry must reach node 1 first
      await o.call('enterroom', { rid: I(rid) });
      const mid = freshMid();
      await apps[0].call('sendroommsg', { from: I(2199), rid: I(rid), mid: I(mid), mtype: 30, msg: 'race', attrs: '' });
      await o.waitPush(byMid(mid), 3000).catch(() => assert.fail(`iteration ${i}: the message did not arrive`));
      await o.call('leaveroom', { rid: I(rid) });
    }
    // The same with a member of the room through node 1 too (its own record).
    const s = await user(0, 2104);
    for (let i = 0; i < 30; i++) {
      const rid = 61000 + i;
      await s.call('enterroom', { rid: I(rid) });
      await o.call('enterroom', { rid: I(rid) });
      const mid = await send(s, rid);
      await o.waitPush(byMid(mid), 3000).catch(() => assert.fail(`iteration ${i}: the message did not arrive`));
      await o.call('leaveroom', { rid: I(rid) });
      await s.call('leaveroom', { rid: I(rid) });
    }
  }, 120000);

  it('malformed membership records change nothing', async () => {
    const B = (...x) => Buffer.from(x);
    const P = [0xcd, 0x1d, 0x4d]; // 7501
    const U = [0xcd, 0x07, 0xd2]; // 2002
    const bodies = [B(0xc0), B(0x93, ...P, 0, ...U), B(0x94, 0xa1, 0x78, 0, ...U, 0x91, 10),
      B(0x94, ...P, 5, ...U, 0x91, 10), // an unknown op
      B(0x94, ...P, 1, ...U, 0x90), // no rooms
      B(0x94, 0xcd, 0x27, 0x0f, 0, ...U, 0x91, 30), // a project not served
      B(0x94, ...P, 0, ...U, 0x91, 0xa1, 0x78), // a rid of the wrong type
      Buffer.concat([B(0x94, ...P, 0, ...U, 0xdc, 0, 101), Buffer.alloc(101, 31)]), // too many rooms
      B(0x94, ...P, 0, ...U, 0x91, 10, 0xc0)]; // trailing bytes
    const frame = (body) => frameRecord(RECORD_KINDS.ROOM, body);
    for (const nid of c.redis.cli('SMEMBERS', 'rtmd:nodes').split('\n').filter(Boolean))
      await c.publishRaw(`rtmd:n:${nid}`, bodies.map(frame));
    await sleep(300);
    assert.deepEqual(await members(apps[0], 10), [2001], 'a still alone in room 10');
    assert.equal(await roomCount(apps[0], 30), 0);
    assert.equal(await roomCount(apps[0], 31), 0);
    assert.deepEqual((await b.call('getuserrooms', {})).rooms.map(fpnn.toNumber).sort((x, y) => x - y), [20, 21]);
  });

  it('a Redis restart: the nodes write their memberships again; while it is away, each answers its own', async () => {
    await b.call('enterroom', { rid: I(40) });
    await a.call('enterroom', { rid: I(40) });
    assert.equal(await roomCount(apps[0], 40), 2);
    await c.redis.restart(async () => {
      // Redis away: the answer is this node's members (logged), not a hang.
      const t0 = Date.now();
      assert.equal(await roomCount(apps[0], 40), 1);
      assert.ok(Date.now() - t0 < 5000, 'answered without Redis');
    });
    assert.ok(await waitFor(async () => (await roomCount(apps[0], 40)) === 2, 15000), 'node 2 wrote b again');
    assert.deepEqual(await members(apps[1], 40), [2001, 2002]);
  });

  it('kill -9 of node 2: its members leave the counts on node 1 within the dead bound', async () => {
    await b.call('enterroom', { rid: I(10) });
    assert.equal(await roomCount(apps[0], 10), 2);
    const deadId = c.redis.cli('SMEMBERS', 'rtmd:nodes').split('\n').filter(Boolean)
      .find((id) => c.redis.cli('SISMEMBER', `rtmd:{n${id}}:users`, `${PID}:2002`) === '1');
    assert.ok(deadId, 'node 2 holds b');
    assert.equal(c.redis.cli('SISMEMBER', `rtmd:{n${deadId}}:r:${PID}:10`, '2002'), '1', 'node 2 wrote b in room 10');
    await apps[1].close();
    await c.nodes[1].stop('SIGKILL');
    const killed = Date.now();
    assert.ok(await waitFor(async () => (await roomCount(apps[0], 10)) === 1, DEAD_BOUND_MS + 1000),
      'the dead node\'s member left the count');
    const took = Date.now() - killed;
    assert.ok(took <= DEAD_BOUND_MS + 1000, `count 1 after ${took} ms`);
    assert.deepEqual(await members(a, 10), [2001]);
    // The reaper removed the dead node's room keys.
    assert.ok(await waitFor(() => c.redis.cli('--scan', '--pattern', 'rtmd:{n*}:r:*').split('\n').filter(Boolean)
      .every((k) => !k.startsWith(`rtmd:{n${deadId}}`)), 3000), 'the dead node\'s room keys are gone');
    await c.nodes[1].cleanup();
  });
});
