'use strict';
// Starts a real Redis (Debian's redis-server) for a test file: listening on
// 127.0.0.1 on a free port, no persistence (no RDB snapshots, no AOF), its
// working directory a fresh temporary directory.
//
//   const { startRedis } = require('./lib/redis');
//   const redis = await startRedis();
//   redis.url             // redis://127.0.0.1:PORT
//   redis.cli('PING')     // runs redis-cli, returns its output
//   await redis.restart(during) // kills it (SIGKILL), awaits during() if
//                         // given, and starts an empty one on the same port
//   await redis.stop();   // stops the server and removes its directory
//
// Every server started here is killed and its directory removed when the
// test process exits, also when a test fails.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { freePort } = require('./ports');

const READY_TIMEOUT_MS = 15000;
const live = new Set();

process.on('exit', () => {
  for (const s of live) {
    try {
      s.proc.kill('SIGKILL');
    } catch {
      /* already gone */
    }
    fs.rmSync(s.dir, { recursive: true, force: true });
  }
});

function redisBin() {
  for (const p of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) if (fs.existsSync(p)) return p;
  throw new Error('redis-server is not installed (scripts/deps.sh installs Debian redis-server)');
}

// Starts one redis-server on port; resolves once it accepts connections,
// rejects when it exits first (e.g. the port was taken meanwhile).
function launch(bin, dir, port) {
  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'yes',
    '--logfile', '', '--loglevel', 'notice',
  ];
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`redis-server not ready after ${READY_TIMEOUT_MS} ms:\n${out}`));
    }, READY_TIMEOUT_MS);
    const onData = (d) => {
      out += d;
      if (out.length > 16384) out = out.slice(-8192);
      if (/Ready to accept connections/.test(out)) {
        clearTimeout(timer);
        resolve({ proc, out: () => out });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited (${code ?? sig}) before it was ready:\n${out}`));
    });
  });
}

async function startRedis() {
  const bin = redisBin();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtmd-redis-'));
  let started;
  let port;
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      started = await launch(bin, dir, port);
      break;
    } catch (e) {
      if (attempt < 3 && /Address already in use/.test(e.message)) continue;
      fs.rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }
  const server = {
    dir,
    host: '127.0.0.1',
    port,
    url: `redis://127.0.0.1:${port}`,
    proc: started.proc,
    log: started.out,
    // Runs one command through redis-cli; returns its raw output.
    cli(...args) {
      const r = spawnSync('redis-cli', ['-h', this.host, '-p', String(this.port), ...args], {
        encoding: 'utf8',
        timeout: 30000,
      });
      if (r.error) throw r.error;
      if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')} failed: ${r.stderr}`);
      return r.stdout.trim();
    },
    async restart(during) {
      const exited = new Promise((resolve) => this.proc.once('exit', resolve));
      this.proc.kill('SIGKILL');
      await exited;
      if (during) await during();
      // The port may take a moment to be free again.
      for (let attempt = 0; ; attempt++) {
        try {
          const again = await launch(bin, dir, this.port);
          this.proc = again.proc;
          this.log = again.out;
          this.proc.stdout.resume();
          return;
        } catch (e) {
          if (attempt >= 20 || !/Address already in use/.test(e.message)) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    async stop() {
      if (!live.has(this)) return;
      live.delete(this);
      if (this.proc.exitCode === null && this.proc.signalCode === null) {
        const exited = new Promise((resolve) => this.proc.once('exit', resolve));
        this.proc.kill('SIGTERM');
        const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
        await exited;
        clearTimeout(timer);
      }
      fs.rmSync(this.dir, { recursive: true, force: true });
    },
  };
  started.proc.stdout.resume();
  live.add(server);
  return server;
}

module.exports = { startRedis };
