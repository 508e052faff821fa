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
//
// extra: more top-level settings for every node's configuration file, as
// text ("retention_interval = 1\n").

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startPostgres } = require('./pg');
const { startRtmd, makeTempDir } = require('./rtmd');

let clusters = 0;

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

module.exports = { startCluster };
