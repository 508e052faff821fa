'use strict';
// RealTimeCat REST v0.4 (modules/rtcat/): every route with the request
// shapes of the RealTimeCat Node SDK (form bodies, its two headers, page
// and page_size), JSON bodies, the objects answered, paging and
// X-Total-Count, authentication failures, field errors and limits, the
// per-project caps (429), expiry (a "day" of one second) and the
// retention job removing expired rows from the store, a restart keeping
// what was stored, the demo backend's routes on and off, and the
// configurations refused at start.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const path = require('node:path');
const { api, sdk } = require('./lib/rtcat');
const { writeProjectsConfig } = require('./lib/rtm');
const { makeTempDir, rtmdBin, run, sanitizerReports, sleep, startRtmd, storeRows, withLogs } = require('./lib/rtmd');

const KEY = 'rest-key-1';
const SECRET = 'rest-secret-1';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const MICROS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const MILLIS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

const PROJECTS = [
  { pid: 91, secret: 'rtcat-rest-secret-91', rtcat_apikey: KEY, rtcat_secret: SECRET, rtcat_demo: 1 },
  // Small caps, and a "day" of one second for expiry.
  { pid: 92, secret: 'rtcat-rest-secret-92', rtcat_apikey: 'rest-key-2', rtcat_secret: 'rest-secret-2',
    rtcat_max_sessions: 2, rtcat_max_tokens: 3, rtcat_max_live_days: 5, rtcat_day_seconds: 1 },
  { pid: 93, secret: 'rtcat-rest-secret-93' },
];

function assertSession(s, { label = null, data = null, type = 'p2p', permanent = false, live_days = 30 } = {}) {
  assert.equal(typeof s, 'object');
  assert.deepEqual(Object.keys(s), ['uuid', 'label', 'type', 'permanent', 'data', 'time_created', 'live_days',
    'expire_in']);
  assert.match(s.uuid, UUID);
  assert.deepEqual({ label: s.label, data: s.data, type: s.type, permanent: s.permanent, live_days: s.live_days },
    { label, data, type, permanent, live_days });
  assert.match(s.time_created, MICROS);
  if (permanent) assert.equal(s.expire_in, null);
  else {
    assert.match(s.expire_in, MILLIS);
    const span = Date.parse(s.expire_in) - Date.parse(s.time_created);
    assert.ok(Math.abs(span - live_days * 86400000) <= 1, `expire_in ${s.expire_in} is live_days after creation`);
  }
}

function assertToken(t, sessionId, { label = null, data = null, type = 'pub', permanent = false, live_days = 15 } = {}) {
  assert.deepEqual(Object.keys(t), ['uuid', 'session_id', 'label', 'type', 'permanent', 'data', 'time_created',
    'live_days', 'expire_in']);
  assert.match(t.uuid, UUID);
  assert.equal(t.session_id, sessionId);
  assert.deepEqual({ label: t.label, data: t.data, type: t.type, permanent: t.permanent, live_days: t.live_days },
    { label, data, type, permanent, live_days });
  assert.match(t.time_created, MICROS);
  if (permanent) assert.equal(t.expire_in, null);
  else assert.match(t.expire_in, MILLIS);
}

function assertError(r, status, code) {
  assert.equal(r.status, status, r.body);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.json.error, code, r.body);
  assert.equal(typeof r.json.description, 'string');
}

