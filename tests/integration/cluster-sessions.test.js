'use strict';
// Two rtmd nodes on one PostgreSQL store and one Redis (issue 13): a user's
// sessions across nodes. getattrs through one node lists the user's
// sessions on every node (those on the other node with the ce
// "<node>:<conn id>"), and kickout {ce} of one of those ends that
// connection on its node; records forged on a node's channel (malformed,
// or a kick of another user's connection) change nothing. getroommsg of a
// room the user entered through the other node reads its history; a user
// in the room on no node still gets 200040.
// Starts its own servers (lib/cluster.js), so it is not part of the pg.*
// run of the suite.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { expectCode } = require('./lib/rtm');
const { waitFor, withLogs, sleep } = require('./lib/rtmd');
const { startCluster, RECORD_KINDS, frameRecord } = require('./lib/cluster');

const PID = 7701;
const I = fpnn.int64;

describe('cluster: sessions of a user across nodes', () => {
  let c;
  const it = (name, fn) => test(name, { timeout: 30000 }, withLogs(() => (c ? c.nodes : []), fn));
  const nodeIds = () => c.redis.cli('SMEMBERS', 'rtmd:nodes').split('\n').filter(Boolean);

  before(async () => {
    // multi_login = 1: the user keeps one session on each node.
    c = await startCluster({ nodes: 2, redis: true, projects: [{ pid: PID, secret: 'cluster-sessions-secret', multi_login: 1 }] });
    await c.joined();
    await c.appServers(PID);
  });
  after(async () => {
    if (c) await c.stop();
  });

  it('getattrs lists the sessions on every node; kickout {ce} ends one on the other node', async () => {
    const a = await c.user(PID, 0, 1001);
    const b = await c.user(PID, 1, 1001);
    await a.call('addattrs', { attrs: { device: 'phone' } });
    await b.call('addattrs', { attrs: { device: 'browser', v: '2' } });
    for (const [u, mine, other] of [[a, 'phone', 'browser'], [b, 'browser', 'phone']]) {
      const got = (await u.call('getattrs', {})).attrs;
      assert.equal(got.length, 2);
      assert.equal(got.find((m) => m.my === '1').device, mine);
      const o = got.find((m) => m.my === '0');
      assert.equal(o.device, other);
      assert.match(o.ce, /^[A-Za-z0-9_-]+:\d+$/, 'a session on another node names its node');
      assert.match(o.login, /^\d+$/);
    }
    const o = (await a.call('getattrs', {})).attrs.find((m) => m.my === '0');
    assert.equal(o.v, '2');
    await a.call('kickout', { ce: o.ce });
    assert.equal(await b.client.waitClose(3000), true);
    assert.ok(await waitFor(async () => (await a.call('getattrs', {})).attrs.length === 1, 3000));
    assert.equal((await a.call('getattrs', {})).attrs[0].my, '1');
    await a.close();
  });

  it('forged records change nothing: malformed ones, a kick of another user\'s connection', async () => {
    const a = await c.user(PID, 0, 2001);
    const b = await c.user(PID, 1, 2001);
    const x = await c.user(PID, 1, 2002);
    const ceB = (await a.call('getattrs', {})).attrs.find((m) => m.my === '0').ce;
    const connB = Number(ceB.split(':')[1]);
    const B = (...v) => Buffer.from(v);
    const P = [0xcd, 0x1e, 0x15]; // 7701
    const U = [0xcd, 0x07, 0xd2]; // 2002: not b's user
    const conn = [0xcf, ...Buffer.from(BigInt(connB).toString(16).padStart(16, '0'), 'hex')];
    const records = [
      [RECORD_KINDS.CE_KICK, B(0x93, ...P, ...U, ...conn)], // the connection is not 2002's
      [RECORD_KINDS.CE_KICK, B(0x92, ...P, ...U)],
      [RECORD_KINDS.CE_KICK, B(0x93, 0xa1, 0x78, ...U, ...conn)],
      [RECORD_KINDS.ATTRS_ASK, B(0x94, ...P, ...U, 1, 0xa2, 0x21, 0x21)], // a node id of other characters
      [RECORD_KINDS.ATTRS_ASK, B(0xc0)],
      [RECORD_KINDS.ATTRS_ANSWER, B(0x93, 1, 0xa1, 0x7a, 0x91, 0x93, 1, 2, 0x81, 0x01, 0x02)], // an int attribute
      [RECORD_KINDS.ATTRS_ANSWER, B(0x93, 0xa1, 0x78, 0xa1, 0x7a, 0x90)],
    ];
    for (const nid of nodeIds()) await c.publishRaw(`rtmd:n:${nid}`, records.map(([k, r]) => frameRecord(k, r)));
    await sleep(300);
    assert.equal(b.client.isClosed, false);
    assert.equal(x.client.isClosed, false);
    assert.equal((await a.call('getattrs', {})).attrs.length, 2);
    assert.equal((await x.call('getattrs', {})).attrs.length, 1);
    for (const u of [a, b, x]) await u.close();
  });

  it('getroommsg reads a room entered through the other node', async () => {
    const a = await c.user(PID, 0, 3001);
    const b = await c.user(PID, 1, 3001);
    const out = await c.user(PID, 1, 3002);
    await a.call('enterroom', { rid: I(30) });
    await a.call('sendroommsg', { rid: I(30), mid: I(1), mtype: 30, msg: 'hello', attrs: '' });
    const h = await b.call('getroommsg', { rid: I(30), num: 10, desc: true });
    assert.equal(h.msgs.length, 1);
    assert.equal(h.msgs[0][5], 'hello');
    await expectCode(out.call('getroommsg', { rid: I(30), num: 10, desc: true }), 200040);
    for (const u of [a, b, out]) await u.close();
  });
});
