'use strict';
// max_connections_per_address bounds the connections one source address
// holds on each gate: the extra one is refused (and counted), while another
// address, and the same address on another gate, still get in. The budget
// is one process's: on a cluster the links go to one node (srv.node(0)),
// and the other node's own budget is checked too.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startRtmd, withLogs, waitFor } = require('../integration/lib/rtmd');
const { stopChecked } = require('../integration/lib/rtm');
const { get, scrapeMetric } = require('../integration/lib/http');
const { rawConnect } = require('../integration/lib/rawsock');

const PER_ADDRESS = 3;
let srv;

before(async () => {
  srv = await startRtmd({ args: [`--max_connections_per_address=${PER_ADDRESS}`] });
});

after(() => stopChecked(srv));

const link = (port, localAddress = '127.0.0.1') => rawConnect(port, { localAddress });
const open = (links) => links.filter((s) => !s.closedByServer).length;

test('the connection over the per-address budget is refused; other addresses and gates are not', { timeout: 20000 }, withLogs(() => srv, async () => {
  const node = srv.node(0);
  const links = [];
  try {
    for (let i = 0; i < PER_ADDRESS + 1; i++) links.push(await link(node.ports.client_tcp));
    assert.ok(await waitFor(() => open(links) === PER_ADDRESS, 2000), `${open(links)} links open from one address`);
    assert.equal(links[PER_ADDRESS].closedByServer, true, 'the extra link is the one refused');
    assert.equal(await scrapeMetric(srv.ports.http, 'rtmd_connections_refused_total', { gate: 'client_tcp' }), 1);

    // Another source address has its own budget.
    const other = await link(node.ports.client_tcp, '127.0.0.2');
    links.push(other);
    // So has the same address on the server gate and the HTTP listener.
    const app = await link(srv.ports.server_tcp);
    links.push(app);
    assert.equal((await get(srv.ports.http, '/healthz')).status, 200);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(other.closedByServer, undefined, 'another address is let in');
    assert.equal(app.closedByServer, undefined, 'the server gate counts its own links');

    // A freed place is available again.
    links[0].destroy();
    await waitFor(async () => (await scrapeMetric(srv.ports.http, 'rtmd_connections', { gate: 'client_tcp' })) === PER_ADDRESS, 2000);
    const again = await link(node.ports.client_tcp);
    links.push(again);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(again.closedByServer, undefined, 'a place freed by a closed link is taken again');

    // Every other node of a cluster counts the address on its own.
    for (const n of srv.nodes.slice(1)) {
      const elsewhere = [];
      for (let i = 0; i < PER_ADDRESS; i++) elsewhere.push(await link(n.ports.client_tcp));
      links.push(...elsewhere);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(open(elsewhere), PER_ADDRESS, 'another node has a budget of its own for the address');
    }
  } finally {
    for (const s of links) s.destroy();
  }
}));
