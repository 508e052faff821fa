'use strict';
// rtmctl session / rtmctl rtcat-token against a real rtmd's RealTimeCat
// REST API: every action of both commands and the JSON line each prints
// (checked against what the API itself answers), paging and the
// permanent/nonpermanent lists, error answers (exit 2, the answer on
// stderr), the key and secret from RTCAT_APIKEY / RTCAT_SECRET, the
// address forms, usage errors (exit 1, as rtmctl's other commands); and,
// against a local stand-in server, the exact requests rtmctl sends (the
// Node SDK's form bodies and headers), the answer size bound and the
// timeout.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { sdk } = require('./lib/rtcat');
const { writeProjectsConfig } = require('./lib/rtm');
const { makeTempDir, run, rtmctlBin, sanitizerReports, startRtmd, withLogs } = require('./lib/rtmd');

const KEY = 'ctl-key-1';
const SECRET = 'ctl-secret-1';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
// No key or secret from the test runner's environment.
const NO_ENV = { RTCAT_APIKEY: '', RTCAT_SECRET: '' };

const rtmctl = (args, opts = {}) => run(rtmctlBin(), args, { timeoutMs: 15000, ...opts, env: { ...NO_ENV, ...opts.env } });
const show = (r) => `exit=${r.code} signal=${r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

// One JSON line on stdout, nothing on stderr, exit 0: the parsed line.
function okLine(r) {
  assert.equal(r.code, 0, show(r));
  assert.equal(r.stderr, '', show(r));
  assert.match(r.stdout, /^[^\n]+\n$/, `one line\n${show(r)}`);
  return JSON.parse(r.stdout);
}

// An error answer: exit 2, nothing on stdout, the API's error object on stderr.
function errorAnswer(r, code) {
  assert.equal(r.code, 2, show(r));
  assert.equal(r.stdout, '', show(r));
  const e = JSON.parse(r.stderr);
  assert.equal(e.error, code, show(r));
  assert.equal(typeof e.description, 'string');
  return e;
}

describe('rtmctl session and rtcat-token (RealTimeCat REST)', () => {
  let srv, cat, addr;
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(() => [srv], fn));
  const auth = ['--apikey', KEY, '--secret', SECRET];
  const session = (...args) => rtmctl(['session', addr, ...args, ...auth]);
  const token = (...args) => rtmctl(['rtcat-token', addr, ...args, ...auth]);

  before(async () => {
    const conf = writeProjectsConfig(await makeTempDir(), [
      { pid: 71, secret: 'rtmctl-rtcat-71', rtcat_apikey: KEY, rtcat_secret: SECRET },
      { pid: 72, secret: 'rtmctl-rtcat-72', rtcat_apikey: 'ctl-key-2', rtcat_secret: 'ctl-secret-2' },
    ]);
    srv = await startRtmd({ config: conf });
    addr = `127.0.0.1:${srv.ports.http}`;
    cat = sdk(srv.ports.http, KEY, SECRET);
  });

  after(async () => {
    const code = await srv.stop('SIGTERM');
    assert.equal(code, 0, srv.diagnostics());
    assert.deepEqual(sanitizerReports(), []);
  });

  it('session create: the defaults, and every field', async () => {
    const s = okLine(await session('create'));
    assert.match(s.uuid, UUID);
    assert.deepEqual(
      { label: s.label, data: s.data, type: s.type, permanent: s.permanent, live_days: s.live_days },
      { label: null, data: null, type: 'p2p', permanent: false, live_days: 30 });
    assert.deepEqual((await cat.session(s.uuid)).json, s, 'the line is the object the API stored');
    const f = okLine(await session('create', '--label', 'room one', '--data', 'x=1&y=2 ü+%', '--live-days', '7',
      '--type', 'rel', '--permanent'));
    assert.deepEqual(
      { label: f.label, data: f.data, type: f.type, permanent: f.permanent, live_days: f.live_days, expire_in: f.expire_in },
      { label: 'room one', data: 'x=1&y=2 ü+%', type: 'rel', permanent: true, live_days: 7, expire_in: null });
    assert.deepEqual((await cat.session(f.uuid)).json, f);
    // Options may come anywhere, as for the other commands.
    const g = okLine(await rtmctl(['session', '--label', 'first', addr, 'create', ...auth]));
    assert.equal(g.label, 'first');
  });

  it('session list: all, paged, permanent and nonpermanent, as the API answers them', async () => {
    for (let i = 0; i < 3; i++) okLine(await session('create', '--label', `list-${i}`, '--permanent'));
    const all = (await cat.sessions({ page_size: 100 })).json;
    assert.ok(all.length >= 5, `${all.length} sessions`);
    assert.deepEqual(okLine(await session('list')), all.slice(0, 20));
    assert.deepEqual(okLine(await session('list', '--page-size', '2')), all.slice(0, 2));
    assert.deepEqual(okLine(await session('list', '--page', '2', '--page-size', '2')), all.slice(2, 4));
    assert.deepEqual(okLine(await session('list', '--page', '1000')), []);
    assert.deepEqual(okLine(await session('list', '--permanent')), all.filter((x) => x.permanent));
    assert.deepEqual(okLine(await session('list', '--nonpermanent')), all.filter((x) => !x.permanent));
    const perm = all.filter((x) => x.permanent);
    assert.deepEqual(okLine(await session('list', '--permanent', '--page', '2', '--page-size', '1')), [perm[1]]);
    // Out of the API's range: its error.
    errorAnswer(await session('list', '--page-size', '101'), 'invalid_parameter');
  });

  it('session get, update, delete', async () => {
    const s = okLine(await session('create', '--label', 'before', '--data', 'd'));
    assert.deepEqual(okLine(await session('get', s.uuid)), s);
    let u = okLine(await session('update', s.uuid, '--label', 'after', '--live-days', '3'));
    assert.deepEqual({ ...u, label: 'before', live_days: 30, expire_in: s.expire_in }, s, 'only label and live_days changed');
    assert.equal(u.label, 'after');
    assert.equal(u.live_days, 3);
    u = okLine(await session('update', s.uuid, '--permanent', 'true'));
    assert.equal(u.permanent, true);
    assert.equal(u.expire_in, null);
    u = okLine(await session('update', s.uuid, '--permanent=false', '--data', ''));
    assert.equal(u.permanent, false);
    assert.equal(u.data, null, 'an empty --data is null');
    u = okLine(await session('update', s.uuid, '--permanent'));
    assert.equal(u.permanent, true, '--permanent alone is true');
    assert.deepEqual((await cat.session(s.uuid)).json, u);

    const r = await session('delete', s.uuid);
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout, '', 'delete prints nothing (204)');
    assert.equal(r.stderr, '');
    assert.equal((await cat.session(s.uuid)).status, 404);
    errorAnswer(await session('get', s.uuid), 'not_found');
    errorAnswer(await session('delete', s.uuid), 'not_found');
    errorAnswer(await session('update', s.uuid, '--label', 'x'), 'not_found');
    errorAnswer(await session('create', '--label', 'l'.repeat(256)), 'invalid_parameter');
  });

  it('rtcat-token create: one, many, sub and permanent', async () => {
    const s = okLine(await session('create', '--label', 'tokens'));
    const t = okLine(await token('create', s.uuid));
    assert.match(t.uuid, UUID);
    assert.deepEqual(
      { session_id: t.session_id, label: t.label, data: t.data, type: t.type, permanent: t.permanent, live_days: t.live_days },
      { session_id: s.uuid, label: null, data: null, type: 'pub', permanent: false, live_days: 15 });
    assert.deepEqual((await cat.token(t.uuid)).json, t);
    const many = okLine(await token('create', s.uuid, '--number', '3', '--type', 'sub', '--label', 'viewer',
      '--data', 'seat=1', '--permanent'));
    assert.ok(Array.isArray(many), 'an array when --number is over 1');
    assert.equal(many.length, 3);
    for (const m of many) {
      assert.deepEqual(
        { session_id: m.session_id, label: m.label, data: m.data, type: m.type, permanent: m.permanent, expire_in: m.expire_in },
        { session_id: s.uuid, label: 'viewer', data: 'seat=1', type: 'sub', permanent: true, expire_in: null });
    }
    const one = okLine(await token('create', s.uuid, '--number', '1', '--live-days', '2'));
    assert.ok(!Array.isArray(one));
    assert.equal(one.live_days, 2);
    errorAnswer(await token('create', s.uuid, '--number', '101'), 'invalid_parameter');
    errorAnswer(await token('create', '00000000-0000-4000-8000-000000000000'), 'not_found');
  });

  it('rtcat-token list, get, update, delete; a session delete takes its tokens', async () => {
    const s = okLine(await session('create'));
    const a = okLine(await token('create', s.uuid, '--label', 'a'));
    const b = okLine(await token('create', s.uuid, '--label', 'b', '--permanent'));
    const c = okLine(await token('create', s.uuid, '--label', 'c'));
    assert.deepEqual(okLine(await token('list', s.uuid)), [a, b, c]);
    assert.deepEqual(okLine(await token('list', s.uuid, '--page', '2', '--page-size', '2')), [c]);
    assert.deepEqual(okLine(await token('list', s.uuid, '--page-size', '1')), [a]);
    assert.deepEqual(okLine(await token('list', s.uuid, '--permanent')), [b]);
    assert.deepEqual(okLine(await token('list', s.uuid, '--nonpermanent')), [a, c]);
    assert.deepEqual(okLine(await token('get', b.uuid)), b);
    const u = okLine(await token('update', a.uuid, '--label', 'a2', '--data', 'more', '--permanent', 'true'));
    assert.deepEqual({ label: u.label, data: u.data, permanent: u.permanent, type: u.type, uuid: u.uuid },
      { label: 'a2', data: 'more', permanent: true, type: 'pub', uuid: a.uuid });
    assert.deepEqual((await cat.token(a.uuid)).json, u);
    let r = await token('delete', c.uuid);
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout, '');
    errorAnswer(await token('get', c.uuid), 'not_found');
    assert.deepEqual(okLine(await token('list', s.uuid)).map((x) => x.uuid), [a.uuid, b.uuid]);
    r = await session('delete', s.uuid);
    assert.equal(r.code, 0, show(r));
    errorAnswer(await token('get', a.uuid), 'not_found');
    errorAnswer(await token('list', s.uuid), 'not_found');
  });

  it('a wrong secret or key: the 401 answer on stderr, exit 2', async () => {
    let r = await rtmctl(['session', addr, 'list', '--apikey', KEY, '--secret', 'wrong']);
    errorAnswer(r, 'unauthorized');
    r = await rtmctl(['rtcat-token', addr, 'get', '00000000-0000-4000-8000-000000000000', '--apikey', 'nope',
      '--secret', SECRET]);
    errorAnswer(r, 'unauthorized');
    // Another project's key and secret do not reach this project's sessions.
    const s = okLine(await session('create'));
    r = await rtmctl(['session', addr, 'get', s.uuid, '--apikey', 'ctl-key-2', '--secret', 'ctl-secret-2']);
    errorAnswer(r, 'not_found');
  });

  it('RTCAT_APIKEY and RTCAT_SECRET give the key and secret; missing ones are a usage error', async () => {
    const env = { RTCAT_APIKEY: KEY, RTCAT_SECRET: SECRET };
    const s = okLine(await rtmctl(['session', addr, 'create', '--label', 'from env'], { env }));
    assert.equal(s.label, 'from env');
    assert.deepEqual(okLine(await rtmctl(['session', addr, 'get', s.uuid], { env })), s);
    // The options win over the environment.
    let r = await rtmctl(['session', addr, 'get', s.uuid, '--secret', 'wrong'], { env });
    errorAnswer(r, 'unauthorized');
    r = await rtmctl(['session', addr, 'get', s.uuid, '--secret', SECRET], { env: { RTCAT_APIKEY: KEY } });
    assert.deepEqual(okLine(r), s);
    r = await rtmctl(['session', addr, 'get', s.uuid], { env: { RTCAT_SECRET: SECRET } });
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /--apikey is required \(or set RTCAT_APIKEY\)/);
    r = await rtmctl(['rtcat-token', addr, 'get', s.uuid], { env: { RTCAT_APIKEY: KEY } });
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /--secret is required \(or set RTCAT_SECRET\)/);
    // RTM_SECRET, the project secret of the other commands, is not used here.
    r = await rtmctl(['session', addr, 'list', '--apikey', KEY], { env: { RTM_SECRET: SECRET } });
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /RTCAT_SECRET/);
  });

  it('ADDR as an http:// URL, with or without /v0.4', async () => {
    const base = `http://127.0.0.1:${srv.ports.http}`;
    for (const a of [base, `${base}/`, `${base}/v0.4`, `${base}/v0.4/`]) {
      const s = okLine(await rtmctl(['session', a, 'create', '--label', a, ...auth]));
      assert.equal(s.label, a);
    }
  });

  it('usage errors exit 1 with a message, before any request', async () => {
    const id = '00000000-0000-4000-8000-000000000000';
    const cases = [
      [['session', addr], /usage: rtmctl session ADDR create/],
      [['session', addr, 'rename'], /unknown session action 'rename'/],
      [['rtcat-token', addr, 'drop', id], /unknown rtcat-token action 'drop'/],
      [['session', addr, 'create', 'extra'], /usage: rtmctl session/],
      [['session', addr, 'get'], /usage: rtmctl session/],
      [['rtcat-token', addr, 'create'], /usage: rtmctl rtcat-token/],
      [['rtcat-token', addr, 'list'], /usage: rtmctl rtcat-token/],
      [['session', addr, 'get', '../tokens'], /bad session id '\.\.\/tokens'/],
      [['rtcat-token', addr, 'get', 'a b'], /bad token id 'a b'/],
      [['session', addr, 'create', '--type', 'pub'], /--type must be p2p or rel, not 'pub'/],
      [['rtcat-token', addr, 'create', id, '--type', 'rel'], /--type must be pub or sub, not 'rel'/],
      [['session', addr, 'create', '--live-days', '0'], /--live-days must be positive/],
      [['session', addr, 'create', '--live-days', 'ten'], /--live-days needs an integer, not 'ten'/],
      [['rtcat-token', addr, 'create', id, '--number', '0'], /--number must be positive/],
      [['session', addr, 'list', '--page', '0'], /--page must be positive/],
      [['session', addr, 'list', '--page-size', '-1'], /--page-size must be positive/],
      [['session', addr, 'create', '--number', '2'], /--number is not an option of 'session create'/],
      [['session', addr, 'get', id, '--label', 'x'], /--label is not an option of 'session get'/],
      [['session', addr, 'list', '--pid', '5'], /--pid is not an option of 'session list'/],
      [['session', addr, 'update', id], /session update needs at least one of --label/],
      [['session', addr, 'update', id, '--permanent=maybe'], /--permanent takes true or false, not 'maybe'/],
      [['session', addr, 'list', '--permanent', 'false'], /list takes --permanent or --nonpermanent without a value/],
      [['session', addr, 'list', '--permanent', '--nonpermanent'], /exclude each other/],
      [['session', addr, 'create', '--nonpermanent'], /--nonpermanent is not an option of 'session create'/],
      [['session', 'nowhere', 'list'], /bad address 'nowhere'/],
      [['session', 'ftp://127.0.0.1/', 'list'], /bad address/],
      [['session', addr, 'list', '--page'], /--page needs a value/],
    ];
    for (const [args, re] of cases) {
      const r = await rtmctl([...auth, ...args]); // the last option may lack its value
      assert.equal(r.code, 1, `${args.join(' ')}\n${show(r)}`);
      assert.match(r.stderr, re, `${args.join(' ')}\n${show(r)}`);
      assert.equal(r.stdout, '');
    }
    // The API key cannot smuggle a header in.
    const r = await rtmctl(['session', addr, 'list', '--apikey', 'k\r\nX-Other: 1', '--secret', SECRET]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /control characters/);
  });

  it('no server at ADDR: exit 1 with the reason', async () => {
    const probe = http.createServer();
    await new Promise((res) => probe.listen(0, '127.0.0.1', res));
    const port = probe.address().port;
    await new Promise((res) => probe.close(res));
    const r = await rtmctl(['session', `127.0.0.1:${port}`, 'list', ...auth]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /^rtmctl: GET http:\/\/127\.0\.0\.1:\d+\/v0\.4\/sessions: .*(refused|connect)/i, show(r));
    assert.equal(r.stdout, '');
  });
});

