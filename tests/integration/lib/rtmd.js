'use strict';
// Starts a real rtmd for a test file: a fresh temporary data directory, every
// listener on 127.0.0.1 and port 0 (the server picks free ports), and the
// ready banner parsed from stdout:
//
//   listen client_tcp 127.0.0.1:PORT
//   listen client_ws 127.0.0.1:PORT path=/service/websocket
//   listen server_tcp 127.0.0.1:PORT
//   listen http 127.0.0.1:PORT
//   listen file_tcp 127.0.0.1:PORT
//   listen file_ws 127.0.0.1:PORT path=/service/websocket
//   project pid=PID secret=SECRET   (secret=: the store's demo project only;
//                                    a configured project's comes from the file)
//   rtmd VERSION ready
//
// Every process started here is killed when the test process exits, and the
// temporary directories it created are removed.
//
// With RTMD_TEST_STORE=cluster every startRtmd() starts two nodes of one
// cluster (docs/cluster.md): both on one PostgreSQL database and one Redis
// of their own, the second ("twin") with a data directory of its own.
// The returned object is the first node; its client ports (client_tcp,
// client_ws, client_wss) alternate between the two nodes at each read, so
// a test's clients are spread over both, while the server gate and the
// HTTP listener stay on the first node. stop() and cleanup() act on both.
//
// What one process counts (metrics, logs, pre-login budgets, per-node
// quotas, connection ids) is per node by design: a test of it pins its
// clients to one node with srv.node(i) (its own ports, never spread; i = 0
// is the first node, 1 the twin), or checks every node of srv.nodes. On a
// single node srv.node(0) is srv and srv.nodes is [srv].

const fs = require('node:fs');
const fsp = require('node:fs/promises');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

const READY_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 10000;
const LOG_TAIL = 8192;
const SANITIZER_RE = /ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer|MemorySanitizer)|runtime error: |WARNING: ThreadSanitizer/;

const live = new Set();
const tempDirs = new Set();
const started = []; // every server of this test process, for sanitizer checks

process.on('exit', () => {
  for (const s of live) {
    try {
      s.proc.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (const d of tempDirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
});

function rtmdBin() {
  const bin = process.env.RTMD_BIN;
  if (!bin) throw new Error('RTMD_BIN is not set (path of the rtmd binary)');
  return bin;
}

function rtmctlBin() {
  const bin = process.env.RTMCTL_BIN;
  if (!bin) throw new Error('RTMCTL_BIN is not set (path of the rtmctl binary)');
  return bin;
}

async function makeTempDir(prefix = 'rtmd-it-') {
  const d = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

async function removeTempDir(d) {
  tempDirs.delete(d);
  await fsp.rm(d, { recursive: true, force: true });
}

function tail(s, n = LOG_TAIL) {
  return s.length > n ? `...${s.slice(s.length - n)}` : s;
}

class Rtmd {
  constructor() {
    this.stdout = '';
    this.stderr = '';
    this.ports = {};
    this.listens = {};
    this.projects = [];
    this.version = null;
    this.exitCode = undefined;
    this.exitSignal = undefined;
    this.ownDataDir = false;
  }

  get alive() {
    return this.exitCode === undefined && this.exitSignal === undefined;
  }

  // Text to print when a test fails.
  diagnostics() {
    const status = this.alive ? 'running' : `exited code=${this.exitCode} signal=${this.exitSignal}`;
    return `rtmd ${this.args.join(' ')}\n(${status})\n--- stdout ---\n${tail(this.stdout)}\n--- stderr ---\n${tail(this.stderr)}`;
  }

  // Sends signal (default SIGTERM) and resolves with the exit code (a number,
  // or the signal name when it died of a signal). SIGKILLs it after timeoutMs
  // and resolves with 'timeout' then.
  stop(signal = 'SIGTERM', timeoutMs = STOP_TIMEOUT_MS) {
    if (!this.alive) return Promise.resolve(this.exitCode !== null ? this.exitCode : this.exitSignal);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.proc.kill('SIGKILL');
        this.timedOut = true;
      }, timeoutMs);
      this.exited.then(() => {
        clearTimeout(timer);
        if (this.timedOut) resolve('timeout');
        else resolve(this.exitCode !== null ? this.exitCode : this.exitSignal);
      });
      this.proc.kill(signal);
    });
  }

  // Stops the server (SIGKILL if SIGTERM does not work) and removes its data
  // directory when start() created it.
  async cleanup() {
    if (this.alive) await this.stop('SIGTERM', 5000);
    if (this.ownDataDir) await removeTempDir(this.dataDir);
  }

  url(gate, p = '') {
    return `http://127.0.0.1:${this.ports[gate]}${p}`;
  }

  // The i-th node, its ports its own (see the file comment).
  node(i) {
    const n = this.nodes[i];
    if (!n) throw new Error(`no node ${i}: ${this.nodes.length} node(s)`);
    return n;
  }

  get nodes() {
    return [this];
  }
}

