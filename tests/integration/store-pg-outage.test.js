'use strict';
// The PostgreSQL store when its server goes away (issue 13, item 4): rtmd
// keeps running; a write waits for the connection to come back (the
// writer reconnects) and is answered once it is stored; a server that
// stays away longer than the store's wait (10 s) fails the waiting writes
// with "storage unavailable", and writes work again once it is back.
// Starts its own PostgreSQL (lib/pg.js), so it is not part of the pg.*
// run of the suite.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { startPostgres } = require('./lib/pg');
const { startRtmd, withLogs, sleep } = require('./lib/rtmd');
const { appServer, stopChecked } = require('./lib/rtm');

const I = fpnn.int64;
let nextMid = 1000;

describe('PostgreSQL store outage', () => {
  let pg, srv, app;
  const A = 501, B = 502;
  const send = (msg, opts) => app.call('sendmsg', { from: I(A), to: I(B), mid: I(nextMid++), mtype: 30, msg, attrs: '' }, opts);
  const history = async () =>
    (await app.call('getp2pmsg', { uid: I(A), ouid: I(B), desc: false, num: 20 })).msgs.map((m) => m[5]);

  before(async () => {
    pg = await startPostgres({ fsync: true });
    const url = pg.createDatabase('rtmd_outage');
    srv = await startRtmd({ args: ['--store=postgres', `--store_url=${url}`] });
    app = await appServer(srv);
  });
  after(async () => {
    if (srv) await stopChecked(srv, [app]);
    if (pg) await pg.stop();
  });

  it('a write sent while PostgreSQL restarts is answered once it is back, and stored', withLogs(() => srv, async () => {
    await send('before');
    pg.pause();
    const t0 = Date.now();
    const pending = send('during', { timeoutMs: 30000 });
    await sleep(1500);
    pg.start();
    await pending;
    assert.ok(Date.now() - t0 < 10000, `answered after ${Date.now() - t0} ms`);
    // The readers' pooled connections died with the server: reads work again.
    assert.deepEqual(await history(), ['before', 'during']);
  }));

  it('a write fails with "storage unavailable" when PostgreSQL stays away, and writes work when it is back', withLogs(() => srv, async () => {
    pg.pause();
    const t0 = Date.now();
    await assert.rejects(send('lost', { timeoutMs: 40000 }), (e) => {
      assert.match(e.message, /storage unavailable/);
      return true;
    });
    const waited = Date.now() - t0;
    assert.ok(waited >= 9000 && waited < 30000, `failed after ${waited} ms`);
    assert.ok(srv.alive, 'rtmd still runs');
    pg.start();
    await send('after');
    assert.deepEqual(await history(), ['before', 'during', 'after']);
  }));
});
