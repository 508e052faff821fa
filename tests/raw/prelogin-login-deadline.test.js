'use strict';
// A client link that has not logged in within login_timeout is closed,
// whatever it sends meanwhile (here: a ping every 300 ms, which keeps it
// clear of idle_timeout), on the TCP and the WebSocket gate. A link that
// logged in is not timed out. Timeouts are counted per process: on a
// cluster the links go to one node (srv.node(0)), whose /metrics is read.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const { startRtmd, withLogs, sleep } = require('../integration/lib/rtmd');
const { appServer, login, stopChecked } = require('../integration/lib/rtm');
const { scrapeMetric } = require('../integration/lib/http');

const LOGIN_TIMEOUT_S = 2;
let srv;
let app;

before(async () => {
  srv = await startRtmd({ args: [`--login_timeout=${LOGIN_TIMEOUT_S}`, '--ping_interval=1', '--idle_timeout=30', '--handshake_timeout=60'] });
  app = await appServer(srv);
});

after(() => stopChecked(srv, [app]));

// Pings every 300 ms until the link closes.
function keepPinging(client) {
  const timer = setInterval(() => {
    if (client.isClosed) clearInterval(timer);
    else client.quest('ping', {}, { timeoutMs: 1000 }).catch(() => {});
  }, 300);
  return timer;
}

test('a client that only pings is closed after login_timeout; a logged-in one stays', { timeout: 20000 }, withLogs(() => srv, async () => {
  const timeoutsBefore = await scrapeMetric(srv.ports.http, 'rtmd_timeouts_total');
  const t0 = Date.now();
  const node = srv.node(0);
  const tcp = await fpnn.connect({ port: node.ports.client_tcp });
  const ws = await fpnn.connect({ port: node.ports.client_ws, transport: 'ws' });
  const user = await login(node, app, 7001);
  const timers = [keepPinging(tcp), keepPinging(ws), keepPinging(user.client)];
  try {
    // It answers while the deadline runs.
    assert.deepEqual(await tcp.quest('ping', {}), {});
    assert.deepEqual(await ws.quest('ping', {}), {});

    for (const [name, c] of [['tcp', tcp], ['ws', ws]]) {
      assert.ok(await c.waitClose(LOGIN_TIMEOUT_S * 1000 + 4000), `${name}: a link that never logs in is closed`);
      const lived = c.closedAt - t0;
      assert.ok(lived >= LOGIN_TIMEOUT_S * 1000 - 200, `${name}: closed after ${lived} ms, before login_timeout`);
      assert.ok(lived <= LOGIN_TIMEOUT_S * 1000 + 2500, `${name}: closed after ${lived} ms, long after login_timeout`);
    }

    // The logged-in user is older than the deadline and still served.
    await sleep(Math.max(0, LOGIN_TIMEOUT_S * 1000 + 1500 - (Date.now() - t0)));
    assert.equal(user.client.isClosed, false, 'a logged-in client is not timed out');
    assert.deepEqual(await user.call('ping', {}), {});
    // So is the app server that signed its gettoken.
    assert.ok(await app.token(7002));
    const timeoutsAfter = await scrapeMetric(srv.ports.http, 'rtmd_timeouts_total');
    assert.ok(timeoutsAfter >= timeoutsBefore + 2, 'both closes are counted as timeouts');
  } finally {
    for (const t of timers) clearInterval(t);
    tcp.destroy();
    ws.destroy();
    await user.close();
  }
}));
