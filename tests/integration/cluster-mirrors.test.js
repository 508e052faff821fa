'use strict';
// The in-memory mirrors of groups, friends and blacklists, bans and
// RealTimeCat sessions across the nodes of a cluster (docs/cluster.md,
// "Mirrors across nodes"): a change through one node is seen by the other
// one shortly after (it is told which group, list, user or session to
// reload); after a Redis restart, during which such records are lost, every
// node reloads its mirrors whole; a RealTimeCat token made through one node
// logs in on the other before its record arrives; a group's member limit holds when adds
// arrive through both nodes at once (counted in the store); records that do
// not parse change nothing.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { expectCode } = require('./lib/rtm');
const { sdk } = require('./lib/rtcat');
const { sanitizerReports, waitFor, withLogs } = require('./lib/rtmd');
const { startCluster, RECORD_KINDS, frameRecord } = require('./lib/cluster');

const PID = 7501;
const I = fpnn.int64;
const KEY = 'mirrors-key';
const SECRET = 'mirrors-secret';
const MAX_MEMBERS = 10;
let nextMid = 1;

describe('cluster mirrors', () => {
  let c;
  let apps = []; // the app server of each node
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(() => (c ? c.nodes : []), fn));

  before(async () => {
    c = await startCluster({
      nodes: 2,
      redis: true,
      projects: [{ pid: PID, secret: 'cluster-mirrors-secret', max_group_members: MAX_MEMBERS,
        rtcat_apikey: KEY, rtcat_secret: SECRET }],
    });
    apps = await c.appServers(PID);
    await c.joined();
    // Each node sees the other (records go to the nodes a node knows).
    const others = async (n) => {
      const m = await fetch(c.nodes[n].url('http', '/metrics')).then((r) => r.text());
      return /rtmd_cluster_other_nodes 1\b/.test(m);
    };
    assert.ok(await waitFor(async () => (await others(0)) && (await others(1)), 10000), 'nodes see each other');
  });

  after(async () => {
    if (c) await c.stop();
    assert.deepEqual(sanitizerReports(), []);
  });

  const user = (n, uid) => c.user(PID, n, uid, { wait: false });
  const send = (u, method, args) => u.call(method, { mid: I(nextMid++), mtype: 30, msg: 'hi', attrs: '', ...args });
  // The error code of a call, or 0 when it was accepted.
  const codeOf = (p) => p.then(() => 0, (e) => e.code);
  // Polls until the call answers `want` (a deadline, no fixed sleep).
  const until = async (fn, want, ms = 5000) => {
    let got;
    const ok = await waitFor(async () => (got = await fn()) === want, ms, 25);
    assert.ok(ok, `expected ${want}, last ${got}`);
  };

  it('a member added through node 1 may send to the group on node 2; removed, it may not', async () => {
    const gid = I(501);
    const a = await user(1, 5001);
    await expectCode(send(a, 'sendgroupmsg', { gid }), 200041);
    await apps[0].call('addgroupmembers', { gid, uids: [I(5001), I(5002)] });
    await until(() => codeOf(send(a, 'sendgroupmsg', { gid })), 0);
    const g = await apps[1].call('getusergroups', { uid: I(5002) });
    assert.deepEqual(g.gids.map(fpnn.toNumber), [501], 'the index by user follows');
    await apps[0].call('delgroupmembers', { gid, uids: [I(5001)] });
    await until(() => codeOf(send(a, 'sendgroupmsg', { gid })), 200041);
    await apps[0].call('delgroup', { gid });
    await until(async () => fpnn.toNumber((await apps[1].call('getgroupcount', { gid })).cn), 0);
    assert.deepEqual((await apps[1].call('getusergroups', { uid: I(5002) })).gids, []);
    // clearprojectgroup reaches the other node too.
    await apps[1].call('addgroupmembers', { gid: I(502), uids: [I(5003)] });
    await until(async () => (await apps[0].call('isgroupmember', { gid: I(502), uid: I(5003) })).ok, true);
    await apps[1].call('clearprojectgroup', {});
    await until(async () => (await apps[0].call('isgroupmember', { gid: I(502), uid: I(5003) })).ok, false);
  });

  it('a blacklist added through node 1 refuses the sender on node 2 (200049); removed, it sends', async () => {
    const b = await user(0, 5101);
    const a = await user(1, 5102);
    await send(a, 'sendmsg', { to: I(5101) });
    await b.call('addblacks', { blacks: [I(5102)] });
    await until(() => codeOf(send(a, 'sendmsg', { to: I(5101) })), 200049);
    await b.call('delblacks', { blacks: [I(5102)] });
    await until(() => codeOf(send(a, 'sendmsg', { to: I(5101) })), 0);
    // Friends too: the server gate of node 2 reads node 1's change.
    await b.call('addfriends', { friends: [I(5102)] });
    await until(async () => (await apps[1].call('isfriend', { uid: I(5101), fuid: I(5102) })).ok, true);
  });

  it('a project ban through node 1 stops the user sending on node 2; lifted, it sends', async () => {
    const a = await user(1, 5201);
    await send(a, 'sendmsg', { to: I(5202) });
    await apps[0].call('addprojectban', { uid: I(5201), btime: 0 });
    await until(() => codeOf(send(a, 'sendmsg', { to: I(5202) })), 200021);
    await apps[0].call('removeprojectban', { uid: I(5201) });
    await until(() => codeOf(send(a, 'sendmsg', { to: I(5202) })), 0);
  });

  it('a RealTimeCat session made on node 1 is read on node 2, with its tokens, changes and deletion', async () => {
    const cat = [sdk(c.nodes[0].ports.http, KEY, SECRET), sdk(c.nodes[1].ports.http, KEY, SECRET)];
    const s = (await cat[0].createSession({ label: 'one' })).json;
    await until(async () => (await cat[1].session(s.uuid)).status, 200);
    assert.deepEqual((await cat[1].session(s.uuid)).json, s);
    const t = await cat[0].createToken({ session_id: s.uuid });
    assert.equal(t.status, 201, t.body);
    await until(async () => (await cat[1].token(t.json.uuid)).status, 200);
    const s2 = (await cat[1].createSession({ label: 'two' })).json;
    await until(async () => (await cat[0].session(s2.uuid)).status, 200);
    await until(async () => (await cat[0].sessions()).json.map((x) => x.uuid).join(), [s.uuid, s2.uuid].join());
    assert.equal((await cat[0].updateSession({ session_id: s.uuid, label: 'renamed' })).status, 200);
    await until(async () => (await cat[1].session(s.uuid)).json.label, 'renamed');
    assert.deepEqual((await cat[1].sessions()).json.map((x) => x.uuid), [s.uuid, s2.uuid], 'oldest first');
    assert.equal((await cat[0].delToken(t.json.uuid)).status, 204);
    await until(async () => (await cat[1].token(t.json.uuid)).status, 404);
    assert.equal((await cat[1].session(s.uuid)).status, 200, 'the session stays');
    assert.equal((await cat[0].delSession(s.uuid)).status, 204);
    await until(async () => (await cat[1].session(s.uuid)).status, 404);
  });

  it('a token made through node 1 logs in on node 2 before node 2 has heard of it', async () => {
    const cat = sdk(c.nodes[0].ports.http, KEY, SECRET);
    const s = (await cat.createSession({ label: 'at once' })).json;
    const auth = async (token) => {
      const x = await fpnn.connect({ host: '127.0.0.1', port: c.nodes[1].ports.client_tcp });
      c.links.push(x);
      return x.quest('auth', { pid: PID, rtcat_token: token });
    };
    // Redis holds node 1's PUBLISH of the token's record until the pause
    // ends: node 2 cannot acknowledge it, so the creation is answered at the
    // bound (CLUSTER_ACK_BOUND_MS, 2 s and a tick), before the pause ends.
    const t0 = Date.now();
    c.redis.cli('CLIENT', 'PAUSE', '5000', 'WRITE');
    try {
      const t = (await cat.createToken({ session_id: s.uuid })).json;
      assert.deepEqual(await auth(t.uuid), { ok: true, uid: t.uuid, session: s.uuid, type: 'pub' });
      assert.deepEqual(await auth('00000000-0000-4000-8000-000000000000'), { ok: false, reason: 'invalid' });
      assert.ok(Date.now() - t0 < 4500, 'answered while the record could not arrive');
    } finally {
      c.redis.cli('CLIENT', 'UNPAUSE');
    }
  });

  it('adds through both nodes at once stay within max_group_members', async () => {
    const gid = I(601);
    const calls = [];
    for (let k = 0; k < 12; k++) {
      const uids = [I(6000 + 2 * k), I(6001 + 2 * k)];
      calls.push(codeOf(apps[k % 2].call('addgroupmembers', { gid, uids })));
    }
    const codes = await Promise.all(calls);
    assert.ok(codes.every((x) => x === 0 || x === 200042), `codes ${codes}`);
    const stored = Number(c.pg.psql(`SELECT count(*) FROM group_members WHERE pid = ${PID} AND gid = 601`,
      c.url.slice(c.url.lastIndexOf('/') + 1)));
    assert.equal(stored, 2 * codes.filter((x) => x === 0).length, 'each accepted add stored, no refused one');
    assert.ok(stored <= MAX_MEMBERS, `stored ${stored} <= ${MAX_MEMBERS}`);
    assert.equal(stored, MAX_MEMBERS, 'the group filled up');
    for (const app of apps) {
      await until(async () => fpnn.toNumber((await app.call('getgroupcount', { gid })).cn), stored);
    }
  });

  it('after a Redis restart each node reloads what it missed', async () => {
    const gid = I(701);
    const a = await user(1, 7001);
    const b = await user(0, 7002);
    await c.redis.restart(async () => {
      await apps[0].call('addgroupmembers', { gid, uids: [I(7001)] });
      await b.call('addblacks', { blacks: [I(7001)] });
    });
    await until(() => codeOf(send(a, 'sendgroupmsg', { gid })), 0, 20000);
    await until(() => codeOf(send(a, 'sendmsg', { to: I(7002) })), 200049, 20000);
  });

  it('records that do not parse change nothing', async () => {
    const ids = c.redis.cli('SMEMBERS', 'rtmd:nodes').split('\n').filter(Boolean);
    const B = (...b) => Buffer.from(b);
    const { INV_GROUPS: G, INV_FRIENDS: F, INV_BANS: BAN, INV_RTCAT: RC } = RECORD_KINDS;
    const rec = frameRecord;
    const ids64 = (...v) => Buffer.concat(v.map((x) => { const b = Buffer.alloc(8); b.writeBigInt64BE(BigInt(x)); return b; }));
    const junk = [rec(G, B()), rec(G, ids64(1, PID)), rec(G, ids64(9, PID, 1)), rec(G, ids64(1, 999, 1)),
      rec(F, ids64(7, PID, 1)), rec(F, ids64(0, PID)), rec(BAN, ids64(PID)), rec(BAN, ids64(999, 1)),
      rec(RC, Buffer.concat([ids64(PID), Buffer.from('not-a-uuid')])),
      rec(RC, Buffer.concat([ids64(PID), Buffer.from('ABCDEFAB-0000-4000-8000-000000000000')]))];
    for (const id of ids) await c.publishRaw(`rtmd:n:${id}`, [Buffer.concat(junk)]);
    const gid = I(801);
    const a = await user(1, 8001);
    await apps[0].call('addgroupmembers', { gid, uids: [I(8001)] });
    await until(() => codeOf(send(a, 'sendgroupmsg', { gid })), 0);
  });
});
