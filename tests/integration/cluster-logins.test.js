'use strict';
// Logins across the nodes of a cluster (docs/cluster.md, "Logins across
// nodes"): on a single-login project (multi_login = 0) a login on one node
// kicks the user's login on the other with kickout {reason:
// duplicate_login}, and two logins at once on both nodes leave exactly
// one; the server gate's kickout and addprojectblack through one node
// close the user's connection on the other; an app server listening to
// login/logout events on one node gets the cluster's login when the
// user's first node takes it and its logout when the last one lets it go
// (the users of a killed node and of a stopped one included), each once;
// a node restarted with its node_id before it was reaped drops the hashes
// of its previous users that are not back.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { appServer, login, answerPushes, recordPushes } = require('./lib/rtm');
const { sanitizerReports, waitFor, withLogs, sleep } = require('./lib/rtmd');
const { startCluster } = require('./lib/cluster');

const SINGLE = 7501; // multi_login = 0
const MULTI = 7502;
const I = fpnn.int64;

describe('cluster logins: kickout, duplicate login, listen events', () => {
  let c;
  let apps; // the app servers of each node, by project: apps[pid][n]
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(() => (c ? c.nodes : []), fn));

  before(async () => {
    c = await startCluster({
      nodes: 2,
      redis: true,
      projects: [
        { pid: SINGLE, secret: 'cluster-logins-single', multi_login: 0 },
        { pid: MULTI, secret: 'cluster-logins-multi' },
      ],
    });
    for (const pid of [SINGLE, MULTI]) await c.appServers(pid);
    apps = c.apps;
    await c.joined();
  });

  after(async () => {
    if (c) await c.stop();
    assert.deepEqual(sanitizerReports(), []);
  });

  const online = async (pid, n, uid) => (await apps[pid][n].call('getonlineusers', { uids: [I(uid)] })).uids.length === 1;
  // uid logged in on node n of pid, online on the other node.
  const user = (pid, n, uid) => c.user(pid, n, uid);
  const kicked = async (u, reason) => {
    const p = await u.waitPush((q) => q.method === 'kickout', 5000);
    assert.equal(p.payload.reason, reason);
    assert.equal(await u.client.waitClose(3000), true, 'the kicked connection closes');
  };

  it('multi_login = 0: a login on node 2 kicks the login on node 1 (duplicate_login)', async () => {
    const a1 = await user(SINGLE, 0, 101);
    const a2 = await login(c.nodes[1], apps[SINGLE][1], 101);
    c.links.push(a2.client);
    await kicked(a1, 'duplicate_login');
    await sleep(300);
    assert.equal(a2.client.isClosed, false, 'the newer login stays');
    assert.equal(a2.pushes.filter((q) => q.method === 'kickout').length, 0);
    assert.ok(await online(SINGLE, 0, 101) && await online(SINGLE, 1, 101));
  });

  it('multi_login = 0: two logins at once on both nodes leave exactly one, the later', async () => {
    for (let round = 0; round < 6; round++) {
      const uid = 200 + round;
      const tokens = [await apps[SINGLE][0].token(uid), await apps[SINGLE][1].token(uid)];
      const clients = [];
      for (const n of [0, 1]) {
        const cl = await fpnn.connect({ port: c.nodes[n].ports.client_tcp });
        answerPushes(cl);
        recordPushes(cl);
        c.links.push(cl);
        clients.push(cl);
      }
      const answers = await Promise.all(clients.map((cl, n) => cl.quest('auth',
        { pid: I(SINGLE), uid: I(uid), token: tokens[n], version: 'rtmd-tests' })));
      assert.deepEqual(answers.map((a) => a.ok), [true, true]);
      assert.ok(await waitFor(() => clients.filter((cl) => cl.isClosed).length === 1, 5000),
        `round ${round}: one of the two is closed`);
      await sleep(500);
      const alive = clients.filter((cl) => !cl.isClosed);
      assert.equal(alive.length, 1, `round ${round}: exactly one survives`);
      const gone = clients.find((cl) => cl.isClosed);
      const kick = gone.pushes.find((q) => q.method === 'kickout');
      assert.ok(kick, 'the older one got a kickout');
      assert.equal(kick.payload.reason, 'duplicate_login');
      assert.equal(alive[0].pushes.filter((q) => q.method === 'kickout').length, 0);
      // The survivor holds the last sequence Redis handed out: a new login
      // through the other node kicks it, and nothing is left behind.
      assert.ok(await waitFor(async () => await online(SINGLE, 0, uid) && await online(SINGLE, 1, uid), 5000));
    }
  });

  it('server kickout through node 1 closes the connection on node 2', async () => {
    const b = await user(MULTI, 1, 301);
    await apps[MULTI][0].call('kickout', { uid: I(301) });
    await kicked(b, 'kicked');
    assert.ok(await waitFor(async () => !(await online(MULTI, 0, 301)), 5000), 'offline on node 1 too');
  });

  it('addprojectblack through node 2 kicks the connection on node 1', async () => {
    const a = await user(MULTI, 0, 401);
    await apps[MULTI][1].call('addprojectblack', { uid: I(401), btime: 60 });
    await kicked(a, 'kicked');
  });

  it('an app server on node 1 gets the cluster login and logout of a user once', async () => {
    const l = await appServer(c.nodes[0], { project: apps[MULTI][0].project });
    answerPushes(l.client);
    recordPushes(l.client);
    await l.call('addlisten', { events: ['login', 'logout'] });
    const member = `${MULTI}:-9223372036854775808`;
    const listening = () => c.redis.cli('--scan', '--pattern', 'rtmd:{n*}:users').split('\n').filter(Boolean)
      .some((k) => c.redis.cli('SISMEMBER', k, member) === '1');
    assert.ok(await waitFor(listening, 5000), 'node 1 publishes its listener');
    await sleep(300); // node 2's mirror follows
    const events = (name) => l.client.pushes.filter((q) => q.method === 'pushevent' && q.payload.event === name &&
      fpnn.toNumber(q.payload.uid) === 501);
    const b = await user(MULTI, 1, 501);
    const first = await l.client.waitPush((q) => q.method === 'pushevent' && q.payload.event === 'login' &&
      fpnn.toNumber(q.payload.uid) === 501);
    assert.equal(fpnn.toNumber(first.payload.pid), MULTI);
    assert.match(first.payload.endpoint, /^127\.0\.0\.1:\d+$/);
    const a = await user(MULTI, 0, 501);
    await sleep(500);
    assert.equal(events('login').length, 1, 'one login for the user on two nodes');
    await b.close();
    await sleep(1000);
    assert.equal(events('logout').length, 0, 'no logout while online on node 1');
    await a.close();
    const out = await l.client.waitPush((q) => q.method === 'pushevent' && q.payload.event === 'logout' &&
      fpnn.toNumber(q.payload.uid) === 501);
    assert.equal(out.payload.endpoint, '');
    await sleep(500);
    assert.equal(events('login').length, 1);
    assert.equal(events('logout').length, 1, 'one logout');
    // A killed node's users log out once, by the node that reaps it.
    await user(MULTI, 1, 502);
    await l.client.waitPush((q) => q.method === 'pushevent' && q.payload.event === 'login' &&
      fpnn.toNumber(q.payload.uid) === 502);
    await c.nodes[1].stop('SIGKILL');
    const reaped = await l.client.waitPush((q) => q.method === 'pushevent' && q.payload.event === 'logout' &&
      fpnn.toNumber(q.payload.uid) === 502, 10000);
    assert.equal(fpnn.toNumber(reaped.payload.pid), MULTI);
    await sleep(1500);
    assert.equal(l.client.pushes.filter((q) => q.method === 'pushevent' && q.payload.event === 'logout' &&
      fpnn.toNumber(q.payload.uid) === 502).length, 1);
    // A node that stops (SIGTERM): its users log out once too.
    const n3 = await c.startNode();
    const u3 = await login(n3, apps[MULTI][0], 503);
    c.links.push(u3.client);
    const is503 = (name) => (q) => q.method === 'pushevent' && q.payload.event === name && fpnn.toNumber(q.payload.uid) === 503;
    await l.client.waitPush(is503('login'), 10000);
    assert.equal(await n3.stop('SIGTERM'), 0);
    await l.client.waitPush(is503('logout'), 10000);
    await sleep(1500);
    assert.equal(l.client.pushes.filter(is503('login')).length, 1);
    assert.equal(l.client.pushes.filter(is503('logout')).length, 1);
    await l.close();
  }, 90000);
});

