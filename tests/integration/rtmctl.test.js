'use strict';
// rtmctl against a real rtmd: ping, raw calls with exact 64-bit integers,
// error reporting, encrypted links with --key, and the session commands:
// token (checked by logging in with an independent client), send + listen
// (listen in the background, one JSON line per push), history, data.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const http = require('node:http');
const path = require('node:path');
const { spawn } = require('node:child_process');
const fpnn = require('./lib/fpnn');
const { appServer, pushText } = require('./lib/rtm');
const { sanitizerReports, startRtmd, withLogs, run, rtmctlBin, makeTempDir, removeTempDir } = require('./lib/rtmd');

const rtmctl = (args, opts = {}) => run(rtmctlBin(), args, { timeoutMs: 10000, ...opts });

// `rtmctl listen` in the background: collects its JSON lines, resolves
// ready() once it logged in and exited() with {code, signal}.
function listen(args, env = {}) {
  const p = spawn(rtmctlBin(), ['listen', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const l = { proc: p, stdout: '', stderr: '', lines: [], waiters: [] };
  p.stdout.setEncoding('utf8');
  p.stderr.setEncoding('utf8');
  let partial = '';
  p.stdout.on('data', (d) => {
    l.stdout += d;
    partial += d;
    let nl;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      l.lines.push(JSON.parse(line));
      for (const w of [...l.waiters]) w();
    }
  });
  const readyP = new Promise((resolve, reject) => {
    p.stderr.on('data', (d) => {
      l.stderr += d;
      if (/listening as uid/.test(l.stderr)) resolve();
    });
    p.on('close', () => reject(new Error(`rtmctl listen ended before it logged in\nstderr: ${l.stderr}`)));
  });
  readyP.catch(() => {});
  const exitedP = new Promise((resolve) => p.on('close', (code, signal) => resolve({ code, signal })));
  l.ready = (ms = 10000) => Promise.race([readyP, new Promise((_, rej) => setTimeout(() => rej(new Error(`listen not ready\n${l.stderr}`)), ms))]);
  l.exited = (ms = 10000) => Promise.race([exitedP, new Promise((resolve) => setTimeout(() => resolve({ code: 'timeout' }), ms))]);
  // Resolves with the first line matching pred.
  l.waitLine = (pred, ms = 5000) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = l.lines.find(pred);
        if (!found) return false;
        l.waiters = l.waiters.filter((w) => w !== check);
        clearTimeout(timer);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        l.waiters = l.waiters.filter((w) => w !== check);
        reject(new Error(`no matching push line within ${ms} ms\nstdout: ${l.stdout}\nstderr: ${l.stderr}`));
      }, ms);
      if (!check()) l.waiters.push(check);
    });
  l.kill = () => {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  };
  return l;
}

// rtmd_connections_accepted_total from /metrics, all gates summed (the
// scrape itself is one more HTTP connection).
function accepted(s) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: s.ports.http, path: '/metrics', agent: false, timeout: 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => {
          let sum = 0;
          for (const line of body.split('\n')) {
            const m = /^rtmd_connections_accepted_total(\{[^}]*\})?\s+(\S+)/.exec(line);
            if (m) sum += Number(m[2]);
          }
          resolve(sum);
        });
      })
      .on('error', reject);
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

