'use strict';
// Rate limits across the nodes of a cluster (docs/cluster.md, "Rate
// limits"): a user connected to two nodes, or a project with users on two
// nodes, gets its configured rate and burst in all, not once per node.
// Each node enforces a share: the user's limits over the nodes holding its
// sessions, the project's over the live nodes.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { sanitizerReports, waitFor, withLogs } = require('./lib/rtmd');
const { startCluster } = require('./lib/cluster');

const USER_PID = 7501;
const PROJECT_PID = 7502;
const BURST = 10;
const I = fpnn.int64;
let nextMid = 1;

describe('cluster rate limits', () => {
  let c;
  let apps; // the app servers of each node, by project: apps[pid][n]
  const it = (name, fn) => test(name, { timeout: 60000 }, withLogs(() => (c ? c.nodes : []), fn));

  before(async () => {
    c = await startCluster({
      nodes: 2,
      redis: true,
      projects: [
        { pid: USER_PID, secret: 'cluster-rates-user', user_msg_rate: 1, user_msg_burst: BURST, project_msg_rate: 0 },
        { pid: PROJECT_PID, secret: 'cluster-rates-project', user_msg_rate: 0, project_msg_rate: 1,
          project_msg_burst: BURST },
      ],
    });
    for (const pid of [USER_PID, PROJECT_PID]) await c.appServers(pid);
    apps = c.apps;
    await c.joined();
  });

  after(async () => {
    if (c) await c.stop();
    assert.deepEqual(sanitizerReports(), []);
  });

  const user = (pid, n, uid) => c.user(pid, n, uid, { wait: false });
  // Node n's count of users online on other nodes (its presence mirror).
  const remoteOnline = async (n) => {
    const text = await fetch(c.nodes[n].url('http', '/metrics')).then((r) => r.text());
    return Number(/^rtmd_cluster_remote_online_users (\d+)/m.exec(text)[1]);
  };
  // Sends count messages over the users' links in turn, all at once;
  // returns how many were accepted and how long the burst took (s).
  const burst = async (senders, count) => {
    const started = process.hrtime.bigint();
    const results = await Promise.allSettled(Array.from({ length: count }, (_, i) => {
      const u = senders[i % senders.length];
      return u.call('sendmsg', { to: I(9999), mid: I(nextMid++), mtype: 30, msg: 'r', attrs: '' });
    }));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    for (const r of results) {
      if (r.status === 'rejected') assert.equal(r.reason.code, 200010, `only rate refusals: ${r.reason.message}`);
    }
    return { accepted: results.filter((r) => r.status === 'fulfilled').length, seconds };
  };

  it('a user on two nodes gets one burst in all: each node allows the half', async () => {
    const onFirst = await user(USER_PID, 0, 1001);
    const onSecond = await user(USER_PID, 1, 1001);
    // Each node knows the other holds the user (one user online per node).
    assert.ok(await waitFor(async () => (await remoteOnline(0)) === 1 && (await remoteOnline(1)) === 1, 5000),
      'each node sees the user on the other');
    const { accepted, seconds } = await burst([onFirst, onSecond], 4 * BURST);
    // One node's whole burst would be BURST per node: 2 * BURST in all.
    assert.ok(accepted <= BURST + Math.ceil(seconds) + 1, `accepted ${accepted} in ${seconds.toFixed(2)} s`);
    assert.ok(accepted >= BURST - 2, `accepted ${accepted}: the burst is shared, not lost`);
    onFirst.client.destroy();
    onSecond.client.destroy();
    assert.ok(await waitFor(async () => (await remoteOnline(0)) === 0 && (await remoteOnline(1)) === 0, 5000),
      'both nodes see the user gone');
  });

  it('a user on one node keeps its whole burst', async () => {
    const u = await user(USER_PID, 1, 1002);
    const { accepted, seconds } = await burst([u], 2 * BURST);
    assert.ok(accepted >= BURST && accepted <= BURST + Math.ceil(seconds) + 1,
      `accepted ${accepted} in ${seconds.toFixed(2)} s`);
    u.client.destroy();
  });

  it('a project with senders on two nodes gets one burst in all', async () => {
    const a = await user(PROJECT_PID, 0, 2001);
    const b = await user(PROJECT_PID, 1, 2002);
    const { accepted, seconds } = await burst([a, b], 4 * BURST);
    assert.ok(accepted <= BURST + Math.ceil(seconds) + 1, `accepted ${accepted} in ${seconds.toFixed(2)} s`);
    assert.ok(accepted >= BURST - 2, `accepted ${accepted}: the burst is shared, not lost`);
  });
});
