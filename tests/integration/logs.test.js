'use strict';
// rtmd's log lines as an operator's log pipeline reads them: with
// log_format = json every line is one JSON object and with logfmt one set
// of key=value pairs, each with ts and level; connections opened and
// closed and every login (auth: ok, denied, error with its code) are
// events at info with stable keys; a string a peer sent comes out escaped,
// never as a line break or a forged field. log_file appends to a file that
// SIGUSR1 reopens after a rotation, keeping every connection. Bad settings
// are refused before rtmd starts. Logs do not depend on the store, so this
// file is not in the pg.* and cl.* suites.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const fpnn = require('./lib/fpnn');
const { appServer, login } = require('./lib/rtm');
const { startRtmd, withLogs, run, rtmdBin, makeTempDir, removeTempDir, waitFor } = require('./lib/rtmd');

const I = fpnn.int64;
const HOSTILE = 'x"\n{"level":"error","forged":"1"}\\';
// HOSTILE as rtm_log_str writes it: the backslash doubled, the newline \n.
const HOSTILE_ESCAPED = 'x"\\n{"level":"error","forged":"1"}\\\\';

// Three logins on three links: a good one, one with a token that is not
// the user's (answered {ok: false}) and one with a hostile string as its
// uid (answered with an error); then all three links close.
async function loginsOfEachKind(srv) {
  const app = await appServer(srv);
  const user = await login(srv, app, 101);
  const denied = await fpnn.connect({ port: srv.ports.client_tcp });
  const d = await denied.quest('auth', { pid: I(srv.projects[0].pid), uid: I(102), token: 'not-a-token' });
  assert.equal(d.ok, false);
  const failing = await fpnn.connect({ port: srv.ports.client_tcp });
  await assert.rejects(failing.quest('auth', { pid: I(srv.projects[0].pid), uid: HOSTILE, token: 't' }), (e) => e.code > 0);
  for (const c of [user.client, denied, failing]) c.destroy();
  await app.close();
}

function events(lines, name) {
  return lines.filter((l) => l.event === name);
}

test('json: one object a line; conn_open, auth (ok, denied, error) and conn_close events', async () => {
  const srv = await startRtmd({ args: ['--log_format=json'] });
  try {
    await withLogs(srv, async () => {
      await loginsOfEachKind(srv);
      await waitFor(() => srv.stderr.split('\n').filter((l) => l.includes('"conn_close"')).length >= 4, 5000);
      const lines = srv.stderr.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
      for (const l of lines) {
        assert.match(l.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        assert.ok(['debug', 'info', 'warn', 'error'].includes(l.level), l.level);
        assert.ok(typeof l.msg === 'string' || typeof l.event === 'string', JSON.stringify(l));
        assert.equal(l.forged, undefined, 'no field forged by a peer');
      }
      const opened = events(lines, 'conn_open').filter((l) => l.gate === 'client_tcp');
      assert.equal(opened.length, 3);
      for (const o of opened) assert.match(o.peer, /^127\.0\.0\.1:\d+$/);
      const auth = events(lines, 'auth');
      const pid = String(srv.projects[0].pid);
      const ok = auth.find((a) => a.result === 'ok');
      assert.deepEqual({ pid: ok.pid, uid: ok.uid, gate: ok.gate }, { pid, uid: '101', gate: 'client_tcp' });
      assert.ok(opened.some((o) => o.conn === ok.conn), 'auth names the connection of its conn_open');
      const denied = auth.find((a) => a.result === 'denied');
      assert.equal(denied.uid, '102');
      const failed = auth.find((a) => a.result === 'error');
      assert.equal(failed.uid, HOSTILE_ESCAPED, 'the peer string is escaped, not cut into lines');
      assert.match(failed.code, /^\d+$/);
      assert.ok(failed.ex.length > 0);
      const closed = events(lines, 'conn_close').filter((l) => l.gate === 'client_tcp');
      assert.equal(closed.length, 3);
      for (const c of closed) assert.ok(c.reason.length > 0);
    });
  } finally {
    await srv.cleanup();
  }
});

// key=value pairs of one logfmt line; values quoted when they must be.
function parseLogfmt(line) {
  const out = {};
  const re = /([a-z_]+)=("((?:[^"\\]|\\.)*)"|[^ ]*)( |$)/gy;
  let m;
  let consumed = 0;
  while ((m = re.exec(line))) {
    out[m[1]] = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : m[2];
    consumed = re.lastIndex;
    if (consumed >= line.length) break;
  }
  assert.equal(consumed, line.length, `a whole logfmt line: ${line}`);
  return out;
}

