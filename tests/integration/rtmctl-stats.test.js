'use strict';
// The operator's figures: /metrics counts logins by result, messages by
// kind, sessions, projects and the store's size, and `rtmctl stats` turns
// two scrapes into rates while a test logs users in and sends messages.
// Figures are per node, so this file is not in the cl.* suite; the store's
// size is SQLite's, so not in pg.* either.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { spawn } = require('node:child_process');
const fpnn = require('./lib/fpnn');
const { appServer, login } = require('./lib/rtm');
const { startRtmd, withLogs, run, rtmctlBin } = require('./lib/rtmd');

const I = fpnn.int64;

async function metrics(srv) {
  const text = await new Promise((resolve, reject) => {
    http.get(srv.url('http', '/metrics'), (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

// Three logins, a refused token, an auth answered with an error (a string
// uid no string id can be), and
// twelve messages: eight p2p (two of them one sendmsgs to two), two to a
// group, two to a room.
async function activity(srv, app) {
  const users = [];
  for (const uid of [301, 302, 303]) users.push(await login(srv, app, uid));
  const bad = await fpnn.connect({ port: srv.ports.client_tcp });
  assert.equal((await bad.quest('auth', { pid: I(srv.projects[0].pid), uid: I(304), token: 'nope' })).ok, false);
  bad.destroy();
  const failing = await fpnn.connect({ port: srv.ports.client_tcp });
  await assert.rejects(failing.quest('auth', { pid: I(srv.projects[0].pid), uid: 'not "an id"\n', token: 'nope' }));
  failing.destroy();
  let mid = 1;
  for (let i = 0; i < 6; i++) await app.call('sendmsg', { from: I(301), to: I(302), mid: I(mid++), mtype: 30, msg: 'p2p', attrs: '' });
  await app.call('sendmsgs', { from: I(301), tos: [I(302), I(303)], mid: I(mid++), mtype: 30, msg: 'two', attrs: '' });
  await app.call('addgroupmembers', { gid: I(7), uids: [I(301), I(302)] });
  for (let i = 0; i < 2; i++) await app.call('sendgroupmsg', { from: I(301), gid: I(7), mid: I(mid++), mtype: 30, msg: 'g', attrs: '' });
  await app.call('addroommember', { rid: I(8), uid: I(301) });
  for (let i = 0; i < 2; i++) await app.call('sendroommsg', { from: I(301), rid: I(8), mid: I(mid++), mtype: 30, msg: 'r', attrs: '' });
  return users;
}

test('/metrics counts logins by result, messages by kind, sessions, projects and the store size', async () => {
  const srv = await startRtmd();
  try {
    await withLogs(() => srv, async () => {
      const app = await appServer(srv);
      const users = await activity(srv, app);
      const m = await metrics(srv);
      assert.equal(m['rtmd_logins_total{result="ok"}'], 3);
      assert.equal(m['rtmd_logins_total{result="denied"}'], 1);
      assert.equal(m['rtmd_logins_total{result="error"}'], 1);
      assert.equal(m['rtmd_messages_total{kind="p2p"}'], 8);
      assert.equal(m['rtmd_messages_total{kind="group"}'], 2);
      assert.equal(m['rtmd_messages_total{kind="room"}'], 2);
      assert.equal(m['rtmd_messages_total{kind="broadcast"}'], 0);
      assert.equal(m.rtmd_sessions, 3);
      assert.equal(m.rtmd_projects, 1);
      assert.ok(m.rtmd_store_bytes > 0);
      for (const u of users) u.client.destroy();
      await app.close();
    })();
  } finally {
    await srv.cleanup();
  }
});

test('rtmctl stats: rates over an interval, as JSON lines and as a table', async () => {
  const srv = await startRtmd();
  try {
    await withLogs(() => srv, async () => {
      const app = await appServer(srv);
      const stats = spawn(rtmctlBin(), ['stats', `127.0.0.1:${srv.ports.http}`, '--json', '--count', '1', '--seconds', '2']);
      let out = '';
      let err = '';
      stats.stdout.on('data', (d) => (out += d));
      stats.stderr.on('data', (d) => (err += d));
      const exited = new Promise((resolve) => stats.on('close', resolve));
      await new Promise((r) => setTimeout(r, 300)); // its first scrape
      const users = await activity(srv, app);
      assert.equal(await exited, 0, err);
      const lines = out.trim().split('\n');
      assert.equal(lines.length, 1, '--count 1: one report');
      const r = JSON.parse(lines[0]);
      assert.equal(r.sessions, 3);
      assert.equal(r.client_connections, 3);
      assert.equal(r.server_connections, 1);
      assert.equal(r.projects, 1);
      // Per second over the 2 s interval: 3 logins, 2 failures, 12 messages.
      assert.ok(Math.abs(r.logins_per_s - 1.5) < 0.3, `logins/s ${r.logins_per_s}`);
      assert.ok(Math.abs(r.login_failures_per_s - 1) < 0.2, `failures/s ${r.login_failures_per_s}`);
      assert.ok(Math.abs(r.messages_per_s - 6) < 1, `messages/s ${r.messages_per_s}`);
      assert.ok(r.answer_p99_ms > 0, 'the answer p99 of the messages sent');
      assert.ok(r.store_commit_ms > 0);
      assert.ok(r.store_mib > 0);
      assert.equal(r.protocol_errors_per_s, 0);

      const table = await run(rtmctlBin(), ['stats', `http://127.0.0.1:${srv.ports.http}/`, '--count', '2', '--seconds', '0.2']);
      assert.equal(table.code, 0, table.stderr);
      const rows = table.stdout.trim().split('\n');
      assert.match(rows[0], /^time +clients +servers +sessions +logins\/s/);
      assert.equal(rows.length, 3, 'a header and two rows');
      assert.match(rows[1], /^\d\d:\d\d:\d\d +3 +1 +3 /);
      for (const u of users) u.client.destroy();
      await app.close();
    })();
  } finally {
    await srv.cleanup();
  }
});

test('rtmctl stats refuses what is not an rtmd, an unreachable address and bad arguments', async () => {
  const other = http.createServer((req, res) => res.end('# just text\nhello 1\n'));
  await new Promise((r) => other.listen(0, '127.0.0.1', r));
  try {
    let r = await run(rtmctlBin(), ['stats', `127.0.0.1:${other.address().port}`, '--count', '1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /is not the \/metrics of an rtmd/);
    r = await run(rtmctlBin(), ['stats', '127.0.0.1:1', '--count', '1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /GET http:\/\/127\.0\.0\.1:1\/metrics/);
    r = await run(rtmctlBin(), ['stats', 'nohost', '--count', '1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bad address/);
    r = await run(rtmctlBin(), ['stats', '127.0.0.1:8080', '--uid', '5']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--uid is not an option of 'stats'/);
  } finally {
    other.close();
  }
});
