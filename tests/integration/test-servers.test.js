'use strict';
// The test servers of the cluster work (issue 13): lib/pg.js starts a real
// PostgreSQL in a temporary directory on a free port (as the postgres user
// when the tests run as root) and lib/redis.js a real redis-server without
// persistence; both answer through their own command-line clients and are
// gone, with their directories, once stopped.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const { startPostgres } = require('./lib/pg');
const { startRedis } = require('./lib/redis');

function refused(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(true));
  });
}

test('PostgreSQL and Redis start, answer, and stop', { timeout: 120000 }, async () => {
  const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
  try {
    assert.match(pg.url, /^postgresql:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
    assert.equal(pg.psql('SELECT 1'), '1');
    assert.match(pg.psql('SHOW server_version'), /^15\./);
    // A database of its own, as each rtmd node's test will want.
    const url = pg.createDatabase('rtmd_test');
    assert.equal(pg.psql('SELECT current_database()', 'rtmd_test'), 'rtmd_test');
    assert.match(url, /\/rtmd_test$/);

    assert.equal(redis.cli('PING'), 'PONG');
    assert.equal(redis.cli('SET', 'k', 'v'), 'OK');
    assert.equal(redis.cli('GET', 'k'), 'v');
    // No persistence: nothing configured to save.
    assert.equal(redis.cli('CONFIG', 'GET', 'save'), 'save');
    assert.equal(redis.cli('CONFIG', 'GET', 'appendonly'), 'appendonly\nno');
  } finally {
    await Promise.all([pg.stop(), redis.stop()]);
  }
  assert.equal(fs.existsSync(pg.dir), false);
  assert.equal(fs.existsSync(redis.dir), false);
  assert.equal(await refused(pg.port), true);
  assert.equal(await refused(redis.port), true);
});
