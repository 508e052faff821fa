'use strict';
// Starts an rtmd cluster for a test file: one PostgreSQL (lib/pg.js) with a
// database of the cluster, optionally one Redis (lib/redis.js), and n rtmd
// nodes on loopback sharing them, all with the same configuration file
// (the projects given, with fixed pids and secrets, as a cluster's nodes
// must have).
//
//   const { startCluster } = require('./lib/cluster');
//   const c = await startCluster({ nodes: 2, projects: [{ pid: 71, secret: 'secret-71' }] });
//   c.nodes[0], c.nodes[1]   // Rtmd objects of lib/rtmd.js (ports, stop(), ...)
//   c.pg, c.url              // the PostgreSQL server and the store's connection string
//   c.redis                  // the Redis server, or null when { redis: false }
//   await c.startNode()      // one more node on the same store (and Redis)
//   await c.stop()           // stops the nodes (SIGTERM, exit code 0 checked) and the servers
//   await c.appServers(pid)  // one app server per node for project pid: c.apps[pid][n]
//   await c.joined()         // waits until every node joined (Redis's rtmd:nodes)
//   await c.user(pid, n, uid) // uid logged in on node n, online on every other node
//   await c.publishRaw(channel, [bytes...]) // PUBLISH of raw bytes to Redis
//   await c.recordsReceived(n, kind)  // records of a kind node n received
// The app servers and users' links are closed by stop().
//
// extra: more top-level settings for every node's configuration file, as
// text ("retention_interval = 1\n").

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startPostgres } = require('./pg');
const net = require('node:net');
const fpnn = require('./fpnn');
const { startRtmd, makeTempDir, waitFor } = require('./rtmd');

let clusters = 0;

// The kinds of records between nodes, by name without CLUSTER_REC_, read
// from the enum of cluster.h so that tests that forge records follow it.
const RECORD_KINDS = (() => {
  const h = fs.readFileSync(path.join(__dirname, '../../../src/rtmd/modules/cluster/cluster.h'), 'utf8')
    .replace(/\/\*[^]*?\*\//g, ''); // comments first: they may hold braces
  const body = /enum \{\s*(CLUSTER_REC_MESSAGE = 1,[^}]*)\}/.exec(h)[1];
  const names = body.split(',').map((x) => x.trim().replace(/ = 1$/, '')).filter(Boolean);
  const kinds = {};
  names.forEach((n, i) => (kinds[n.replace(/^CLUSTER_REC_/, '').replace(/^CLUSTER_/, '')] = i + 1));
  return kinds;
})();

// One record as a node frames it in a batch: kind (1 byte), length (4
// bytes, big endian), body.
function frameRecord(kind, body) {
  const head = Buffer.alloc(5);
  head[0] = kind;
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

async function startCluster({ nodes = 2, projects = [], redis = false, extra = '', args = [] } = {}) {
  const pg = await startPostgres();
  const url = pg.createDatabase(`rtmd_cluster_${++clusters}`);
  let red = null;
  if (redis) red = await require('./redis').startRedis();
  const dir = await makeTempDir('rtmd-cluster-');
  const conf = path.join(dir, 'rtmd.conf');
  const projectText = projects
    .map((p) => `[project]\n${Object.entries(p).map(([k, v]) => `${k} = ${typeof v === 'string' ? JSON.stringify(v) : v}`).join('\n')}\n`)
    .join('');
  fs.writeFileSync(conf, `${extra}${projectText}`);
  const cluster = {
    pg,
    url,
    redis: red,
    conf,
    nodes: [],
    apps: {},
    links: [],
    async appServers(pid) {
      const { appServer } = require('./rtm');
      this.apps[pid] = [];
      for (const n of this.nodes) this.apps[pid].push(await appServer(n, { project: n.projects.find((p) => p.pid === String(pid)) }));
      return this.apps[pid];
    },
    // Records of a kind (a RECORD_KINDS name) node n received from the
    // other nodes, by its /metrics.
    async recordsReceived(n, kind = 'MESSAGE') {
      const text = (await require('./http').get(this.nodes[n].ports.http, '/metrics')).body;
      const m = new RegExp(`^rtmd_cluster_records_received_by_kind_total\\{kind="${RECORD_KINDS[kind]}"\\} (\\d+)$`, 'm').exec(text);
      assert.ok(m, `node ${n} exposes its ${kind} records received`);
      return Number(m[1]);
    },
    async joined(count = this.nodes.length) {
      assert.ok(await waitFor(() => this.redis.cli('SCARD', 'rtmd:nodes') === String(count), 10000), `${count} nodes joined`);
    },
    async user(pid, n, uid, { wait = true } = {}) {
      const { login } = require('./rtm');
      const apps = this.apps[pid];
      const u = await login(this.nodes[n], apps[n], uid);
      this.links.push(u.client);
      for (let k = 0; wait && k < apps.length; k++) {
        if (k === n || !this.nodes[k].alive) continue;
        const seen = async () => (await apps[k].call('getonlineusers', { uids: [fpnn.int64(uid)] })).uids.length === 1;
        assert.ok(await waitFor(seen, 5000), `node ${k} sees ${uid} online`);
      }
      return u;
    },
    // PUBLISH of raw bytes (redis-cli cannot pass a NUL byte); resolves
    // once Redis answered every one.
    publishRaw(channel, payloads) {
      return new Promise((resolve, reject) => {
        const s = net.connect(Number(new URL(this.redis.url).port), '127.0.0.1');
        let got = '';
        const bulk = (x) => Buffer.concat([Buffer.from(`$${x.length}\r\n`), x, Buffer.from('\r\n')]);
        s.on('data', (d) => {
          got += d;
          if (got.split('\r\n').length > payloads.length) {
            s.end();
            resolve();
          }
        });
        s.on('error', reject);
        for (const p of payloads) s.write(Buffer.concat([Buffer.from('*3\r\n'), bulk(Buffer.from('PUBLISH')), bulk(Buffer.from(channel)), bulk(p)]));
      });
    },
    async startNode(more = []) {
      // Each node has a data directory of its own (files, keys); the store
      // is the shared database.
      const node = await startRtmd({
        config: conf,
        args: ['--store=postgres', `--store_url=${url}`, ...(red ? [`--redis_url=${red.url}`] : []), ...args, ...more],
      });
      this.nodes.push(node);
      return node;
    },
    async stop() {
      for (const l of this.links) if (!l.isClosed) l.destroy();
      for (const list of Object.values(this.apps)) for (const a of list) if (!a.client.isClosed) await a.close();
      for (const n of this.nodes) {
        if (!n.alive) continue;
        const code = await n.stop('SIGTERM');
        assert.equal(code, 0, `node exit code after SIGTERM\n${n.diagnostics()}`);
        await n.cleanup();
      }
      if (red) await red.stop();
      await pg.stop();
    },
  };
  for (let i = 0; i < nodes; i++) await cluster.startNode();
  return cluster;
}

module.exports = { startCluster, RECORD_KINDS, frameRecord };
