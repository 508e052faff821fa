'use strict';
// Each gate has its own connection budget: clients flooding the client gates
// up to max_connections (TCP and WebSocket together) lock out neither
// /healthz and /metrics nor a signed app-server request; max_client_ws_connections
// bounds the WebSocket gate within it; refused connections are counted per
// gate in rtmd_connections_refused_total. The budgets are one process's: on
// a cluster the links go to one node (srv.node(0)).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const { startRtmd, withLogs, waitFor } = require('../integration/lib/rtmd');
const { appServer, stopChecked } = require('../integration/lib/rtm');
const { get, scrapeMetric } = require('../integration/lib/http');
const { rawConnect } = require('../integration/lib/rawsock');

const CLIENT_BUDGET = 12;
const WS_BUDGET = 4;
let srv;

before(async () => {
  srv = await startRtmd({ args: [`--max_connections=${CLIENT_BUDGET}`, `--max_client_ws_connections=${WS_BUDGET}`, '--max_http_connections=3'] });
});

after(() => stopChecked(srv));

// Resolves 'open' if the link survives a ping, 'refused' if the server
// closes it at once.
async function probe(port, transport = 'tcp') {
  let c;
  try {
    c = await fpnn.connect({ port, transport, timeoutMs: 2000 });
  } catch {
    return { state: 'refused' };
  }
  try {
    await c.quest('ping', {}, { timeoutMs: 2000 });
    return { state: 'open', client: c };
  } catch {
    c.destroy();
    return { state: 'refused' };
  }
}

test('a flood of client links leaves HTTP and the server gate usable', { timeout: 30000 }, withLogs(() => srv, async () => {
  const refused = (gate) => scrapeMetric(srv.ports.http, 'rtmd_connections_refused_total', { gate });
  const node = srv.node(0);
  const held = [];
  try {
    // The WebSocket gate's own budget first, then TCP up to the client budget.
    for (let i = 0; i < WS_BUDGET; i++) {
      const p = await probe(node.ports.client_ws, 'ws');
      assert.equal(p.state, 'open', `WebSocket link ${i + 1} of ${WS_BUDGET}`);
      held.push(p.client);
    }
    assert.equal((await probe(node.ports.client_ws, 'ws')).state, 'refused', 'one WebSocket link over max_client_ws_connections');
    for (let i = WS_BUDGET; i < CLIENT_BUDGET; i++) {
      const p = await probe(node.ports.client_tcp);
      assert.equal(p.state, 'open', `client link ${i + 1} of ${CLIENT_BUDGET}`);
      held.push(p.client);
    }
    assert.equal((await probe(node.ports.client_tcp)).state, 'refused', 'one TCP link over max_connections');
    assert.equal((await probe(node.ports.client_ws, 'ws')).state, 'refused', 'max_connections counts both client gates');

    // HTTP and the app servers have their own budgets.
    const health = await get(srv.ports.http, '/healthz');
    assert.equal(health.status, 200);
    const app = await appServer(srv);
    assert.ok(await app.token(4242), 'a signed request on the server gate is served');
    await app.close();
    assert.ok((await refused('client_tcp')) >= 1);
    assert.ok((await refused('client_ws')) >= 2);
    assert.equal(await refused('server_tcp'), 0);
    assert.equal(await refused('http'), 0);

    // HTTP's budget is its own too: idle links beyond it are refused.
    const idle = [];
    for (let i = 0; i < 4; i++) idle.push(await rawConnect(srv.ports.http));
    assert.ok(await waitFor(() => idle.filter((s) => s.closedByServer).length === 1, 3000), 'the 4th idle HTTP link is refused');
    for (const s of idle) s.destroy();
    // (A scrape may itself be refused until rtmd has seen those links go.)
    const counted = await waitFor(() => refused('http').then((n) => n >= 1, () => false), 3000, 100);
    assert.ok(counted, 'the refused HTTP link is counted');

    // A freed client slot can be used again.
    await held.pop().close();
    const again = await waitFor(async () => {
      const p = await probe(node.ports.client_tcp);
      if (p.client) held.push(p.client);
      return p.state === 'open';
    }, 3000, 100);
    assert.ok(again, 'a slot freed by a closed link is available again');
  } finally {
    for (const c of held) c.destroy();
  }
}));
