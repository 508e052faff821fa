'use strict';
// Messages across the nodes of a cluster (docs/cluster.md, "Messages
// across nodes"): a message stored through one node reaches its receivers
// connected to the other node exactly once, with the same fields (binary
// msg and attrs too), for p2p, sendmsgs, group, room and broadcast
// messages, a broadcast only to the nodes with users of its project; a
// string-id receiver on the other node is named by strings; an app server
// listening on one node gets each message sent through the other once;
// getgroupmembers {online} sees members online on the other node; records
// from Redis that do not parse change nothing.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { appServer, answerPushes, recordPushes } = require('./lib/rtm');
const { sanitizerReports, waitFor, withLogs, sleep } = require('./lib/rtmd');
const { startCluster, RECORD_KINDS } = require('./lib/cluster');

const PID = 7401;
const QUIET = 7402; // a project with no user on node 2 until a test logs one in
const APP_ID = 'Clroute0123456789abcdefG';
const I = fpnn.int64;
const big = (v) => fpnn.toBigInt(v);
let nextMid = 1;
const freshMid = () => nextMid++;

describe('cluster routing of messages', () => {
  let c;
  let apps = []; // the app server of each node
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(() => (c ? c.nodes : []), fn));

  before(async () => {
    c = await startCluster({
      nodes: 2,
      redis: true,
      projects: [{ pid: PID, secret: 'cluster-route-secret', app_id: APP_ID, app_key: 'cluster-route-key',
        max_msg_bytes: 65536 }, { pid: QUIET, secret: 'cluster-route-quiet' }],
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
  const byMid = (method, mid) => (q) => q.method === method && fpnn.toNumber(q.payload.mid) === mid;
  const count = (u, method, mid) => u.pushes.filter(byMid(method, mid)).length;
  // Waits for the push, then a moment more: exactly one arrived.
  const once = async (u, method, mid) => {
    const p = await u.waitPush(byMid(method, mid));
    await sleep(150);
    assert.equal(count(u, method, mid), 1, `${method} ${mid}: exactly one`);
    return p;
  };

  it('p2p both ways: the receiver on the other node gets one pushmsg with the same fields', async () => {
    const a = await user(0, 1001);
    const b = await user(1, 1002);
    const attrs = '{"k":"v"}';
    let mid = freshMid();
    const r1 = await a.call('sendmsg', { to: I(1002), mid: I(mid), mtype: 30, msg: Buffer.from([0, 1, 2, 255]), attrs });
    let p = await once(b, 'pushmsg', mid);
    assert.deepEqual(fpnn.normalize(p.payload), {
      from: 1001n, to: 1002n, mtype: 30n, mid: BigInt(mid), msg: Buffer.from([0, 1, 2, 255]), attrs, mtime: big(r1.mtime),
    });
    assert.equal(count(a, 'pushmsg', mid), 0, 'the sender gets no copy');
    mid = freshMid();
    const r2 = await b.call('sendmsg', { to: I(1001), mid: I(mid), mtype: 7, msg: 'back', attrs: '' });
    p = await once(a, 'pushmsg', mid);
    assert.deepEqual(fpnn.normalize(p.payload), {
      from: 1002n, to: 1001n, mtype: 7n, mid: BigInt(mid), msg: 'back', attrs: '', mtime: big(r2.mtime),
    });
    // Through the app server of node 2 to a receiver on node 1.
    mid = freshMid();
    await apps[1].call('sendmsg', { from: I(1002), to: I(1001), mid: I(mid), mtype: 8, msg: 'server', attrs: '' });
    await once(a, 'pushmsg', mid);
  });

  it('sendmsgs reaches receivers on both nodes once each', async () => {
    const a = await user(0, 1101);
    const b = await user(0, 1102);
    const d = await user(1, 1103);
    const mid = freshMid();
    await a.call('sendmsgs', { tos: [I(1102), I(1103)], mid: I(mid), mtype: 30, msg: 'to both', attrs: '' });
    const pb = await once(b, 'pushmsg', mid);
    const pd = await once(d, 'pushmsg', mid);
    assert.equal(fpnn.toNumber(pb.payload.to), 1102);
    assert.equal(fpnn.toNumber(pd.payload.to), 1103);
    assert.equal(count(a, 'pushmsg', mid), 0);
  });

  it('a group message reaches members on both nodes once; getgroupmembers {online} sees both nodes', async () => {
    const gid = I(77);
    // Group changes are not seen across nodes yet: each node is told.
    for (const app of apps) await app.call('addgroupmembers', { gid, uids: [I(1201), I(1202), I(1203), I(1204)] });
    const a = await user(0, 1201);
    const b = await user(0, 1202);
    const d = await user(1, 1203);
    const mid = freshMid();
    await a.call('sendgroupmsg', { gid, mid: I(mid), mtype: 30, msg: 'group', attrs: 'ga' });
    const pb = await once(b, 'pushgroupmsg', mid);
    const pd = await once(d, 'pushgroupmsg', mid);
    assert.deepEqual(fpnn.normalize(pd.payload), fpnn.normalize(pb.payload));
    assert.equal(fpnn.toNumber(pd.payload.gid), 77);
    assert.equal(count(a, 'pushgroupmsg', mid), 0, 'the sender gets no copy');
    const m = await apps[0].call('getgroupmembers', { gid, online: true });
    assert.deepEqual(m.onlines.map(fpnn.toNumber).sort(), [1201, 1202, 1203]);
    const cnt = await apps[0].call('getgroupcount', { gid, online: true });
    assert.equal(fpnn.toNumber(cnt.online), 3);
    const fromClient = await a.call('getgroupmembers', { gid, online: true });
    assert.deepEqual(fromClient.onlines.map(fpnn.toNumber).sort(), [1201, 1202, 1203]);
  });

  it('broadcast reaches users on both nodes', async () => {
    const a = await user(0, 1301);
    const b = await user(1, 1302);
    const mid = freshMid();
    await apps[0].call('broadcastmsg', { from: I(1), mid: I(mid), mtype: 30, msg: 'all', attrs: '' });
    const pa = await once(a, 'pushbroadcastmsg', mid);
    const pb = await once(b, 'pushbroadcastmsg', mid);
    assert.deepEqual(fpnn.normalize(pb.payload), fpnn.normalize(pa.payload));
  });

  it('a broadcast goes only to the nodes with users of its project', async () => {
    const quiet = await c.appServers(QUIET);
    const broadcast = async () => {
      const mid = freshMid();
      await quiet[0].call('broadcastmsg', { from: I(1), mid: I(mid), mtype: 30, msg: 'quiet', attrs: '' });
      return mid;
    };
    // A p2p message to a user on node 2 marks the end: node 2 gets it once
    // the broadcasts before it were routed (one node, one channel, in order).
    const o = await user(1, 1501);
    const s = await user(0, 1502);
    const marker = async () => {
      const mid = freshMid();
      await s.call('sendmsg', { to: I(1501), mid: I(mid), mtype: 30, msg: 'mark', attrs: '' });
      await o.waitPush(byMid('pushmsg', mid));
    };
    const before = await c.recordsReceived(1);
    for (let i = 0; i < 5; i++) await broadcast();
    await marker();
    assert.equal(await c.recordsReceived(1) - before, 1, 'node 2 got the marker only, no broadcast record');
    // A user of the project on node 2: node 2 gets its broadcasts.
    const q = await c.user(QUIET, 1, 1601);
    const mid = await broadcast();
    await once(q, 'pushbroadcastmsg', mid);
    await marker();
    assert.equal(await c.recordsReceived(1) - before, 3);
  });

  it('a room message reaches a member who entered the room on the other node', async () => {
    const a = await user(0, 1401);
    const b = await user(1, 1402);
    const rid = I(88);
    await a.call('enterroom', { rid });
    await b.call('enterroom', { rid });
    const mid = freshMid();
    await a.call('sendroommsg', { rid, mid: I(mid), mtype: 30, msg: 'room', attrs: '' });
    const p = await once(b, 'pushroommsg', mid);
    assert.equal(fpnn.toNumber(p.payload.rid), 88);
    assert.equal(fpnn.toNumber(p.payload.from), 1401);
    assert.equal(count(a, 'pushroommsg', mid), 0);
    // The app server adds a user online on the other node to a room.
    await apps[0].call('addroommember', { rid: I(89), uid: I(1402) });
  });

  it('a string-id receiver on node 2 gets string ids', async () => {
    const { token } = await apps[1].call('getrtstoken', { uid: 'route.xena' });
    const x = await fpnn.connect({ host: '127.0.0.1', port: c.nodes[1].ports.client_tcp });
    c.links.push(x);
    answerPushes(x);
    recordPushes(x);
    assert.deepEqual(await x.quest('auth', { appid: APP_ID, uid: 'route.xena', token }), { ok: true });
    const { uids } = await apps[0].call('getuserids', { ids: ['route.xena'] });
    const xuid = uids['route.xena'];
    const a = await user(0, 1501);
    const seen = async () => (await apps[0].call('getonlineusers', { uids: [xuid] })).uids.length === 1;
    assert.ok(await waitFor(seen, 5000), 'node 1 sees the string-id user online');
    const mid = freshMid();
    await a.call('sendmsg', { to: xuid, mid: I(mid), mtype: 30, msg: 'hi xena', attrs: '' });
    const p = await x.waitPush(byMid('pushmsg', mid));
    assert.equal(p.payload.to, 'route.xena');
    assert.equal(fpnn.toNumber(p.payload.from), 1501);
    assert.equal(p.payload.msg, 'hi xena');
  });

  // A string-id login on node n, by the app server of that node only (the
  // other node never resolves the name).
  const rts = async (n, uid) => {
    const { token } = await apps[n].call('getrtstoken', { uid });
    const x = await fpnn.connect({ host: '127.0.0.1', port: c.nodes[n].ports.client_tcp });
    c.links.push(x);
    answerPushes(x);
    recordPushes(x);
    assert.deepEqual(await x.quest('auth', { appid: APP_ID, uid, token }), { ok: true });
    return x;
  };

  it('a string-id sender on node 1 is named by its string id on node 2, which never resolved it', async () => {
    const y = await rts(1, 'route.yves');
    const w = await rts(0, 'route.wanda');
    const { uids } = await apps[1].call('getuserids', { ids: ['route.yves'] });
    const seen = async () => (await apps[0].call('getonlineusers', { uids: [uids['route.yves']] })).uids.length === 1;
    assert.ok(await waitFor(seen, 5000), 'node 1 sees the string-id user online');
    let mid = freshMid();
    await w.quest('sendmsg', { to: 'route.yves', mid: I(mid), mtype: 30, msg: 'hi yves' });
    let p = await y.waitPush(byMid('pushmsg', mid));
    assert.equal(p.payload.from, 'route.wanda');
    assert.equal(p.payload.to, 'route.yves');
    mid = freshMid();
    await w.quest('sendmsgs', { tos: ['route.yves'], mid: I(mid), mtype: 30, msg: 'to all' });
    p = await y.waitPush(byMid('pushmsg', mid));
    assert.equal(p.payload.from, 'route.wanda');
    // A string room entered on both nodes: from and rid by strings.
    await y.quest('enterroom', { rid: 'route.room' });
    await w.quest('enterroom', { rid: 'route.room' });
    mid = freshMid();
    await w.quest('sendroommsg', { rid: 'route.room', mid: I(mid), mtype: 30, msg: 'in the room' });
    p = await y.waitPush(byMid('pushroommsg', mid));
    assert.equal(p.payload.from, 'route.wanda');
    assert.equal(p.payload.rid, 'route.room');
  });

  it('an app server listening on node 1 gets one pushmsg for a message sent through node 2', async () => {
    const l = await appServer(c.nodes[0], { project: apps[0].project });
    answerPushes(l.client);
    recordPushes(l.client);
    await l.call('addlisten', { p2p: true });
    // Node 2 learns that node 1 listens to the project.
    const member = `${PID}:-9223372036854775808`;
    const listening = () => c.redis.cli('--scan', '--pattern', 'rtmd:{n*}:users').split('\n').filter(Boolean)
      .some((k) => c.redis.cli('SISMEMBER', k, member) === '1');
    assert.ok(await waitFor(listening, 5000), 'node 1 publishes its listener');
    await sleep(200);
    // Neither the sender nor the receiver is on node 1.
    const mid = freshMid();
    await apps[1].call('sendmsg', { from: I(1601), to: I(1602), mid: I(mid), mtype: 30, msg: 'listened', attrs: '' });
    const p = await l.client.waitPush(byMid('pushmsg', mid));
    assert.equal(p.payload.msg, 'listened');
    // And one sent through node 1 with the receiver on node 2: once too.
    const b = await user(1, 1603);
    const mid2 = freshMid();
    await apps[0].call('sendmsg', { from: I(1601), to: I(1603), mid: I(mid2), mtype: 30, msg: 'local', attrs: '' });
    await once(b, 'pushmsg', mid2);
    await sleep(150);
    assert.equal(l.client.pushes.filter(byMid('pushmsg', mid)).length, 1);
    assert.equal(l.client.pushes.filter(byMid('pushmsg', mid2)).length, 1);
    await l.close();
    assert.ok(await waitFor(() => !listening(), 5000), 'node 1 no longer listens');
  });

  const metric = async (n, name) => {
    const text = await fetch(c.nodes[n].url('http', '/metrics')).then((r) => r.text());
    const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };

  it('one loop turn, one batch per node: sendmsgs to 20 receivers on node 2 is one PUBLISH, or two past 1 MiB', async () => {
    const a = await user(0, 1801);
    const tos = [];
    const users = [];
    for (let i = 0; i < 20; i++) {
      tos.push(1810 + i);
      users.push(await user(1, 1810 + i));
    }
    const sent = await metric(0, 'rtmd_cluster_batches_sent_total');
    const received = await metric(1, 'rtmd_cluster_records_received_total');
    const mid = freshMid();
    await a.call('sendmsgs', { tos: tos.map(I), mid: I(mid), mtype: 30, msg: 'many', attrs: '' });
    for (const u of users) await once(u, 'pushmsg', mid);
    assert.equal(await metric(0, 'rtmd_cluster_batches_sent_total') - sent, 1, 'one batch');
    assert.equal(await metric(1, 'rtmd_cluster_records_received_total') - received, 20, 'twenty records');
    // 20 records of 60 KiB: past 1 MiB a batch goes out, the rest follow in a second one.
    const mid2 = freshMid();
    const big60 = Buffer.alloc(60 * 1024, 7);
    await a.call('sendmsgs', { tos: tos.map(I), mid: I(mid2), mtype: 30, msg: big60, attrs: '' });
    for (const u of users) assert.deepEqual((await once(u, 'pushmsg', mid2)).payload.msg, big60);
    assert.equal(await metric(0, 'rtmd_cluster_batches_sent_total') - sent, 3, 'two batches more');
  });

  it('while Redis is away records are dropped and counted; the message is in history; routing resumes', async () => {
    const a = await user(0, 1901);
    const b = await user(1, 1902);
    const dropped = await metric(0, 'rtmd_cluster_records_dropped_total');
    const mid = freshMid();
    await c.redis.restart(async () => {
      await sleep(300);
      await a.call('sendmsg', { to: I(1902), mid: I(mid), mtype: 30, msg: 'lost push', attrs: '' });
      await sleep(300);
    });
    assert.ok(await metric(0, 'rtmd_cluster_records_dropped_total') > dropped, 'the record was dropped and counted');
    assert.equal(count(b, 'pushmsg', mid), 0);
    const h = await b.call('getp2pmsg', { ouid: I(1901), desc: true, num: 10, begin: I(0), end: I(0), lastid: I(0) });
    // [id, direction, mtype, mid, deleted, msg, attrs, mtime]
    assert.ok(h.msgs.some((m) => fpnn.toNumber(m[3]) === mid && m[5] === 'lost push'),
      'the message is in the receiver\'s history');
    assert.ok(await waitFor(() => c.redis.cli('SCARD', 'rtmd:nodes') === '2', 15000), 'both nodes joined again');
    const seen = async () => (await apps[0].call('getonlineusers', { uids: [I(1902)] })).uids.length === 1;
    assert.ok(await waitFor(seen, 10000));
    const mid2 = freshMid();
    const again = async () => {
      await a.call('sendmsg', { to: I(1902), mid: I(mid2), mtype: 30, msg: 'after', attrs: '' });
      return count(b, 'pushmsg', mid2) > 0 || (await b.waitPush(byMid('pushmsg', mid2), 1000).then(() => true, () => false));
    };
    assert.ok(await again(), 'routing works again after Redis is back');
  });

  it('malformed records on a node\'s channel are dropped and routing goes on', async () => {
    const ids = c.redis.cli('SMEMBERS', 'rtmd:nodes').split('\n').filter(Boolean);
    const B = (...b) => Buffer.from(b);
    const junk = [B(), Buffer.from('x'), B(1), Buffer.concat([B(1, 0, 0, 0, 9), Buffer.from('abc')]), B(1, 0, 0, 0, 1, 0xc1),
      B(RECORD_KINDS.KINDS, 0, 0, 0, 0), B(1, 0, 0, 0, 2, 0x9c, 0xc0), B(1, 0, 0, 0, 1, 0x9c), B(1, 0xff, 0xff, 0xff, 0xff, 0x9c),
      // Fourteen fields of the wrong types, a project this cluster does not serve, and a
      // name given to a number uid.
      Buffer.concat([B(1, 0, 0, 0, 15, 0x9e), Buffer.alloc(14, 0xc0)]),
      Buffer.concat([B(1, 0, 0, 0, 27, 0x9e, 0x01, 0x01, 0x05, 0x01, 0x01, 0x02, 0x01, 0x1e, 0xc2, 0xc4, 0x00, 0xc4, 0x00, 0xa0,
        0xa0, 0xa0), Buffer.alloc(6, 0)]),
      Buffer.concat([B(1, 0, 0, 0, 20, 0x9e, 0xcd, PID >> 8, PID & 0xff, 0x01, 0x05, 0x01, 0x01, 0x02, 0x01, 0x1e, 0xc2,
        0xc4, 0x00, 0xc4, 0x00, 0xa0, 0xa1, 0x78, 0xa0)])];
    for (const id of ids) await c.publishRaw(`rtmd:n:${id}`, junk);
    const a = await user(0, 1701);
    const b = await user(1, 1702);
    const mid = freshMid();
    await a.call('sendmsg', { to: I(1702), mid: I(mid), mtype: 30, msg: 'still', attrs: '' });
    await once(b, 'pushmsg', mid);
    const metrics = await fetch(c.nodes[1].url('http', '/metrics')).then((r) => r.text());
    const malformed = Number(/rtmd_cluster_records_malformed_total (\d+)/.exec(metrics)[1]);
    assert.ok(malformed >= 5, `malformed records counted (${malformed})`);
  });
});