// The store every rtmd of this test process uses: SQLite in its data
// directory (the default), or with RTMD_TEST_STORE=postgres a database of
// one PostgreSQL started for the whole test process (lib/pg.js): one
// database per data directory, so a restart on the same directory finds
// its data, as with SQLite.
const TEST_STORE = process.env.RTMD_TEST_STORE || 'sqlite';
if (!['sqlite', 'postgres', 'cluster'].includes(TEST_STORE)) {
  throw new Error(`RTMD_TEST_STORE must be sqlite, postgres or cluster, not ${TEST_STORE}`);
}
let pgServer = null;
const pgDatabases = new Map(); // data directory -> database name

async function pgDatabaseFor(dataDir) {
  if (!pgServer) pgServer = require('./pg').startPostgres({ maxConnections: 400 });
  const pg = await pgServer;
  if (!pgDatabases.has(dataDir)) {
    const name = `rtmd_${pgDatabases.size + 1}`;
    pg.createDatabase(name);
    pgDatabases.set(dataDir, name);
  }
  return { pg, db: pgDatabases.get(dataDir) };
}

// Command-line arguments that put rtmd's store where TEST_STORE says.
async function storeArgs(dataDir) {
  if (TEST_STORE === 'sqlite') return [];
  if (TEST_STORE === 'cluster') {
    const { pg, db } = await pgDatabaseFor(dataDir);
    const redis = await redisFor(dataDir);
    return ['--store=postgres', `--store_url=${pg.urlFor(db)}`, `--redis_url=${redis.url}`];
  }
  const { pg, db } = await pgDatabaseFor(dataDir);
  return ['--store=postgres', `--store_url=${pg.urlFor(db)}`];
}

// Cluster mode: one Redis per first node's data directory (a restart on
// the same directory finds the same Redis), and the twin's data directory.
const redisServers = new Map(); // data directory -> Promise of lib/redis.js server
const twinDirs = new Map(); // data directory -> the twin's
const twinPorts = new Map(); // data directory -> the ports of its twin's last start

function redisFor(dataDir) {
  if (!redisServers.has(dataDir)) {
    // Killed when the test process exits (lib/redis.js); it does not keep
    // the process alive meanwhile.
    const started = require('./redis').startRedis().then((r) => {
      r.proc.unref();
      for (const stream of [r.proc.stdout, r.proc.stderr]) if (stream && stream.unref) stream.unref();
      return r;
    });
    redisServers.set(dataDir, started);
  }
  return redisServers.get(dataDir);
}

async function twinDirFor(dataDir) {
  if (!twinDirs.has(dataDir)) twinDirs.set(dataDir, await makeTempDir('rtmd-twin-'));
  return twinDirs.get(dataDir);
}

