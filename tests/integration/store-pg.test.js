'use strict';
// The store's writer on PostgreSQL (src/rtmd/store/store.c,
// store_open_postgres): starts a real PostgreSQL (lib/pg.js) and runs the
// cmocka program tests/unit/test_store.c in its PostgreSQL mode
// (RTMD_TEST_PG): group commit in order, a failing write isolated by the
// savepoint replay, runs of writes applied together, the draining close, done callbacks that submit and
// close, the project helpers and a reopen (its path comes from CMake in
// TEST_STORE_BIN). Plain ctest runs the same program on SQLite as
// unit.test_store.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { startPostgres } = require('./lib/pg');

test('the store on PostgreSQL: the writer tests of test_store pass', { timeout: 180000 }, async () => {
  const bin = process.env.TEST_STORE_BIN;
  assert.ok(bin, 'TEST_STORE_BIN is set by CMake (run through ctest)');
  const pg = await startPostgres();
  try {
    const r = spawnSync(bin, [], { encoding: 'utf8', timeout: 120000, env: { ...process.env, RTMD_TEST_PG: pg.url } });
    if (r.error) throw r.error;
    const out = r.stdout + r.stderr;
    assert.equal(r.status, 0, out);
    assert.match(out, /\[  PASSED  \] 7 test\(s\)/, out);
  } finally {
    await pg.stop();
  }
});