describe('rtmctl', () => {
  let srv;
  let enc;
  let dir;
  let pubPem;
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(() => [srv, enc], fn));
  const listeners = [];
  const addr = (s, gate = 'client_tcp') => `127.0.0.1:${s.ports[gate]}`;
  const show = (r) => `exit=${r.code} signal=${r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

  before(async () => {
    dir = await makeTempDir('rtmd-it-ctl-');
    const keyPem = path.join(dir, 'key.pem');
    pubPem = path.join(dir, 'pub.pem');
    let r = await run('openssl', ['ecparam', '-name', 'secp256k1', '-genkey', '-noout', '-out', keyPem]);
    assert.equal(r.code, 0, r.stderr);
    r = await run('openssl', ['ec', '-in', keyPem, '-pubout', '-out', pubPem]);
    assert.equal(r.code, 0, r.stderr);
    srv = await startRtmd();
    enc = await startRtmd({ args: [`--key_pem=${keyPem}`] });
  });

  after(async () => {
    for (const l of listeners) l.kill();
    for (const s of [srv, enc]) {
      if (!s) continue;
      const alive = s.alive;
      await s.cleanup();
      assert.ok(alive, `rtmd died during the tests\n${s.diagnostics()}`);
    }
    if (dir) await removeTempDir(dir);
    const reports = sanitizerReports();
    assert.equal(reports.length, 0, `sanitizer reports from rtmd:\n${reports.join('\n')}`);
  });

  it('rtmctl ping exits 0', async () => {
    for (const gate of ['client_tcp', 'server_tcp']) {
      const before = await accepted(srv);
      const r = await rtmctl(['ping', addr(srv, gate)]);
      assert.equal(r.code, 0, show(r));
      // It really talked to the server.
      // +1 for the next scrape's own connection, +1 for rtmctl.
      assert.ok((await accepted(srv)) >= before + 2, `rtmctl ping connected to rtmd's ${gate}`);
    }
  });

  it('rtmctl call *echo prints JSON with exact 64-bit integers', async () => {
    let r = await rtmctl(['call', addr(srv), '*echo', '{"a":9007199254740993}']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /"a"\s*:\s*9007199254740993(?![\d.eE])/, show(r));
    r = await rtmctl(['call', addr(srv), '*echo', '{"min":-9223372036854775808,"max":9223372036854775807,"s":"x","l":[1,true,null]}']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /"min"\s*:\s*-9223372036854775808(?![\d.eE])/, show(r));
    assert.match(r.stdout, /"max"\s*:\s*9223372036854775807(?![\d.eE])/, show(r));
    assert.match(r.stdout, /"s"\s*:\s*"x"/, show(r));
  });

  it('rtmctl call of an unknown method exits non-zero and prints code 20004', async () => {
    const r = await rtmctl(['call', addr(srv), 'no.such.method', '{}']);
    assert.notEqual(r.code, 0, show(r));
    assert.equal(r.timedOut, false);
    assert.match(r.stderr, /20004/, show(r));
  });

  it('rtmctl fails cleanly when nobody listens', async () => {
    const port = await freePort();
    const r = await rtmctl(['ping', `127.0.0.1:${port}`]);
    assert.equal(r.timedOut, false, 'does not hang');
    assert.notEqual(r.code, 0, show(r));
    assert.ok(r.stderr.length > 0, 'says why on stderr');
  });

  it('rtmctl --key PUBPEM talks to an encrypted rtmd', async () => {
    for (const gate of ['client_tcp', 'server_tcp']) {
      let r = await rtmctl(['--key', pubPem, 'ping', addr(enc, gate)]);
      assert.equal(r.code, 0, show(r));
      r = await rtmctl(['--key', pubPem, 'call', addr(enc, gate), '*echo', '{"a":9007199254740993,"b":"enc"}']);
      assert.equal(r.code, 0, show(r));
      assert.match(r.stdout, /"a"\s*:\s*9007199254740993(?![\d.eE])/, show(r));
      assert.match(r.stdout, /"b"\s*:\s*"enc"/, show(r));
    }
  });

  it('rtmctl --key with --bits 256 and --stream', async () => {
    for (const extra of [['--bits', '256'], ['--stream'], ['--stream', '--bits', '256']]) {
      const r = await rtmctl(['--key', pubPem, ...extra, 'call', addr(enc), '*echo', '{"m":-9223372036854775808}']);
      assert.equal(r.code, 0, `${extra.join(' ')}\n${show(r)}`);
      assert.match(r.stdout, /"m"\s*:\s*-9223372036854775808(?![\d.eE])/, show(r));
    }
  });

  it('rtmctl --key with the wrong server key fails instead of hanging', async () => {
    const otherKey = path.join(dir, 'other.pem');
    const otherPub = path.join(dir, 'other-pub.pem');
    let r = await run('openssl', ['ecparam', '-name', 'secp256k1', '-genkey', '-noout', '-out', otherKey]);
    assert.equal(r.code, 0, r.stderr);
    r = await run('openssl', ['ec', '-in', otherKey, '-pubout', '-out', otherPub]);
    assert.equal(r.code, 0, r.stderr);
    r = await rtmctl(['--timeout', '3', '--key', otherPub, 'ping', addr(enc)], { timeoutMs: 10000 });
    assert.equal(r.timedOut, false, 'rtmctl gives up on its own');
    assert.notEqual(r.code, 0, show(r));
  });
  // ---- session commands ----

  const project = () => srv.projects[0];
  const signed = () => ['--pid', project().pid, '--secret', project().secret];
  const startListen = async (uid, extra = []) => {
    const t = await rtmctl(['token', addr(srv, 'server_tcp'), ...signed(), '--uid', String(uid)]);
    assert.equal(t.code, 0, show(t));
    const l = listen([addr(srv), '--pid', project().pid, '--uid', String(uid), '--token', t.stdout.trim(), ...extra]);
    listeners.push(l);
    await l.ready();
    return l;
  };

  it('rtmctl token prints a token that logs the user in', async () => {
    const r = await rtmctl(['token', addr(srv, 'server_tcp'), ...signed(), '--uid', '9007199254740993']);
    assert.equal(r.code, 0, show(r));
    const token = r.stdout.trim();
    assert.match(token, /^\S{16,}$/, show(r));
    assert.equal(r.stdout, `${token}\n`, 'only the token on stdout');
    const c = await fpnn.connect({ port: srv.ports.client_tcp });
    const ok = await c.quest('auth', { pid: fpnn.int64(project().pid), uid: fpnn.int64('9007199254740993'), token, version: 't' });
    assert.equal(ok.ok, true, 'the token logs in the exact 64-bit uid');
    await c.close();
  });

  it('rtmctl token takes the project from RTM_PID and RTM_SECRET', async () => {
    const env = { RTM_PID: project().pid, RTM_SECRET: project().secret };
    const r = await rtmctl(['token', addr(srv, 'server_tcp'), '--uid', '11'], { env });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^\S{16,}\n$/, show(r));
    // Options win over the environment.
    const bad = await rtmctl(['token', addr(srv, 'server_tcp'), '--secret', 'wrong', '--uid', '11'], { env });
    assert.equal(bad.code, 2, show(bad));
    assert.match(bad.stderr, /200002/, show(bad));
  });

  it('rtmctl session commands refuse missing or bad options without connecting', async () => {
    const env = { RTM_PID: '', RTM_SECRET: '' };
    const cases = [
      [['token', addr(srv, 'server_tcp'), '--uid', '1'], /--pid/],
      [['token', addr(srv, 'server_tcp'), '--pid', project().pid, '--uid', '1'], /--secret/],
      [['token', addr(srv, 'server_tcp'), ...signed()], /--uid/],
      [['token', addr(srv, 'server_tcp'), ...signed(), '--uid', 'abc'], /integer/],
      [['send', addr(srv, 'server_tcp'), ...signed(), '--from', '1', 'hi'], /--to/],
      [['send', addr(srv, 'server_tcp'), ...signed(), '--from', '1', '--to', '2', '--group', '3', 'hi'], /exactly one/],
      [['send', addr(srv, 'server_tcp'), ...signed(), '--from', '1', '--to', '2', '--mtype', '200', 'hi'], /mtype/],
      [['history', addr(srv, 'server_tcp'), ...signed(), '--uid', '1'], /--ouid/],
      [['data', addr(srv, 'server_tcp'), ...signed(), 'get', 'k'], /--uid/],
      [['data', addr(srv, 'server_tcp'), ...signed(), '--uid', '1', 'put', 'k'], /get, set or del/],
      [['data', addr(srv, 'server_tcp'), ...signed(), '--uid', '1', 'set', 'k'], /usage: rtmctl data/],
      [['data', addr(srv, 'server_tcp'), ...signed(), '--uid', '1', 'get', 'k', '--to', '2'], /not an option/],
      [['listen', addr(srv), '--pid', project().pid, '--uid', '1'], /--token/],
      [['listen', addr(srv), '--pid', project().pid, '--uid', '1', '--token', 'x', '--from', '2'], /not an option/],
      [['ping', addr(srv), '--uid', '1'], /session options/],
    ];
    for (const [args, re] of cases) {
      const r = await rtmctl(args, { env });
      assert.equal(r.code, 1, `${args.join(' ')}\n${show(r)}`);
      assert.match(r.stderr, re, `${args.join(' ')}\n${show(r)}`);
    }
  });

  it('rtmctl listen with a bad token exits 2', async () => {
    const l = listen([addr(srv), '--pid', project().pid, '--uid', '12', '--token', 'not-a-token']);
    listeners.push(l);
    const r = await l.exited();
    assert.equal(r.code, 2, l.stderr);
    assert.match(l.stderr, /login refused/);
  });

  it('rtmctl send reaches rtmctl listen, which prints the push as a JSON line', async () => {
    const a = await startListen(2101);
    const b = await startListen(2102);
    const r = await rtmctl(['send', addr(srv, 'server_tcp'), ...signed(), '--from', '2101', '--to', '2102', '--mid', '9007199254740993', 'hi from 2101']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^\{.*\}\n$/, show(r));
    assert.match(r.stdout, /"mid":9007199254740993(?!\d)/, show(r));
    const answer = JSON.parse(r.stdout);
    assert.ok(answer.mtime > 1.6e12, show(r));
    const line = await b.waitLine((l) => l.payload && pushText(l.payload) === 'hi from 2101');
    assert.equal(typeof line.method, 'string');
    assert.equal(line.payload.from, 2101);
    assert.equal(line.payload.mtype, 30);
    assert.match(b.stdout, /"mid":9007199254740993(?!\d)/, 'exact 64-bit mid in the push line');
    // Every line is complete JSON on its own, and the sender saw nothing.
    assert.ok(b.stdout.endsWith('\n'));
    assert.equal(a.lines.filter((l) => l.payload && pushText(l.payload) === 'hi from 2101').length, 0);
    // SIGTERM stops a listener cleanly.
    a.proc.kill('SIGTERM');
    b.proc.kill('SIGINT');
    assert.deepEqual(await a.exited(), { code: 0, signal: null }, a.stderr);
    assert.deepEqual(await b.exited(), { code: 0, signal: null }, b.stderr);
  });

  it('rtmctl listen --count N stops after N pushes; --seconds S after S seconds', async () => {
    const counted = await startListen(2201, ['--count', '2']);
    for (let i = 1; i <= 3; i++) {
      const r = await rtmctl(['send', addr(srv, 'server_tcp'), ...signed(), '--from', '2200', '--to', '2201', '--mtype', '51', `m${i}`]);
      assert.equal(r.code, 0, show(r));
    }
    const done = await counted.exited();
    assert.equal(done.code, 0, counted.stderr);
    assert.deepEqual(counted.lines.map((l) => pushText(l.payload)), ['m1', 'm2']);
    assert.deepEqual(counted.lines.map((l) => l.payload.mtype), [51, 51]);
    const t0 = Date.now();
    const timed = await startListen(2202, ['--seconds', '1']);
    const r = await timed.exited(5000);
    assert.equal(r.code, 0, timed.stderr);
    assert.ok(Date.now() - t0 < 4000);
  });

  it('rtmctl listen exits 1 when the server kicks the user out', async () => {
    const l = await startListen(2301);
    const app = await appServer(srv);
    try {
      await app.call('kickout', { uid: fpnn.int64(2301) });
    } finally {
      await app.close();
    }
    const r = await l.exited();
    assert.equal(r.code, 1, l.stderr);
    assert.match(l.stderr, /closed/);
    assert.ok(l.lines.some((x) => x.method === 'kickout'), l.stdout);
  });

  it('rtmctl history reads back a P2P conversation', async () => {
    for (const text of ['first', 'second', 'third']) {
      const r = await rtmctl(['send', addr(srv, 'server_tcp'), ...signed(), '--from', '2401', '--to', '2402', text]);
      assert.equal(r.code, 0, show(r));
    }
    let r = await rtmctl(['history', addr(srv, 'server_tcp'), ...signed(), '--uid', '2401', '--ouid', '2402', '--num', '10']);
    assert.equal(r.code, 0, show(r));
    let h = JSON.parse(r.stdout);
    assert.ok(Array.isArray(h.msgs), show(r));
    const texts = (x) => JSON.stringify(x.msgs).match(/first|second|third/g);
    assert.deepEqual(texts(h), ['first', 'second', 'third'], show(r));
    r = await rtmctl(['history', addr(srv, 'server_tcp'), ...signed(), '--uid', '2402', '--ouid', '2401', '--num', '2', '--desc']);
    assert.equal(r.code, 0, show(r));
    h = JSON.parse(r.stdout);
    assert.deepEqual(texts(h), ['third', 'second'], show(r));
  });

  it('rtmctl send --group and history --group', async () => {
    const app = await appServer(srv);
    try {
      await app.call('addgroupmembers', { gid: fpnn.int64(77), uids: [fpnn.int64(2501), fpnn.int64(2502)] });
    } finally {
      await app.close();
    }
    const b = await startListen(2502);
    const r = await rtmctl(['send', addr(srv, 'server_tcp'), ...signed(), '--from', '2501', '--group', '77', 'to the group']);
    assert.equal(r.code, 0, show(r));
    const line = await b.waitLine((l) => l.payload && pushText(l.payload) === 'to the group');
    assert.equal(line.payload.gid, 77);
    b.proc.kill('SIGTERM');
    assert.equal((await b.exited()).code, 0);
    const h = await rtmctl(['history', addr(srv, 'server_tcp'), ...signed(), '--uid', '2501', '--group', '77']);
    assert.equal(h.code, 0, show(h));
    assert.match(h.stdout, /to the group/, show(h));
  });

  it('rtmctl data sets, gets and deletes a user\'s key over the server gate', async () => {
    const d = (...args) => rtmctl(['data', addr(srv, 'server_tcp'), ...signed(), '--uid', '9007199254740993', ...args]);
    let r = await d('get', 'theme');
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout, '{}\n', show(r));
    r = await d('set', 'theme', 'dark ünïcode');
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout, '', show(r));
    r = await d('get', 'theme');
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(JSON.parse(r.stdout), { val: 'dark ünïcode' });
    // The exact 64-bit uid: the app server reads the same value.
    const app = await appServer(srv);
    try {
      assert.deepEqual(await app.call('dataget', { uid: fpnn.int64('9007199254740993'), key: 'theme' }), { val: 'dark ünïcode' });
      assert.deepEqual(await app.call('dataget', { uid: fpnn.int64('9007199254740992'), key: 'theme' }), {});
    } finally {
      await app.close();
    }
    r = await d('del', 'theme');
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout, '', show(r));
    assert.equal((await d('get', 'theme')).stdout, '{}\n');
    // An error answer: exit 2 with {code, ex} on stderr.
    r = await d('set', 'k'.repeat(129), 'x');
    assert.equal(r.code, 2, show(r));
    assert.match(r.stderr, /200030/, show(r));
  });
});
