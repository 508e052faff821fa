'use strict';
// The demo pages' HTTP routes (modules/demo.c): the files of demo_dir
// served from memory at /demo/<name> with their type, length and the
// security headers, HEAD, the redirect of /demo, one level of
// sub-directories (/demo/<dir>/<name>, /demo/<dir>/ its index.html,
// /demo/<dir> redirected there), 404 for unknown names, deeper levels,
// skipped entries and every traversal attempt, /demo/config.json,
// /demo/token minting a token that logs in, and the routes absent when
// the demo is off; then the start refused for the configurations the
// module does not accept.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const fpnn = require('./lib/fpnn');
const { get } = require('./lib/http');
const { api } = require('./lib/rtcat');
const { writeProjectsConfig } = require('./lib/rtm');
const { makeTempDir, rtmdBin, run, sanitizerReports, startRtmd, withLogs } = require('./lib/rtmd');

const APP_ID = 'Demo0123456789abcdefGHIJ';
const APP_KEY = 'demo-app-key';

// Files of a demo_dir, by name: [content, expected Content-Type].
const FILES = {
  'index.html': ['<!doctype html><title>demo</title>\n', 'text/html; charset=utf-8'],
  'app.js': ['import "./rts.mjs";\n', 'text/javascript; charset=utf-8'],
  'rts.mjs': ['export const x = 1;\n', 'text/javascript; charset=utf-8'],
  'style.css': ['body { margin: 0 }\n', 'text/css; charset=utf-8'],
  'rts.mjs.map': ['{"version":3}', 'application/json'],
  'data.json': ['{"a":1}', 'application/json'],
  'logo.svg': ['<svg xmlns="http://www.w3.org/2000/svg"/>', 'image/svg+xml'],
  'logo.png': [Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 255]), 'image/png'],
  'favicon.ico': [Buffer.from([0, 0, 1, 0]), 'image/x-icon'],
  'blob.bin': [Buffer.from([1, 2, 3, 0, 250]), 'application/octet-stream'],
  'README': ['no extension\n', 'application/octet-stream'],
};

function makeDemoDir(dir, files = FILES) {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, [content]] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  return dir;
}

// A GET (or another method) whose body is kept as bytes.
function request(port, p, { method = 'GET' } = {}) {
  const http = require('node:http');
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, agent: false, timeout: 5000 }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${p} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

const CSP_PARTS = ["default-src 'none'", "script-src 'self'", "style-src 'self'", 'connect-src', 'ws:', 'wss:',
  "media-src 'self' blob: mediastream:"];

// A sub-directory of the demo_dir (the call page's shape).
const CALL_FILES = {
  'index.html': ['<!doctype html><title>call</title>\n', 'text/html; charset=utf-8'],
  'call.js': ['import "../rts.mjs";\n', 'text/javascript; charset=utf-8'],
  'style.css': ['video { width: 40% }\n', 'text/css; charset=utf-8'],
};

function assertPageHeaders(res, what) {
  assert.equal(res.headers['cache-control'], 'no-cache', what);
  assert.equal(res.headers['x-content-type-options'], 'nosniff', what);
  const csp = res.headers['content-security-policy'] || '';
  for (const part of CSP_PARTS) assert.ok(csp.includes(part), `${what}: CSP ${csp} has ${part}`);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, what);
}

async function assert404(port, p, method = 'GET') {
  const res = await request(port, p, { method });
  assert.equal(res.status, 404, `${method} ${p}`);
  assert.equal(JSON.parse(res.body.toString()).error, 'not_found', `${method} ${p}`);
}

// Logs in on the WebSocket gate as a string-id user with token.
async function rtsAuth(srv, uid, token) {
  const c = await fpnn.connect({ host: '127.0.0.1', port: srv.ports.client_ws, transport: 'ws' });
  try {
    return await c.quest('auth', { appid: APP_ID, uid, token, version: 'demo-test' });
  } finally {
    c.destroy();
  }
}

