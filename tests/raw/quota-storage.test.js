'use strict';
// The storage quota of a project (storage_quota_mb): the bytes of msg and
// attrs of its stored messages. A write that would take it over is refused
// with 200080 on both gates; the count survives a restart (it is kept in
// the store), goes down when retention deletes messages, and is exact in
// the store as soon as a write is answered (no catch-up afterwards).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const { startRtmd, makeTempDir, withLogs, storeRows } = require('../integration/lib/rtmd');
const { appServer, login, expectCode, stopChecked, writeProjectsConfig, int64s } = require('../integration/lib/rtm');

const MIB = 1024 * 1024;
const BASE = { pid: 75001, secret: 'quota-storage-secret', storage_quota_mb: 1, user_msg_rate: 0, user_byte_rate: 0, project_msg_rate: 0, project_byte_rate: 0, history_days: 0 };
const BODY = 'x'.repeat(20000);

let mid = 1;
const appSend = (app, from, to) => app.call('sendmsg', { from: fpnn.int64(from), to: fpnn.int64(to), mid: fpnn.int64(mid++), mtype: 30, msg: BODY, attrs: '' });

describe('storage quota', () => {
  let srv;
  let app;
  let dataDir;
  let confDir;
  const it = (name, fn) => test(name, { timeout: 60000 }, withLogs(() => [srv], fn));

  async function start(settings) {
    const conf = writeProjectsConfig(confDir, [{ ...BASE, ...settings }]);
    srv = await startRtmd({ config: conf, dataDir, args: ['--retention_interval=1'] });
    app = await appServer(srv, { project: srv.projects.find((p) => p.pid === String(BASE.pid)) });
  }

  async function stop() {
    await app.close();
    assert.equal(await srv.stop('SIGTERM'), 0);
  }

  before(async () => {
    dataDir = await makeTempDir('rtmd-quota-data-');
    confDir = await makeTempDir('rtmd-quota-conf-');
    await start({ history_max_per_conversation: 0 });
  });

  after(async () => {
    await stopChecked(srv, [app]);
  });

  it('a write over the quota is refused with 200080 on both gates', async () => {
    for (let i = 0; i < 50; i++) await appSend(app, 1, 2); // 1,000,000 bytes
    const e = await expectCode(app.call('sendmsgs', { from: fpnn.int64(1), tos: int64s([3, 4, 5]), mid: fpnn.int64(mid++), mtype: 30, msg: BODY, attrs: '' }), 200080);
    assert.match(e.message, /quota/);
    const u = await login(srv, app, 3);
    const send = () => u.call('sendmsg', { to: fpnn.int64(4), mid: fpnn.int64(mid++), mtype: 30, msg: BODY, attrs: '' });
    await send(); // 1,020,000
    await send(); // 1,040,000
    await expectCode(send(), 200080); // 1,060,000 > 1 MiB
    await u.close();
    assert.ok(1040000 < MIB);
  });

  it('the count survives a restart', async () => {
    await stop();
    await start({ history_max_per_conversation: 0 });
    await expectCode(appSend(app, 1, 2), 200080);
  });

  it('retention frees what it deletes', async () => {
    await stop();
    await start({ history_max_per_conversation: 1 }); // keeps 2 of the 52 messages
    const deadline = Date.now() + 10000;
    for (;;) {
      try {
        await appSend(app, 1, 2);
        break;
      } catch (e) {
        if (e.code !== 200080 || Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    for (let i = 0; i < 40; i++) await appSend(app, 5, 6);
  });

  it('the count in the store is exact as soon as each write is answered, a duplicate counted once', async () => {
    // One statement, one snapshot: retention (every second) may run between two.
    const diff = async () =>
      (await storeRows(dataDir,
        `SELECT (SELECT bytes FROM storage_usage WHERE pid = ${BASE.pid}) - (SELECT SUM(length(CAST(msg AS BLOB))` +
        ` + length(CAST(attrs AS BLOB))) FROM messages WHERE pid = ${BASE.pid})`))[0][0];
    for (let i = 0; i < 5; i++) {
      const args = { from: fpnn.int64(7), to: fpnn.int64(8 + i), mid: fpnn.int64(mid++), mtype: 30, msg: 'm'.repeat(10 + i), attrs: 'é'.repeat(i) };
      await app.call('sendmsg', args);
      assert.equal(await diff(), '0');
      await app.call('sendmsg', args); // a retry: a duplicate, stored once
      await app.call('sendmsgs', { from: fpnn.int64(7), tos: int64s([20, 21, 22]), mid: fpnn.int64(mid++), mtype: 30, msg: 'n'.repeat(1 + i), attrs: '' });
      assert.equal(await diff(), '0');
    }
    assert.deepEqual(await storeRows(dataDir, "SELECT count(*) FROM counters WHERE name = 'storage_usage_upto'"), [['0']]);
  });
});
