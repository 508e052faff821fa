'use strict';
// rtm-bench --nodes against a two-node cluster (lib/cluster.js: PostgreSQL,
// Redis, two rtmd nodes): p2p with every sender on node 0 and every
// receiver on node 1, so each message crosses nodes, and fanout with
// senders and receivers spread over both; the JSON has per-node figures
// (clients, answers and deliveries in the window, CPU seconds) and the CPU
// of the PostgreSQL and Redis process trees given by --cpu-pid. A
// functional test of the harness: it asserts nothing about speed.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startCluster } = require('./lib/cluster');
const { withLogs, makeTempDir, run } = require('./lib/rtmd');

const PID = 84101;
const SECRET = 'bench-cluster-secret';
const BIN = process.env.RTM_BENCH_BIN;

describe('rtm-bench --nodes', () => {
  let c, dir, jsonFile;
  const logs = () => (c ? c.nodes : []);
  const it = (name, fn) => test(name, { timeout: 90000 }, withLogs(logs, fn));
  let uidBase = 7000000;

  before(async () => {
    assert.ok(BIN && fs.existsSync(BIN), `RTM_BENCH_BIN does not name the rtm-bench binary: ${BIN}`);
    c = await startCluster({
      nodes: 2,
      redis: true,
      projects: [{ pid: PID, secret: SECRET, user_msg_rate: 0, user_byte_rate: 0, project_msg_rate: 0, project_byte_rate: 0 }],
    });
    dir = await makeTempDir('rtm-bench-cluster-');
    jsonFile = path.join(dir, 'results.jsonl');
  });

  after(async () => {
    if (c) await c.stop();
  });

  const postmasterPid = () => Number(fs.readFileSync(path.join(c.pg.data, 'postmaster.pid'), 'utf8').split('\n')[0]);

  async function bench(scenario, extra) {
    uidBase += 10000;
    const nodes = c.nodes.map((n) => `127.0.0.1:${n.ports.client_tcp}:${n.ports.server_tcp}:${n.proc.pid}`).join(',');
    const args = [
      '--scenario', scenario, '--nodes', nodes,
      '--pid', String(PID), '--secret', SECRET,
      '--uid-base', String(uidBase), '--rid-base', String(uidBase),
      '--cpu-pid', `postgres:${postmasterPid()}`, '--cpu-pid', `redis:${c.redis.proc.pid}`,
      '--warmup', '0.3', '--duration', '1', '--drain', '5',
      '--json', jsonFile, '--label', `cluster ${scenario}`,
      ...extra,
    ];
    const t0 = Date.now();
    const r = await run(BIN, args, { timeoutMs: 60000 });
    const elapsedMs = Date.now() - t0;
    const ctx = `rtm-bench ${args.join(' ')}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
    assert.equal(r.timedOut, false, `timed out\n${ctx}`);
    assert.equal(r.code, 0, `exit code\n${ctx}`);
    assert.match(r.stdout, /^ {2}node 0 127\.0\.0\.1:\d+: clients \d+/m, ctx);
    assert.match(r.stdout, /^ {2}postgres \(pid \d+ and children\): window CPU/m, ctx);
    const lines = fs.readFileSync(jsonFile, 'utf8').split('\n').filter(Boolean);
    const j = JSON.parse(lines[lines.length - 1]);
    assert.equal(j.label, `cluster ${scenario}`, ctx);
    assert.equal(j.errors, 0, ctx);
    assert.equal(j.disconnects, 0, ctx);
    assert.equal(j.connect_errors, 0, ctx);
    assert.equal(j.drain_complete, true, ctx);
    assert.equal(j.ack_errors, 0, ctx);
    assert.equal(j.delivered, j.expected, ctx);
    assert.ok(Array.isArray(j.nodes) && j.nodes.length === 2, ctx);
    j.nodes.forEach((n, k) => {
      assert.equal(n.node, k, ctx);
      assert.equal(n.port, c.nodes[k].ports.client_tcp, ctx);
      assert.equal(n.gate_port, c.nodes[k].ports.server_tcp, ctx);
      assert.equal(n.server_pid, c.nodes[k].proc.pid, ctx);
      assert.equal(typeof n.cpu_s, 'number', `node ${k} cpu_s\n${ctx}`);
      assert.ok(n.cpu_s >= 0 && n.rss_kb_after > 0, ctx);
    });
    // the per-node figures add up to the run's
    assert.equal(j.nodes[0].clients + j.nodes[1].clients, j.clients, ctx);
    assert.equal(j.nodes[0].window.acked + j.nodes[1].window.acked, j.window.acked, ctx);
    assert.equal(j.nodes[0].window.delivered + j.nodes[1].window.delivered, j.window.delivered, ctx);
    for (const k of ['postgres', 'redis']) assert.equal(typeof j.cpu_s[k], 'number', `${k} cpu_s\n${ctx}`);
    // PostgreSQL stored the messages; Redis carried them between the nodes
    assert.ok(j.cpu_s.postgres > 0, ctx);
    return { j, ctx, stdout: r.stdout, elapsedMs };
  }

  it('p2p: senders on node 0, receivers on node 1, each message pushed across', async () => {
    const { j, ctx, stdout, elapsedMs } = await bench('p2p', ['--connections', '4', '--window', '8']);
    assert.equal(j.clients, 8, ctx);
    // each sender first saw its receiver online on its own node
    // (getonlineusers), so no message went out before the push could
    assert.match(stdout, /subscribed 4\/4 \(errors 0\)/, ctx);
    // those asks were written at once, not at the server's next ping (20 s)
    assert.ok(elapsedMs < 15000, `took ${elapsedMs} ms\n${ctx}`);
    assert.equal(j.acked, j.expected, ctx);
    assert.ok(j.window.delivered > 0, ctx);
    assert.deepEqual(j.nodes.map((n) => [n.clients, n.senders]), [[4, 4], [4, 0]], ctx);
    // every answer on the senders' node, every delivery on the receivers'
    assert.equal(j.nodes[0].window.delivered, 0, ctx);
    assert.equal(j.nodes[1].window.acked, 0, ctx);
    assert.ok(j.nodes[0].window.acked > 0 && j.nodes[1].window.delivered > 0, ctx);
    assert.ok(j.cpu_s.redis > 0, ctx);
  });

  it('fanout: senders and receivers on both nodes, every receiver gets every message', async () => {
    const { j, ctx } = await bench('fanout', ['--connections', '6', '--senders', '2', '--window', '4']);
    assert.equal(j.clients, 8, ctx);
    assert.equal(j.expected, j.acked * 7, ctx); // senders are room members too; no echo
    assert.deepEqual(j.nodes.map((n) => [n.clients, n.senders]), [[4, 1], [4, 1]], ctx);
    assert.ok(j.nodes[0].window.delivered > 0 && j.nodes[1].window.delivered > 0, ctx);
  });

  it('refuses a node outside 127.0.0.0/8, a malformed list, and --nodes with --port', async () => {
    for (const bad of [['--nodes', '10.0.0.1:1:2'], ['--nodes', '127.0.0.1:1'], ['--nodes', '127.0.0.1:1:70000'],
      ['--nodes', '127.0.0.1:1:2:x'], ['--nodes', '127.0.0.1:1:2', '--port', '5'],
      ['--nodes', '127.0.0.1:1:2', '--target', 'nats'], ['--cpu-pid', 'a b:1'], ['--cpu-pid', 'pg']]) {
      const r = await run(BIN, ['--scenario', 'p2p', ...bad], { timeoutMs: 10000 });
      assert.equal(r.code, 2, `${bad.join(' ')}\n${r.stderr}`);
      assert.match(r.stderr, /rtm-bench: /);
    }
  });
});
