'use strict';
// SIGHUP reads the configuration file again, as an operator edits it: a
// setting that can change while running takes effect at once (top-level
// budgets and timeouts, the log level, a project's secret and limits, a
// project added or removed) and is logged as applied; one that takes a
// restart (the store, the retention timer) is logged with the value rtmd
// keeps running with; a file that does not load changes nothing and
// names its line. Every connection stays through all of it. Reloading
// does not depend on the store, so this file is not in the pg.* and cl.*
// suites.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const net = require('node:net');
const http = require('node:http');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode } = require('./lib/rtm');
const { startRtmd, makeTempDir, removeTempDir, waitFor } = require('./lib/rtmd');
const { sdk } = require('./lib/rtcat');
const { buildRtsToken } = require('./lib/rtstoken');

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

test('settings that take a restart are logged and keep their running value', async () => {
  await withConfigFile(config({ secret: 'first-secret-1' }), async (srv, rewrite) => {
    const app = await appServer(srv, { project: { pid: PID, secret: 'first-secret-1' } });
    const user = await login(srv, app, 601);
    rewrite(config({ secret: 'first-secret-1', retention: 30, extra: 'room_push = after_commit' }));
    const log = await reload(srv);
    assert.match(log, /warn  SIGHUP: retention_interval: 60 -> 30 needs a restart; running with 60 until then/);
    assert.match(log, /warn  SIGHUP: room_push: "before_commit" -> "after_commit" needs a restart/);
    assert.ok((await app.call('gettoken', { uid: I(602) })).token, 'the project still answers');
    await user.client.quest('ping', {}).catch(() => assert.fail('a connection was dropped by the reload'));
    user.client.destroy();
    await app.close();
  });
});

// The auth of a client with a token of a project (rejects when refused).
async function tryLogin(srv, pid, uid, token) {
  const client = await fpnn.connect({ host: '127.0.0.1', port: srv.ports.client_tcp });
  try {
    return await client.quest('auth', { pid: I(pid), uid: I(uid), token, version: 'rtmd-tests' });
  } finally {
    client.destroy();
  }
}

test('a project added by a reload is served at once; one removed is closed and refused; back, it has its data', async () => {
  await withConfigFile(config({ secret: 'first-secret-1', second: false }), async (srv, rewrite) => {
    const first = { pid: PID, secret: 'first-secret-1' };
    const other = { pid: OTHER_PID, secret: 'other-project-secret' };
    const app = await appServer(srv, { project: first });
    const user = await login(srv, app, 801);
    const early = await appServer(srv, { project: other });
    await expectCode(early.call('gettoken', { uid: I(1) }), 200002);
    await early.close().catch(() => {});

    // Added: its app server and users at once, its messages stored.
    rewrite(config({ secret: 'first-secret-1' }));
    let log = await reload(srv);
    assert.match(log, /info  SIGHUP: project 1000002: \[project\]: absent -> added, applied/);
    assert.match(log, /info  SIGHUP: project 1000002 started/);
    const otherApp = await appServer(srv, { project: other });
    const a = await login(srv, otherApp, 901);
    const b = await login(srv, otherApp, 902);
    await a.call('sendmsg', { to: I(902), mid: I(11), mtype: 30, msg: 'in the new project', attrs: '' });
    await b.waitPush((p) => p.method === 'pushmsg' && p.payload.mid.toString() === '11');
    const metrics = await (await fetch(`http://127.0.0.1:${srv.ports.http}/metrics`)).text();
    assert.match(metrics, /^rtmd_projects 2$/m);

    // Removed: its users are told and closed, its app server and its
    // tokens refused; the other project and its users go on.
    await app.call('sendmsg', { from: I(802), to: I(801), mid: I(12), mtype: 30, msg: 'kept', attrs: '' });
    const oldToken = await app.token(803);
    const kicked = user.client.waitQuest('kickout', 3000);
    rewrite(config({ secret: 'first-secret-1' }).replace(`pid = ${PID}`, 'pid = 1000003'));
    log = await reload(srv);
    assert.match(log, /info  SIGHUP: project 1000001: \[project\]: present -> removed, applied/);
    assert.match(log, /users: project 1000001 removed: 1 sessions closed/);
    assert.match(log, /SIGHUP: project 1000001 removed; its data stays in the store/);
    await kicked;
    assert.equal(await user.client.waitClose(3000), true);
    await expectCode(app.call('gettoken', { uid: I(804) }), 200002);
    await expectCode(tryLogin(srv, PID, 803, oldToken), 200001); // a token of the removed project
    await a.call('sendmsg', { to: I(902), mid: I(13), mtype: 30, msg: 'still served', attrs: '' });
    await b.waitPush((p) => p.method === 'pushmsg' && p.payload.mid.toString() === '13');

    // Back again: its stored messages are there.
    rewrite(config({ secret: 'first-secret-1' }));
    log = await reload(srv);
    assert.match(log, /SIGHUP: project 1000001 started/);
    const back = await appServer(srv, { project: first });
    const history = await back.call('getp2pmsg', { uid: I(801), ouid: I(802), desc: true, num: 10 });
    assert.ok(history.msgs.some((m) => m.includes('kept')), 'the message stored before the removal');
    const again = await login(srv, back, 801);
    for (const c of [again, a, b]) await c.close();
    for (const c of [app, otherApp, back]) await c.close().catch(() => {});
  });
});

