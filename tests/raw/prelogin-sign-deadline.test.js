'use strict';
// A server-gate link that has not made one validly signed request within
// login_timeout is closed: one that sends nothing but unsigned pings, and one
// whose only request had a wrong signature. A link that signed once is
// trusted and stays open while quiet, as app servers keep their links.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const { startRtmd, withLogs, sleep } = require('../integration/lib/rtmd');
const { appServer, sign, stopChecked } = require('../integration/lib/rtm');

const LOGIN_TIMEOUT_S = 2;
let srv;

before(async () => {
  srv = await startRtmd({ args: [`--login_timeout=${LOGIN_TIMEOUT_S}`, '--handshake_timeout=60'] });
});

after(() => stopChecked(srv));

test('server gate: unsigned links are closed after login_timeout, a signed one stays', { timeout: 20000 }, withLogs(() => srv, async () => {
  const project = srv.projects[0];
  const t0 = Date.now();
  const pinger = await fpnn.connect({ port: srv.ports.server_tcp });
  const badSign = await fpnn.connect({ port: srv.ports.server_tcp });
  const signed = await appServer(srv);
  const timer = setInterval(() => {
    if (!pinger.isClosed) pinger.quest('ping', {}, { timeoutMs: 1000 }).catch(() => {});
  }, 300);
  try {
    assert.deepEqual(await pinger.quest('ping', {}), {});
    const wrong = { ...sign(project, 'gettoken', { uid: fpnn.int64(1) }), sign: '0'.repeat(32) };
    await assert.rejects(badSign.quest('gettoken', wrong), (e) => typeof e.code === 'number', 'a wrong signature is refused');
    assert.ok(await signed.token(8001), 'a signed request is answered');

    for (const [name, c] of [['pinging', pinger], ['bad signature', badSign]]) {
      assert.ok(await c.waitClose(LOGIN_TIMEOUT_S * 1000 + 4000), `${name}: closed without a valid signed request`);
      const lived = c.closedAt - t0;
      assert.ok(lived >= LOGIN_TIMEOUT_S * 1000 - 200, `${name}: closed after ${lived} ms, before login_timeout`);
    }

    // Quiet since its one signed request, and older than the deadline.
    await sleep(Math.max(0, LOGIN_TIMEOUT_S * 1000 + 1500 - (Date.now() - t0)));
    assert.equal(signed.client.isClosed, false, 'a link that signed once is not timed out');
    assert.ok(await signed.token(8002));
  } finally {
    clearInterval(timer);
    pinger.destroy();
    badSign.destroy();
    await signed.close();
  }
}));
