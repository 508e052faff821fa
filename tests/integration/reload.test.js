'use strict';
// SIGHUP reads the configuration file again, as an operator edits it: a
// setting that can change while running takes effect at once (top-level
// budgets and timeouts, the log level, a project's secret and limits) and
// is logged as applied; one that takes a restart (the store, the
// retention timer, a project added or removed) is logged with the value
// rtmd keeps running with; a file that does not load changes nothing and
// names its line. Every connection stays through all of it. Reloading
// does not depend on the store, so this file is not in the pg.* and cl.*
// suites.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const net = require('node:net');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode } = require('./lib/rtm');
const { startRtmd, makeTempDir, removeTempDir, waitFor } = require('./lib/rtmd');

const I = fpnn.int64;
const PID = 1000001;
const OTHER_PID = 1000002;

function config({ secret, maxMsg = 20480, logLevel = 'info', perAddress = 1000, retention = 60, extra = '', second = true }) {
  return [
    `log_level = ${logLevel}`,
    `max_connections_per_address = ${perAddress}`,
    `retention_interval = ${retention}`,
    extra,
    '[project]',
    `pid = ${PID}`,
    `secret = "${secret}"`,
    `max_msg_bytes = ${maxMsg}`,
    ...(second ? ['[project]', `pid = ${OTHER_PID}`, 'secret = "other-project-secret"'] : []),
    '',
  ].join('\n');
}

// Runs fn(srv, rewrite) against an rtmd started on a configuration file
// of text; rewrite(text) replaces the file's content (then SIGHUP it).
async function withConfigFile(text, fn) {
  const dir = await makeTempDir('rtmd-reload-');
  const file = path.join(dir, 'rtmd.conf');
  fs.writeFileSync(file, text);
  const srv = await startRtmd({ config: file });
  try {
    await fn(srv, (next) => fs.writeFileSync(file, next), file);
  } finally {
    await srv.cleanup();
    await removeTempDir(dir);
  }
}

// Sends SIGHUP and waits for the reload's last line (applied or refused).
async function reload(srv) {
  const before = srv.stderr.length;
  srv.proc.kill('SIGHUP');
  const done = () => /SIGHUP: (configuration read again|configuration refused)/.test(srv.stderr.slice(before));
  assert.ok(await waitFor(done, 5000), 'the reload finished');
  return srv.stderr.slice(before);
}

// Whether a new client-gate connection stays open for a moment.
function connectionKept(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      s.destroy();
      resolve(true);
    }, 300);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(false);
    });
    s.on('error', () => {});
  });
}

test('live settings take effect at once, are logged, and every connection stays', async () => {
  await withConfigFile(config({ secret: 'first-secret-1' }), async (srv, rewrite, file) => {
    const project = { pid: PID, secret: 'first-secret-1' };
    const app = await appServer(srv, { project });
    const user = await login(srv, app, 501);
    const debugLine = /debug .*unknown method/;

    rewrite(config({ secret: 'second-secret-2', maxMsg: 10, logLevel: 'debug', perAddress: 2 }));
    const log = await reload(srv);
    assert.match(log, /SIGHUP: project 1000001: secret: \(secret\) -> \(secret\), applied/);
    assert.match(log, /SIGHUP: project 1000001: max_msg_bytes: 20480 -> 10, applied/);
    assert.match(log, /SIGHUP: log_level: info -> debug, applied/);
    assert.match(log, /SIGHUP: max_connections_per_address: 1000 -> 2, applied/);
    assert.ok(!srv.stderr.includes('second-secret-2') && !srv.stderr.includes('first-secret-1'), 'no secret logged');

    // The secret: requests signed with the old one are refused, the new one works.
    await expectCode(app.call('gettoken', { uid: I(502) }), 200002);
    const app2 = await appServer(srv, { project: { pid: PID, secret: 'second-secret-2' } });
    assert.ok((await app2.call('gettoken', { uid: I(502) })).token);
    // The project's limit, on the session logged in before the reload.
    await expectCode(user.call('sendmsg', { to: I(502), mid: I(1), mtype: 30, msg: 'longer than ten', attrs: '' }), 200030);
    await user.call('sendmsg', { to: I(502), mid: I(2), mtype: 30, msg: 'short', attrs: '' });
    // The user's connection stayed: it still gets pushes.
    await app2.call('sendmsg', { from: I(502), to: I(501), mid: I(3), mtype: 30, msg: 'still here', attrs: '' });
    await user.client.waitPush((p) => p.method === 'pushmsg' && p.payload.mid.toString() === '3');
    // The log level: a debug line now.
    await expectCode(user.call('no-such-method', {}), 20004).catch(() => {});
    assert.ok(await waitFor(() => debugLine.test(srv.stderr), 3000), 'debug lines are written');
    // The budget: one client connection open (the user's); a second is
    // let in, a third from the same address is refused.
    assert.equal(await connectionKept(srv.ports.client_tcp), true);
    const second = net.connect(srv.ports.client_tcp, '127.0.0.1');
    await new Promise((r) => second.on('connect', r));
    assert.equal(await connectionKept(srv.ports.client_tcp), false, 'over the new per-address budget');
    second.destroy();
    user.client.destroy();
    await app.close();
    await app2.close();
  });
});