test('a project a reload cannot start is not added; the rest of the reload applies', async () => {
  await withConfigFile(config({ secret: 'first-secret-1', second: false }), async (srv, rewrite, file) => {
    const app = await appServer(srv, { project: { pid: PID, secret: 'first-secret-1' } });
    rewrite([config({ secret: 'first-secret-1', maxMsg: 10, second: false }),
      '[project]', 'pid = 1000004', 'secret = "fourth-secret"', 'sensitive_words = /nonexistent/words.txt', ''].join('\n'));
    const log = await reload(srv);
    assert.match(log, /error SIGHUP: project 1000004 not added: project 1000004: sensitive_words: .*\/nonexistent\/words\.txt/);
    assert.match(log, /SIGHUP: project 1000001: max_msg_bytes: 20480 -> 10, applied/);
    const fourth = await appServer(srv, { project: { pid: 1000004, secret: 'fourth-secret' } });
    await expectCode(fourth.call('gettoken', { uid: I(1) }), 200002);
    await fourth.close().catch(() => {});
    // The file fixed, the next reload adds it.
    const dir = path.dirname(file);
    fs.writeFileSync(path.join(dir, 'words.txt'), 'alpha\n');
    rewrite([config({ secret: 'first-secret-1', maxMsg: 10, second: false }),
      '[project]', 'pid = 1000004', 'secret = "fourth-secret"', `sensitive_words = ${path.join(dir, 'words.txt')}`, ''].join('\n'));
    assert.match(await reload(srv), /SIGHUP: project 1000004 started/);
    const fourth2 = await appServer(srv, { project: { pid: 1000004, secret: 'fourth-secret' } });
    assert.deepEqual(await fourth2.call('tcheck', { text: 'alpha beta' }), { result: 2, text: '***** beta', wlist: ['alpha'] });
    await fourth2.close();
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

// A project's translation server: a LibreTranslate-API stand-in that
// answers every text with "[target] text".
async function translationServer() {
  const backend = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ translatedText: `[${body.target}] ${body.q}` }));
    });
  });
  const backendPort = await new Promise((r) => backend.listen(0, '127.0.0.1', () => r(backend.address().port)));
  return { backend, backendPort };
}

test('an added project gets what modules keep per project: RealTimeCat keys, its translation server, checked settings', async () => {
  const { backend, backendPort } = await translationServer();
  const FIFTH = ['[project]', 'pid = 1000005', 'secret = "fifth-secret"', 'rtcat_apikey = "fifth-rtcat-key"',
    'rtcat_secret = "fifth-rtcat-secret"'];
  const TRANSLATE = `translate_url = "http://127.0.0.1:${backendPort}"`;
  const base = config({ secret: 'first-secret-1', second: false });
  try {
    await withConfigFile(base, async (srv, rewrite) => {
      const cat = sdk(srv.ports.http, 'fifth-rtcat-key', 'fifth-rtcat-secret');
      assert.equal((await cat.createSession({ label: 'before' })).status, 401, 'no project has that key yet');

      // Each refusal names what a reload cannot start.
      for (const [line, why] of [['demo = 1\napp_id = "aaaaaaaaaaaaaaaaaaaaaaaa"\napp_key = "fifth-app-key"', /demo = 1 takes a restart/],
        ['rtcat_demo = 1', /rtcat_demo = 1 takes a restart/],
        ['p2server_allow = "ftp://example.com/"', /p2server_allow: /],
        ['translate_url = "not a url"', /translate_url: /]]) {
        rewrite([base, ...FIFTH, line, ''].join('\n'));
        const log = await reload(srv);
        assert.match(log, /error SIGHUP: project 1000005 not added: /);
        assert.match(log, why);
      }
      assert.equal((await cat.createSession({ label: 'refused' })).status, 401);

      rewrite([base, ...FIFTH, TRANSLATE, ''].join('\n'));
      assert.match(await reload(srv), /SIGHUP: project 1000005 started/);
      const created = await cat.createSession({ label: 'after' });
      assert.equal(created.status, 201, created.body);
      const fifth = await appServer(srv, { project: { pid: 1000005, secret: 'fifth-secret' } });
      const t = await fifth.call('translate', { text: 'hello', dst: 'fr', src: 'en' });
      assert.equal(t.targetText, '[fr] hello');
      await fifth.close();

      // Removed, its key names no project any more.
      rewrite(base);
      await reload(srv);
      assert.equal((await cat.createSession({ label: 'removed' })).status, 401);
    });
  } finally {
    await new Promise((r) => backend.close(r));
  }
});