describe('RealTimeCat REST', () => {
  let srv, cat, small, port, dataDir;
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(() => [srv], fn));

  before(async () => {
    dataDir = await makeTempDir();
    const conf = writeProjectsConfig(await makeTempDir(), PROJECTS);
    srv = await startRtmd({ config: conf, dataDir, args: ['--retention_interval=1'] });
    port = srv.ports.http;
    cat = sdk(port, KEY, SECRET);
    small = sdk(port, 'rest-key-2', 'rest-secret-2');
  });

  after(async () => {
    const code = await srv.stop('SIGTERM');
    assert.equal(code, 0, srv.diagnostics());
    assert.deepEqual(sanitizerReports(), []);
  });

  it('sessions: create (SDK form), get, list, update, delete', async () => {
    let r = await cat.createSession({ label: 'room one', data: 'x=1&y=2 ü' });
    assert.equal(r.status, 201, r.body);
    assert.equal(r.headers['content-type'], 'application/json');
    const s = r.json;
    assertSession(s, { label: 'room one', data: 'x=1&y=2 ü' });
    r = await cat.createSession({ type: 'rel', permanent: true, live_days: 7 });
    assert.equal(r.status, 201);
    const p = r.json;
    assertSession(p, { type: 'rel', permanent: true, live_days: 7 });
    // JSON body, with "true" as a string and an empty label meaning null.
    r = await cat.raw('POST', '/sessions', { json: { label: '', permanent: 'false', live_days: 2 } });
    assert.equal(r.status, 201, r.body);
    assertSession(r.json, { live_days: 2 });
    const j = r.json;

    r = await cat.session(s.uuid);
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, s);
    r = await cat.sessions();
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.map((x) => x.uuid), [s.uuid, p.uuid, j.uuid], 'oldest first');
    assert.equal(r.headers['x-total-count'], '3');
    r = await cat.permanentSessions();
    assert.deepEqual(r.json.map((x) => x.uuid), [p.uuid]);
    assert.equal(r.headers['x-total-count'], '1');
    r = await cat.temporarySessions();
    assert.deepEqual(r.json.map((x) => x.uuid), [s.uuid, j.uuid]);

    // PATCH: the fields given change, the others stay; live_days counts
    // from time_created.
    r = await cat.updateSession({ session_id: s.uuid, label: 'renamed', live_days: 3 });
    assert.equal(r.status, 200, r.body);
    assertSession(r.json, { label: 'renamed', data: 'x=1&y=2 ü', live_days: 3 });
    assert.equal(r.json.time_created, s.time_created);
    r = await cat.raw('PATCH', `/sessions/${s.uuid}`, { json: { permanent: true, data: null } });
    assertSession(r.json, { label: 'renamed', permanent: true, live_days: 3 });
    assert.deepEqual((await cat.session(s.uuid)).json, r.json);

    r = await cat.delSession(j.uuid);
    assert.equal(r.status, 204);
    assert.equal(r.body, '');
    assertError(await cat.session(j.uuid), 404, 'not_found');
    assertError(await cat.delSession(j.uuid), 404, 'not_found');
    assertError(await cat.updateSession({ session_id: j.uuid, label: 'x' }), 404, 'not_found');
  });

  it('tokens: create one and many, list, get, update, delete; a session delete takes its tokens', async () => {
    const s = (await cat.createSession({ label: 'with tokens' })).json;
    let r = await cat.createToken({ session_id: s.uuid });
    assert.equal(r.status, 201, r.body);
    assertToken(r.json, s.uuid);
    const t1 = r.json;
    r = await cat.createToken({ session_id: s.uuid, type: 'sub', number: 3, label: 'viewer', permanent: true });
    assert.equal(r.status, 201, r.body);
    assert.ok(Array.isArray(r.json));
    assert.equal(r.json.length, 3);
    for (const t of r.json) assertToken(t, s.uuid, { type: 'sub', label: 'viewer', permanent: true });
    assert.equal(new Set(r.json.map((t) => t.uuid)).size, 3);
    const subs = r.json;
    r = await cat.raw('POST', `/sessions/${s.uuid}/tokens`, { json: { data: '{"k":1}', live_days: 1, type: 'pub' } });
    assertToken(r.json, s.uuid, { data: '{"k":1}', live_days: 1 });
    const t5 = r.json;

    r = await cat.tokens({ session_id: s.uuid });
    assert.deepEqual(r.json.map((t) => t.uuid), [t1.uuid, ...subs.map((t) => t.uuid), t5.uuid]);
    assert.equal(r.headers['x-total-count'], '5');
    r = await cat.tokens({ session_id: s.uuid, page: 2, page_size: 2 });
    assert.deepEqual(r.json.map((t) => t.uuid), [subs[1].uuid, subs[2].uuid]);
    assert.equal(r.headers['x-total-count'], '5');
    assert.deepEqual((await cat.permanentTokens(s.uuid)).json.map((t) => t.uuid), subs.map((t) => t.uuid));
    assert.deepEqual((await cat.temporaryTokens(s.uuid)).json.map((t) => t.uuid), [t1.uuid, t5.uuid]);

    r = await cat.token(t1.uuid);
    assert.deepEqual(r.json, t1);
    r = await cat.updateToken({ token_id: t1.uuid, label: 'main', data: 'd' });
    assert.equal(r.status, 200);
    assertToken(r.json, s.uuid, { label: 'main', data: 'd' });
    r = await cat.updateToken({ token_id: subs[0].uuid, permanent: false, live_days: 2 });
    assertToken(r.json, s.uuid, { type: 'sub', label: 'viewer', live_days: 2 });
    r = await cat.delToken(t5.uuid);
    assert.equal(r.status, 204);
    assertError(await cat.token(t5.uuid), 404, 'not_found');

    assert.equal((await cat.delSession(s.uuid)).status, 204);
    assertError(await cat.token(t1.uuid), 404, 'not_found');
    assertError(await cat.tokens({ session_id: s.uuid }), 404, 'not_found');
    assertError(await cat.createToken({ session_id: s.uuid }), 404, 'not_found');
  });

  it('paging: page 0, past the end, page_size over 100, defaults', async () => {
    for (let i = 0; i < 3; i++) await cat.createSession({ label: `page ${i}` });
    const all = (await cat.sessions({ page_size: 100 })).json;
    assert.ok(all.length >= 3);
    let r = await cat.sessions({ page: 1, page_size: 2 });
    assert.deepEqual(r.json.map((s) => s.uuid), all.slice(0, 2).map((s) => s.uuid));
    assert.equal(r.headers['x-total-count'], String(all.length));
    r = await cat.sessions({ page: 1000, page_size: 2 });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, []);
    assert.equal(r.headers['x-total-count'], String(all.length));
    assertError(await cat.raw('GET', '/sessions?page=0'), 400, 'invalid_parameter');
    assertError(await cat.raw('GET', '/sessions?page_size=101'), 400, 'invalid_parameter');
    assertError(await cat.raw('GET', '/sessions?page_size=0'), 400, 'invalid_parameter');
    assertError(await cat.raw('GET', '/sessions?page=abc'), 400, 'invalid_parameter');
    assert.equal((await cat.raw('GET', '/sessions?page_size=100')).status, 200);
    // The default page size is 20.
    for (let i = all.length; i < 21; i++) await cat.createSession();
    r = await cat.sessions();
    assert.equal(r.json.length, 20);
    assert.equal(Number(r.headers['x-total-count']) >= 21, true);
  });

  it('authentication: no header, wrong secret, unknown key, a project without the API', async () => {
    const path = '/v0.4/sessions';
    assertError(await api(port, 'GET', path), 401, 'unauthorized');
    assertError(await api(port, 'GET', path, { key: KEY }), 401, 'unauthorized');
    assertError(await api(port, 'GET', path, { key: KEY, secret: 'wrong' }), 401, 'unauthorized');
    assertError(await api(port, 'GET', path, { key: KEY, secret: `${SECRET}x` }), 401, 'unauthorized');
    assertError(await api(port, 'GET', path, { key: 'nobody', secret: SECRET }), 401, 'unauthorized');
    // Another project's secret does not open this one.
    assertError(await api(port, 'GET', path, { key: KEY, secret: 'rest-secret-2' }), 401, 'unauthorized');
    assertError(await api(port, 'POST', path, { form: { label: 'x' } }), 401, 'unauthorized');
    // One project does not see another's objects.
    const s = (await cat.createSession()).json;
    assertError(await small.session(s.uuid), 404, 'not_found');
    assertError(await small.delSession(s.uuid), 404, 'not_found');
  });

  it('pipelined requests are answered in order, each after the one before committed', async () => {
    const label = `piped-${Date.now()}`;
    const body = `label=${label}`;
    const head = (method, target, extra = '') =>
      `${method} ${target} HTTP/1.1\r\nHost: x\r\nX-RTCAT-APIKEY: ${KEY}\r\nX-RTCAT-SECRET: ${SECRET}\r\n${extra}`;
    // create (answered after the store commits), list, then create again
    // with Connection: close: all in one write.
    const post = (close) => `${head('POST', '/v0.4/sessions',
      `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n${close ? 'Connection: close\r\n' : ''}`)}\r\n${body}`;
    const list = `${head('GET', '/v0.4/sessions?page_size=100')}\r\n`;
    const text = await new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(post(false) + list + post(true)));
      let got = '';
      s.setEncoding('utf8');
      s.on('data', (d) => (got += d));
      s.on('end', () => resolve(got));
      s.on('error', reject);
      s.setTimeout(10000, () => s.destroy(new Error(`no end; got ${got}`)));
    });
    // The answers, one after the other, each framed by its Content-Length.
    const answers = [];
    for (let rest = text; rest.length > 0;) {
      const end = rest.indexOf('\r\n\r\n');
      assert.ok(end > 0, `a whole answer head in ${JSON.stringify(rest)}`);
      const headText = rest.slice(0, end);
      const length = Number(/content-length: (\d+)/i.exec(headText)[1]);
      answers.push({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(headText)[1]), body: rest.slice(end + 4, end + 4 + length) });
      rest = rest.slice(end + 4 + length);
    }
    assert.deepEqual(answers.map((a) => a.status), [201, 200, 201], text);
    const bodies = answers.map((a) => a.body);
    const first = JSON.parse(bodies[0]);
    const listed = JSON.parse(bodies[1]);
    assert.ok(listed.some((x) => x.uuid === first.uuid), 'the list ran after the first create committed');
    assert.notEqual(JSON.parse(bodies[2]).uuid, first.uuid);
  });

  it('bad fields, unknown paths and methods, bodies too large', async () => {
    const s = (await cat.createSession()).json;
    const bad = async (r) => assertError(await r, 400, 'invalid_parameter');
    await bad(cat.createSession({ label: 'l'.repeat(256) }));
    assert.equal((await cat.createSession({ label: 'l'.repeat(255) })).status, 201);
    await bad(cat.createSession({ data: 'd'.repeat(1025) }));
    assert.equal((await cat.createSession({ data: 'd'.repeat(1024) })).status, 201);
    await bad(cat.createSession({ type: 'mesh' }));
    await bad(cat.createSession({ live_days: 0 }));
    await bad(cat.createSession({ live_days: -3 }));
    await bad(cat.createSession({ live_days: 366 })); // over rtcat_max_live_days (365)
    await bad(cat.raw('POST', '/sessions', { form: { permanent: 'maybe' } }));
    await bad(cat.raw('POST', '/sessions', { raw: 'label=%zz', contentType: 'application/x-www-form-urlencoded' }));
    await bad(cat.raw('POST', '/sessions', { raw: 'label=a%00b', contentType: 'application/x-www-form-urlencoded' }));
    await bad(cat.raw('POST', '/sessions', { json: '{"label": ' }));
    await bad(cat.raw('POST', '/sessions', { json: '[1]' }));
    await bad(cat.raw('POST', '/sessions', { json: { live_days: 1.5 } }));
    await bad(cat.createToken({ session_id: s.uuid, number: 101 }));
    await bad(cat.createToken({ session_id: s.uuid, number: 0 }));
    await bad(cat.createToken({ session_id: s.uuid, type: 'p2p' }));
    await bad(cat.updateSession({ session_id: s.uuid, label: 'l'.repeat(256) }));
    assert.equal((await cat.tokens({ session_id: s.uuid })).json.length, 0, 'nothing made by refused requests');
    assert.equal((await cat.createToken({ session_id: s.uuid, number: 100 })).json.length, 100);

    assertError(await cat.raw('GET', '/nothing'), 404, 'not_found');
    assertError(await cat.raw('GET', '/sessions/not-a-uuid'), 404, 'not_found');
    assertError(await cat.raw('GET', `/sessions/${s.uuid.toUpperCase()}`), 404, 'not_found');
    assertError(await cat.raw('GET', '/tokens/00000000-0000-4000-8000-000000000000'), 404, 'not_found');
    assertError(await cat.raw('PUT', '/sessions'), 405, 'method_not_allowed');
    assertError(await cat.raw('DELETE', '/sessions/permanent'), 405, 'method_not_allowed');
    assertError(await cat.raw('POST', `/sessions/${s.uuid}`), 405, 'method_not_allowed');
    assertError(await cat.raw('POST', '/sessions', { form: { data: 'x'.repeat(17 * 1024) } }), 413, 'body_too_large');
  });

  it('limits: rtcat_max_sessions and rtcat_max_tokens answer 429', async () => {
    const a = (await small.createSession({ permanent: true })).json;
    await small.createSession({ permanent: true });
    assertError(await small.createSession(), 429, 'limit_exceeded');
    assert.equal((await small.createToken({ session_id: a.uuid, number: 2, permanent: true })).status, 201);
    assertError(await small.createToken({ session_id: a.uuid, number: 2 }), 429, 'limit_exceeded');
    assert.equal((await small.createToken({ session_id: a.uuid, permanent: true })).status, 201);
    assertError(await small.createToken({ session_id: a.uuid }), 429, 'limit_exceeded');
    // A delete frees its places.
    const b = (await small.sessions()).json[1];
    assert.equal((await small.delSession(b.uuid)).status, 204);
    assert.equal((await small.createSession({ permanent: true })).status, 201);
    await small.delSession(a.uuid);
    for (const s of (await small.sessions()).json) await small.delSession(s.uuid);
  });

  it('expiry: gone once expire_in passed, and removed from the store by the retention job', async () => {
    // rtcat_day_seconds = 1 on this project: live_days 2 is two seconds.
    const s = (await small.createSession({ live_days: 2 })).json;
    assert.ok(Math.abs(Date.parse(s.expire_in) - Date.parse(s.time_created) - 2000) <= 1);
    const keep = (await small.createSession({ live_days: 5 })).json;
    const t = (await small.createToken({ session_id: keep.uuid, live_days: 1 })).json;
    const t2 = (await small.createToken({ session_id: s.uuid, live_days: 5 })).json;
    assert.equal((await small.session(s.uuid)).status, 200);
    await sleep(2300);
    assertError(await small.session(s.uuid), 404, 'not_found');
    assertError(await small.token(t.uuid), 404, 'not_found');
    assertError(await small.token(t2.uuid), 404, 'not_found'); // its session expired
    assertError(await small.updateSession({ session_id: s.uuid, permanent: true }), 404, 'not_found');
    assert.deepEqual((await small.sessions()).json.map((x) => x.uuid), [keep.uuid]);
    assert.equal((await small.tokens({ session_id: keep.uuid })).headers['x-total-count'], '0');
    // retention_interval = 1: the rows go within a few seconds.
    const count = async (sql) => Number((await storeRows(dataDir, sql))[0][0]);
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline && (await count(`SELECT count(*) FROM rtcat_sessions WHERE uuid = '${s.uuid}'`) +
      await count(`SELECT count(*) FROM rtcat_tokens WHERE uuid IN ('${t.uuid}', '${t2.uuid}')`)) > 0) await sleep(300);
    assert.equal(await count(`SELECT count(*) FROM rtcat_sessions WHERE uuid = '${s.uuid}'`), 0);
    assert.equal(await count(`SELECT count(*) FROM rtcat_tokens WHERE uuid IN ('${t.uuid}', '${t2.uuid}')`), 0);
    assert.equal(await count(`SELECT count(*) FROM rtcat_sessions WHERE uuid = '${keep.uuid}'`), 1);
    await small.delSession(keep.uuid);
  });

  it('demo backend: /sessions, /:sessionId/tokens, /tokens/:sessionName without authentication', async () => {
    let r = await api(port, 'GET', '/sessions');
    assert.equal(r.status, 200, r.body);
    assertSession(r.json, { label: 'demo' });
    const s = r.json;
    r = await api(port, 'GET', `/${s.uuid}/tokens`);
    assert.equal(r.status, 200, r.body);
    assertToken(r.json, s.uuid);
    assertError(await api(port, 'GET', '/00000000-0000-4000-8000-000000000000/tokens'), 404, 'not_found');
    r = await api(port, 'GET', '/tokens/my%20room');
    assert.equal(r.status, 200, r.body);
    const first = r.json;
    r = await api(port, 'GET', '/tokens/my%20room');
    assert.equal(r.json.session_id, first.session_id, 'the named session is reused');
    assert.notEqual(r.json.uuid, first.uuid);
    const named = (await cat.session(first.session_id)).json;
    assertSession(named, { label: 'my room' });
    // The demo project's API sees them.
    assert.equal((await cat.tokens({ session_id: first.session_id })).headers['x-total-count'], '2');
    assertError(await api(port, 'GET', `/tokens/${'n'.repeat(256)}`), 400, 'invalid_parameter');
  });

  it('a restart keeps sessions and tokens', async () => {
    const s = (await cat.createSession({ label: 'kept', data: 'd', permanent: true })).json;
    const t = (await cat.createToken({ session_id: s.uuid, type: 'sub', label: 'tk' })).json;
    // Tokens made by one request come back in the order they were made.
    const many = (await cat.createToken({ session_id: s.uuid, number: 30, permanent: true })).json;
    const tokensBefore = (await cat.tokens({ session_id: s.uuid, page_size: 100 })).json;
    assert.deepEqual(tokensBefore.map((x) => x.uuid), [t.uuid, ...many.map((x) => x.uuid)]);
    const before = (await cat.sessions({ page_size: 100 })).json;
    assert.equal(await srv.stop('SIGTERM'), 0);
    const conf = writeProjectsConfig(await makeTempDir(), PROJECTS);
    srv = await startRtmd({ config: conf, dataDir, args: ['--retention_interval=1'] });
    port = srv.ports.http;
    cat = sdk(port, KEY, SECRET);
    assert.deepEqual((await cat.session(s.uuid)).json, s);
    assert.deepEqual((await cat.token(t.uuid)).json, t);
    assert.deepEqual((await cat.sessions({ page_size: 100 })).json, before);
    assert.deepEqual((await cat.tokens({ session_id: s.uuid, page_size: 100 })).json, tokensBefore);
  });
});