// A node restarted with its fixed node_id before any node reaped its
// previous start (here the only node, so nobody reaps): the users of the
// previous start that are not back leave their `:on` hashes when it joins,
// so their next login is the cluster's login again.
describe('cluster logins: a node restarted with its node_id', () => {
  let c;
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(() => (c ? c.nodes : []), fn));

  before(async () => {
    c = await startCluster({ nodes: 0, redis: true, projects: [{ pid: MULTI, secret: 'cluster-logins-multi' }] });
  });

  after(async () => {
    if (c) await c.stop();
    assert.deepEqual(sanitizerReports(), []);
  });

  it("the previous start's users not back leave their hashes", async () => {
    const hash = (uid) => `rtmd:{p${MULTI}:u${uid}}:on`;
    const first = await c.startNode(['--node_id=41']);
    await c.joined(1);
    const app = await appServer(first, { project: first.projects[0] });
    for (const uid of [601, 602]) c.links.push((await login(first, app, uid)).client);
    assert.ok(await waitFor(() => c.redis.cli('EXISTS', hash(601)) === '1' && c.redis.cli('EXISTS', hash(602)) === '1', 5000));
    await app.close();
    await first.stop('SIGKILL');
    // The previous start's liveness key expires; the restart may take the id.
    c.redis.cli('DEL', 'rtmd:{n41}:alive');
    const again = await c.startNode(['--node_id=41']);
    const app2 = await appServer(again, { project: again.projects[0] });
    const l = await appServer(again, { project: again.projects[0] });
    answerPushes(l.client);
    recordPushes(l.client);
    await l.call('addlisten', { events: ['login'] });
    const back = await login(again, app2, 602);
    c.links.push(back.client);
    assert.ok(await waitFor(() => c.redis.cli('EXISTS', hash(601)) === '0', 5000), 'uid 601 left its hash');
    assert.equal(c.redis.cli('HKEYS', hash(602)), '41', 'uid 602 is back on node 41');
    // 601's next login is the cluster's login.
    c.links.push((await login(again, app2, 601)).client);
    await l.client.waitPush((q) => q.method === 'pushevent' && q.payload.event === 'login' &&
      fpnn.toNumber(q.payload.uid) === 601, 5000);
    await app2.close();
    await l.close();
  });
});