// Rows of a query on the store of the rtmd that used dataDir (stopped or
// running), each an array of its cells as text. The same SQL runs on both
// engines unless pgSql gives PostgreSQL's form; bytea cells (PostgreSQL
// prints \x and hex) are decoded as UTF-8 so rows read as SQLite's text.
async function storeRows(dataDir, sql, pgSql = sql) {
  if (TEST_STORE === 'sqlite') {
    const r = await run('sqlite3', ['-separator', '|', path.join(dataDir, 'rtmd.sqlite3'), sql], { timeoutMs: 120000 });
    if (r.code !== 0) throw new Error(`sqlite3 failed: ${r.stderr}`);
    return r.stdout.split('\n').filter((l) => l.length > 0).map((l) => l.split('|'));
  }
  const { pg, db } = await pgDatabaseFor(dataDir);
  const out = pg.psql(pgSql, db);
  const cell = (c) => (/^\\x([0-9a-f]{2})*$/.test(c) ? Buffer.from(c.slice(2), 'hex').toString('utf8') : c);
  return out.split('\n').filter((l) => l.length > 0).map((l) => l.split('|').map(cell));
}

// Starts rtmd and resolves once it printed its ready line.
//   args: extra arguments, e.g. ['--ping_interval=1']
//   config: path of a configuration file (passed as --config FILE)
//   dataDir: reuse a data directory (not removed by cleanup())
async function startRtmd(opts = {}) {
  const first = await startOne(opts);
  if (TEST_STORE !== 'cluster') return first;
  // The twin listens on ports of its own: fixed ports are the first node's
  // (a port of 0 or -1, any or none, stays as given). A fixed port given
  // for a restart on the same data directory restarts the twin on its own
  // previous port of that gate, so that its clients find it again (else
  // any port). Its TLS listeners, enabled with a certificate, take any port
  // too, not their defaults.
  const prev = twinPorts.get(first.dataDir) || {};
  const args = (opts.args || []).map((a) => a.replace(/^--([a-z_]+)_port=[1-9]\d*$/, (m, gate) => `--${gate}_port=${prev[gate] || 0}`));
  for (const gate of ['client_wss_port', 'https_port']) {
    if (!args.some((a) => a.startsWith(`--${gate}=`))) args.push(`--${gate}=0`);
  }
  let twin;
  try {
    twin = await startOne({ ...opts, args, dataDir: await twinDirFor(first.dataDir), twinOf: first.dataDir });
  } catch (e) {
    await first.cleanup();
    throw e;
  }
  twinPorts.set(first.dataDir, { ...twin.ports });
  pairUp(first, twin);
  await waitFor(async () => (await otherNodes(first)) >= 1 && (await otherNodes(twin)) >= 1, READY_TIMEOUT_MS);
  return first;
}