describe('RealTimeCat off and refused configurations', () => {
  test('no rtcat_demo: the demo routes are unknown paths; /v0.4 needs a key', { timeout: 20000 }, async () => {
    const conf = writeProjectsConfig(await makeTempDir(), [{ pid: 94, secret: 'rtcat-off-secret-94',
      rtcat_apikey: 'k94', rtcat_secret: 's94' }]);
    const srv = await startRtmd({ config: conf });
    try {
      const port = srv.ports.http;
      assertError(await api(port, 'GET', '/sessions'), 404, 'not_found');
      assertError(await api(port, 'GET', '/tokens/x'), 404, 'not_found');
      assertError(await api(port, 'GET', '/00000000-0000-4000-8000-000000000000/tokens'), 404, 'not_found');
      assertError(await api(port, 'POST', '/sessions'), 404, 'not_found');
      assertError(await api(port, 'GET', '/v0.4/sessions'), 401, 'unauthorized');
      assert.equal((await api(port, 'GET', '/v0.4/sessions', { key: 'k94', secret: 's94' })).status, 200);
    } finally {
      assert.equal(await srv.stop('SIGTERM'), 0);
      await srv.cleanup();
    }
  });

  const refused = async (projects, pattern) => {
    const base = await makeTempDir();
    const args = [`--data_dir=${path.join(base, 'data')}`, '--listen_host=127.0.0.1', '--client_tcp_port=0',
      '--client_ws_port=0', '--server_tcp_port=0', '--http_port=0', '--file_tcp_port=0', '--file_ws_port=0', '--config', writeProjectsConfig(base, projects)];
    const r = await run(rtmdBin(), args, { timeoutMs: 8000 });
    assert.notEqual(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /ready/);
    assert.match(r.stderr, pattern);
  };

  test('duplicate keys, a key without its secret, two demo projects, a demo without a key', { timeout: 30000 }, async () => {
    await refused([{ pid: 1, secret: 'secret-one-1', rtcat_apikey: 'same', rtcat_secret: 'a1' },
      { pid: 2, secret: 'secret-two-2', rtcat_apikey: 'same', rtcat_secret: 'b2' }],
    /rtmd\.conf:\d+: rtcat_apikey is also project 1's: it names the project/);
    await refused([{ pid: 1, secret: 'secret-one-1', rtcat_apikey: 'k' }], /rtcat_secret is not/);
    await refused([{ pid: 1, secret: 'secret-one-1', rtcat_apikey: 'k1', rtcat_secret: 's', rtcat_demo: 1 },
      { pid: 2, secret: 'secret-two-2', rtcat_apikey: 'k2', rtcat_secret: 's', rtcat_demo: 1 }], /at most one/);
    await refused([{ pid: 1, secret: 'secret-one-1', rtcat_demo: 1 }], /rtcat_demo = 1 but no rtcat_apikey/);
  });
});