test('logfmt: key=value pairs with ts and level on every line', async () => {
  const srv = await startRtmd({ args: ['--log_format=logfmt'] });
  try {
    await withLogs(srv, async () => {
      await loginsOfEachKind(srv);
      await waitFor(() => (srv.stderr.match(/event=conn_close/g) || []).length >= 4, 5000);
      const lines = srv.stderr.split('\n').filter((l) => l.length > 0).map(parseLogfmt);
      for (const l of lines) {
        assert.ok(l.ts && l.level, JSON.stringify(l));
        assert.equal(l.forged, undefined);
      }
      assert.ok(lines.some((l) => l.msg && l.msg.startsWith('rtmd ') && l.msg.endsWith(' serving')));
      const failed = lines.find((l) => l.event === 'auth' && l.result === 'error');
      assert.equal(failed.uid, HOSTILE_ESCAPED);
      assert.ok(lines.some((l) => l.event === 'auth' && l.result === 'ok' && l.uid === '101'));
    });
  } finally {
    await srv.cleanup();
  }
});

test('log_file: lines go to the file; SIGUSR1 reopens it after a rotation, connections kept', async () => {
  const dir = await makeTempDir('rtmd-logfile-');
  const file = path.join(dir, 'rtmd.log');
  const srv = await startRtmd({ args: [`--log_file=${file}`] });
  try {
    await withLogs(srv, async () => {
      const app = await appServer(srv);
      const before = await login(srv, app, 201);
      assert.match(fs.readFileSync(file, 'utf8'), /info  event=auth .*uid=201 result=ok/);
      assert.equal(fs.statSync(file).mode & 0o777, 0o640);
      fs.renameSync(file, `${file}.1`);
      srv.proc.kill('SIGUSR1');
      await waitFor(() => fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes('reopened'), 5000);
      const after = await login(srv, app, 202);
      await waitFor(() => fs.readFileSync(file, 'utf8').includes('uid=202'), 5000);
      assert.ok(!fs.readFileSync(`${file}.1`, 'utf8').includes('uid=202'), 'the rotated file gets no new lines');
      assert.ok(fs.readFileSync(`${file}.1`, 'utf8').includes('uid=201'));
      // The connections of before the rotation still answer.
      assert.ok((await app.call('getonlineusers', { uids: [I(201), I(202)] })).uids.length === 2);
      await before.client.quest('ping', {}).catch(() => assert.fail('a connection opened before SIGUSR1 was dropped'));
      for (const u of [before, after]) u.client.destroy();
      await app.close();
    });
  } finally {
    await srv.cleanup();
    await removeTempDir(dir);
  }
});

test('a bad log_format or an unwritable log_file stops rtmd before it listens', async () => {
  let r = await run(rtmdBin(), ['--log_format=yaml', '--data_dir=/nonexistent']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /log_format: 'yaml' is not a log format \(text, logfmt or json\)/);
  r = await run(rtmdBin(), ['--log_file=/nonexistent-dir/rtmd.log', '--data_dir=/nonexistent']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /log_file \/nonexistent-dir\/rtmd\.log: No such file or directory/);
  assert.equal(r.stdout, '', 'nothing listened');
});