test('settings that take a restart, and projects added or removed, are logged and keep their running value', async () => {
  await withConfigFile(config({ secret: 'first-secret-1', second: false }), async (srv, rewrite, file) => {
    const app = await appServer(srv, { project: { pid: PID, secret: 'first-secret-1' } });
    const user = await login(srv, app, 601);
    rewrite(config({ secret: 'first-secret-1', retention: 30, extra: 'room_push = after_commit', second: true }));
    const log = await reload(srv);
    assert.match(log, /warn  SIGHUP: retention_interval: 60 -> 30 needs a restart; running with 60 until then/);
    assert.match(log, /warn  SIGHUP: room_push: "before_commit" -> "after_commit" needs a restart/);
    assert.match(log, /warn  SIGHUP: project 1000002: \[project\]: absent -> added needs a restart/);
    // The project that is not running yet is not served.
    const other = await appServer(srv, { project: { pid: OTHER_PID, secret: 'other-project-secret' } });
    await assert.rejects(other.call('gettoken', { uid: I(1) }));
    await other.close().catch(() => {});
    // Removing the running project is also a restart: it keeps serving.
    rewrite(config({ secret: 'first-secret-1', second: false }).replace(`pid = ${PID}`, `pid = ${OTHER_PID}`));
    const removed = await reload(srv);
    assert.match(removed, /SIGHUP: project 1000001: \[project\]: present -> removed needs a restart/);
    assert.ok((await app.call('gettoken', { uid: I(602) })).token, 'the running project still answers');
    await user.client.quest('ping', {}).catch(() => assert.fail('a connection was dropped by the reload'));
    user.client.destroy();
    await app.close();
  });
});

test('a file that does not load changes nothing and names its line', async () => {
  await withConfigFile(config({ secret: 'first-secret-1' }), async (srv, rewrite, file) => {
    const project = { pid: PID, secret: 'first-secret-1' };
    const app = await appServer(srv, { project });
    rewrite(`${config({ secret: 'second-secret-2', logLevel: 'debug' })}max_connections = many\n`);
    const log = await reload(srv);
    assert.match(log, new RegExp(`error SIGHUP: configuration refused, nothing changed: ${file.replace(/[.]/g, '\\.')}:\\d+: max_connections`));
    assert.doesNotMatch(log, /applied/);
    // Neither the secret nor the log level changed.
    assert.ok((await app.call('gettoken', { uid: I(701) })).token);
    const lines = srv.stderr.length;
    await app.call('no-such-method', {}).catch(() => {});
    await new Promise((r) => setTimeout(r, 200));
    assert.doesNotMatch(srv.stderr.slice(lines), / debug /, 'still at info');
    // The same file fixed is taken.
    rewrite(config({ secret: 'first-secret-1', logLevel: 'debug' }));
    assert.match(await reload(srv), /SIGHUP: log_level: info -> debug, applied/);
    await app.close();
  });
});
