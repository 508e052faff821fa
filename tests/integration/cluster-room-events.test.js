'use strict';
// Membership pushes of string-id rooms across the nodes of a cluster
// (docs/cluster.md, "Rooms across nodes"): a string-id member on one node
// gets pushroomjoined and pushroomleft when a user enters or leaves the
// room through the other node, and one entering through a node hears of
// the other node's members by pushroomjoined after its enterroom answer
// (which lists its own node's); a user in the room through both nodes is
// not announced by the other node (which still tells that session of its
// members); forged membership-event records are checked field by field
// and dropped.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { answerPushes, recordPushes } = require('./lib/rtm');
const { sanitizerReports, withLogs, sleep } = require('./lib/rtmd');
const { startCluster, RECORD_KINDS, frameRecord } = require('./lib/cluster');

const PID = 7551;
const APP_ID = 'Clrevent0123456789abcdeG';
const I = fpnn.int64;

describe('room membership pushes across cluster nodes', () => {
  let c;
  let apps = [];
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(() => (c ? c.nodes : []), fn));

  before(async () => {
    c = await startCluster({
      nodes: 2,
      redis: true,
      projects: [{ pid: PID, secret: 'cluster-revent-secret', app_id: APP_ID, app_key: 'cluster-revent-key', multi_login: 1 }],
    });
    apps = await c.appServers(PID);
    await c.joined();
  });

  after(async () => {
    if (c) await c.stop();
    assert.deepEqual(sanitizerReports(), []);
  });

  // A string-id session on node n.
  const rts = async (n, name) => {
    const { token } = await apps[n].call('getrtstoken', { uid: name });
    const l = await fpnn.connect({ host: '127.0.0.1', port: c.nodes[n].ports.client_tcp });
    c.links.push(l);
    answerPushes(l);
    recordPushes(l);
    assert.deepEqual(await l.quest('auth', { appid: APP_ID, uid: name, token }), { ok: true });
    return l;
  };
  const about = (method, rid, uid) => (q) => q.method === method && q.payload.rid === rid && q.payload.uid === uid;
  const count = (l, method, rid, uid) => l.pushes.filter(about(method, rid, uid)).length;

  it('enter and leave through one node are pushed to the members on the other; the newcomer hears of them', async () => {
    const y = await rts(0, 'ev.yves');
    const z = await rts(0, 'ev.zoe');
    const x = await rts(1, 'ev.xavi');
    assert.deepEqual(await y.quest('enterroom', { rid: 'ev-room' }), { members: [] });
    assert.deepEqual(await z.quest('enterroom', { rid: 'ev-room' }), { members: ['ev.yves'] });
    // x's own node has no other member: the answer lists none, node 1's come as pushes.
    assert.deepEqual(await x.quest('enterroom', { rid: 'ev-room' }), { members: [] });
    await x.waitPush(about('pushroomjoined', 'ev-room', 'ev.yves'));
    await x.waitPush(about('pushroomjoined', 'ev-room', 'ev.zoe'));
    await y.waitPush(about('pushroomjoined', 'ev-room', 'ev.xavi'));
    await z.waitPush(about('pushroomjoined', 'ev-room', 'ev.xavi'));
    await x.quest('leaveroom', { rid: 'ev-room' });
    const left = await y.waitPush(about('pushroomleft', 'ev-room', 'ev.xavi'));
    assert.equal(fpnn.toNumber(left.payload.reason), 0);
    await z.waitPush(about('pushroomleft', 'ev-room', 'ev.xavi'));
    await sleep(200);
    assert.equal(count(y, 'pushroomjoined', 'ev-room', 'ev.xavi'), 1);
    assert.equal(count(x, 'pushroomjoined', 'ev-room', 'ev.yves'), 1);
  });

  it('a user in the room through both nodes is not announced by the other node', async () => {
    const y = await rts(0, 'ev.yara');
    const w0 = await rts(0, 'ev.walt');
    const w1 = await rts(1, 'ev.walt');
    await y.quest('enterroom', { rid: 'ev-both' });
    await w0.quest('enterroom', { rid: 'ev-both' });
    await y.waitPush(about('pushroomjoined', 'ev-both', 'ev.walt'));
    // Through node 2 too: node 1's members are told to that session.
    assert.deepEqual(await w1.quest('enterroom', { rid: 'ev-both' }), { members: [] });
    await w1.waitPush(about('pushroomjoined', 'ev-both', 'ev.yara'));
    await w1.quest('leaveroom', { rid: 'ev-both' });
    await sleep(300);
    assert.equal(count(y, 'pushroomjoined', 'ev-both', 'ev.walt'), 1);
    assert.equal(count(y, 'pushroomleft', 'ev-both', 'ev.walt'), 0);
  });

  it('forged membership events are checked field by field', async () => {
    const y = await rts(0, 'ev.yuri');
    await y.quest('enterroom', { rid: 'ev-forged' });
    const { uids } = await apps[0].call('getuserids', { ids: ['ev-forged', 'ev.ghost', 'ev.yuri'] });
    const rid = uids['ev-forged'];
    const ghost = uids['ev.ghost'];
    const ev = (...f) => frameRecord(RECORD_KINDS.ROOM_EVENT, fpnn.encodeMsgpack(f));
    const ids = c.redis.cli('SMEMBERS', 'rtmd:nodes').split('\n').filter(Boolean);
    // To every node (the order of SMEMBERS is not the nodes' order): only
    // node 1, where yuri is, has a member to push to.
    for (const id of ids) await c.publishRaw(`rtmd:n:${id}`, [
      ev(1, PID, rid, I(1234), 'ev.numeric', -1, 'n'), // a name for a number-id uid
      ev(1, PID, rid, ghost, 'not valid!', -1, 'n'), // not a string id
      ev(1, PID, rid, ghost, 'ev.ghost', -1, ''), // a change without its node
      ev(2, PID, rid, ghost, 'ev.ghost', uids['ev.yuri'], 'n'), // a member answer with a node
      ev(3, PID, rid, ghost, 'ev.ghost', -1, 'n'), // no such operation
      ev(1, 999999, rid, ghost, 'ev.ghost', -1, 'n'), // not our project
      ev(1, PID, rid, ghost, 'ev.ghost', -1), // six fields
      ev(1, PID, rid, ghost, 'ev.ghost', 7, 'n'), // well formed: pushed
    ]);
    const p = await y.waitPush((q) => q.method === 'pushroomleft' && q.payload.rid === 'ev-forged');
    assert.deepEqual([p.payload.uid, fpnn.toNumber(p.payload.reason)], ['ev.ghost', 7]);
    await sleep(200);
    assert.equal(y.pushes.filter((q) => q.method === 'pushroomjoined' && q.payload.rid === 'ev-forged').length, 0);
  });
});
