'use strict';
// `rtmctl backup DATA_DIR FILE` against a running rtmd on SQLite: the copy
// taken while an app server keeps writing holds every message answered
// before the backup began and only messages that were sent; an rtmd started
// on the copy (the restore of docs/operations.md) serves the same project
// and history. A backup never overwrites a file, refuses what is not an
// rtmd store, and leaves no partial file behind. SQLite only (PostgreSQL
// is backed up with pg_dump), so not in the pg.* and cl.* suites.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const fpnn = require('./lib/fpnn');
const { appServer } = require('./lib/rtm');
const { startRtmd, withLogs, run, rtmctlBin, makeTempDir, removeTempDir, storeRows } = require('./lib/rtmd');

const I = fpnn.int64;
const backup = (args) => run(rtmctlBin(), ['backup', ...args], { timeoutMs: 60000 });
const FROM = 5001;
const TO = 5002;

describe('rtmctl backup', () => {
  let srv;
  let dir;
  before(async () => {
    srv = await startRtmd();
    dir = await makeTempDir('rtmd-backup-');
  });
  after(async () => {
    if (srv) await srv.cleanup();
    if (dir) await removeTempDir(dir);
  });

  test('a copy taken under writes holds every message answered before it began; rtmd serves it', async () => {
    await withLogs(srv, async () => {
      const app = await appServer(srv);
      const sent = new Set();
      const acked = [];
      let writing = true;
      let mid = 1_000_000;
      const writer = (async () => {
        while (writing) {
          const m = mid++;
          sent.add(String(m));
          await app.call('sendmsg', { from: I(FROM), to: I(TO), mid: I(m), mtype: 30, msg: `m${m}`, attrs: '' });
          acked.push(String(m));
        }
      })();
      while (acked.length < 300) await new Promise((r) => setTimeout(r, 10));
      const before = [...acked];
      const out = path.join(dir, 'copy.sqlite3');
      const r = await backup([srv.dataDir, out]);
      const afterBackup = acked.length;
      writing = false;
      await writer;
      assert.equal(r.code, 0, `backup failed: ${r.stderr}`);
      const report = JSON.parse(r.stdout);
      assert.equal(report.file, out);
      assert.equal(report.bytes, fs.statSync(out).size);
      assert.ok(report.schema_version > 0);
      assert.ok(afterBackup > before.length, 'writes went on while the backup ran');
      assert.deepEqual(fs.readdirSync(dir), ['copy.sqlite3'], 'no partial file left');

      // Restore: the copy as the store of a new data directory.
      const restoredDir = await makeTempDir('rtmd-restored-');
      fs.copyFileSync(out, path.join(restoredDir, 'rtmd.sqlite3'));
      const rows = (await storeRows(restoredDir, `SELECT mid FROM messages WHERE from_uid = ${FROM}`)).map((row) => row[0]);
      const inCopy = new Set(rows);
      for (const m of before) assert.ok(inCopy.has(m), `message ${m}, answered before the backup began, is in the copy`);
      for (const m of inCopy) assert.ok(sent.has(m), `message ${m} of the copy was sent`);
      assert.equal(inCopy.size, rows.length, 'each message once');

      const restored = await startRtmd({ dataDir: restoredDir });
      try {
        assert.deepEqual(restored.projects, srv.projects, 'the restored store has the same project');
        const app2 = await appServer(restored);
        const h = await app2.call('getp2pmsg', { uid: I(FROM), ouid: I(TO), desc: false, num: 10, begin: I(0), end: I(0), lastid: I(0) });
        assert.equal(String(h.msgs[0][3]), before[0], 'the restored rtmd serves the history');
        await app2.close();
      } finally {
        await restored.cleanup();
        await removeTempDir(restoredDir);
      }
      await app.close();
    });
  });

  test('never overwrites a file, refuses what is not an rtmd store, leaves nothing partial', async () => {
    const existing = path.join(dir, 'existing');
    fs.writeFileSync(existing, 'keep me');
    let r = await backup([srv.dataDir, existing]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /exists/);
    assert.equal(fs.readFileSync(existing, 'utf8'), 'keep me');

    const notStore = path.join(dir, 'not-a-store');
    fs.writeFileSync(notStore, 'plain text, not SQLite');
    r = await backup([notStore, path.join(dir, 'out1')]);
    assert.equal(r.code, 1);
    assert.ok(!fs.existsSync(path.join(dir, 'out1')));

    const otherDb = path.join(dir, 'other.sqlite3');
    assert.equal((await run('sqlite3', [otherDb, 'CREATE TABLE t (x); PRAGMA user_version = 3;'])).code, 0);
    r = await backup([otherDb, path.join(dir, 'out2')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not an rtmd store/);

    r = await backup([srv.dataDir, path.join(dir, 'no-such-dir', 'out3')]);
    assert.equal(r.code, 1);
    r = await backup([srv.dataDir]);
    assert.equal(r.code, 1, 'a missing FILE is a usage error');
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.partial-')), [], 'no partial file left');
  });

  test('backs up the store of a stopped rtmd', async () => {
    const stopped = await startRtmd();
    const app = await appServer(stopped);
    await app.call('sendmsg', { from: I(FROM), to: I(TO), mid: I(42), mtype: 30, msg: 'kept', attrs: '' });
    await app.close();
    assert.equal(await stopped.stop(), 0);
    const out = path.join(dir, 'stopped.sqlite3');
    const r = await backup([path.join(stopped.dataDir, 'rtmd.sqlite3'), out]);
    assert.equal(r.code, 0, r.stderr);
    const rows = await storeRows(await copyAsStore(out), 'SELECT msg FROM messages WHERE mid = 42');
    assert.deepEqual(rows, [['kept']]);
    await stopped.cleanup();
  });
});

// A data directory holding file as its store, for storeRows.
async function copyAsStore(file) {
  const d = await makeTempDir('rtmd-copy-');
  fs.copyFileSync(file, path.join(d, 'rtmd.sqlite3'));
  return d;
}
