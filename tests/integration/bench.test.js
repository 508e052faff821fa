'use strict';
// rtm-bench smoke test: runs every rtmd scenario of the load generator
// (tools/rtm-bench) for about a second against a real rtmd with tiny sizes,
// over TCP and WebSocket, and checks that the summary and the JSON line are
// well formed and that the counts agree with each other (every send answered,
// every answered message delivered to each receiver, logins counted). A
// functional test of the harness: it asserts nothing about speed.
//
// The binary is $RTM_BENCH_BIN, set by CTest.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { stopChecked, writeProjectsConfig } = require('./lib/rtm');
const { startRtmd, withLogs, makeTempDir, run } = require('./lib/rtmd');

const PID = 84001;
const SECRET = 'bench-smoke-secret';

const BIN = process.env.RTM_BENCH_BIN;

describe('rtm-bench', () => {
  let srv, conf, dir, jsonFile;
  const own = []; // servers of single tests, in their logs too
  const logs = () => [srv, ...own];
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(logs, fn));
  let uidBase = 5000000;

  before(async () => {
    assert.ok(BIN && fs.existsSync(BIN), `RTM_BENCH_BIN does not name the rtm-bench binary: ${BIN}`);
    dir = await makeTempDir('rtm-bench-it-');
    conf = writeProjectsConfig(dir, [
      { pid: PID, secret: SECRET, user_msg_rate: 0, user_byte_rate: 0, project_msg_rate: 0, project_byte_rate: 0, max_rooms_per_user: 4 },
    ]);
    srv = await startRtmd({ config: conf });
    jsonFile = path.join(dir, 'results.jsonl');
  });

  after(async () => {
    for (const s of own) await s.cleanup(); // left running by a failed test
    await stopChecked(srv);
  });

  // Runs one scenario and returns the JSON object it appended.
  async function bench(scenario, extra = [], { ws = false, server = srv } = {}) {
    const before = fs.existsSync(jsonFile) ? fs.readFileSync(jsonFile, 'utf8').split('\n').filter(Boolean).length : 0;
    uidBase += 10000; // fresh users (and rooms) for every run
    const args = [
      '--scenario', scenario,
      '--port', String(ws ? server.ports.client_ws : server.ports.client_tcp),
      '--gate-port', String(server.ports.server_tcp),
      '--pid', String(PID), '--secret', SECRET,
      '--uid-base', String(uidBase), '--rid-base', String(uidBase),
      '--server-pid', String(server.proc.pid),
      '--warmup', '0.3', '--duration', '1', '--drain', '5',
      '--json', jsonFile, '--label', `smoke ${scenario}`,
      ...(ws ? ['--ws'] : []),
      ...extra,
    ];
    const r = await run(BIN, args, { timeoutMs: 45000 });
    const ctx = `rtm-bench ${args.join(' ')}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
    assert.equal(r.timedOut, false, `timed out\n${ctx}`);
    assert.equal(r.code, 0, `exit code\n${ctx}`);
    assert.match(r.stdout, new RegExp(`^rtm-bench rtmd ${scenario} \\(${ws ? 'ws' : 'tcp'}\\)`, 'm'), ctx);
    assert.match(r.stdout, /server RSS \d+ kB before, \d+ kB after/, ctx);
    const lines = fs.readFileSync(jsonFile, 'utf8').split('\n').filter(Boolean);
    assert.equal(lines.length, before + 1, `one JSON line per run\n${ctx}`);
    const j = JSON.parse(lines[lines.length - 1]);
    assert.equal(j.target, 'rtmd');
    assert.equal(j.scenario, scenario);
    assert.equal(j.label, `smoke ${scenario}`);
    assert.equal(j.transport, ws ? 'ws' : 'tcp');
    for (const k of ['sent', 'acked', 'delivered', 'expected', 'errors', 'disconnects', 'logins', 'clients',
      'connected', 'measured_s', 'delivered_per_s', 'acked_per_s', 'logins_per_s', 'server_rss_kb_before',
      'server_rss_kb_after', 'client_rss_kb']) {
      assert.equal(typeof j[k], 'number', `${k} is a number\n${ctx}`);
      assert.ok(j[k] >= 0, `${k} >= 0\n${ctx}`);
    }
    for (const h of [scenario === 'churn' ? 'login_latency_us' : 'latency_us', 'ack_latency_us']) {
      const v = j[h];
      assert.equal(typeof v, 'object', ctx);
      assert.ok(v.p50 <= v.p99 && v.p99 <= v.p999 && v.p999 <= v.max, `${h} percentiles ordered\n${ctx}`);
    }
    assert.ok(j.measured_s > 0.8 && j.measured_s < 3, `measured window ~1 s\n${ctx}`);
    assert.equal(j.errors, 0, ctx);
    assert.equal(j.disconnects, 0, ctx);
    assert.deepEqual(j.error_codes, {}, ctx);
    assert.ok(j.server_rss_kb_after > 0, ctx);
    return { j, ctx };
  }

  // Message scenarios: every send answered, every answer delivered to each receiver.
  function checkMessages({ j, ctx }, clients, perMessage) {
    assert.equal(j.clients, clients, ctx);
    assert.equal(j.connected, clients, ctx);
    assert.equal(j.connect_errors, 0, ctx);
    assert.equal(j.drain_complete, true, ctx);
    assert.ok(j.sent > 0, ctx);
    assert.equal(j.send_failures, 0, ctx);
    assert.equal(j.acked + j.ack_errors, j.sent, ctx);
    assert.equal(j.ack_errors, 0, ctx);
    assert.equal(j.expected, j.acked * perMessage, ctx);
    assert.equal(j.delivered, j.expected, ctx);
    assert.equal(j.echoes, 0, ctx);
    assert.ok(j.window.sent <= j.sent && j.window.delivered <= j.delivered, ctx);
    assert.ok(j.window.delivered > 0 && j.latency_us.count > 0 && j.ack_latency_us.count > 0, ctx);
    assert.ok(Math.abs(j.delivered_per_s - j.window.delivered / j.measured_s) <= 1 + j.delivered_per_s * 0.01, ctx);
  }

  it('--metrics: rtmd\'s stage histograms over the measured window only, from /metrics at its edges', async () => {
    const out = path.join(dir, 'stages.prom');
    const r = await bench('p2p', ['--connections', '3', '--window', '8', '--metrics', `127.0.0.1:${srv.ports.http}`,
      '--metrics-out', out]);
    checkMessages(r, 6, 1);
    const series = new Map(fs.readFileSync(out, 'utf8').split('\n').filter(Boolean).map((l) => {
      const at = l.lastIndexOf(' ');
      return [l.slice(0, at), Number(l.slice(at + 1))];
    }));
    const answered = series.get('rtmd_stage_seconds_count{stage="server"}');
    assert.ok(answered > 0, r.ctx);
    // the answers written in the window, give or take what was in flight at
    // its two edges (3 senders x window 8); the warm-up's are not counted
    assert.ok(Math.abs(answered - r.j.window.acked) <= 2 * 3 * 8, `${answered} vs ${r.j.window.acked}\n${r.ctx}`);
    assert.ok(answered < r.j.acked, `${answered} of ${r.j.acked}: warm-up excluded\n${r.ctx}`);
    assert.equal(series.get('rtmd_stage_seconds_bucket{stage="server",le="+Inf"}'), answered);
    assert.ok(series.get('rtmd_stage_count_count{stage="batch_size"}') > 0, r.ctx);

    // only a loopback address, and both options together
    for (const extra of [['--metrics', '10.0.0.1:80', '--metrics-out', out], ['--metrics', `127.0.0.1:${srv.ports.http}`]]) {
      const bad = await run(BIN, ['--scenario', 'p2p', '--port', String(srv.ports.client_tcp), '--gate-port',
        String(srv.ports.server_tcp), '--pid', String(PID), '--secret', SECRET, '--connections', '1',
        '--warmup', '0', '--duration', '0.2', ...extra], { timeoutMs: 30000 });
      assert.notEqual(bad.code, 0, bad.stdout + bad.stderr);
      assert.match(bad.stderr, /--metrics/);
    }
  });

  for (const ws of [false, true]) {
    const t = ws ? 'ws' : 'tcp';

    it(`p2p over ${t}: each answered sendmsg reaches its receiver`, async () => {
      const r = await bench('p2p', ['--connections', '3', '--window', '8'], { ws });
      checkMessages(r, 6, 1);
      assert.equal(r.j.subscribed, 0);
    });

    it(`fanout over ${t}: each message reaches every receiver`, async () => {
      const r = await bench('fanout', ['--connections', '5', '--senders', '2', '--window', '4'], { ws });
      // senders join the room to be allowed to send; rtmd does not echo to them
      checkMessages(r, 7, 6);
      assert.equal(r.j.subscribed, 7);
    });

    it(`rooms over ${t}: everyone talks to the others of the room`, async () => {
      const r = await bench('rooms', ['--connections', '8', '--room-size', '4', '--rate', '20'], { ws });
      checkMessages(r, 8, 3);
      assert.equal(r.j.params.room_size, 4);
      // 8 users at 20 msg/s for 1.3 s: bounded by the rate, never more
      assert.ok(r.j.sent <= 8 * 20 * 1.3 + 8 * 2, r.ctx);
    });

    it(`idle over ${t}: connections stay up, memory per connection reported`, async () => {
      // A server of its own: the shared one gives memory back while the
      // other scenarios' clients leave (megabytes at a time with
      // AddressSanitizer), so its RSS may fall while 20 idle clients
      // arrive, and rtm-bench then reports no figure per connection.
      const server = await startRtmd({ config: conf });
      own.push(server);
      const { j, ctx } = await bench('idle', ['--connections', '20'], { ws, server });
      assert.equal(j.connected, 20, ctx);
      assert.equal(j.sent, 0, ctx);
      assert.equal(typeof j.server_rss_bytes_per_conn, 'number', ctx);
      assert.match(ctx, /bytes per connection/);
      await stopChecked(server);
    });

    it(`churn over ${t}: logins counted`, async () => {
      // A bounded login rate: an open-loop churn opens tens of thousands of
      // sockets a second, and next to the other tests running in parallel
      // the loopback's ephemeral ports run out (TIME_WAIT).
      const { j, ctx } = await bench('churn', ['--connections', '4', '--rate', '500'], { ws });
      assert.ok(j.logins > 0 && j.window.logins > 0 && j.window.logins <= j.logins, ctx);
      assert.equal(j.login_errors, 0, ctx);
      assert.ok(Math.abs(j.logins_per_s - j.window.logins / j.measured_s) <= 1 + j.logins_per_s * 0.01, ctx);
      assert.ok(j.login_latency_us.count > 0, ctx);
      assert.equal(j.sent, 0, ctx);
    });
  }

  it('refuses addresses outside 127.0.0.0/8', async () => {
    const r = await run(BIN, ['--scenario', 'idle', '--host', '10.0.0.1'], { timeoutMs: 10000 });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /127\.0\.0\.0\/8/);
    const r2 = await run(BIN, ['--scenario', 'idle', '--source-addrs', '127.0.0.2,192.168.1.1'], { timeoutMs: 10000 });
    assert.equal(r2.code, 2);
  });
});
