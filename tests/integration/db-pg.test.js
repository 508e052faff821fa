'use strict';
// The PostgreSQL backend of the store's SQL seam (src/rtmd/store/db_pg.c,
// issue 13 item 1): starts a real PostgreSQL (lib/pg.js), creates a
// database of its own and runs the cmocka program tests/unit/test_db_pg.c
// against it (its path comes from CMake in TEST_DB_PG_BIN, as RTMD_BIN
// does). The program refuses to run without a connection string.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { startPostgres } = require('./lib/pg');

const bin = process.env.TEST_DB_PG_BIN;

function run(env) {
  const r = spawnSync(bin, [], { encoding: 'utf8', timeout: 120000, env });
  if (r.error) throw r.error;
  return r;
}

test('test_db_pg fails clearly without RTMD_TEST_PG', () => {
  assert.ok(bin, 'TEST_DB_PG_BIN is set by CMake (run through ctest)');
  const env = { ...process.env };
  delete env.RTMD_TEST_PG;
  const r = run(env);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /RTMD_TEST_PG is not set/);
});

test('db.h on PostgreSQL: the unit tests of db_pg.c pass', { timeout: 180000 }, async () => {
  const pg = await startPostgres();
  try {
    const url = pg.createDatabase('rtmd_db_pg');
    const r = run({ ...process.env, RTMD_TEST_PG: url });
    const out = r.stdout + r.stderr;
    assert.equal(r.status, 0, out);
    assert.match(out, /\[  PASSED  \] 20 test\(s\)/, out);
  } finally {
    await pg.stop();
  }
});
