'use strict';
// Presence across the nodes of a cluster (docs/cluster.md): a user logged
// in on one node is online for getonlineusers (server gate and client gate)
// and getonlinestatus on every node; logout takes it offline everywhere; a
// node killed with SIGKILL has its users offline on the others within
// CLUSTER_DEAD_BOUND_S (6 s); after a Redis restart the nodes publish their
// users again and presence is rebuilt.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { appServer, login } = require('./lib/rtm');
const { sanitizerReports, waitFor, withLogs } = require('./lib/rtmd');
const { startCluster } = require('./lib/cluster');

const PID = 7301;
const DEAD_BOUND_MS = 6000;

describe('cluster presence', () => {
  let c, apps;
  const logs = () => (c ? c.nodes : []);
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(logs, fn));

  before(async () => {
    c = await startCluster({ nodes: 2, redis: true, projects: [{ pid: PID, secret: 'cluster-presence-secret' }] });
    apps = await Promise.all(c.nodes.map((n) => appServer(n)));
    // Both nodes have joined the cluster.
    assert.ok(await waitFor(() => c.redis.cli('SCARD', 'rtmd:nodes') === '2', 10000), 'both nodes joined');
  });

  after(async () => {
    for (const a of apps || []) if (a.client && !a.client.isClosed) await a.close();
    if (c) await c.stop();
    assert.deepEqual(sanitizerReports(), []);
  });

  const online = async (app, uids) =>
    (await app.call('getonlineusers', { uids: uids.map((u) => fpnn.int64(u)) })).uids.map(fpnn.toNumber).sort();
  const onlineSoon = (app, uids, want, ms = 5000) =>
    waitFor(async () => JSON.stringify(await online(app, uids)) === JSON.stringify(want), ms);

  it('a user on node 2 is online on node 1, and offline on both after logout', async () => {
    const u = await login(c.nodes[1], apps[1], 501);
    assert.ok(await onlineSoon(apps[0], [501, 502], [501]), 'node 1 sees the user of node 2');
    assert.deepEqual(await online(apps[1], [501, 502]), [501]);
    // A client on node 1 asks too, and getonlinestatus answers the same.
    const v = await login(c.nodes[0], apps[0], 502);
    const fromClient = await v.call('getonlineusers', { uids: [fpnn.int64(501), fpnn.int64(503)] });
    assert.deepEqual(fromClient.uids.map(fpnn.toNumber), [501]);
    const status = await v.call('getonlinestatus', { uids: [fpnn.int64(501), fpnn.int64(503)] });
    assert.deepEqual(status.online.map(fpnn.toNumber), [501]);
    assert.ok(await onlineSoon(apps[1], [501, 502], [501, 502]), 'node 2 sees the user of node 1');
    await u.close();
    assert.ok(await onlineSoon(apps[0], [501, 502], [502]), 'logout on node 2 is seen on node 1');
    assert.deepEqual(await online(apps[1], [501, 502]), [502]);
    await v.close();
    assert.ok(await onlineSoon(apps[1], [501, 502], []), 'logout on node 1 is seen on node 2');
  });

  it('a user on two nodes stays online until its last node lets it go', async () => {
    const a = await login(c.nodes[0], apps[0], 511);
    const b = await login(c.nodes[1], apps[1], 511);
    assert.ok(await onlineSoon(apps[0], [511], [511]));
    await b.close();
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(await online(apps[1], [511]), [511], 'still on node 1');
    await a.close();
    assert.ok(await onlineSoon(apps[1], [511], []));
  });

  it('after a Redis restart the nodes publish their users again and rebuild their mirrors', async () => {
    const u = await login(c.nodes[1], apps[1], 521);
    assert.ok(await onlineSoon(apps[0], [521, 523], [521]));
    let w;
    await c.redis.restart(async () => {
      // While Redis is down node 2 loses one user and gains another: node 1
      // hears of neither until the nodes are back.
      await u.close();
      w = await login(c.nodes[1], apps[1], 523);
      await new Promise((r) => setTimeout(r, 300));
    });
    // Node 2 rejoins with its users; node 1 rebuilds its mirror.
    assert.ok(await onlineSoon(apps[0], [521, 523], [523], 15000), 'node 1 sees node 2 as it is now');
    assert.ok(await waitFor(() => c.redis.cli('SCARD', 'rtmd:nodes') === '2', 5000), 'both nodes joined again');
    const sets = c.redis.cli('--scan', '--pattern', 'rtmd:{n*}:users').split('\n').filter(Boolean);
    const members = sets.flatMap((k) => c.redis.cli('SMEMBERS', k).split('\n')).filter(Boolean);
    assert.deepEqual(members, [`${PID}:523`], 'the presence in Redis is rebuilt from the nodes');
    // And changes flow again.
    const v = await login(c.nodes[0], apps[0], 522);
    assert.ok(await onlineSoon(apps[1], [521, 522, 523], [522, 523]));
    await w.close();
    await v.close();
    assert.ok(await onlineSoon(apps[0], [521, 522, 523], []));
    assert.ok(await onlineSoon(apps[1], [521, 522, 523], []));
  });

  it('malformed or forged presence messages change nothing', async () => {
    const junk = [
      '', 'x', '1', '1 2', `1 2 + ${PID}`, `1 2 + ${PID}:`, `1 2 + :541`, `1 2 ++ ${PID}:541`, `1 -2 + ${PID}:541`,
      `1 2 + ${PID}:541 extra`, `{bad} 2 + ${PID}:541`, `1 99999999999999999999 + ${PID}:541`,
      `1 2 + 9999999999:541`, `1 2 + ${PID}:99999999999999999999`, `${'n'.repeat(40)} 1 + ${PID}:541`,
      `1 2 + ${PID}:541${' '.repeat(200)}`,
      // Well formed, from a node that does not exist: its snapshot says it is
      // not alive, so the change is never applied.
      `77 1 + ${PID}:541`, `77 2 + ${PID}:542`,
    ];
    for (const m of junk) c.redis.cli('PUBLISH', 'rtmd:presence', m);
    await new Promise((r) => setTimeout(r, 500));
    for (const app of apps) assert.deepEqual(await online(app, [541, 542]), []);
    // Both nodes still follow each other.
    const u = await login(c.nodes[1], apps[1], 543);
    assert.ok(await onlineSoon(apps[0], [541, 542, 543], [543]));
    await u.close();
    assert.ok(await onlineSoon(apps[0], [543], []));
  });

  it('kill -9 of node 2: its users are offline on node 1 within the bound', async () => {
    await login(c.nodes[1], apps[1], 531);
    assert.ok(await onlineSoon(apps[0], [531], [531]));
    await apps[1].close();
    await c.nodes[1].stop('SIGKILL');
    const killed = Date.now();
    assert.ok(await onlineSoon(apps[0], [531], [], DEAD_BOUND_MS + 1000), 'the dead node\'s user went offline');
    const took = Date.now() - killed;
    assert.ok(took <= DEAD_BOUND_MS + 1000, `offline after ${took} ms`);
    assert.ok(await waitFor(() => c.redis.cli('SCARD', 'rtmd:nodes') === '1', 3000), 'the dead node was reaped');
    await c.nodes[1].cleanup();
  });
});