describe('rtmctl session and rtcat-token: the requests sent, answer bounds', () => {
  let server, port;
  const seen = [];
  let reply = (req, res) => res.end();
  const auth = ['--apikey', 'k&y', '--secret', 's e/c'];

  before(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, headers: req.headers, body });
        reply(req, res);
      });
    });
    await new Promise((res) => server.listen(0, '127.0.0.1', res));
    port = server.address().port;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((res) => server.close(res));
  });

  const answer = (status, json) => (req, res) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(json === undefined ? '' : JSON.stringify(json));
  };
  const send = async (args, opts) => {
    seen.length = 0;
    const r = await rtmctl(args, opts);
    return { r, req: seen[0] };
  };

  test('methods, paths, headers and the Node SDK form bodies', { timeout: 60000 }, async () => {
    const id = '0a1b2c3d-0000-4000-8000-00000000abcd';
    reply = answer(201, { uuid: id });
    const a = `127.0.0.1:${port}`;
    const cases = [
      [['session', a, 'create'], 'POST', '/v0.4/sessions', 'type=p2p&permanent=false'],
      [['session', a, 'create', '--label', 'a b&c=d/é', '--data', '', '--live-days', '9', '--type', 'rel', '--permanent'],
        'POST', '/v0.4/sessions', 'label=a%20b%26c%3Dd%2F%C3%A9&data=&live_days=9&type=rel&permanent=true'],
      [['session', a, 'list'], 'GET', '/v0.4/sessions', ''],
      [['session', a, 'list', '--page', '3'], 'GET', '/v0.4/sessions?page=3', ''],
      [['session', a, 'list', '--page-size', '7', '--nonpermanent'], 'GET', '/v0.4/sessions/nonpermanent?page_size=7', ''],
      [['session', a, 'list', '--permanent', '--page', '2', '--page-size', '5'], 'GET',
        '/v0.4/sessions/permanent?page=2&page_size=5', ''],
      [['session', a, 'get', id], 'GET', `/v0.4/sessions/${id}`, ''],
      [['session', a, 'update', id, '--label', 'x', '--permanent', 'false', '--live-days', '4'], 'PATCH',
        `/v0.4/sessions/${id}`, `session_id=${id}&label=x&permanent=false&live_days=4`],
      [['session', a, 'delete', id], 'DELETE', `/v0.4/sessions/${id}`, ''],
      [['rtcat-token', a, 'create', id], 'POST', `/v0.4/sessions/${id}/tokens`,
        `session_id=${id}&type=pub&permanent=false&number=1`],
      [['rtcat-token', a, 'create', id, '--number', '4', '--type', 'sub', '--data', 'z', '--permanent=1'], 'POST',
        `/v0.4/sessions/${id}/tokens`, `session_id=${id}&data=z&type=sub&permanent=true&number=4`],
      [['rtcat-token', a, 'list', id, '--permanent'], 'GET', `/v0.4/sessions/${id}/tokens/permanent`, ''],
      [['rtcat-token', a, 'list', id, '--page', '2'], 'GET', `/v0.4/sessions/${id}/tokens?page=2`, ''],
      [['rtcat-token', a, 'get', id], 'GET', `/v0.4/tokens/${id}`, ''],
      [['rtcat-token', a, 'update', id, '--data', 'q'], 'PATCH', `/v0.4/tokens/${id}`, `token_id=${id}&data=q`],
      [['rtcat-token', a, 'delete', id], 'DELETE', `/v0.4/tokens/${id}`, ''],
    ];
    for (const [args, method, url, body] of cases) {
      const { r, req } = await send([...args, ...auth]);
      const what = `${args.join(' ')}\n${show(r)}`;
      assert.equal(r.code, 0, what);
      assert.deepEqual(JSON.parse(r.stdout), { uuid: id }, what);
      assert.equal(req.method, method, what);
      assert.equal(req.url, url, what);
      assert.equal(req.body, body, what);
      assert.equal(req.headers['x-rtcat-apikey'], 'k&y');
      assert.equal(req.headers['x-rtcat-secret'], 's e/c');
      assert.equal(req.headers.expect, undefined);
      if (body) assert.equal(req.headers['content-type'], 'application/x-www-form-urlencoded', what);
      else assert.equal(req.headers['content-length'] ?? '0', '0', what);
    }
  });

  test('answers: JSON on one line, any answer with "error" fails, non-JSON errors, bounds', { timeout: 60000 }, async () => {
    const a = `127.0.0.1:${port}`;
    const id = '0a1b2c3d-0000-4000-8000-00000000abcd';
    // A pretty-printed answer comes out on one line.
    reply = (req, res) => res.end('{\n  "uuid": "x",\n  "n": [1, 2]\n}\n');
    let { r } = await send(['session', a, 'get', id, ...auth]);
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout, '{"uuid":"x","n":[1,2]}\n');
    // An error field even with 200 is a failure (as the SDK reads it).
    reply = answer(200, { error: 'odd', description: 'an error in a 200' });
    ({ r } = await send(['session', a, 'get', id, ...auth]));
    errorAnswer(r, 'odd');
    // An error status without a JSON body.
    reply = (req, res) => {
      res.writeHead(502, { 'Content-Type': 'text/html' });
      res.end('<html>bad gateway</html>');
    };
    ({ r } = await send(['session', a, 'list', ...auth]));
    assert.equal(r.code, 2, show(r));
    assert.match(r.stderr, /HTTP status 502/);
    assert.equal(r.stdout, '');
    // A success that is not JSON.
    reply = (req, res) => res.end('not json');
    ({ r } = await send(['session', a, 'list', ...auth]));
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /the answer is not JSON/);
    // Over 4 MiB: refused, with and without a Content-Length.
    const big = `["${'x'.repeat(4 << 20)}"]`;
    reply = (req, res) => res.end(big);
    ({ r } = await send(['session', a, 'list', ...auth]));
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /the answer is over 4194304 bytes/);
    reply = (req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      for (let i = 0; i < 5; i++) res.write('x'.repeat(1 << 20));
      res.end();
    };
    ({ r } = await send(['session', a, 'list', ...auth]));
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /the answer is over 4194304 bytes/);
    // No answer: --timeout.
    reply = () => {};
    const t0 = Date.now();
    ({ r } = await send(['session', a, 'list', '--timeout', '0.5', ...auth]));
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /no answer in time/);
    assert.ok(Date.now() - t0 < 5000, 'stopped by the timeout');
    server.closeAllConnections();
  });
});