describe('demo pages on: files, config.json, token', () => {
  let srv, base;
  const it = (name, fn) => test(name, { timeout: 30000 }, withLogs(() => [srv], fn));

  before(async () => {
    base = await makeTempDir();
    const dir = makeDemoDir(path.join(base, 'demo'));
    fs.writeFileSync(path.join(dir, '.hidden'), 'secret');
    fs.writeFileSync(path.join(dir, 'bad name.js'), 'x');
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.writeFileSync(path.join(dir, 'sub', 'inner.js'), 'inner');
    makeDemoDir(path.join(dir, 'call'), CALL_FILES);
    fs.writeFileSync(path.join(base, 'outside.txt'), 'outside');
    fs.symlinkSync(path.join(base, 'outside.txt'), path.join(dir, 'link.txt'));
    // Skipped: a second level, hidden or badly named entries of a
    // sub-directory, symbolic links to a file or to a directory.
    fs.mkdirSync(path.join(dir, 'sub', 'deeper'));
    fs.writeFileSync(path.join(dir, 'sub', 'deeper', 'x.js'), 'deep');
    fs.writeFileSync(path.join(dir, 'sub', '.hidden'), 'secret');
    fs.writeFileSync(path.join(dir, 'sub', 'bad name.js'), 'x');
    fs.symlinkSync(path.join(base, 'outside.txt'), path.join(dir, 'sub', 'link.txt'));
    fs.mkdirSync(path.join(base, 'elsewhere'));
    fs.writeFileSync(path.join(base, 'elsewhere', 'index.html'), 'elsewhere');
    fs.symlinkSync(path.join(base, 'elsewhere'), path.join(dir, 'linkdir'));
    fs.mkdirSync(path.join(dir, '.git'));
    fs.writeFileSync(path.join(dir, '.git', 'config'), 'secret');
    const conf = writeProjectsConfig(base, [
      { pid: 71, secret: 'plain-project-secret' },
      { pid: 72, secret: 'demo-project-secret', app_id: APP_ID, app_key: APP_KEY, demo: 1 },
    ]);
    srv = await startRtmd({ config: conf, args: [`--demo_dir=${dir}`] });
  });

  after(async () => {
    const alive = srv && srv.alive;
    if (srv) await srv.cleanup();
    assert.ok(alive, 'rtmd stayed up');
    assert.deepEqual(sanitizerReports(), []);
  });

  it('every file with its type, length, bytes and the page headers', async () => {
    for (const [name, [content, type]] of Object.entries(FILES)) {
      const res = await request(srv.ports.http, `/demo/${name}`);
      assert.equal(res.status, 200, name);
      assert.equal(res.headers['content-type'], type, name);
      assert.equal(Number(res.headers['content-length']), Buffer.from(content).length, name);
      assert.deepEqual(res.body, Buffer.from(content), name);
      assertPageHeaders(res, name);
    }
  });

  it('/demo/ serves index.html, /demo redirects there', async () => {
    const res = await request(srv.ports.http, '/demo/');
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(res.body.toString(), FILES['index.html'][0]);
    assertPageHeaders(res, '/demo/');
    const r = await request(srv.ports.http, '/demo');
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, '/demo/');
  });

  it('one level of sub-directories: /demo/<dir>/<name>, /demo/<dir>/ is its index.html, /demo/<dir> redirects',
    async () => {
      for (const [name, [content, type]] of Object.entries(CALL_FILES)) {
        const res = await request(srv.ports.http, `/demo/call/${name}`);
        assert.equal(res.status, 200, name);
        assert.equal(res.headers['content-type'], type, name);
        assert.deepEqual(res.body, Buffer.from(content), name);
        assertPageHeaders(res, `call/${name}`);
      }
      const index = await request(srv.ports.http, '/demo/call/');
      assert.equal(index.status, 200);
      assert.equal(index.body.toString(), CALL_FILES['index.html'][0]);
      assertPageHeaders(index, '/demo/call/');
      const head = await request(srv.ports.http, '/demo/call/', { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(Number(head.headers['content-length']), CALL_FILES['index.html'][0].length);
      assert.equal(head.body.length, 0);
      const r = await request(srv.ports.http, '/demo/call');
      assert.equal(r.status, 301);
      assert.equal(r.headers.location, '/demo/call/');
      assertPageHeaders(r, '/demo/call');
      const inner = await request(srv.ports.http, '/demo/sub/inner.js');
      assert.equal(inner.status, 200);
      assert.equal(inner.body.toString(), 'inner');
      assert.equal((await request(srv.ports.http, '/demo/call/call.js', { method: 'POST' })).status, 405);
      // The top-level names are unchanged.
      assert.equal((await request(srv.ports.http, '/demo/index.html')).body.toString(), FILES['index.html'][0]);
    });

  it('HEAD: the headers of GET and no body', async () => {
    const res = await request(srv.ports.http, '/demo/app.js', { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(Number(res.headers['content-length']), FILES['app.js'][0].length);
    assertPageHeaders(res, 'HEAD');
    assert.equal(res.body.length, 0);
    // The connection is still usable after a HEAD (no stray body bytes).
    const after = await get(srv.ports.http, '/demo/style.css');
    assert.equal(after.body, FILES['style.css'][0]);
  });

  it('404 for unknown names, skipped entries and traversal attempts; 405 for other methods', async () => {
    const port = srv.ports.http;
    for (const p of ['/demo/nope.js', '/demo/.hidden', '/demo/bad%20name.js', '/demo/sub', '/demo/sub/',
      '/demo/link.txt', '/demo/sub/deeper', '/demo/sub/deeper/', '/demo/sub/deeper/x.js', '/demo/sub/.hidden',
      '/demo/sub/bad%20name.js', '/demo/sub/link.txt', '/demo/linkdir', '/demo/linkdir/', '/demo/linkdir/index.html',
      '/demo/.git/config', '/demo/sub/../index.html', '/demo/sub/..', '/demo/call/../index.html',
      '/demo/call/%2e%2e/index.html', '/demo/call//index.html', '/demo/call/./index.html', '/demo/call/index.html/',
      '/demo/call/call.js/x', '/demo/CALL/', '/demo/call/nope.js', '/demo/../demo/call/index.html', '/demo/call.js',
      '/demo/index.html/call.js', `/demo/${'a'.repeat(129)}/index.html`, `/demo/call/${'a'.repeat(129)}`, '/demo/../demo/index.html', '/demo/..%2foutside.txt', '/demo/%2e%2e/outside.txt',
      '/demo/../outside.txt', '/demo//index.html', '/demo/./index.html', '/demo/index.html/', '/demo/INDEX.HTML',
      '/demo/index.html%00', '/demox', '/demo.html', '/demo/tokens', '/demo/config.json/x']) {
      await assert404(port, p);
    }
    const res = await request(port, '/demo/index.html', { method: 'POST' });
    assert.equal(res.status, 405);
    assert.equal((await request(port, '/demo/token?user=a', { method: 'DELETE' })).status, 405);
  });

  it('config.json: app id, WebSocket ports and path', async () => {
    const res = await request(srv.ports.http, '/demo/config.json');
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(res.body.toString()), {
      app_id: APP_ID, ws_port: srv.ports.client_ws, wss_port: null, path: '/service/websocket', rtcat_demo: false,
    });
  });

  it('token?user= mints an RTS token that logs that user in (and only that user)', async () => {
    for (const [query, uid] of [['alice', 'alice'], ['bob%40example.com', 'bob@example.com'],
      ['x_y-z.1', 'x_y-z.1'], ['a'.repeat(128), 'a'.repeat(128)]]) {
      const res = await request(srv.ports.http, `/demo/token?user=${query}`);
      assert.equal(res.status, 200, query);
      assert.equal(res.headers['content-type'], 'application/json');
      assert.equal(res.headers['cache-control'], 'no-store');
      const { token } = JSON.parse(res.body.toString());
      assert.ok(token.startsWith(`001${APP_ID}`), token);
      assert.deepEqual(await rtsAuth(srv, uid, token), { ok: true }, uid);
    }
    const { token } = JSON.parse((await request(srv.ports.http, '/demo/token?x=1&user=carol')).body.toString());
    assert.deepEqual(await rtsAuth(srv, 'carol', token), { ok: true });
    assert.deepEqual(await rtsAuth(srv, 'mallory', token), { ok: false, reason: 'invalid' });
  });

  it('token with a missing or invalid user: 400 with a JSON error', async () => {
    for (const q of ['', '?', '?user=', '?usr=alice', '?user=a%20b', '?user=a/b', '?user=%zz', '?user=a%',
      `?user=${'a'.repeat(129)}`, '?user=%C3%A9t%C3%A9', '?user=a+b']) {
      const res = await request(srv.ports.http, `/demo/token${q}`);
      assert.equal(res.status, 400, q);
      assert.equal(res.headers['content-type'], 'application/json', q);
      const body = JSON.parse(res.body.toString());
      assert.equal(body.error, 'invalid_user', q);
      assert.ok(body.description, q);
    }
  });
});

describe('config.json tells whether the demo project runs the RealTimeCat demo backend', () => {
  test('rtcat_demo = 1 on the demo project: true; on another project: false', { timeout: 30000 }, async () => {
    const base = await makeTempDir();
    const dir = makeDemoDir(path.join(base, 'demo'));
    const rtcat = { rtcat_apikey: 'demo-http-apikey', rtcat_secret: 'demo-http-secret', rtcat_demo: 1 };
    for (const [projects, want] of [
      [[{ pid: 75, secret: 'demo-project-secret', app_id: APP_ID, app_key: APP_KEY, demo: 1, ...rtcat }], true],
      [[{ pid: 76, secret: 'demo-project-secret', app_id: APP_ID, app_key: APP_KEY, demo: 1 },
        { pid: 77, secret: 'other-project-secret', ...rtcat }], false],
    ]) {
      const s = await startRtmd({ config: writeProjectsConfig(base, projects), args: [`--demo_dir=${dir}`] });
      try {
        const cfg = JSON.parse((await get(s.ports.http, '/demo/config.json')).body);
        assert.equal(cfg.rtcat_demo, want, JSON.stringify(projects));
        // The backend route itself answers (on its own project either way).
        assert.equal((await get(s.ports.http, '/tokens/demo-http')).status, 200);
      } finally {
        assert.ok(s.alive);
        await s.cleanup();
      }
    }
    assert.deepEqual(sanitizerReports(), []);
  });
});

describe('demo pages off: no /demo routes', () => {
  const servers = [];
  const it = (name, fn) => test(name, { timeout: 30000 }, withLogs(() => servers, fn));

  after(async () => {
    for (const s of servers) {
      assert.ok(s.alive, 'rtmd stayed up');
      await s.cleanup();
    }
    assert.deepEqual(sanitizerReports(), []);
  });

  const expectOff = async (s) => {
    for (const p of ['/demo', '/demo/', '/demo/index.html', '/demo/config.json', '/demo/token?user=alice']) {
      await assert404(s.ports.http, p);
      await assert404(s.ports.http, p, 'POST');
    }
    assert.equal((await get(s.ports.http, '/healthz')).status, 200);
  };

  it('without demo_dir (a project has demo = 1)', async () => {
    const base = await makeTempDir();
    const conf = writeProjectsConfig(base, [
      { pid: 73, secret: 'demo-project-secret', app_id: APP_ID, app_key: APP_KEY, demo: 1 },
    ]);
    const s = await startRtmd({ config: conf });
    servers.push(s);
    await expectOff(s);
  });

  it('with demo_dir but no project with demo = 1', async () => {
    const base = await makeTempDir();
    const dir = makeDemoDir(path.join(base, 'demo'));
    const conf = writeProjectsConfig(base, [
      { pid: 74, secret: 'demo-project-secret', app_id: APP_ID, app_key: APP_KEY },
    ]);
    const s = await startRtmd({ config: conf, args: [`--demo_dir=${dir}`] });
    servers.push(s);
    await expectOff(s);
  });

  it('the store\'s demo project (no [project] configured) runs the demo with demo_dir alone', async () => {
    const base = await makeTempDir();
    const dir = makeDemoDir(path.join(base, 'demo'));
    const s = await startRtmd({ args: [`--demo_dir=${dir}`] });
    servers.push(s);
    const m = /^rts pid=(\d+) app_id=(\S+)/m.exec(s.stdout);
    assert.ok(m, s.stdout);
    const cfg = JSON.parse((await get(s.ports.http, '/demo/config.json')).body);
    assert.equal(cfg.app_id, m[2]);
    // Its derived RealTimeCat key runs the demo backend the call page uses,
    // and is printed on the banner for the app server's REST calls.
    assert.equal(cfg.rtcat_demo, true);
    const r = /^rtcat pid=(\d+) apikey=(\S+) secret=(\S+)$/m.exec(s.stdout);
    assert.ok(r, s.stdout);
    assert.equal(r[1], m[1]);
    const token = JSON.parse((await get(s.ports.http, '/tokens/demo-room')).body);
    assert.match(token.uuid, /^[0-9a-f-]{36}$/);
    const listed = await api(s.ports.http, 'GET', `/v0.4/sessions/${token.session_id}/tokens`, { key: r[2], secret: r[3] });
    assert.equal(listed.status, 200, listed.body);
    assert.deepEqual(listed.json.map((t) => t.uuid), [token.uuid]);
    const plain = await startRtmd();
    servers.push(plain);
    await expectOff(plain);
  });
});

describe('demo configurations refused at start', () => {
  const refused = async (projects, demoDir, pattern) => {
    const base = await makeTempDir();
    const args = [`--data_dir=${path.join(base, 'data')}`, '--listen_host=127.0.0.1', '--client_tcp_port=0',
      '--client_ws_port=0', '--server_tcp_port=0', '--http_port=0', '--file_tcp_port=0', '--file_ws_port=0'];
    if (projects) args.push('--config', writeProjectsConfig(base, projects));
    if (demoDir !== undefined) args.push(`--demo_dir=${demoDir(base)}`);
    const r = await run(rtmdBin(), args, { timeoutMs: 8000 });
    assert.equal(r.timedOut, false, 'rtmd must refuse to start');
    assert.notEqual(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /ready/);
    assert.match(r.stderr, pattern);
  };
  const demoProject = (pid, extra = {}) => ({ pid, secret: `demo-secret-${pid}`, app_id: APP_ID, app_key: APP_KEY,
    ...extra });

  test('two projects with demo = 1', { timeout: 20000 }, async () => {
    await refused([demoProject(81, { demo: 1 }), demoProject(82, { demo: 1, app_id: 'Other0123456789abcdefGHI' })],
      (b) => makeDemoDir(path.join(b, 'demo')), /demo = 1 .*81 and 82.*at most one/);
    // Even without demo_dir: the configuration is wrong either way.
    await refused([demoProject(81, { demo: 1 }), demoProject(82, { demo: 1, app_id: 'Other0123456789abcdefGHI' })],
      undefined, /at most one/);
  });

  test('demo = 1 on a project without app_id', { timeout: 20000 }, async () => {
    await refused([{ pid: 83, secret: 'plain-project-secret', demo: 1 }], undefined, /83 has demo = 1 but no app_id/);
  });

  test('demo = 2 is not a setting value', { timeout: 20000 }, async () => {
    await refused([demoProject(84, { demo: 2 })], undefined, /demo: '2' is out of range/);
  });

  test('a demo_dir that is missing, has no index.html, or too many or too large files', { timeout: 30000 },
    async () => {
      const projects = [demoProject(85, { demo: 1 })];
      await refused(projects, (b) => path.join(b, 'missing'), /demo_dir .*missing/);
      await refused(projects, (b) => makeDemoDir(path.join(b, 'd'), { 'app.js': ['x'] }), /no index\.html/);
      await refused(projects, (b) => {
        const d = makeDemoDir(path.join(b, 'd'));
        for (let i = 0; i < 64; i++) fs.writeFileSync(path.join(d, `f${i}.js`), 'x');
        return d;
      }, /more than 64 files/);
      // Files of sub-directories count in the same bounds.
      await refused(projects, (b) => {
        const d = makeDemoDir(path.join(b, 'd'));
        for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(d, `f${i}.js`), 'x');
        fs.mkdirSync(path.join(d, 'call'));
        for (let i = 0; i < 30; i++) fs.writeFileSync(path.join(d, 'call', `g${i}.js`), 'x');
        return d;
      }, /more than 64 files/);
      await refused(projects, (b) => {
        const d = makeDemoDir(path.join(b, 'd'));
        fs.mkdirSync(path.join(d, 'call'));
        fs.writeFileSync(path.join(d, 'call', 'big.bin'), Buffer.alloc(8 * 1024 * 1024));
        return d;
      }, /exceed 8388608 bytes/);
      await refused(projects, (b) => {
        const d = makeDemoDir(path.join(b, 'd'));
        fs.writeFileSync(path.join(d, 'big.bin'), Buffer.alloc(8 * 1024 * 1024));
        return d;
      }, /exceed 8388608 bytes/);
    });
});