// How many other nodes the node's presence mirror follows (its /metrics).
async function otherNodes(node) {
  if (!node.ports.http) return 1;
  try {
    // A link of its own, closed after the answer: a kept-alive one would
    // hold a place of the HTTP listener's budget for the test.
    const text = (await require('./http').get(node.ports.http, '/metrics')).body;
    const m = /^rtmd_cluster_other_nodes (\d+)/m.exec(text);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

// Makes first the face of both nodes (see the file comment).
function pairUp(first, twin) {
  first.twin = twin;
  twin.isTwin = true;
  const own = first.ports;
  const spread = new Set(['client_tcp', 'client_ws', 'client_wss']);
  let turn = 0;
  first.ports = new Proxy(first.ports, {
    get(target, key) {
      if (!spread.has(key) || !twin.alive || !twin.ports[key]) return target[key];
      return turn++ % 2 === 0 ? target[key] : twin.ports[key];
    },
  });
  // The first node alone: its own ports, stop and cleanup, sharing the
  // rest (process, output, data directory) with first.
  const alone = Object.create(first);
  alone.ports = own;
  const nodes = [alone, twin];
  Object.defineProperty(first, 'nodes', { get: () => nodes });
  const stopFirst = first.stop.bind(first);
  first.stop = async (signal, timeoutMs) => {
    const [a, b] = await Promise.all([stopFirst(signal, timeoutMs), twin.stop(signal, timeoutMs)]);
    return a === 0 ? b : a;
  };
  const cleanupFirst = first.cleanup.bind(first);
  first.cleanup = async () => {
    await Promise.all([cleanupFirst(), twin.cleanup()]);
  };
  const diagnosticsFirst = first.diagnostics.bind(first);
  first.diagnostics = () => `${diagnosticsFirst()}\n===== twin node =====\n${twin.diagnostics()}`;
  alone.stop = stopFirst;
  alone.cleanup = cleanupFirst;
  alone.diagnostics = diagnosticsFirst;
}

// Which node of a pair listens on client port `port`: the twin (true) or
// the first (false). srv is the pair or one of its nodes.
function onTwin(srv, port) {
  const twin = srv.isTwin ? srv : srv.twin;
  return Boolean(twin && Object.values(twin.ports).includes(port));
}

// pid -> secret of the [project] sections of a configuration file (the
// banner does not print configured secrets). Values as the tests write
// them: quoted (JSON string syntax) or bare.
function configuredSecrets(config) {
  const out = {};
  if (!config) return out;
  const sections = fs.readFileSync(config, 'utf8').split(/^\s*\[project\]\s*$/m).slice(1);
  for (const text of sections) {
    const value = (key) => {
      const m = new RegExp(`^\\s*${key}\\s*=\\s*(.*?)\\s*$`, 'm').exec(text);
      return m && (m[1].startsWith('"') ? JSON.parse(m[1]) : m[1]);
    };
    if (value('pid') !== null) out[value('pid')] = value('secret');
  }
  return out;
}

// The configuration file rtmd was given (--config FILE, -c FILE or --config=FILE;
// the last one counts, as in main.c).
function configFile(args) {
  let file = null;
  args.forEach((a, i) => {
    if (a === '--config' || a === '-c') file = args[i + 1];
    else if (a.startsWith('--config=')) file = a.slice('--config='.length);
  });
  return file;
}

async function startOne({ args = [], config, dataDir, readyTimeoutMs = READY_TIMEOUT_MS, env, twinOf } = {}) {
  const s = new Rtmd();
  if (dataDir) {
    s.dataDir = dataDir;
  } else {
    s.dataDir = await makeTempDir();
    s.ownDataDir = true;
  }
  s.args = [
    `--data_dir=${s.dataDir}`,
    '--listen_host=127.0.0.1',
    '--client_tcp_port=0',
    '--client_ws_port=0',
    '--server_tcp_port=0',
    '--http_port=0',
    '--file_tcp_port=0',
    '--file_ws_port=0',
    '--file_wss_port=0', // on only with a certificate
    ...(config ? ['--config', config] : []),
    ...(await storeArgs(twinOf || s.dataDir)),
    ...args,
  ];
  s.proc = spawn(rtmdBin(), s.args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  live.add(s);
  started.push(s);
  s.exited = new Promise((resolve) => {
    // 'close' rather than 'exit': stderr is complete then (leak reports).
    s.proc.once('close', (code, signal) => {
      s.exitCode = code;
      s.exitSignal = signal;
      live.delete(s);
      resolve();
    });
    s.proc.once('error', (e) => {
      s.stderr += `\n[spawn error: ${e.message}]`;
      s.exitCode = null;
      s.exitSignal = 'spawn-error';
      live.delete(s);
      resolve();
    });
  });
  s.proc.stderr.setEncoding('utf8');
  s.proc.stderr.on('data', (d) => {
    if (SANITIZER_RE.test(s.stderr.slice(-200) + d)) s.sanitizerHit = true;
    s.stderr += d;
    if (s.stderr.length > 4 * LOG_TAIL * 16) s.stderr = s.stderr.slice(-LOG_TAIL * 16);
  });
  s.proc.stdout.setEncoding('utf8');

  await new Promise((resolve, reject) => {
    let buffered = '';
    let ready = false;
    const timer = setTimeout(() => {
      reject(new Error(`rtmd not ready within ${readyTimeoutMs} ms\n${s.diagnostics()}`));
      s.proc.kill('SIGKILL');
    }, readyTimeoutMs);
    s.proc.stdout.on('data', (d) => {
      s.stdout += d;
      if (ready) return;
      buffered += d;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).replace(/\r$/, '');
        buffered = buffered.slice(nl + 1);
        let m;
        if ((m = /^listen (\S+) (\S+):(\d+)(?:\s+(.*))?$/.exec(line))) {
          const [, gate, host, port, extra] = m;
          s.ports[gate] = Number(port);
          s.listens[gate] = { host, port: Number(port), extra: extra || '' };
          const pm = /path=(\S+)/.exec(extra || '');
          if (pm) s.listens[gate].path = pm[1];
        } else if ((m = /^project pid=(\d+)(?: secret=(\S+))?$/.exec(line))) {
          s.projects.push({ pid: m[1], secret: m[2] ?? configuredSecrets(configFile(s.args))[m[1]] });
        } else if ((m = /^rtmd (\S+) ready\b/.exec(line))) {
          s.version = m[1];
          ready = true;
          clearTimeout(timer);
          resolve();
          return;
        }
      }
    });
    s.exited.then(() => {
      if (ready) return;
      clearTimeout(timer);
      reject(new Error(`rtmd exited before it was ready\n${s.diagnostics()}`));
    });
  }).catch(async (e) => {
    if (s.ownDataDir) await removeTempDir(s.dataDir).catch(() => {});
    throw e;
  });
  return s;
}

// Reports of AddressSanitizer/UBSan/LeakSanitizer in the stderr of every rtmd
// this test process started (empty when the build has no sanitizers). Call it
// after the servers stopped, so that leak reports are complete.
function sanitizerReports() {
  const out = [];
  for (const s of started) {
    if (s.sanitizerHit || SANITIZER_RE.test(s.stderr)) out.push(s.diagnostics());
  }
  return out;
}

// Wraps a test body so that a failure prints the diagnostics of the servers
// returned by getServers() (a function, since servers are usually started in
// a before() hook).
function withLogs(getServers, fn) {
  return async function wrapped(t) {
    try {
      return await fn(t);
    } catch (e) {
      let servers = getServers();
      if (!Array.isArray(servers)) servers = [servers];
      for (const s of servers) {
        if (!s) continue;
        const text = s.diagnostics();
        if (t && typeof t.diagnostic === 'function') t.diagnostic(text);
        process.stderr.write(`\n===== rtmd diagnostics for failed test${t && t.name ? ` "${t.name}"` : ''} =====\n${text}\n`);
      }
      throw e;
    }
  };
}

// Runs a program to completion with a time limit; resolves {code, signal,
// stdout, stderr}.
function run(bin, args, { timeoutMs = 15000, input, env, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env }, cwd });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    p.stdout.setEncoding('utf8');
    p.stderr.setEncoding('utf8');
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      p.kill('SIGKILL');
    }, timeoutMs);
    p.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
    p.stdin.on('error', () => {});
    if (input !== undefined) p.stdin.end(input);
    else p.stdin.end();
  });
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Polls fn until it returns a truthy value or ms elapse; returns the last value.
async function waitFor(fn, ms, stepMs = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v || Date.now() >= end) return v;
    await sleep(stepMs);
  }
}

// The FPNN gates of rtmd and the transport each speaks, for tests that
// check one behaviour on every gate: [[gate, transport], ...].
const FPNN_GATES = [
  ['client_tcp', 'tcp'],
  ['client_ws', 'ws'],
  ['server_tcp', 'tcp'],
];

function haveOpenssl() {
  const r = spawnSync('openssl', ['version'], { stdio: 'ignore' });
  return r.status === 0;
}

module.exports = {
  startRtmd,
  onTwin,
  storeRows,
  TEST_STORE,
  sanitizerReports,
  SANITIZER_RE,
  withLogs,
  run,
  sleep,
  waitFor,
  makeTempDir,
  removeTempDir,
  rtmdBin,
  rtmctlBin,
  haveOpenssl,
  Rtmd,
  FPNN_GATES,
};