test('a running project\'s keys and URLs, and the admin token, change on a reload', async () => {
  const { backend, backendPort } = await translationServer();
  const APP_ID = 'ReloadRtsApp0123456789ab';
  const project = ({ rtcat, appKey, translate = '' }) => [
    'admin_token = "first-admin-token-0123"', '[project]', `pid = ${PID}`, 'secret = "first-secret-1"',
    `rtcat_apikey = "${rtcat}-key"`, `rtcat_secret = "${rtcat}-secret"`, `app_id = "${APP_ID}"`, `app_key = "${appKey}"`,
    translate, ''].join('\n');
  const rts = (key, user) => {
    const now = Math.floor(Date.now() / 1000);
    return buildRtsToken({ appId: APP_ID, key, user, issued: now, expire: now + 600 });
  };
  const rtsAuth = async (srv, key, user) => {
    const c = await fpnn.connect({ host: '127.0.0.1', port: srv.ports.client_tcp });
    try {
      return await c.quest('auth', { appid: APP_ID, uid: user, token: rts(key, user), version: 'rtmd-tests' });
    } finally {
      c.destroy();
    }
  };
  const stats = (srv, token) => fetch(`http://127.0.0.1:${srv.ports.http}/admin/api/stats`,
    { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
  try {
    await withConfigFile(project({ rtcat: 'old', appKey: 'old-app-key' }), async (srv, rewrite) => {
      const app = await appServer(srv, { project: { pid: PID, secret: 'first-secret-1' } });
      assert.equal((await sdk(srv.ports.http, 'old-key', 'old-secret').createSession({ label: 'kept' })).status, 201);
      assert.deepEqual(await rtsAuth(srv, 'old-app-key', 'rts.a'), { ok: true });
      await expectCode(app.call('translate', { text: 'hello', dst: 'fr', src: 'en' }), 200060);
      assert.equal(await stats(srv, 'first-admin-token-0123'), 200);

      rewrite(project({ rtcat: 'new', appKey: 'new-app-key', translate: `translate_url = "http://127.0.0.1:${backendPort}"` })
        .replace('first-admin-token-0123', 'second-admin-token-456'));
      const log = await reload(srv);
      for (const name of ['rtcat_apikey', 'rtcat_secret', 'app_key', 'admin_token']) {
        assert.match(log, new RegExp(`SIGHUP: (project 1000001: )?${name}: \\(secret\\) -> \\(secret\\), applied`));
      }
      assert.match(log, /SIGHUP: project 1000001: translate_url: "" -> "http:\/\/127\.0\.0\.1:\d+", applied/);
      assert.match(log, /translate: project 1000001: backend http:\/\/127\.0\.0\.1:\d+\/translate/);
      assert.ok(!/old-secret|new-secret|old-app-key|new-app-key|admin-token/.test(srv.stderr), 'no key logged');

      assert.equal((await sdk(srv.ports.http, 'old-key', 'old-secret').createSession()).status, 401);
      const sessions = await sdk(srv.ports.http, 'new-key', 'new-secret').sessions();
      assert.equal(sessions.status, 200, sessions.body);
      assert.ok(sessions.json.some((x) => x.label === 'kept'), 'the project\'s sessions, under its new key');
      assert.deepEqual(await rtsAuth(srv, 'old-app-key', 'rts.b'), { ok: false, reason: 'invalid' });
      assert.deepEqual(await rtsAuth(srv, 'new-app-key', 'rts.c'), { ok: true });
      assert.equal((await app.call('translate', { text: 'hello', dst: 'fr', src: 'en' })).targetText, '[fr] hello');
      assert.equal(await stats(srv, 'first-admin-token-0123'), 401);
      assert.equal(await stats(srv, 'second-admin-token-456'), 200);

      // A URL that does not check keeps the one before (and the reload goes on).
      rewrite(project({ rtcat: 'new', appKey: 'new-app-key', translate: 'translate_url = "not a url"\np2server_allow = "ftp://x/"' })
        .replace('first-admin-token-0123', 'second-admin-token-456'));
      const kept = await reload(srv);
      assert.match(kept, /error SIGHUP: module translate kept what it had: project 1000001: translate_url: /);
      assert.match(kept, /error SIGHUP: module p2server kept what it had: project 1000001: p2server_allow: /);
      assert.equal((await app.call('translate', { text: 'again', dst: 'de', src: 'en' })).targetText, '[de] again');

      // Keys taken away: the API and the admin page are off.
      rewrite(['[project]', `pid = ${PID}`, 'secret = "first-secret-1"', ''].join('\n'));
      const off = await reload(srv);
      assert.match(off, /rtcat: project 1000001 no longer serves the RealTimeCat API/);
      assert.equal((await sdk(srv.ports.http, 'new-key', 'new-secret').sessions()).status, 401);
      assert.equal(await stats(srv, 'second-admin-token-456'), 404);
      await expectCode(app.call('translate', { text: 'hello', dst: 'fr', src: 'en' }), 200060);
      await app.close();
    });
  } finally {
    await new Promise((r) => backend.close(r));
  }
});
