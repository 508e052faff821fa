'use strict';
// Process lifecycle: clean shutdown on SIGTERM/SIGINT, the demo project kept
// across restarts, --version/--help, and configuration errors that name the
// file and line.

const { describe, test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs/promises');
const path = require('node:path');
const fpnn = require('./lib/fpnn');
const { SANITIZER_RE, sanitizerReports, startRtmd, withLogs, run, rtmdBin, makeTempDir, removeTempDir } = require('./lib/rtmd');

const baseArgs = (dir) => [
  `--data_dir=${dir}`,
  '--listen_host=127.0.0.1',
  '--client_tcp_port=0',
  '--client_ws_port=0',
  '--server_tcp_port=0',
  '--http_port=0',
  '--file_tcp_port=0',
  '--file_ws_port=0',
];

describe('rtmd lifecycle', () => {
  const servers = [];
  const dirs = [];
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(() => servers, fn));
  const start = async (opts) => {
    const s = await startRtmd(opts);
    servers.push(s);
    return s;
  };

  after(async () => {
    for (const s of servers) await s.cleanup();
    for (const d of dirs) await removeTempDir(d);
    const reports = sanitizerReports();
    assert.equal(reports.length, 0, `sanitizer reports from rtmd:\n${reports.join('\n')}`);
  });

  for (const signal of ['SIGTERM', 'SIGINT']) {
    it(`${signal} stops rtmd with exit code 0 within a few seconds, closing its clients`, async () => {
      const s = await start();
      const c = await fpnn.connect({ port: s.ports.client_tcp });
      assert.deepStrictEqual(await c.quest('ping', {}), {});
      const t0 = Date.now();
      const code = await s.stop(signal, 5000);
      assert.equal(code, 0, `exit code after ${signal}`);
      assert.ok(Date.now() - t0 < 5000);
      assert.ok(await c.waitClose(2000), 'clients are disconnected');
    });
  }

  it('the demo project keeps its pid and secret across restarts', async () => {
    const dir = await makeTempDir();
    dirs.push(dir);
    const first = await start({ dataDir: dir });
    assert.ok(first.projects.length >= 1, 'first start prints the demo project');
    for (const p of first.projects) {
      assert.match(p.pid, /^[1-9]\d*$/);
      assert.ok(p.secret.length >= 8, 'a secret of at least 8 characters');
    }
    assert.equal(await first.stop('SIGTERM'), 0);

    const second = await start({ dataDir: dir });
    assert.deepStrictEqual(second.projects, first.projects, 'same projects printed after a restart');
    assert.equal(await second.stop('SIGTERM'), 0);

    // Also after a crash (SIGKILL) the data dir is usable and the project stays.
    const third = await start({ dataDir: dir });
    third.proc.kill('SIGKILL');
    await third.exited;
    const fourth = await start({ dataDir: dir });
    assert.deepStrictEqual(fourth.projects, first.projects, 'same projects after kill -9 and restart');
    const c = await fpnn.connect({ port: fourth.ports.client_tcp });
    assert.deepStrictEqual(await c.quest('ping', {}), {});
    await c.close();
    assert.equal(await fourth.stop('SIGTERM'), 0);
  });

  it('a fresh data dir gets a different demo secret', async () => {
    const a = await start();
    const b = await start();
    assert.ok(a.projects.length >= 1 && b.projects.length >= 1);
    assert.notEqual(a.projects[0].secret, b.projects[0].secret, 'demo secrets are random per data dir');
    await a.stop();
    await b.stop();
  });

  it('--version prints a version and exits 0', async () => {
    const r = await run(rtmdBin(), ['--version'], { timeoutMs: 5000 });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, SANITIZER_RE);
    assert.match(r.stdout, /\d+\.\d+\.\d+/);
  });

  it('--help exits 0 and describes the options', async () => {
    const r = await run(rtmdBin(), ['--help'], { timeoutMs: 5000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /data_dir/);
    assert.match(r.stdout + r.stderr, /config/);
  });

  it('a config file with a bad line: exit code != 0 and stderr names file:line', async () => {
    const dir = await makeTempDir();
    dirs.push(dir);
    const conf = path.join(dir, 'rtmd.conf');
    const cases = [
      { text: '# rtmd test configuration\nthis line is not a setting\n', line: 2 },
      { text: '# ok\nidle_timeout = 30\nno_such_setting = 1\n', line: 3 },
      { text: 'max_packet = lots\n', line: 1 },
      { text: 'idle_timeout = 30\n\n\nidle_timeout = 31\n', line: 4 },
    ];
    for (const { text, line } of cases) {
      await fs.writeFile(conf, text);
      const r = await run(rtmdBin(), [...baseArgs(path.join(dir, 'data')), '--config', conf], { timeoutMs: 8000 });
      assert.equal(r.timedOut, false, `rtmd must refuse to start with:\n${text}`);
      assert.notEqual(r.code, 0, `exit code for:\n${text}`);
      assert.ok(r.stderr.includes(`rtmd.conf:${line}:`), `stderr names rtmd.conf:${line}: for:\n${text}\nstderr: ${r.stderr}`);
      assert.doesNotMatch(r.stdout, /ready/);
      assert.doesNotMatch(r.stderr, SANITIZER_RE);
    }
  });

  it('a valid config file is used', async () => {
    const dir = await makeTempDir();
    dirs.push(dir);
    const conf = path.join(dir, 'rtmd.conf');
    await fs.writeFile(conf, '# test\r\nmax_connections = 50 # trailing comment\r\nws_path = /custom/ws\r\n');
    const s = await start({ config: conf });
    assert.equal(s.listens.client_ws.path, '/custom/ws');
    const c = await fpnn.connect({ port: s.ports.client_ws, transport: 'ws', wsPath: '/custom/ws' });
    assert.deepStrictEqual(await c.quest('ping', {}), {});
    await c.close();
    assert.equal(await s.stop(), 0);
  });

  it('a bad command-line option: exit code != 0 and a message', async () => {
    const dir = await makeTempDir();
    dirs.push(dir);
    for (const bad of ['--no_such_option=1', '--max_packet=abc', '--idle_timeout=0']) {
      const r = await run(rtmdBin(), [...baseArgs(path.join(dir, 'data')), bad], { timeoutMs: 8000 });
      assert.equal(r.timedOut, false, `rtmd must refuse ${bad}`);
      assert.notEqual(r.code, 0, `exit code for ${bad}`);
      const name = bad.slice(2, bad.indexOf('='));
      assert.ok(r.stderr.includes(name), `stderr names ${name}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, SANITIZER_RE);
    }
  });
});
