'use strict';
// Starts a real PostgreSQL (Debian's postgresql, version 15 or the newest
// under /usr/lib/postgresql) for a test file: a fresh cluster in a
// temporary directory, listening on 127.0.0.1 on a free port and on a Unix
// socket in that directory, trust authentication for the `postgres` role.
// PostgreSQL refuses to run as root, so when the tests run as root the
// cluster belongs to the `postgres` user and its commands run through
// `runuser -u postgres --`; otherwise they run as the current user.
//
//   const { startPostgres } = require('./lib/pg');
//   const pg = await startPostgres();
//   pg.url        // postgresql://postgres@127.0.0.1:PORT/postgres
//   pg.psql('SELECT 1')   // runs psql, returns its unaligned output
//   await pg.stop();      // stops the server and removes its directory
//
// Every server started here is stopped (immediate shutdown) and its
// directory removed when the test process exits, also when a test fails.
// fsync is off by default: these clusters hold test data only (pass
// { fsync: true } for a test that kills PostgreSQL itself).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { freePort } = require('./ports');

const live = new Set();

process.on('exit', () => {
  for (const s of live) s.stopSync('immediate');
});

function pgBinDir() {
  const root = '/usr/lib/postgresql';
  let versions = [];
  try {
    versions = fs.readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => b - a);
  } catch {
    /* not installed */
  }
  const pref = versions.includes('15') ? ['15', ...versions.filter((v) => v !== '15')] : versions;
  for (const v of pref) {
    const bin = path.join(root, v, 'bin');
    if (fs.existsSync(path.join(bin, 'initdb'))) return bin;
  }
  throw new Error('PostgreSQL is not installed (scripts/deps.sh installs Debian postgresql)');
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

function owner() {
  if (!isRoot) return null;
  const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) throw new Error('running as root needs the postgres user (Debian postgresql creates it)');
  return { uid: Number(r.stdout), gid: Number(g.stdout) };
}

// Runs a PostgreSQL program as the cluster's owner.
function runAs(prog, args, opts = {}) {
  const [cmd, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', prog, ...args]] : [prog, args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 60000, ...opts });
  if (r.error) throw r.error;
  return r;
}

function check(r, what) {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${(r.stderr || '') + (r.stdout || '')}`.trim());
  return r;
}

async function startPostgres(opts = {}) {
  const bin = pgBinDir();
  const who = owner();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtmd-pg-'));
  const data = path.join(dir, 'data');
  if (who) fs.chownSync(dir, who.uid, who.gid);
  fs.chmodSync(dir, 0o700);

  const server = {
    dir,
    data,
    host: '127.0.0.1',
    port: 0,
    user: 'postgres',
    database: 'postgres',
    url: '',
    stopped: false,
    stopSync(mode = 'fast') {
      if (this.stopped) return;
      this.stopped = true;
      live.delete(this);
      if (fs.existsSync(path.join(data, 'postmaster.pid')))
        runAs(path.join(bin, 'pg_ctl'), ['stop', '-D', data, '-m', mode, '-w', '-t', '30']);
      fs.rmSync(dir, { recursive: true, force: true });
    },
    async stop() {
      this.stopSync('fast');
    },
    // Stops the server but keeps its data, for a test of an outage; start()
    // brings it back on the same port.
    pause() {
      check(runAs(path.join(bin, 'pg_ctl'), ['stop', '-D', data, '-m', 'fast', '-w', '-t', '30']), 'pg_ctl stop');
    },
    start() {
      check(runAs(path.join(bin, 'pg_ctl'), ['start', '-D', data, '-w', '-t', '60', '-l', path.join(dir, 'log'),
        '-o', `-p ${this.port} ${settings.join(' ')}`]), 'pg_ctl start');
    },
    // Runs sql through psql; returns the rows, unaligned, without headers.
    psql(sql, db = this.database) {
      const r = spawnSync('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-At', '-d', this.urlFor(db), '-c', sql], {
        encoding: 'utf8',
        timeout: 30000,
        maxBuffer: 256 << 20, // a test may read every row it wrote (1 MiB by default)
      });
      if (r.error) throw r.error;
      return check(r, `psql ${JSON.stringify(sql)}`).stdout.trim();
    },
    urlFor(db) {
      return `postgresql://${this.user}@${this.host}:${this.port}/${db}`;
    },
    // A fresh database of this cluster; returns its connection string.
    createDatabase(name) {
      this.psql(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
      return this.urlFor(name);
    },
  };

  check(
    runAs(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']),
    'initdb',
  );
  live.add(server);
  const settings = [
    `-c listen_addresses=127.0.0.1`,
    `-c unix_socket_directories='${dir}'`,
    `-c fsync=${opts.fsync ? 'on' : 'off'}`,
    `-c full_page_writes=${opts.fsync ? 'on' : 'off'}`,
    `-c max_connections=${opts.maxConnections || 100}`,
  ];
  // A free port may be taken between the probe and the start: try again.
  for (let attempt = 0; ; attempt++) {
    server.port = await freePort();
    const r = runAs(path.join(bin, 'pg_ctl'), [
      'start', '-D', data, '-w', '-t', '60', '-l', path.join(dir, 'log'),
      '-o', `-p ${server.port} ${settings.join(' ')}`,
    ]);
    if (r.status === 0) break;
    let log = '';
    try {
      log = fs.readFileSync(path.join(dir, 'log'), 'utf8');
    } catch {
      /* no log */
    }
    if (attempt < 3 && /could not bind|Address already in use/.test(log)) continue;
    server.stopSync('immediate');
    throw new Error(`pg_ctl start failed: ${r.stderr || r.stdout}\n${log.slice(-4096)}`);
  }
  server.url = server.urlFor(server.database);
  return server;
}

module.exports = { startPostgres, pgBinDir };
